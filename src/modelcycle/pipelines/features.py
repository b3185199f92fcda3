"""Feature selection: mutual information, model importance or recursive elimination, with scores and a plot."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from modelcycle._deps import require
from modelcycle.errors import InvalidInputError

__all__ = ["FeatureSelection", "select_features"]

METHODS = ("mutual_info", "model_importance", "rfe")


@dataclass
class FeatureSelection:
    """The columns kept, every column's score (higher is more useful), and how they were chosen."""

    selected: list[str]
    scores: dict[str, float]
    method: str
    task: str
    k: int | None = None
    threshold: float | None = None

    def transform(self, X: Any) -> Any:
        """``X`` with only the selected columns, in the order they were ranked."""
        missing = [c for c in self.selected if c not in X.columns]
        if missing:
            raise InvalidInputError(f"the data lacks selected features: {', '.join(missing)}")
        return X[self.selected]

    def to_dict(self) -> dict[str, Any]:
        return {"selected": self.selected, "scores": self.scores, "method": self.method, "task": self.task,
                "k": self.k, "threshold": self.threshold}

    def plot(self) -> str:
        """Horizontal bars of the scores as inline SVG, selected features in colour."""
        from modelcycle._html import COLORS, escape

        ranked = sorted(self.scores.items(), key=lambda kv: -kv[1])[:40]
        top = max((v for _, v in ranked), default=1.0) or 1.0
        row, width, label = 18, 560, 180
        parts = [f'<svg width="{width}" height="{row * len(ranked) + 10}" role="img">']
        chosen = set(self.selected)
        for i, (name, score) in enumerate(ranked):
            w = max(1.0, (width - label - 70) * max(score, 0.0) / top)
            color = COLORS[0] if name in chosen else "#c7c7c7"
            y = 5 + i * row
            title = f"<title>{escape(name)}: {score:.4g}</title>"
            parts.append(f'<text x="{label - 6}" y="{y + 12}" font-size="11" text-anchor="end">{escape(name[:28])}</text>'
                         f'<rect x="{label}" y="{y}" width="{w:.1f}" height="{row - 5}" fill="{color}">{title}</rect>'
                         f'<text x="{label + w + 4:.1f}" y="{y + 12}" font-size="10" fill="#555">{score:.3g}</text>')
        parts.append("</svg>")
        return "".join(parts)

    def to_html(self, path: Any = None) -> str:
        from modelcycle._html import escape, page, write

        body = (f'<p class="muted">{escape(self.method)}, {escape(self.task)}: {len(self.selected)} of {len(self.scores)} features kept'
                f'{f" (k={self.k})" if self.k else ""}{f" (threshold {self.threshold:g})" if self.threshold is not None else ""}</p>'
                f"{self.plot()}")
        return write(page("Feature selection", body), path)


def _task(y: Any, task: str) -> str:
    from pandas.api import types as t

    if task in ("classification", "regression"):
        return task
    if task != "auto":
        raise InvalidInputError(f"task must be 'auto', 'classification' or 'regression', not {task!r}")
    if not t.is_numeric_dtype(y.dtype) or t.is_bool_dtype(y.dtype) or (t.is_integer_dtype(y.dtype) and y.nunique() <= 20):
        return "classification"
    return "regression"


def _numeric(X: Any) -> tuple[Any, list[bool]]:
    """Categorical columns as integer codes (and a mask saying which ones were), missing values filled."""
    import pandas as pd
    from pandas.api import types as t

    out = {}
    discrete = []
    for name, col in X.items():
        if t.is_numeric_dtype(col.dtype) and not t.is_bool_dtype(col.dtype):
            out[name] = col.astype("float64").fillna(col.median() if col.notna().any() else 0.0)
            discrete.append(False)
        else:
            out[name] = pd.Series(pd.factorize(col.astype(str))[0], index=col.index).astype("float64")
            discrete.append(True)
    return pd.DataFrame(out, index=X.index), discrete


