"""XGBoost models in XGBoost's own JSON format (no pickle)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelcycle.errors import ModelError

__all__ = ["XGBoostFlavour"]

FILE = "model.json"
CLASSES = ("XGBClassifier", "XGBRegressor", "XGBRanker", "XGBRFClassifier", "XGBRFRegressor", "Booster")


class _BoosterModel:
    """A bare ``xgboost.Booster`` with the ``predict`` of the scikit-learn API."""

    def __init__(self, booster: Any):
        self.booster = booster

    def predict(self, frame: Any) -> Any:
        import xgboost

        return self.booster.predict(xgboost.DMatrix(frame))


class XGBoostFlavour:
    name = "xgboost"
    requirements = ("xgboost", "numpy", "scipy")

    def handles(self, model: Any) -> bool:
        return type(model).__module__.split(".", 1)[0] == "xgboost" and type(model).__name__ in CLASSES

    def save(self, model: Any, folder: Path, options: dict[str, Any]) -> dict[str, Any]:
        model.save_model(folder / FILE)
        return {"file": FILE, "class": type(model).__name__}

    def load(self, folder: Path, meta: dict[str, Any], trust: Any) -> Any:
        from modelcycle._deps import require

        xgboost = require("xgboost", "loading an XGBoost model")
        cls_name = meta.get("class")
        if cls_name not in CLASSES:
            raise ModelError(f"unknown XGBoost model class {cls_name!r}; expected one of {', '.join(CLASSES)}")
        path = folder / FILE
        with open(path, "rb") as f:
            if f.read(64).lstrip()[:1] != b"{":
                raise ModelError(f"{path.name} is not an XGBoost JSON model; refusing to load it")
        try:
            if cls_name == "Booster":
                return _BoosterModel(xgboost.Booster(model_file=str(path)))
            model = getattr(xgboost, cls_name)()
            model.load_model(path)
        except Exception as e:  # XGBoostError, or a decoding error raised while reporting one
            raise ModelError(f"XGBoost could not read {path.name}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
        return model
