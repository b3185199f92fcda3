"""Optional libraries: which extra installs each, and one way to import them that names the fix when one is missing.

modelcycle's heavy dependencies are extras (``pip install 'modelcycle[serve]'`` …). Code that needs one
imports it with :func:`require`, which raises :class:`~modelcycle.errors.MissingDependencyError`
naming the extra instead of a bare ``ModuleNotFoundError``; :func:`missing_message` turns a
``ModuleNotFoundError`` raised anywhere else into the same sentence (the command line's safety net).
"""

from __future__ import annotations

import importlib
from types import ModuleType

from modelcycle.errors import MissingDependencyError

__all__ = ["OPTIONAL", "install_command", "missing_message", "require"]

# top-level import name → (what users call it, the extra that installs it)
OPTIONAL: dict[str, tuple[str, str]] = {
    "fastapi": ("FastAPI", "serve"),
    "starlette": ("FastAPI", "serve"),
    "uvicorn": ("uvicorn", "serve"),
    "prometheus_client": ("prometheus-client", "serve"),
    "orjson": ("orjson", "serve"),
    "sklearn": ("scikit-learn", "sklearn"),
    "skops": ("skops", "sklearn"),
    "optuna": ("Optuna", "tune"),
    "matplotlib": ("matplotlib", "plot"),
    "dask": ("Dask", "dask"),
    "distributed": ("Dask distributed", "dask"),
    "psycopg": ("psycopg", "postgres"),
    "psycopg_binary": ("psycopg", "postgres"),
    "xgboost": ("XGBoost", "xgboost"),
    "lightgbm": ("LightGBM", "lightgbm"),
    "torch": ("PyTorch", "torch"),
    "safetensors": ("safetensors", "torch"),
}


def _root(name: str | None) -> str:
    return (name or "").split(".", 1)[0]


def install_command(extra: str) -> str:
    """The command that installs an extra.

    Example:
        >>> install_command("serve")
        "pip install 'modelcycle[serve]'"
    """
    return f"pip install 'modelcycle[{extra}]'"


def missing_message(missing: str | None, purpose: str) -> str | None:
    """``"<purpose> needs <what>, which is not installed: pip install 'modelcycle[<extra>]'"``, or None
    when ``missing`` (a module name, as ``ModuleNotFoundError.name`` gives it) is not an optional library.

    Example:
        >>> missing_message("fastapi.responses", "modelcycle serve")
        "modelcycle serve needs FastAPI, which is not installed: pip install 'modelcycle[serve]'"
        >>> missing_message("numpy", "modelcycle serve") is None
        True
    """
    known = OPTIONAL.get(_root(missing))
    if known is None:
        return None
    what, extra = known
    return f"{purpose} needs {what}, which is not installed: {install_command(extra)}"


def require(module: str, purpose: str, extra: str | None = None) -> ModuleType:
    """Import and return ``module`` (e.g. ``"skops.io"``), or say which extra installs it.

    Args:
        module: the dotted module name to import.
        purpose: what needs it, as the start of a sentence: ``"loading a scikit-learn model"``.
        extra: the extra to name instead of the library's own (``"demo"`` for everything the demo needs).

    Raises:
        MissingDependencyError: the module, or a library it needs, is not installed.

    Example:
        >>> require("json", "reading JSON").dumps([1])
        '[1]'
        >>> require("optuna_is_not_a_module", "tuning")
        Traceback (most recent call last):
        ...
        modelcycle.errors.MissingDependencyError: tuning needs optuna_is_not_a_module, which is not installed: ...
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        # the library itself, or one it imports, is missing: name whichever the table knows
        known = OPTIONAL.get(_root(e.name)) or OPTIONAL.get(_root(module))
        what = known[0] if known else _root(e.name) or _root(module)
        extra = extra or (known[1] if known else None)
        fix = install_command(extra) if extra else f"pip install {what}"
        raise MissingDependencyError(f"{purpose} needs {what}, which is not installed: {fix}",
                                     module=e.name or module, extra=extra) from None


def version() -> str:
    """This modelcycle's version, from the installed package's metadata (pyproject.toml is its one source)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("modelcycle")
    except PackageNotFoundError:  # pragma: no cover - run from a source tree that was never installed
        return "0+unknown"
