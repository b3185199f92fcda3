"""LightGBM models in LightGBM's own text format (no pickle)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelcycle.errors import ModelError

__all__ = ["LightGBMFlavour"]

FILE = "model.txt"


class _LightGBMModel:
    """A ``lightgbm.Booster`` with the ``predict``/``predict_proba`` of the estimator it came from."""

    def __init__(self, booster: Any, kind: str, classes: list[Any] | None):
        self.booster = booster
        self.kind = kind
        self.classes_ = classes

    def _raw(self, frame: Any) -> Any:
        return self.booster.predict(frame)

    def predict(self, frame: Any) -> Any:
        import numpy as np

        raw = self._raw(frame)
        if self.kind != "classifier":
            return raw
        proba = self.predict_proba(frame) if raw.ndim == 1 else raw
        return np.asarray(self.classes_, dtype=object if any(isinstance(c, str) for c in self.classes_ or []) else None)[proba.argmax(axis=1)]

    def predict_proba(self, frame: Any) -> Any:
        import numpy as np

        if self.kind != "classifier":
            raise AttributeError("predict_proba")
        raw = self._raw(frame)
        return np.column_stack([1.0 - raw, raw]) if raw.ndim == 1 else raw


class LightGBMFlavour:
    name = "lightgbm"
    requirements = ("lightgbm", "numpy", "scipy")

    def handles(self, model: Any) -> bool:
        if type(model).__module__.split(".", 1)[0] != "lightgbm":
            return False
        return type(model).__name__ == "Booster" or hasattr(model, "booster_")

    def save(self, model: Any, folder: Path, options: dict[str, Any]) -> dict[str, Any]:
        booster = model if type(model).__name__ == "Booster" else model.booster_
        booster.save_model(str(folder / FILE))
        kind = "booster"
        classes = None
        if hasattr(model, "classes_"):
            kind = "classifier"
            classes = [c.item() if hasattr(c, "item") else c for c in model.classes_]
        elif type(model).__name__ != "Booster":
            kind = "regressor"
        return {"file": FILE, "kind": kind, "classes": classes}

    def load(self, folder: Path, meta: dict[str, Any], trust: Any) -> Any:
        from modelcycle._deps import require

        lightgbm = require("lightgbm", "loading a LightGBM model")
        path = folder / FILE
        try:
            booster = lightgbm.Booster(model_file=str(path))
        except Exception as e:  # LightGBMError, or a decoding error raised while reporting one
            raise ModelError(f"LightGBM could not read {path.name}: {e}") from None
        return _LightGBMModel(booster, meta.get("kind", "booster"), meta.get("classes"))
