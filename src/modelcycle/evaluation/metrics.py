"""Evaluating a model on labelled data: metrics overall and per slice, latency, and a baseline on the same rows."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from modelcycle._deps import require
from modelcycle.errors import InvalidInputError

__all__ = ["HIGHER_IS_BETTER", "LOWER_IS_BETTER", "Evaluation", "evaluate_model", "higher_is_better", "score_predictions"]

HIGHER_IS_BETTER = {"accuracy", "precision", "recall", "f1", "roc_auc", "r2"}
LOWER_IS_BETTER = {"log_loss", "rmse", "mae", "mape", "latency_ms_per_row"}
_MIN_SLICE_ROWS = 1
_CALIBRATION_BINS = 10


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of ``metric`` is better.

    Example:
        >>> higher_is_better("roc_auc"), higher_is_better("rmse")
        (True, False)
    """
    if metric in HIGHER_IS_BETTER:
        return True
    if metric in LOWER_IS_BETTER:
        return False
    raise InvalidInputError(f"unknown metric {metric!r}; known: {', '.join(sorted(HIGHER_IS_BETTER | LOWER_IS_BETTER))}")


@dataclass
class Evaluation:
    """Metrics of one model on one dataset.

    Attributes:
        task: ``classification`` or ``regression``.
        metrics: overall metrics, e.g. ``{"roc_auc": 0.93, "log_loss": 0.21, ...}``.
        slices: ``{column: {value: {"rows": n, **metrics}}}``.
        confusion: ``{"labels": [...], "matrix": [[...]]}`` for classification.
        calibration: ``{"predicted": [...], "observed": [...], "count": [...]}`` for binary classification.
        latency_ms_per_row: milliseconds per row to predict, the median of 5 timings on 1,000 rows (see ``_latency``).
        baseline: the baseline model's Evaluation on exactly the same rows, when one was given.
    """

    task: str
    rows: int
    metrics: dict[str, float]
    slices: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    confusion: dict[str, Any] | None = None
    calibration: dict[str, list[float]] | None = None
    latency_ms_per_row: float = math.nan
    model: str = ""
    baseline: Evaluation | None = None

    def __getitem__(self, metric: str) -> float:
        return self.metrics[metric]

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task, "rows": self.rows, "model": self.model, "metrics": self.metrics, "slices": self.slices,
            "confusion": self.confusion, "calibration": self.calibration, "latency_ms_per_row": self.latency_ms_per_row,
            "baseline": self.baseline.to_dict() if self.baseline is not None else None,
        }

    def to_html(self, path: Any = None) -> str:
        """A report: metrics (against the baseline), confusion matrix, calibration curve, slices."""
        from modelcycle.evaluation.report import evaluation_html, write

        return write(evaluation_html(self), path)


def _detect_task(y: Any, model: Any, task: str) -> str:
    from pandas.api import types as t

    if task in ("classification", "regression"):
        return task
    if task != "auto":
        raise InvalidInputError(f"task must be 'auto', 'classification' or 'regression', not {task!r}")
    if hasattr(model, "predict_proba") or not t.is_numeric_dtype(y.dtype) or t.is_bool_dtype(y.dtype):
        return "classification"
    return "regression"


LATENCY_ROWS = 1_000
LATENCY_REPEATS = 5


