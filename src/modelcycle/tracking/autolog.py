"""Automatic logging for scikit-learn: params, training metrics, a model summary and the data fingerprint."""

from __future__ import annotations

import functools
import inspect
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterable
from typing import Any

from modelcycle._deps import require
from modelcycle.errors import ModelcycleWarning

__all__ = ["autolog"]

_patched: list[tuple[Any, str, Any]] = []  # (owner, attribute, original), in the order they were patched
_options: dict[str, Any] = {"log_datasets": True}
_state = threading.local()  # depth: > 0 inside a logged call of this thread


def _flat_params(estimator: Any) -> dict[str, str]:
    out = {}
    for key, value in estimator.get_params(deep=True).items():
        if hasattr(value, "get_params") or callable(value):
            value = type(value).__name__
        text = str(value)
        out[key.replace("__", ".")] = text if len(text) <= 500 else text[:497] + "..."
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
    for attr in ("n_features_in_", "feature_names_in_", "classes_", "n_iter_", "best_params_", "best_score_"):
        if hasattr(estimator, attr):
            value = getattr(estimator, attr)
            summary[attr] = value.tolist() if hasattr(value, "tolist") else value
    return summary


def _log_fit(run: Any, estimator: Any, X: Any, y: Any, seconds: float) -> None:
    params = _flat_params(estimator)
    fresh = {k: v for k, v in params.items() if run._params.get(k, v) == v}
    if len(fresh) < len(params):
        warnings.warn("autolog: some params differ from those already in this run; they were not logged again",
                      ModelcycleWarning, stacklevel=5)
    run.log_params(fresh)
    run.set_tags({"modelcycle.autolog": "sklearn", "estimator_class": type(estimator).__name__})
    metrics = {"fit_seconds": seconds}
    try:
        metrics.update(_training_metrics(estimator, X, y))
    except Exception as e:  # an estimator whose predictions these metrics do not fit: keep the rest
        warnings.warn(f"autolog could not compute training metrics for {type(estimator).__name__}: {e}",
                      ModelcycleWarning, stacklevel=5)
    run.log_metrics(metrics)
    run.log_dict(_summary(estimator, seconds), "model_summary.json")
    if _options["log_datasets"]:
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


def _logged_call(name: str, call: Callable[[], Any], log: Callable[[Any, Any, float], None]) -> Any:
    """Run ``call`` and ``log(run, result, seconds)`` it: in the active run, or in a run of its own named ``name``.

    Only the outermost patched call of a thread is logged; the calls it makes (a Pipeline's steps,
    a grid search's candidates, a subclass's ``super().fit``) run as they are.
    """
    if getattr(_state, "depth", 0) > 0:
        return call()
    from modelcycle.tracking.fluent import get_client

    _state.depth = 1
    started = None
    try:
        client = get_client()
        run = client.active_run()
        if run is None:
            run = started = client.start_run(name=name)
        start = time.perf_counter()
        try:
            result = call()
        except BaseException:
            if started is not None:
                started.__exit__(*sys.exc_info())
                started = None
            raise
        try:
            log(run, result, time.perf_counter() - start)
        except Exception as e:  # recording must never fail a fit that worked
            warnings.warn(f"autolog could not record this fit: {e}", ModelcycleWarning, stacklevel=3)
        return result
    finally:
        _state.depth = 0
        if started is not None:
            started.end()


def _wrap_fit(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def fit(self: Any, *args: Any, **kwargs: Any) -> Any:
        X = args[0] if args else kwargs.get("X")
        y = args[1] if len(args) > 1 else kwargs.get("y")
        return _logged_call(type(self).__name__, lambda: original(self, *args, **kwargs),
                            lambda run, result, seconds: _log_fit(run, self, X, y, seconds))

    fit.__modelcycle_original__ = original  # type: ignore[attr-defined]
    return fit


def _patch(owner: Any, attr: str, wrap: Callable[[Any], Any]) -> None:
    """Replace ``owner.attr`` (a class's own attribute, or a module's) by ``wrap(original)``, once."""
    original = vars(owner)[attr]
    if hasattr(original, "__modelcycle_original__"):
        return
    _patched.append((owner, attr, original))
    setattr(owner, attr, wrap(original))


def _patch_estimators(classes: Iterable[type]) -> None:
    """Patch every ``fit`` each class may resolve to: its own and those of its bases, for ``super().fit``."""
    for cls in classes:
        for owner in cls.__mro__:
            if inspect.isfunction(vars(owner).get("fit")):
                _patch(owner, "fit", _wrap_fit)


def autolog(disable: bool = False, log_datasets: bool = True) -> None:
    """Record every scikit-learn ``fit``: params, training metrics, a model summary and the data fingerprint.

    A fit outside a run gets a run of its own, ended when the fit returns. Nested fits
    (a Pipeline's steps, a grid search's candidates) are not logged separately. Calling it
    again changes the options; ``disable=True`` puts every original ``fit`` back.

    Args:
        disable: undo the patching.
        log_datasets: also record the training data's fingerprint, size and schema.

    Example:
        >>> import modelcycle as mc
        >>> mc.autolog()
        >>> mc.autolog(disable=True)
    """
    if disable:
        for owner, attr, original in reversed(_patched):
            setattr(owner, attr, original)
        _patched.clear()
        return
    _options["log_datasets"] = log_datasets
    all_estimators = require("sklearn.utils", "autolog").all_estimators
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        classes = [cls for _, cls in all_estimators()]
    _patch_estimators([*classes, require("sklearn.pipeline", "autolog").Pipeline])
