"""Drift and train/serving skew between a reference and a current dataset, read from profiles.

``compare`` accepts data or profiles. On profiles (or large data) it measures distances that
sketches give reliably: Wasserstein distance normalised by the reference's spread for numbers,
Jensen–Shannon distance for categories. On small raw data (``auto`` with at most
``EXACT_ROWS`` rows) it runs exact tests: Kolmogorov–Smirnov and chi-square. Every column's
result names the method, its value and its threshold; unseen categories and changes in the
missing rate are reported on their own.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from modelcycle.data import stats
from modelcycle.data.profile import NUMERIC_BASES, ColumnProfile, Profile, profile
from modelcycle.errors import InvalidInputError

__all__ = ["DEFAULT_THRESHOLDS", "EXACT_ROWS", "METHODS", "ColumnDrift", "DriftReport", "compare"]

EXACT_ROWS = 1000  # auto: exact tests at or below this many rows on both sides
METHODS = ("auto", "ks", "chi2", "psi", "wasserstein", "js", "linf")
# method -> threshold; for ks and chi2 it is the p-value below which a column has drifted
# (ks_statistic: on profiles KS is judged by its statistic, since sketches blur p-values at scale)
DEFAULT_THRESHOLDS: dict[str, float] = {
    "ks": 0.05, "chi2": 0.05, "psi": 0.1, "wasserstein": 0.1, "js": 0.1, "linf": 0.1, "ks_statistic": 0.1,
}
_LEVELS = (np.arange(200) + 0.5) / 200  # quantile levels for the Wasserstein estimate
_BINS = 10  # reference deciles for binned numeric statistics


@dataclass(frozen=True)
class ColumnDrift:
    """One column's verdict and its evidence.

    Example:
        >>> ColumnDrift("age", "numeric", "wasserstein", 0.3, 0.1, True).drifted
        True
    """

    column: str
    kind: str
    method: str
    statistic: float
    threshold: float
    drifted: bool
    p_value: float | None = None
    unseen: tuple[Any, ...] = ()
    unseen_share: float = 0.0
    missing_reference: float = 0.0
    missing_current: float = 0.0
    note: str | None = None


@dataclass
class DriftReport:
    """Per-column drift and the dataset-level verdict (drifted when at least ``share`` of columns drifted).

    Example:
        >>> import pandas as pd
        >>> ref = pd.DataFrame({"x": range(100)})
        >>> compare(ref, ref).drifted_columns
        []
    """

    columns: dict[str, ColumnDrift] = field(default_factory=dict)
    share: float = 0.5
    reference_rows: int = 0
    current_rows: int = 0
    missing_columns: tuple[str, ...] = ()
    new_columns: tuple[str, ...] = ()
    reference: Profile | None = field(default=None, repr=False, compare=False)  # for the charts
    current: Profile | None = field(default=None, repr=False, compare=False)

    def to_html(self, path: str | None = None) -> str:
        """A page with the verdicts and each column's distribution, reference against current."""
        from modelcycle.data.report import drift_html, write

        return write(drift_html(self), path)

    @property
    def drifted_columns(self) -> list[str]:
        return [name for name, c in self.columns.items() if c.drifted]

    @property
    def drift_share(self) -> float:
        return len(self.drifted_columns) / len(self.columns) if self.columns else 0.0

    @property
    def dataset_drift(self) -> bool:
        return bool(self.columns) and self.drift_share >= self.share

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset_drift": self.dataset_drift,
            "drift_share": self.drift_share,
            "share_threshold": self.share,
            "drifted_columns": self.drifted_columns,
            "reference_rows": self.reference_rows,
            "current_rows": self.current_rows,
            "missing_columns": list(self.missing_columns),
            "new_columns": list(self.new_columns),
            "columns": {name: {**asdict(c), "unseen": [str(u) for u in c.unseen]} for name, c in self.columns.items()},
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=str)


def _missing_rate(col: ColumnProfile) -> float:
    total = col.count + col.missing
    return col.missing / total if total else 0.0


def _numeric(ref: ColumnProfile, cur: ColumnProfile, method: str) -> tuple[float, float | None, str | None]:
    if cur.count - cur.infinite == 0 or ref.count - ref.infinite == 0:
        return math.nan, None, "no finite values on one side"
    if method == "wasserstein":
        scale = ref.std
        if not scale > 0:
            scale = max(abs(ref.mean), 1.0)
        value = stats.wasserstein_from_quantiles(ref.quantiles(_LEVELS), cur.quantiles(_LEVELS), scale)
        return value, None, None
    edges = sorted(set(ref.quantiles((np.arange(1, _BINS) / _BINS).tolist())))
    ref_cdf, cur_cdf = np.array([0.0, *ref.cdf(edges)[: len(edges)], 1.0]), np.array([0.0, *cur.cdf(edges)[: len(edges)], 1.0])
    ref_bins, cur_bins = np.clip(np.diff(ref_cdf), 0, None), np.clip(np.diff(cur_cdf), 0, None)
    if method == "ks":  # from the sketches: the largest CDF gap over the reference's quantiles
        points = sorted(set(ref.quantiles(_LEVELS)) | set(cur.quantiles(_LEVELS)))
        gap = float(np.max(np.abs(np.array(ref.cdf(points)) - np.array(cur.cdf(points)))))
        return gap, None, "KS statistic from sketches, judged against ks_statistic"
    fn = {"psi": stats.psi, "js": stats.js_distance, "linf": stats.linf_distance}.get(method)
    if fn is None:
        raise InvalidInputError(f"method {method!r} does not apply to numeric columns; use wasserstein, psi, js, ks or linf")
    return fn(ref_bins, cur_bins), None, None


