"""scikit-learn estimators and pipelines through skops, whose loader builds only audited types."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelcycle.errors import ModelError, UnsafeModelError

__all__ = ["DENIED_ROOTS", "SAFE_ROOTS", "SklearnFlavour", "audit_types"]

FILE = "model.skops"
# Types from these libraries are what fitted estimators are made of; skops lists many of them
# as "untrusted" only because it does not know them. Anything else must be trusted by name.
SAFE_ROOTS = ("sklearn", "numpy", "scipy", "xgboost", "lightgbm", "imblearn", "skops")
# Never, not even when named: calling these runs code or touches the system.
DENIED_ROOTS = ("builtins", "__builtin__", "_operator", "operator", "os", "posix", "nt", "subprocess", "sys", "importlib",
                "pickle", "_pickle", "marshal", "shutil", "socket", "io", "_io", "codecs", "runpy", "ctypes", "types", "code",
                "pty", "pdb", "webbrowser", "multiprocessing", "threading", "signal", "asyncio", "functools", "joblib",
                "cloudpickle", "dill", "torch", "pathlib", "tempfile", "urllib", "http", "requests", "inspect")


def _root(type_name: str) -> str:
    return type_name.split(".", 1)[0]


def audit_types(types: list[str], trusted: list[str] | tuple[str, ...] = ()) -> list[str]:
    """The types that may be loaded, or UnsafeModelError naming those that may not.

    Example:
        >>> audit_types(["sklearn.tree._tree.Tree"])
        ['sklearn.tree._tree.Tree']
        >>> audit_types(["builtins.eval"])
        Traceback (most recent call last):
        ...
        modelcycle.errors.UnsafeModelError: the model contains types that can run code when loaded: builtins.eval; ...
    """
    denied = sorted(t for t in types if _root(t) in DENIED_ROOTS)
    if denied:
        raise UnsafeModelError(
            f"the model contains types that can run code when loaded: {', '.join(denied)}; "
            "modelcycle will not save or load them (replace them, e.g. a lambda in a FunctionTransformer, with a named numpy function)"
        )
    unknown = sorted(t for t in types if _root(t) not in SAFE_ROOTS and t not in trusted)
    if unknown:
        raise UnsafeModelError(
            f"the model contains types modelcycle has not audited: {', '.join(unknown)}; if you wrote them or trust their "
            f"library, pass trusted_types={unknown!r} when logging the model"
        )
    return sorted(types)


class SklearnFlavour:
    name = "sklearn"
    requirements = ("scikit-learn", "skops", "numpy", "scipy")

    def handles(self, model: Any) -> bool:
        try:
            from sklearn.base import BaseEstimator
        except ImportError:
            return False
        return isinstance(model, BaseEstimator)

    def save(self, model: Any, folder: Path, options: dict[str, Any]) -> dict[str, Any]:
        sio = _skops()
        path = folder / FILE
        try:
            sio.dump(model, path)
        except Exception as e:  # skops refuses some objects (lambdas, open files, …)
            raise ModelError(f"skops cannot save this {type(model).__name__}: {e}") from None
        types = audit_types(sio.get_untrusted_types(file=path), tuple(options.get("trusted_types") or ()))
        return {"file": FILE, "trusted_types": types}

    def load(self, folder: Path, meta: dict[str, Any], trust: bool) -> Any:
        import zipfile

        from skops.io.exceptions import UntrustedTypesFoundException

        sio = _skops()
        path = folder / meta.get("file", FILE)
        recorded = list(meta.get("trusted_types") or [])
        audit_types(recorded, recorded)  # the deny-list holds even for types recorded at save time
        if not zipfile.is_zipfile(path):
            raise UnsafeModelError(f"{path.name} is not a skops file; refusing to load it")
        try:
            # skops audits every type in the file against `recorded` before it builds any object
            return sio.load(path, trusted=recorded)
        except UntrustedTypesFoundException:
            unrecorded = sorted(set(sio.get_untrusted_types(file=path)) - set(recorded))
            raise UnsafeModelError(
                f"{path.name} contains types that were not recorded when it was saved: {', '.join(unrecorded)}; "
                "the file was changed after saving, refusing to load it"
            ) from None
        except Exception as e:
            raise UnsafeModelError(f"{path.name} is not a loadable skops file ({type(e).__name__}: {e}); refusing to load it") from None


def _skops() -> Any:
    try:
        import skops.io as sio
    except ImportError:
        raise ModelError("scikit-learn models are saved with skops: pip install 'modelcycle[sklearn]'") from None
    return sio