def _latency(model: Any, X: Any, proba: bool) -> float:
    """Milliseconds per row to predict (and give probabilities): the median of ``LATENCY_REPEATS`` timings on
    ``LATENCY_ROWS`` rows (the data repeated when it has fewer), taken after a first call has warmed the model, so
    one busy instant of the machine does not decide a gate."""
    import statistics

    import pandas as pd

    sample = X.iloc[:LATENCY_ROWS]
    if len(sample) < LATENCY_ROWS:
        sample = pd.concat([sample] * -(-LATENCY_ROWS // len(sample)), ignore_index=True).iloc[:LATENCY_ROWS]
    timings = []
    for _ in range(LATENCY_REPEATS):
        start = time.perf_counter()
        model.predict(sample)
        if proba:
            _proba(model, sample)
        timings.append((time.perf_counter() - start) * 1000.0 / len(sample))
    return statistics.median(timings)


def _proba(model: Any, X: Any) -> Any:
    try:
        fn = model.predict_proba
    except AttributeError:
        return None
    import numpy as np

    return np.asarray(fn(X), dtype=float)


def _classes(model: Any, y: Any, proba: Any) -> list[Any]:
    raw = getattr(model, "raw", model)
    classes = getattr(raw, "classes_", None)
    if classes is not None:
        return list(classes)
    labels = sorted(y.unique().tolist(), key=str)
    if proba is not None and proba.shape[1] != len(labels):
        raise InvalidInputError(
            f"the model gives {proba.shape[1]} class probabilities but the target has {len(labels)} labels; "
            "evaluate on data with every class present, or on a model that records its classes"
        )
    return labels


def _classification(y: Any, pred: Any, proba: Any, classes: list[Any]) -> dict[str, float]:
    import numpy as np

    m = require("sklearn.metrics", "evaluating a classifier")
    out = {"accuracy": float(m.accuracy_score(y, pred))}
    binary = len(classes) == 2
    average = "binary" if binary else "macro"
    kw: dict[str, Any] = {"average": average, "zero_division": 0}
    if binary:
        kw["pos_label"] = classes[1]
    p, r, f, _ = m.precision_recall_fscore_support(y, pred, labels=classes if not binary else None, **kw)
    out |= {"precision": float(p), "recall": float(r), "f1": float(f)}
    if proba is not None and len(np.unique(y)) > 1:
        try:
            if binary:
                out["roc_auc"] = float(m.roc_auc_score(np.asarray(y) == classes[1], proba[:, 1]))
            else:
                out["roc_auc"] = float(m.roc_auc_score(y, proba, multi_class="ovr", labels=classes))
            out["log_loss"] = float(m.log_loss(y, proba, labels=classes))
        except ValueError:
            pass  # a slice with labels the model never saw: those two are left out for it
    return out


def score_predictions(y: Any, prediction: Any, proba: Any = None, classes: Sequence[Any] | None = None,
                      task: str = "auto") -> dict[str, float]:
    """The metrics of predictions already made (a prediction log joined with its labels).

    ``classes`` name the columns of ``proba``; labels and classes are matched by their text when their types differ
    (labels posted as ``1`` meet a class logged as ``"1"``).

    Example:
        >>> score_predictions([0, 1, 1, 0], [0, 1, 0, 0])["accuracy"]
        0.75
    """
    import numpy as np
    import pandas as pd

    y = pd.Series(np.asarray(y))
    pred = pd.Series(np.asarray(prediction))
    if task == "auto":
        numeric = pd.api.types.is_float_dtype(pred.dtype) and not pd.api.types.is_bool_dtype(y.dtype)
        task = "regression" if proba is None and numeric and y.nunique() > 20 else "classification"
    if task == "regression":
        return _regression(y.to_numpy(dtype=float), pred.to_numpy(dtype=float))
    if task != "classification":
        raise InvalidInputError(f"task must be 'auto', 'classification' or 'regression', not {task!r}")
    names = [str(c) for c in classes] if classes is not None else None
    if names is not None or y.dtype != pred.dtype:
        y = _texts(y)
        pred = _texts(pred)
    found = names or sorted(set(y) | set(pred), key=str)
    if proba is not None and np.asarray(proba).shape[1] != len(found):
        proba = None
    if len(found) == 2 and y.isin(found).all() and pred.isin(found).all():
        return _binary(y.to_numpy() == found[1], pred.to_numpy() == found[1], None if proba is None else np.asarray(proba, dtype=float))
    return _classification(y, pred, None if proba is None else np.asarray(proba, dtype=float), list(found))


def _binary(y: Any, pred: Any, proba: Any) -> dict[str, float]:
    """Binary metrics in a few array operations (monitoring scores many windows); equal to scikit-learn's."""
    import numpy as np
    from scipy.stats import rankdata

    tp = float(np.sum(y & pred))
    fp = float(np.sum(~y & pred))
    fn = float(np.sum(y & ~pred))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    out = {"accuracy": float(np.mean(y == pred)), "precision": precision, "recall": recall,
           "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0}
    positives = int(y.sum())
    if proba is not None and 0 < positives < len(y):
        score = proba[:, 1]
        ranks = rankdata(score)  # ties get their mean rank: the Mann–Whitney form of the ROC AUC
        negatives = len(y) - positives
        out["roc_auc"] = float((ranks[y].sum() - positives * (positives + 1) / 2) / (positives * negatives))
        p = np.clip(proba / proba.sum(axis=1, keepdims=True), np.finfo(proba.dtype).eps, 1 - np.finfo(proba.dtype).eps)
        out["log_loss"] = float(-np.mean(np.log(np.where(y, p[:, 1], p[:, 0]))))
    return out


def _texts(values: Any) -> Any:
    """Labels as text, whole numbers without ``.0``; vectorised for number columns."""
    import numpy as np

    kind = values.dtype.kind
    if kind in "biu":
        return values.astype("int64").astype(str).astype(object)
    if kind == "f":
        v = values.to_numpy()
        if np.isfinite(v).all() and (v == np.round(v)).all():
            return values.astype("int64").astype(str).astype(object)
    return values.map(_label_text)


def _label_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _regression(y: Any, pred: Any) -> dict[str, float]:
    import numpy as np

    yt = np.asarray(y, dtype=float)
    yp = np.asarray(pred, dtype=float).ravel()
    err = yp - yt
    ss_res = float(err @ err)
    centred = yt - yt.mean()
    ss_tot = float(centred @ centred)
    nonzero = yt != 0
    return {
        "rmse": math.sqrt(ss_res / len(yt)),
        "mae": float(np.abs(err).mean()),
        "r2": 1.0 - ss_res / ss_tot if ss_tot > 0 else math.nan,
        "mape": float(np.abs(err[nonzero] / yt[nonzero]).mean()) if nonzero.any() else math.nan,
    }


def _calibration(y: Any, proba: Any, positive: Any) -> dict[str, list[float]]:
    import numpy as np

    p = proba[:, 1]
    hit = (np.asarray(y) == positive).astype(float)
    bins = np.minimum((p * _CALIBRATION_BINS).astype(int), _CALIBRATION_BINS - 1)
    count = np.bincount(bins, minlength=_CALIBRATION_BINS)
    sum_p = np.bincount(bins, weights=p, minlength=_CALIBRATION_BINS)
    sum_y = np.bincount(bins, weights=hit, minlength=_CALIBRATION_BINS)
    keep = count > 0
    return {"predicted": (sum_p[keep] / count[keep]).tolist(), "observed": (sum_y[keep] / count[keep]).tolist(),
            "count": count[keep].astype(int).tolist()}


def evaluate_model(
    model: Any,
    data: Any,
    target: str = "y",
    task: str = "auto",
    slices: Sequence[str] | None = None,
    baseline: Any = None,
    name: str = "",
    baseline_name: str = "",
) -> Evaluation:
    """Evaluate ``model`` (anything with ``predict``, and ``predict_proba`` for probabilities) on ``data``.

    The features are ``data`` without the ``target`` column (slice columns stay in, as features
    when the model uses them; a signature-checked model drops what it does not use).

    Raises:
        InvalidInputError: no target column, an empty frame, or a slice column that does not exist.

    Example:
        >>> import pandas as pd
        >>> from sklearn.linear_model import LinearRegression
        >>> df = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0], "y": [0.0, 2.0, 4.0, 6.0]})
        >>> ev = evaluate_model(LinearRegression().fit(df[["x"]], df["y"]), df)
        >>> ev.task, round(ev.metrics["r2"], 6)
        ('regression', 1.0)
    """
    import numpy as np
    import pandas as pd

    if hasattr(data, "to_pandas") and not isinstance(data, pd.DataFrame):
        data = data.to_pandas()
    if not isinstance(data, pd.DataFrame):
        raise InvalidInputError(f"evaluation data must be a DataFrame, not {type(data).__name__}")
    if len(data) == 0:
        raise InvalidInputError("evaluation data is empty: give at least one labelled row")
    if target not in data.columns:
        raise InvalidInputError(f"evaluation data has no target column {target!r}; its columns: {', '.join(map(str, data.columns))}")
    slice_cols = list(slices or [])
    missing = [c for c in slice_cols if c not in data.columns]
    if missing:
        raise InvalidInputError(f"slice columns not in the evaluation data: {', '.join(missing)}")
    y = data[target]
    if y.isna().any():
        raise InvalidInputError(f"the target column {target!r} has {int(y.isna().sum())} missing values; drop those rows first")
    X = data.drop(columns=[target])
    signature = getattr(model, "signature", None)
    names = list(signature.input_names) if signature is not None and hasattr(signature, "input_names") else None
    if names is None and getattr(model, "feature_names_in_", None) is not None:  # a bare scikit-learn estimator
        names = [str(c) for c in model.feature_names_in_]
    if names is not None and set(names) <= {str(c) for c in X.columns}:
        X = X[[c for c in X.columns if str(c) in set(names)]] if signature is not None else X[names]
        # slice and id columns the model does not use are left out quietly
    kind = _detect_task(y, model, task)
    pred = np.asarray(model.predict(X))
    proba = _proba(model, X) if kind == "classification" else None
    latency = _latency(model, X, kind == "classification")
    result = Evaluation(task=kind, rows=len(X), metrics={}, latency_ms_per_row=latency, model=name)
    if kind == "classification":
        classes = _classes(model, y, proba)
        result.metrics = _classification(y, pred, proba, classes)
        from sklearn.metrics import confusion_matrix

        labels = list(classes)
        result.confusion = {"labels": [str(c) for c in labels],
                            "matrix": confusion_matrix(y, pred, labels=labels).tolist()}
        if proba is not None and len(classes) == 2:
            result.calibration = _calibration(y, proba, classes[1])
    else:
        result.metrics = _regression(y, pred)
    for col in slice_cols:
        groups: dict[str, dict[str, float]] = {}
        codes, uniques = pd.factorize(data[col], use_na_sentinel=False)
        for code, value in enumerate(uniques):
            idx = np.flatnonzero(codes == code)
            if len(idx) < _MIN_SLICE_ROWS:
                continue
            ys = y.iloc[idx]
            if kind == "classification":
                stats = _classification(ys, pred[idx], proba[idx] if proba is not None else None, classes)
            else:
                stats = _regression(ys, pred[idx]) if len(idx) > 1 else {"mae": float(abs(float(pred[idx][0]) - float(ys.iloc[0])))}
            label = "<missing>" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)
            groups[label] = {"rows": float(len(idx)), **stats}
        result.slices[col] = groups
    if baseline is not None:
        result.baseline = evaluate_model(baseline, data, target, kind, slice_cols, None, baseline_name)
    return result