def _category_counts(col: ColumnProfile) -> dict[Any, float]:
    if col.exact is not None:
        return {k: float(v) for k, v in col.exact.items()}
    return {k: float(v) for k, v in col.frequent_values(top=1 << 12)}


def _categorical(ref: ColumnProfile, cur: ColumnProfile, method: str) -> tuple[float, float | None, tuple[Any, ...], float]:
    r, c = _category_counts(ref), _category_counts(cur)
    if not r or not c:
        return math.nan, None, (), 0.0
    keys, ref_counts, cur_counts = stats.align_counts(r, c)
    unseen = tuple(k for k in keys if k not in r)
    unseen_share = float(sum(c[k] for k in unseen) / sum(c.values())) if unseen else 0.0
    if method == "chi2":
        statistic, p = stats.chi_square(ref_counts, cur_counts)
        return statistic, p, unseen, unseen_share
    fn = {"js": stats.js_distance, "psi": stats.psi, "linf": stats.linf_distance}.get(method)
    if fn is None:
        raise InvalidInputError(f"method {method!r} does not apply to categorical columns; use js, chi2, psi or linf")
    return fn(ref_counts, cur_counts), None, unseen, unseen_share


def compare(
    reference: Any,
    current: Any,
    method: str | Mapping[str, str] = "auto",
    thresholds: Mapping[str, float] | None = None,
    share: float = 0.5,
) -> DriftReport:
    """Compare every column of ``current`` with ``reference``.

    Args:
        reference: the data a model was trained on (DataFrame, Arrow table, file path or Profile).
        current: the data to check, in the same forms.
        method: one method for every column, or ``{column: method}``; ``auto`` picks exact tests
            for at most ``EXACT_ROWS`` raw rows and sketch distances otherwise.
        thresholds: per-method thresholds overriding ``DEFAULT_THRESHOLDS``.
        share: the dataset has drifted when at least this share of columns has.

    Raises:
        InvalidInputError: an unknown method, or no column in common.
    """
    chosen = dict(DEFAULT_THRESHOLDS)
    chosen.update(thresholds or {})
    methods = method if isinstance(method, Mapping) else {}
    default_method = method if isinstance(method, str) else "auto"
    for m in [default_method, *methods.values()]:
        if m not in METHODS:
            raise InvalidInputError(f"unknown drift method {m!r}; choose one of {', '.join(METHODS)}")
    raw_ref = None if isinstance(reference, Profile) else _frame_if_small(reference)
    raw_cur = None if isinstance(current, Profile) else _frame_if_small(current)
    ref_p = reference if isinstance(reference, Profile) else profile(raw_ref if raw_ref is not None else reference)
    cur_p = current if isinstance(current, Profile) else profile(raw_cur if raw_cur is not None else current)
    common = [c for c in ref_p.columns if c in cur_p.columns]
    if not common:
        raise InvalidInputError("reference and current have no column in common")
    exact = raw_ref is not None and raw_cur is not None
    report = DriftReport(
        share=share, reference_rows=ref_p.rows, current_rows=cur_p.rows,
        missing_columns=tuple(c for c in ref_p.columns if c not in cur_p.columns),
        new_columns=tuple(c for c in cur_p.columns if c not in ref_p.columns),
        reference=ref_p, current=cur_p,
    )
    for name in common:
        ref, cur = ref_p.columns[name], cur_p.columns[name]
        m = methods.get(name, default_method)
        numeric = ref.base in NUMERIC_BASES and cur.base in NUMERIC_BASES and ref.kind not in ("boolean",)
        if m == "auto":
            m = ("ks" if numeric else "chi2") if exact else ("wasserstein" if numeric else "js")
        threshold = chosen[m]
        p_value, unseen, unseen_share, note = None, (), 0.0, None
        if numeric and m == "ks" and exact:
            statistic, p_value = stats.ks_two_sample(raw_ref[name], raw_cur[name])  # type: ignore[index]
            drifted = p_value < threshold
        elif numeric:
            statistic, _, note = _numeric(ref, cur, m)
            if m == "ks":
                threshold = chosen["ks_statistic"]
            drifted = statistic >= threshold
        else:
            statistic, p_value, unseen, unseen_share = _categorical(ref, cur, m)
            drifted = (p_value < threshold) if p_value is not None else statistic >= threshold
        report.columns[name] = ColumnDrift(
            column=name, kind=ref.kind, method=m, statistic=float(statistic), threshold=threshold,
            drifted=bool(drifted) if statistic == statistic else False, p_value=p_value, unseen=unseen,
            unseen_share=unseen_share, missing_reference=_missing_rate(ref), missing_current=_missing_rate(cur),
            note=note,
        )
    return report


def _frame_if_small(data: Any) -> Any:
    """The data as a DataFrame when it is small enough for exact tests, else None."""
    import pandas as pd

    if isinstance(data, pd.DataFrame) and len(data) <= EXACT_ROWS:
        return data
    return None