def select_features(X: Any, y: Any, method: str = "mutual_info", k: int | None = None, threshold: float | None = None,
                    task: str = "auto", estimator: Any = None, random_state: int = 0) -> FeatureSelection:
    """Rank the columns of ``X`` by how much they tell about ``y`` and keep the best.

    Args:
        method: "mutual_info" (model-free), "model_importance" (a random forest's, or ``estimator``'s,
            importances), or "rfe" (recursive elimination with a linear model, or ``estimator``).
        k: keep this many; ``threshold``: keep those scoring at least this. Neither: the columns
            scoring at least the mean score (for rfe: half of them).

    Inside a run, the selection (``features/selection.json``), its plot (``features/selection.html``)
    and the number kept are logged.

    Example:
        >>> import numpy as np, pandas as pd
        >>> rng = np.random.default_rng(0)
        >>> X = pd.DataFrame({"signal": rng.normal(size=300), "noise": rng.normal(size=300)})
        >>> y = (X["signal"] > 0).astype(int)
        >>> select_features(X, y, k=1).selected
        ['signal']
    """
    import numpy as np
    import pandas as pd

    if method not in METHODS:
        raise InvalidInputError(f"unknown method {method!r}; use one of {', '.join(METHODS)}")
    if not isinstance(X, pd.DataFrame):
        raise InvalidInputError(f"X must be a DataFrame (feature names are what is selected), not {type(X).__name__}")
    y = pd.Series(y, index=X.index) if not isinstance(y, pd.Series) else y
    if len(X) != len(y) or len(X) == 0:
        raise InvalidInputError(f"X has {len(X)} rows and y {len(y)}; give the same, non-zero number")
    if X.shape[1] == 0:
        raise InvalidInputError("X has no columns to select from")
    require("sklearn", "select_features")
    if k is not None and not (isinstance(k, int) and 1 <= k <= X.shape[1]):
        raise InvalidInputError(f"k must be between 1 and the number of columns ({X.shape[1]}), not {k!r}")
    kind = _task(y, task)
    Xn, discrete = _numeric(X)
    names = [str(c) for c in X.columns]
    if method == "mutual_info":
        from sklearn.feature_selection import mutual_info_classif, mutual_info_regression

        fn = mutual_info_classif if kind == "classification" else mutual_info_regression
        raw = fn(Xn.to_numpy(), y.to_numpy(), discrete_features=np.array(discrete), random_state=random_state)
    elif method == "model_importance":
        from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

        model = estimator or (RandomForestClassifier if kind == "classification" else RandomForestRegressor)(
            n_estimators=100, random_state=random_state, n_jobs=1)
        model.fit(Xn, y)
        raw = getattr(model, "feature_importances_", None)
        if raw is None:
            raw = np.abs(np.atleast_2d(model.coef_)).mean(axis=0)
    else:
        from sklearn.feature_selection import RFE
        from sklearn.linear_model import LinearRegression, LogisticRegression
        from sklearn.preprocessing import StandardScaler

        base = estimator or (LogisticRegression(max_iter=1000) if kind == "classification" else LinearRegression())
        keep = k or max(1, X.shape[1] // 2)
        rfe = RFE(base, n_features_to_select=keep)
        rfe.fit(StandardScaler().fit_transform(Xn) if estimator is None else Xn, y)
        raw = 1.0 / rfe.ranking_  # 1 for kept features, 1/2 for the last dropped, …
    scores = {n: float(s) for n, s in zip(names, raw, strict=True)}
    ranked = sorted(names, key=lambda n: -scores[n])
    if method == "rfe":
        selected = [n for n in ranked if scores[n] >= 1.0]
    elif k is not None:
        selected = ranked[:k]
    elif threshold is not None:
        selected = [n for n in ranked if scores[n] >= threshold]
    else:
        mean = float(np.mean(list(scores.values())))
        selected = [n for n in ranked if scores[n] >= mean and scores[n] > 0] or ranked[:1]
    result = FeatureSelection(selected, scores, method, kind, k, threshold)
    _log(result)
    return result


def _log(result: FeatureSelection) -> None:
    from modelcycle.tracking.fluent import _default

    client = _default
    run = client.active_run() if client is not None else None
    if run is None:
        return
    run.log_metric("features_selected", len(result.selected))
    run.log_text(json.dumps(result.to_dict(), indent=1), "features/selection.json")
    run.log_text(result.to_html(), "features/selection.html")
