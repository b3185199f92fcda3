"""Model flavours: how each kind of model is written to files that run no code when read.

A flavour is a small object with ``name``, ``handles(model)``, ``save(model, folder, options)``
(returns JSON-able metadata), ``load(folder, meta, trust)`` (``trust`` is a :class:`~modelcycle.models.trust.Trust`:
what the caller allows beyond the library allow-list; it is falsy unless pickle is allowed) and ``requirements`` (distribution
names whose versions the package records). A flavour whose models do not take a frame in ``predict``
(a PyTorch module, an MLflow-style PythonModel) also has ``predictor(model)``: an object whose ``predict``
takes a frame, as the loaded package's will, used to check the model when it is saved. Built-ins are
looked up lazily by name; third-party flavours register an entry point in the group ``modelcycle.model_flavour``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from modelcycle import plugins
from modelcycle.errors import InvalidInputError
from modelcycle.models.trust import Trust

__all__ = ["BUILTIN_ORDER", "Flavour", "flavour_for", "get_flavour"]

# Tried in this order when no flavour is named: native formats before skops, pickle last.
BUILTIN_ORDER = ("xgboost", "lightgbm", "pytorch", "sklearn", "python")


@runtime_checkable
class Flavour(Protocol):
    name: str
    requirements: tuple[str, ...]

    def handles(self, model: Any) -> bool: ...

    def save(self, model: Any, folder: Path, options: dict[str, Any]) -> dict[str, Any]: ...

    def load(self, folder: Path, meta: dict[str, Any], trust: Trust) -> Any: ...


def get_flavour(name: str) -> Flavour:
    return plugins.load("model_flavour", name)()


def _root_module(model: Any) -> str:
    return type(model).__module__.split(".", 1)[0]


def flavour_for(model: Any, name: str | None = None) -> Flavour:
    """The flavour that saves ``model``: the one named, or the first built-in (then plug-in) that handles it."""
    if name is not None:
        return get_flavour(name)
    root = _root_module(model)
    # a module of yours that subclasses torch.nn.Module lives outside torch; torch is then imported already
    candidates = [n for n in BUILTIN_ORDER if n in ("sklearn", "python") or n == root or (n == "pytorch" and "torch" in sys.modules)]
    candidates += [n for n in plugins.available("model_flavour") if n not in BUILTIN_ORDER]
    for candidate in candidates:
        flavour = get_flavour(candidate)
        if flavour.handles(model):
            return flavour
    raise InvalidInputError(
        f"modelcycle does not know how to save a {type(model).__module__}.{type(model).__qualname__} safely; "
        "wrap it in a modelcycle.models.PythonModel subclass and save it with allow_pickle=True "
        "(it will then only load with trust=True)"
    )
