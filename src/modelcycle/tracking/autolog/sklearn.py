"""Autologging for scikit-learn estimators (and those of other libraries built on its API)."""

from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import Any

from modelcycle.errors import ModelcycleWarning
from modelcycle.tracking.autolog._core import log_history, log_params, logged_call, options, param_text, patch

__all__ = ["patch_estimators", "patch_sklearn"]

_SUMMARY_ATTRIBUTES = ("n_features_in_", "feature_names_in_", "feature_name_", "classes_", "n_iter_", "best_params_",
                       "best_score_", "best_iteration", "best_iteration_")


def _flat_params(estimator: Any) -> dict[str, str]:
    out = {}
    for key, value in estimator.get_params(deep=True).items():
        if hasattr(value, "get_params") or callable(value):
            value = type(value).__name__
        out[key.replace("__", ".")] = param_text(value)
    return out


def _training_metrics(estimator: Any, X: Any, y: Any) -> dict[str, float]:
    import numpy as np
    from sklearn import metrics as m
    from sklearn.base import is_classifier, is_regressor

    if y is None:
        return {}
    out: dict[str, float] = {}
    if is_classifier(estimator):
        pred = estimator.predict(X)
        out["training_accuracy"] = m.accuracy_score(y, pred)
        if np.ndim(y) > 1 and np.shape(y)[1] > 1:  # several outputs: the accuracy of all at once only
            return out
        classes = getattr(estimator, "classes_", [])
        avg = {"average": "binary", "pos_label": classes[1]} if len(classes) == 2 else {"average": "weighted"}
        precision, recall, f1, _ = m.precision_recall_fscore_support(y, pred, **avg, zero_division=0)
        out.update({"training_precision": precision, "training_recall": recall, "training_f1": f1})
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
    for attr in _SUMMARY_ATTRIBUTES:
        try:
            value = getattr(estimator, attr)
        except Exception:  # not fitted that way (no early stopping, no frame); LightGBM raises its own error
            continue
        summary[attr] = value.tolist() if hasattr(value, "tolist") else value
    return summary


def _evaluation_history(estimator: Any) -> dict[str, Any]:
    """What XGBoost's and LightGBM's estimators evaluated on their ``eval_set`` each iteration, if anything."""
    try:
        history = getattr(estimator, "evals_result_", None)
    except Exception:
        return {}
    return history if isinstance(history, dict) else {}


def _log_fit(run: Any, library: str, estimator: Any, X: Any, y: Any, seconds: float) -> None:
    log_params(run, _flat_params(estimator))
    run.set_tags({"modelcycle.autolog": library, "estimator_class": type(estimator).__name__})
    metrics = {"fit_seconds": seconds}
    try:
        metrics.update(_training_metrics(estimator, X, y))
    except Exception as e:  # an estimator whose predictions these metrics do not fit: keep the rest
        warnings.warn(f"autolog could not compute training metrics for {type(estimator).__name__}: {e}",
                      ModelcycleWarning, stacklevel=5)
    run.log_metrics(metrics)
    log_history(run, _evaluation_history(estimator))
    run.log_dict(_summary(estimator, seconds), "model_summary.json")
    if options["log_datasets"]:
        run.log_dataset(_training_frame(X, y), name="training_data", role="train")


def _training_frame(X: Any, y: Any) -> Any:
    """X as a DataFrame, with the target in ``__target__`` (``__target_0__``, … for several outputs)."""
    import numpy as np
    import pandas as pd

    data = X if isinstance(X, pd.DataFrame) else pd.DataFrame(X)
    target = None if y is None else np.asarray(y)
    if target is None or len(target) != len(data):
        return data
    if target.ndim == 1:
        return data.assign(__target__=target)
    return data.assign(**{f"__target_{i}__": target[:, i] for i in range(target.shape[1])})


def _wrap_fit(library: str, original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def fit(self: Any, *args: Any, **kwargs: Any) -> Any:
        X = args[0] if args else kwargs.get("X")
        y = args[1] if len(args) > 1 else kwargs.get("y")
        return logged_call(type(self).__name__, lambda: original(self, *args, **kwargs),
                           lambda run, result, seconds: _log_fit(run, library, self, X, y, seconds))

    return fit


def patch_estimators(classes: Iterable[type], library: str) -> None:
    """Patch every ``fit`` each class may resolve to: its own and those of its bases, for ``super().fit``.

    ``library`` is recorded in the run's ``modelcycle.autolog`` tag.
    """
    for cls in classes:
        for owner in cls.__mro__:
            if inspect.isfunction(vars(owner).get("fit")):
                patch(owner, "fit", functools.partial(_wrap_fit, library))


def patch_sklearn(sklearn: ModuleType) -> None:
    """Patch every estimator ``sklearn.utils.all_estimators()`` lists, and Pipeline."""
    from sklearn.pipeline import Pipeline
    from sklearn.utils import all_estimators

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        classes = [cls for _, cls in all_estimators()]
    patch_estimators([*classes, Pipeline], "sklearn")
