"""scikit-learn estimators and pipelines through skops; what the file may build is decided by :mod:`modelcycle.models.trust`."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from modelcycle.errors import ModelError, UnsafeModelError
from modelcycle.models.trust import Trust, audit_skops

__all__ = ["SklearnFlavour"]

FILE = "model.skops"


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
        trust = Trust.of(False, options.get("trusted_types"))
        needed = audit_skops(path, trust, saving=True)  # the loader's rules: what saves without trusted_types loads without them
        return {"file": FILE, "trusted_types": needed}  # informative: the loader decides again, by its own rules

    def load(self, folder: Path, meta: dict[str, Any], trust: Trust) -> Any:
        sio = _skops("loading a scikit-learn model")
        from skops.io.exceptions import UntrustedTypesFoundException

        path = folder / FILE
        listed = [str(t) for t in meta.get("trusted_types") or []]
        allowed = audit_skops(path, trust, listed)  # refuses by name before skops builds anything
        try:
            return _load(sio, path, allowed)
        except (SystemError, MemoryError, OSError):
            raise  # the interpreter or the machine, not the file: the caller may try again
        except UntrustedTypesFoundException as e:  # skops' own audit, after ours: should not happen, refused all the same
            raise UnsafeModelError(f"{path.name} holds types modelcycle does not load: {e}") from None
        except (ImportError, AttributeError) as e:  # a trusted type of the user's own that is not importable here
            raise ModelError(_not_importable(e, allowed)) from None
        except Exception as e:
            raise UnsafeModelError(f"{path.name} is not a loadable skops file ({type(e).__name__}: {str(e)[:300]}); refusing to load it") from None


_LOADING = threading.Lock()


def _load(sio: Any, path: Path, allowed: list[str]) -> Any:
    """``skops.io.load``, one at a time in a process and tried twice on a SystemError.

    skops reads arrays with ``numpy.load``, which parses each header with ``ast.literal_eval``; on CPython 3.11,
    ``ast`` used by two threads at once can raise "SystemError: AST constructor recursion depth mismatch"
    (python/cpython#106905) — a server swapping in a version while the agent verifies it is such a pair.
    """
    with _LOADING:
        try:
            return sio.load(path, trusted=allowed)
        except SystemError:
            return sio.load(path, trusted=allowed)


def _not_importable(error: Exception, names: list[str]) -> str:
    """Why a type the model was saved with cannot be built here, and how to make it importable."""
    missing = getattr(error, "name", None) or ""
    if "__main__" in str(error):
        return ("the model refers to a function or class defined in the script or notebook that saved it (__main__), which is not "
                "there now; move it into a module of yours, save the model again, and load it where that module can be imported")
    what = f"module {missing!r}" if missing else str(error).splitlines()[0][:200]
    return (f"the model needs {what}, which cannot be imported here ({type(error).__name__}); install it, or run where it can be "
            "imported (from the folder that holds it, or with that folder on PYTHONPATH)")


def _skops(purpose: str = "saving a scikit-learn model") -> Any:
    from modelcycle._deps import require

    return require("skops.io", purpose)  # MissingDependencyError names modelcycle[sklearn]
