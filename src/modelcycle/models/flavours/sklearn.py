"""scikit-learn estimators and pipelines through skops; what the file may build is decided by :mod:`modelcycle.models.trust`."""

from __future__ import annotations

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
            return sio.load(path, trusted=allowed)
        except UntrustedTypesFoundException as e:  # skops' own audit, after ours: should not happen, refused all the same
            raise UnsafeModelError(f"{path.name} holds types modelcycle does not load: {e}") from None
        except Exception as e:
            raise UnsafeModelError(f"{path.name} is not a loadable skops file ({type(e).__name__}: {str(e)[:300]}); refusing to load it") from None


def _skops(purpose: str = "saving a scikit-learn model") -> Any:
    from modelcycle._deps import require

    return require("skops.io", purpose)  # MissingDependencyError names modelcycle[sklearn]
