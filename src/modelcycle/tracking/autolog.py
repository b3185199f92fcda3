"""Automatic logging for scikit-learn: params, training metrics, a model summary and the data fingerprint."""

from __future__ import annotations

import functools
import sys
import threading
import time
import warnings
from typing import Any

from modelcycle._deps import require
from modelcycle.errors import ModelcycleError, ModelcycleWarning

__all__ = ["autolog"]

_patched: dict[type, Any] = {}
_state = threading.local()


def _flat_params(estimator: Any) -> dict[str, str]:
    out = {}
    for key, value in estimator.get_params(deep=True).items():
        if hasattr(value, "get_params") or callable(value):
            value = type(value).__name__
        text = str(value)
        out[key.replace("__", ".")] = text if len(text) <= 500 else text[:497] + "..."
    return out


def _training_metrics(estimator: Any, X: Any, y: Any) -> dict[str, float]:
    from sklearn import metrics as m
    from sklearn.base import is_classifier, is_regressor

    if y is None:
        return {}
    out: dict[str, float] = {}
    if is_classifier(estimator):
        pred = estimator.predict(X)
        out["training_accuracy"] = m.accuracy_score(y, pred)
        avg = "binary" if len(getattr(estimator, "classes_", [])) == 2 else "weighted"
        out["training_precision"] = m.precision_score(y, pred, average=avg, zero_division=0)
        out["training_recall"] = m.recall_score(y, pred, average=avg, zero_division=0)
        out["training_f1"] = m.f1_score(y, pred, average=avg, zero_division=0)
        if hasattr(estimator, "predict_proba"):
            proba = estimator.predict_proba(X)
            out["training_log_loss"] = m.log_loss(y, proba, labels=estimator.classes_)
            if proba.shape[1] == 2:
                out["training_roc_auc"] = m.roc_auc_score(y, proba[:, 1])
            else:
                out["training_roc_auc"] = m.roc_auc_score(y, proba, multi_class="ovr", labels=estimator.classes_)
    elif is_regressor(estimator):
        pred = estimator.predict(X)
        mse = m.mean_squared_error(y, pred)
        out.update({
            "training_mse": mse,
            "training_rmse": mse**0.5,
            "training_mae": m.mean_absolute_error(y, pred),
            "training_r2": m.r2_score(y, pred),
        })
    return out


def _summary(estimator: Any, seconds: float) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "class": f"{type(estimator).__module__}.{type(estimator).__qualname__}",
        "params": _flat_params(estimator),
        "fit_seconds": seconds,
    }
    for attr in ("n_features_in_", "feature_names_in_", "classes_", "n_iter_", "best_params_", "best_score_"):
        if hasattr(estimator, attr):
            value = getattr(estimator, attr)
            summary[attr] = value.tolist() if hasattr(value, "tolist") else value
    return summary


def _log_fit(client: Any, run: Any, estimator: Any, X: Any, y: Any, seconds: float, log_datasets: bool) -> None:
    params = _flat_params(estimator)
    fresh = {k: v for k, v in params.items() if run._params.get(k, v) == v}
    if len(fresh) < len(params):
        warnings.warn("autolog: some params differ from those already in this run; they were not logged again",
                      ModelcycleWarning, stacklevel=4)
    run.log_params(fresh)
    run.set_tags({"modelcycle.autolog": "sklearn", "estimator_class": type(estimator).__name__})
    metrics = _training_metrics(estimator, X, y)
    metrics["fit_seconds"] = seconds
    run.log_metrics(metrics)
    run.log_dict(_summary(estimator, seconds), "model_summary.json")
    if log_datasets:
        import pandas as pd

        data = X if isinstance(X, pd.DataFrame) else pd.DataFrame(X)
        if y is not None:
            data = data.assign(__target__=pd.Series(y).to_numpy()) if len(data) == len(y) else data
        run.log_dataset(data, name="training_data", role="train")


def _wrap(cls: type, original: Any, log_datasets: bool) -> Any:
    @functools.wraps(original)
    def fit(self: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(_state, "depth", 0) > 0:  # only the outermost fit is logged
            return original(self, *args, **kwargs)
        from modelcycle.tracking.fluent import get_client

        _state.depth = 1
        client = get_client()
        started = None
        try:
            run = client.active_run()
            if run is None:
                run = started = client.start_run(name=f"{type(self).__name__}")
            start = time.perf_counter()
            try:
                result = original(self, *args, **kwargs)
            except BaseException:
                if started is not None:
                    started.__exit__(*sys.exc_info())
                    started = None
                raise
            seconds = time.perf_counter() - start
            X = args[0] if args else kwargs.get("X")
            y = args[1] if len(args) > 1 else kwargs.get("y")
            try:
                _log_fit(client, run, self, X, y, seconds, log_datasets)
            except (ModelcycleError, ValueError, TypeError) as e:
                warnings.warn(f"autolog could not record this fit: {e}", ModelcycleWarning, stacklevel=2)
            return result
        finally:
            _state.depth = 0
            if started is not None:
                started.end()

    fit.__modelcycle_original__ = original  # type: ignore[attr-defined]
    return fit


def autolog(disable: bool = False, log_datasets: bool = True) -> None:
    """Record every scikit-learn ``fit``: params, training metrics, a model summary and the data fingerprint.

    A fit outside a run gets a run of its own, ended when the fit returns. Nested fits
    (a Pipeline's steps, a grid search's candidates) are not logged separately.

    Args:
        disable: undo the patching.
        log_datasets: also record the training data's fingerprint, size and schema.

    Example:
        >>> import modelcycle as mc
        >>> mc.autolog()
        >>> mc.autolog(disable=True)
    """
    if disable:
        for cls, original in _patched.items():
            cls.fit = original  # type: ignore[attr-defined]
        _patched.clear()
        return
    Pipeline = require("sklearn.pipeline", "autolog").Pipeline
    all_estimators = require("sklearn.utils", "autolog").all_estimators
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        classes = [cls for _, cls in all_estimators()] + [Pipeline]
    for cls in classes:
        original = cls.__dict__.get("fit")
        if original is None or cls in _patched or hasattr(original, "__modelcycle_original__"):
            continue
        _patched[cls] = original
        cls.fit = _wrap(cls, original, log_datasets)  # type: ignore[attr-defined]
