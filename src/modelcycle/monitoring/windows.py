"""Summarising one window of the prediction log: data quality, input drift, prediction drift, live
performance on the labels that arrived, and the champion against the shadow challenger."""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence
from typing import Any

__all__ = ["Labels", "parse_window", "performance", "summarise"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_WINDOW = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")


def parse_window(text: str | int | float) -> int:
    """``"1h"``, ``"30m"``, ``"15s"``, ``"1d"`` or a number of seconds → seconds."""
    from modelcycle.errors import InvalidInputError

    if isinstance(text, (int, float)) and not isinstance(text, bool):
        seconds = int(text)
    else:
        m = _WINDOW.match(str(text))
        if not m:
            raise InvalidInputError(f"window {text!r} is not a duration; write it like 1h, 30m, 15s or 1d")
        seconds = int(m.group(1)) * _UNITS[m.group(2)]
    if seconds < 1:
        raise InvalidInputError(f"window {text!r} must be at least one second")
    return seconds


def fingerprint(names: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(names).encode()).hexdigest()


def read_window(root: Any, files: Sequence[Any], start: float, end: float, columns: Sequence[str] | None = None,
                blobs: dict[str, bytes] | None = None) -> Any:
    """The log rows of ``files`` (in the log at ``root``) whose time is in ``[start, end)``, as one DataFrame
    (``blobs``: files' bytes fetched ahead)."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    if not files:
        return pd.DataFrame()
    wanted = [c for c in columns or () if c] or None
    from modelcycle.store.predictions import read_parquet

    table = read_parquet(root, [f.path for f in files], wanted, blobs=blobs)
    unit = table.schema.field("time").type
    times = table.column("time")
    scale = {"s": 1, "ms": 1e3, "us": 1e6, "ns": 1e9}[unit.unit]
    lo = pa.scalar(int(start * scale), unit)
    hi = pa.scalar(int(end * scale), unit)
    return table.filter(pc.and_(pc.greater_equal(times, lo), pc.less(times, hi))).to_pandas()


def _classes(frame: Any) -> list[str]:
    return [c[len("proba."):] for c in frame.columns if c.startswith("proba.")]


def _keys(ids: Any, rows: Any) -> Any:
    """One text key per (request id, row): the id alone for row 0 (most requests have one row)."""
    import numpy as np

    keys = np.asarray(ids, dtype=object).copy()
    rows = np.asarray(rows)
    later = rows != 0
    if later.any():
        keys[later] = [f"{i}#{r}" for i, r in zip(keys[later], rows[later], strict=True)]
    return keys


class Labels:
    """The labels of a model, indexed once by (request id, row) so each window finds its own by lookup."""

    def __init__(self, frame: Any):
        import pandas as pd

        frame = frame[frame["label"].notna()].drop_duplicates(["request_id", "row"], keep="last") if len(frame) else frame
        # object dtype on purpose: an index of Arrow strings converts the keys it is asked for on every lookup
        self.index = pd.Index(_keys(frame["request_id"].astype(str), frame["row"].astype("int64")), dtype=object) if len(frame) else None
        self.values = frame["label"].to_numpy() if len(frame) else None

    def __len__(self) -> int:
        return 0 if self.values is None else len(self.values)

    def join(self, rows: Any) -> tuple[Any, Any]:
        """The rows that have a label, and their labels."""
        import pandas as pd

        keys = pd.Index(_keys(rows["request_id"].astype(str), rows["row"].astype("int64")), dtype=object)
        at = self.index.get_indexer(keys)  # type: ignore[union-attr]
        hit = at >= 0
        return rows[hit], self.values[at[hit]]  # type: ignore[index]


def performance(rows: Any, labels: Labels | None) -> dict[str, Any]:
    """Metrics of logged predictions against the labels joined to them by request id and row."""
    import numpy as np

    from modelcycle.evaluation.metrics import score_predictions

    if labels is None or not len(labels) or not len(rows):
        return {"labelled": 0, "metrics": {}}
    joined, truth = labels.join(rows)
    if not len(joined):
        return {"labelled": 0, "metrics": {}}
    joined = joined.assign(label=truth)
    classes = _classes(joined)
    proba = joined[[f"proba.{c}" for c in classes]].to_numpy(dtype=float) if classes else None
    out: dict[str, Any] = {"labelled": len(joined)}
    try:
        if proba is not None and np.isnan(proba).any():
            # some rows were answered without probabilities (MLflow's /invocations route): the metrics of labels
            # from every row, those of probabilities (ROC AUC, log loss) from the rows that have them
            metrics = score_predictions(joined["label"].to_numpy(), joined["prediction"].to_numpy(), None, classes)
            have = ~np.isnan(proba).any(axis=1)
            if have.sum() >= 2:
                part = joined[have]
                scored = score_predictions(part["label"].to_numpy(), part["prediction"].to_numpy(), proba[have], classes)
                metrics = {**{k: v for k, v in scored.items() if k not in metrics}, **metrics}
            out["with_probabilities"] = int(have.sum())
        else:
            metrics = score_predictions(joined["label"].to_numpy(), joined["prediction"].to_numpy(), proba, classes or None)
    except Exception as e:  # labels of another kind than the predictions: said, not raised
        return {"labelled": len(joined), "metrics": {}, "error": f"{type(e).__name__}: {e}"}
    out["metrics"] = {k: v for k, v in metrics.items() if v == v}
    return out


def _stability(champion: Any, shadow: Any, labels: Any) -> dict[str, Any] | None:
    if shadow is None or not len(shadow):
        return None
    keep = ["request_id", "row", "prediction", *[c for c in shadow.columns if c.startswith("proba.")]]
    joined = champion[keep].merge(shadow[[*keep, "version"]], on=["request_id", "row"], suffixes=("", ".shadow"))
    out: dict[str, Any] = {"rows": len(shadow), "paired": len(joined),
                           "versions": {str(k): int(v) for k, v in shadow["version"].value_counts().items()}}
    if len(joined):
        out["agreement"] = float((joined["prediction"].astype(str) == joined["prediction.shadow"].astype(str)).mean())
    champ = performance(champion, labels)
    chall = performance(shadow, labels)
    if champ["metrics"] and chall["metrics"]:
        out["labelled"] = chall["labelled"]
        out["metric_difference"] = {k: chall["metrics"][k] - champ["metrics"][k] for k in champ["metrics"] if k in chall["metrics"]}
        out["shadow_metrics"] = chall["metrics"]
    return out


def summarise(frame: Any, reference: Any, predictions_reference: Any, drift_method: str, drift_share: float,
              labels: Any) -> tuple[dict[str, Any], Any]:
    """One window's findings and the profile of its inputs and predictions.

    ``reference`` is the served version's training profile, ``predictions_reference`` the profile of
    its predictions on that data (either may be None for models logged without reference data).
    """
    import numpy as np

    from modelcycle.data import compare, infer_schema, profile, validate

    role = frame["role"] if "role" in frame.columns else None
    champion = frame[role == "champion"] if role is not None else frame
    shadow = frame[role == "shadow"] if role is not None else None
    inputs = champion[[c for c in champion.columns if c.startswith("input.")]]
    inputs = inputs.rename(columns=lambda c: c[len("input."):])
    inputs = inputs.dropna(axis=1, how="all") if len(inputs) else inputs
    out_cols = ["prediction", *[c for c in champion.columns if c.startswith("proba.")]]
    outputs = champion[[c for c in out_cols if c in champion.columns]]
    latency = champion["latency_ms"].to_numpy(dtype=float) if "latency_ms" in champion.columns else np.array([])
    summary: dict[str, Any] = {
        "rows": len(champion),
        "requests": int(champion["request_id"].nunique()) if len(champion) else 0,
        "versions": {str(k): int(v) for k, v in champion["version"].value_counts().items()} if len(champion) else {},
        "latency_ms": {"p50": float(np.percentile(latency, 50)), "p99": float(np.percentile(latency, 99))} if len(latency) else {},
    }
    window_profile = profile(inputs.join(outputs.add_prefix("output.")) if len(outputs.columns) else inputs) if len(champion) else None
    if len(champion) and reference is not None:
        quality = validate(inputs, infer_schema(reference))
        summary["quality"] = {"errors": len(quality.errors), "warnings": len(quality.warnings), "anomalies": [
            {"column": a.column, "check": a.check, "severity": a.severity, "expected": a.expected, "observed": a.observed,
             "rows": a.rows} for a in quality.anomalies[:20]]}
        current = _subset(window_profile, [c for c in inputs.columns])
        common = [c for c in reference.columns if c in current.columns]
        if common:
            drift = compare(reference, current, method=drift_method, share=drift_share)
            columns = {n: _column(c) for n, c in drift.columns.items()}
            drifted = [n for n, c in columns.items() if c["drifted"]]
            share = len(drifted) / len(columns)
            summary["drift"] = {"share": share, "dataset_drift": share >= drift_share, "drifted_columns": drifted, "columns": columns}
    if len(champion) and predictions_reference is not None and len(outputs.columns):
        current = _subset(window_profile, [f"output.{c}" for c in outputs.columns], strip="output.")
        classes = [c for c in outputs.columns if c.startswith("proba.")]
        column = classes[-1] if len(classes) == 2 else "prediction"  # binary: the positive class' probability
        if column in predictions_reference.columns and column in current.columns:
            drift = compare(_subset(predictions_reference, [column]), _subset(current, [column]), method=drift_method)
            c = drift.columns[column]
            summary["prediction_drift"] = {"column": column, **_column(c)}
    summary["performance"] = performance(champion, labels)
    stability = _stability(champion, shadow, labels)
    if stability is not None:
        summary["shadow"] = stability
    return summary, window_profile


def _column(c: Any) -> dict[str, Any]:
    """One column's drift as stored in a window's summary."""
    out = {"statistic": _finite(c.statistic), "threshold": _finite(c.threshold), "method": c.method, "drifted": c.drifted}
    if c.p_value is not None:
        out["p_value"] = _finite(c.p_value)
    if c.type_change:
        out["type_change"] = c.type_change
    return out


def _subset(p: Any, names: Sequence[str], strip: str = "") -> Any:
    from modelcycle.data import Profile

    out = Profile(rows=p.rows)
    for n in names:
        if n in p.columns:
            out.columns[n[len(strip):] if strip and n.startswith(strip) else n] = p.columns[n]
    return out


def _finite(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None
