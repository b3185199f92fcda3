"""Drift and train/serving skew between a reference and a current dataset, read from profiles.

``compare`` accepts data or profiles, and works on profiles in every case, so its verdicts do
not depend on whether raw data was at hand. With ``auto`` a column has drifted when a
statistical test finds a difference (p below 0.01) **and** a distance says the difference is
large enough to matter:

- numbers: the Kolmogorov–Smirnov test over both quantile sketches (exact up to 1,000 values a
  side), and the Wasserstein distance over the reference's standard deviation (0.1);
- categories, booleans and numbers with at most ``LOW_CARDINALITY`` distinct values:
  chi-square over the value counts, rare values pooled so every cell expects at least five, and
  the Jensen–Shannon distance (0.1). Text columns with more than ``EXACT_LIMIT_TEXT`` distinct
  values on a side are compared over counts per hash bucket of their values, which merge
  exactly; the method then says ``hashed``.

The test keeps small samples honest (false alarms at the test's level, whatever the sizes: a
monitored column is judged every window, so the level is 1%, not 5%); the distance keeps large
samples from flagging differences too small to matter. Any single method
can be chosen instead. A column whose type changed is reported as such, and counts as drifted;
unseen categories (values the reference never had) and changes in the missing rate are reported
on their own.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from modelcycle.data import stats
from modelcycle.data.profile import EXACT_LIMIT_TEXT, HASH_BUCKETS, NUMERIC_BASES, ColumnProfile, Profile, profile
from modelcycle.errors import InvalidInputError

__all__ = ["ALPHA", "DEFAULT_THRESHOLDS", "LOW_CARDINALITY", "METHODS", "ColumnDrift", "DriftReport", "compare"]

METHODS = ("auto", "ks", "chi2", "psi", "wasserstein", "js", "linf")
# method -> threshold; for ks and chi2 it is the p-value below which a column has drifted
DEFAULT_THRESHOLDS: dict[str, float] = {
    "ks": 0.05, "chi2": 0.05, "psi": 0.1, "wasserstein": 0.1, "js": 0.1, "linf": 0.1, "alpha": 0.01,
}
ALPHA = DEFAULT_THRESHOLDS["alpha"]  # auto: the tests' p-value below which a difference is found
LOW_CARDINALITY = 20  # auto: numbers with at most this many distinct reference values are compared as categories
UNSEEN_LISTED = 100  # unseen values listed in JSON (all are in ColumnDrift.unseen; the count is given)
MIN_EXPECTED = 5.0  # chi-square: rare values are pooled until every cell expects this many
_LEVELS = (np.arange(200) + 0.5) / 200  # quantile levels for the Wasserstein estimate
_BINS = 10  # reference deciles for binned numeric statistics
_FAMILY = {"numeric": "number", "integer": "number", "boolean": "boolean", "datetime": "datetime", "string": "text"}


@dataclass(frozen=True)
class ColumnDrift:
    """One column's verdict and its evidence.

    ``statistic`` and ``threshold`` are the distance and its threshold (for ``ks`` and ``chi2``
    alone: the test statistic, and the p-value threshold). ``p_value`` and ``alpha`` are the
    test's, when one ran. ``type_change`` says how the type changed ("integer → text");
    such a column counts as drifted.

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
    alpha: float | None = None
    type_change: str | None = None

    @property
    def status(self) -> str:
        """``type changed``, ``drifted`` or ``ok``."""
        return "type changed" if self.type_change else "drifted" if self.drifted else "ok"


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


@dataclass
class DriftReport:
    """Per-column drift and the dataset-level verdict (drifted when at least ``share`` of columns drifted).

    Columns the current data lacks are listed in ``missing_columns`` (and in the table and the
    page), not counted in the share.

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
    def type_changes(self) -> dict[str, str]:
        """Columns whose type changed, and how."""
        return {name: c.type_change for name, c in self.columns.items() if c.type_change}

    @property
    def drift_share(self) -> float:
        return len(self.drifted_columns) / len(self.columns) if self.columns else 0.0

    @property
    def dataset_drift(self) -> bool:
        return bool(self.columns) and self.drift_share >= self.share

    def to_dict(self) -> dict[str, Any]:
        """Everything in plain JSON types (numbers that are not finite become null)."""

        def column(c: ColumnDrift) -> dict[str, Any]:
            out = {**asdict(c), "status": c.status, "unseen": [str(u) for u in c.unseen[:UNSEEN_LISTED]],
                   "unseen_count": len(c.unseen)}
            out.update(statistic=_finite(c.statistic), threshold=_finite(c.threshold), p_value=_finite(c.p_value))
            return out

        return {
            "dataset_drift": self.dataset_drift,
            "drift_share": self.drift_share,
            "share_threshold": self.share,
            "drifted_columns": self.drifted_columns,
            "reference_rows": self.reference_rows,
            "current_rows": self.current_rows,
            "missing_columns": list(self.missing_columns),
            "new_columns": list(self.new_columns),
            "type_changes": self.type_changes,
            "columns": {**{name: column(c) for name, c in self.columns.items()},
                        **{name: {"column": name, "status": "missing", "drifted": False,
                                  "note": "in the reference, not in the current data"} for name in self.missing_columns}},
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=str)

    def to_frame(self) -> Any:
        """One row per column, missing columns included, as a pandas DataFrame.

        Example:
            >>> import pandas as pd
            >>> compare(pd.DataFrame({"x": range(100)}), pd.DataFrame({"x": range(100)})).to_frame()[["column", "status"]]
              column status
            0      x     ok
        """
        import pandas as pd

        rows = [{"column": c.column, "type": c.kind, "status": c.status, "method": c.method,
                 "statistic": _finite(c.statistic), "threshold": _finite(c.threshold), "p_value": _finite(c.p_value),
                 "alpha": c.alpha, "drifted": c.drifted, "unseen": ", ".join(map(str, c.unseen)),
                 "unseen_share": c.unseen_share, "missing_reference": c.missing_reference,
                 "missing_current": c.missing_current, "note": c.note} for c in self.columns.values()]
        rows += [{"column": name, "status": "missing", "drifted": False,
                  "note": "in the reference, not in the current data"} for name in self.missing_columns]
        columns = ["column", "type", "status", "method", "statistic", "threshold", "p_value", "alpha", "drifted",
                   "unseen", "unseen_share", "missing_reference", "missing_current", "note"]
        return pd.DataFrame(rows, columns=columns)


def _missing_rate(col: ColumnProfile) -> float:
    total = col.count + col.missing
    return col.missing / total if total else 0.0


def _finite_count(col: ColumnProfile) -> int:
    return col.count - col.infinite


def _distance(ref: ColumnProfile, cur: ColumnProfile, method: str) -> float:
    """A sketch distance between two numeric columns."""
    if method == "wasserstein":
        scale = ref.std
        if not (scale > 0 and math.isfinite(scale)):  # no spread, or one too large for a double: the quartiles'
            q1, q3 = ref.quantiles([0.25, 0.75])
            scale = q3 - q1 if math.isfinite(q3 - q1) and q3 > q1 else max(abs(ref.mean), 1.0) if math.isfinite(ref.mean) else 1.0
        return stats.wasserstein_from_quantiles(ref.quantiles(_LEVELS), cur.quantiles(_LEVELS), scale)
    edges = sorted(set(ref.quantiles((np.arange(1, _BINS) / _BINS).tolist())))
    ref_bins, cur_bins = ref.histogram(edges), cur.histogram(edges)
    fn = {"psi": stats.psi, "js": stats.js_distance, "linf": stats.linf_distance}.get(method)
    if fn is None:
        raise InvalidInputError(f"method {method!r} does not apply to numeric columns; use wasserstein, psi, js, ks or linf")
    return fn(ref_bins, cur_bins)


KS_EXACT = 5_000  # effective sample sizes up to this get scipy's exact two-sided distribution


def _ks(ref: ColumnProfile, cur: ColumnProfile) -> tuple[float, float]:
    """Two-sample Kolmogorov–Smirnov from the quantile sketches: the largest gap between the two
    distribution functions at every value either sketch keeps (exact while a side has at most
    1,000 values), and its p-value with the effective size n·m/(n+m), as scipy's asymptotic method;
    above ``KS_EXACT`` effective rows, from the limiting distribution with Stephens' correction
    (within 1 % of the exact p-value there, where the exact one costs up to a second)."""
    from scipy.stats import kstwo, kstwobign

    if ref._kll is None or cur._kll is None or ref._kll.is_empty() or cur._kll.is_empty():
        return math.nan, math.nan
    points = np.unique(np.fromiter((v for col in (ref, cur) for v, _ in col._kll), dtype=float)).tolist()
    k = len(points)
    gap = 0.0
    for inclusive in (True, False):  # above and below each point, so ties count as they should
        a = np.asarray(ref._kll.get_cdf(points, inclusive), dtype=float)[:k]
        b = np.asarray(cur._kll.get_cdf(points, inclusive), dtype=float)[:k]
        gap = max(gap, float(np.max(np.abs(a - b))))
    n, m = _finite_count(ref), _finite_count(cur)
    effective = max(1, round(n * m / (n + m)))
    if effective <= KS_EXACT:
        return gap, float(min(1.0, kstwo.sf(gap, effective)))
    root = math.sqrt(effective)
    return gap, float(min(1.0, kstwobign.sf(gap * (root + 0.12 + 0.11 / root))))


def _category_counts(ref: ColumnProfile, cur: ColumnProfile) -> tuple[list[Any], np.ndarray, np.ndarray, str | None]:
    """Both sides' counts over the same cells: values (exact), hash buckets, or frequent values."""
    if ref.exact is not None and cur.exact is not None:
        if _FAMILY[ref.base] == _FAMILY[cur.base] == "number":  # 1 and 1.0 are one value
            keys, r, c = stats.align_counts(_as_floats(ref.exact), _as_floats(cur.exact))
        else:
            keys, r, c = stats.align_counts(ref.exact, cur.exact)
        return keys, r, c, None
    if ref.hashed is not None and cur.hashed is not None:
        note = (f"over {HASH_BUCKETS} hash buckets of the values: a side has more than "
                f"{EXACT_LIMIT_TEXT:,} distinct values")
        return list(range(HASH_BUCKETS)), np.asarray(ref.hashed, float), np.asarray(cur.hashed, float), note
    r = dict(ref.frequent_values(top=1 << 12))
    c = dict(cur.frequent_values(top=1 << 12))
    keys, rc, cc = stats.align_counts(r, c)
    return keys, rc, cc, "over the most frequent values (a profile without hash counts)"


def _as_floats(counts: Mapping[Any, int]) -> dict[float, int]:
    out: dict[float, int] = {}
    for k, n in counts.items():
        out[float(k)] = out.get(float(k), 0) + n
    return out


def _pooled_chi_square(ref: np.ndarray, cur: np.ndarray) -> tuple[float, float]:
    """Chi-square over the cells, rare ones grouped so each group expects at least MIN_EXPECTED values in
    the smaller sample (the approximation the test relies on).

    Values are taken in order of their share of both samples together (the margins the test conditions
    on, so the grouping does not bias it) and added to a group until it expects enough: fifty rare cities
    become groups of a few, not one cell that would hide where a small batch went.
    """
    keep = (ref + cur) > 0
    ref, cur = ref[keep], cur[keep]
    n_ref, n_cur = float(ref.sum()), float(cur.sum())
    if not n_ref or not n_cur:
        return math.nan, math.nan
    pooled = ref + cur
    enough = MIN_EXPECTED * (n_ref + n_cur) / min(n_ref, n_cur)  # pooled count a group needs
    order = np.argsort(-pooled, kind="stable")
    groups_r: list[float] = []
    groups_c: list[float] = []
    acc_r = acc_c = 0.0
    for r, c in zip(ref[order].tolist(), cur[order].tolist(), strict=True):
        acc_r, acc_c = acc_r + r, acc_c + c
        if acc_r + acc_c >= enough:
            groups_r.append(acc_r)
            groups_c.append(acc_c)
            acc_r = acc_c = 0.0
    if acc_r or acc_c:  # the rarest values that did not fill a group join the last one
        if groups_r:
            groups_r[-1] += acc_r
            groups_c[-1] += acc_c
        else:
            groups_r.append(acc_r)
            groups_c.append(acc_c)
    if len(groups_r) < 2:
        return 0.0, 1.0
    return stats.chi_square(groups_r, groups_c)


def _unseen(ref: ColumnProfile, cur: ColumnProfile) -> tuple[tuple[Any, ...], float, str | None]:
    """Values of the current data the reference never had; only said when the reference's values are all known."""
    if ref.exact is None:
        return (), 0.0, f"unseen values are not checked: the reference has more than {ref.exact_limit:,} distinct values"
    counts = cur.exact.items() if cur.exact is not None else cur.frequent_values(top=1 << 12)
    same = cur.base == ref.base or (_FAMILY[cur.base] == _FAMILY[ref.base] == "number")  # 1 and 1.0 are one value

    def key(value: Any) -> Any:
        return float(value) if _FAMILY[ref.base] == "number" and same else value if same else str(value)

    known = {key(k) for k in ref.exact}
    found = sorted(((k, n) for k, n in counts if key(k) not in known), key=lambda kv: (-kv[1], str(kv[0])))
    share = sum(n for _, n in found) / cur.count if cur.count else 0.0
    return tuple(k for k, _ in found), float(share), None


def _numeric_pair(ref: ColumnProfile, cur: ColumnProfile) -> bool:
    return ref.base in NUMERIC_BASES and ref.base != "boolean" and cur.base in NUMERIC_BASES


def _type_change(ref: ColumnProfile, cur: ColumnProfile) -> str | None:
    if not ref.count or not cur.count or _FAMILY[ref.base] == _FAMILY[cur.base]:
        return None
    def name(col: ColumnProfile) -> str:
        return "text" if col.base == "string" else col.kind

    return f"{name(ref)} → {name(cur)}"


def _column(name: str, ref: ColumnProfile, cur: ColumnProfile, method: str, chosen: Mapping[str, float]) -> ColumnDrift:
    common = {"column": name, "kind": ref.kind, "missing_reference": _missing_rate(ref),
              "missing_current": _missing_rate(cur)}
    changed = _type_change(ref, cur)
    if changed:
        return ColumnDrift(**common, method="type", statistic=math.nan, threshold=math.nan, drifted=True,
                           type_change=changed,
                           note=f"the type changed ({changed}): values of the new type are not compared")
    numeric = ref.base in NUMERIC_BASES and ref.base != "boolean"
    discrete = ref.exact is not None and cur.exact is not None and len(ref.exact) <= LOW_CARDINALITY
    if numeric and method == "chi2" and not discrete:
        if not _finite_count(cur) or not _finite_count(ref):
            return ColumnDrift(**common, method=method, statistic=math.nan, threshold=math.nan, drifted=False,
                               note="no finite values on one side")
        edges = sorted(set(ref.quantiles((np.arange(1, _BINS) / _BINS).tolist())))
        r = np.asarray(ref.histogram(edges)) * _finite_count(ref)
        c = np.asarray(cur.histogram(edges)) * _finite_count(cur)
        statistic, p = _pooled_chi_square(r, c)
        return ColumnDrift(**common, method="chi2", statistic=statistic, threshold=chosen["chi2"], drifted=p < chosen["chi2"],
                           p_value=p, alpha=chosen["chi2"], note=f"over the reference's {_BINS} deciles")
    if numeric and (method in ("wasserstein", "ks") or (method == "auto" and not discrete)
                    or (method in ("psi", "js", "linf") and not discrete)):
        if not _finite_count(cur) or not _finite_count(ref):
            return ColumnDrift(**common, method=method, statistic=math.nan, threshold=math.nan, drifted=False,
                               note="no finite values on one side")
        if method == "ks":
            statistic, p = _ks(ref, cur)
            return ColumnDrift(**common, method="ks", statistic=statistic, threshold=chosen["ks"], drifted=p < chosen["ks"],
                               p_value=p, alpha=chosen["ks"])
        if method == "auto":
            statistic, p = _ks(ref, cur)
            distance = _distance(ref, cur, "wasserstein")
            threshold, alpha = chosen["wasserstein"], chosen["alpha"]
            return ColumnDrift(**common, method="ks+wasserstein", statistic=distance, threshold=threshold,
                               drifted=p < alpha and distance >= threshold, p_value=p, alpha=alpha)
        distance = _distance(ref, cur, method)
        return ColumnDrift(**common, method=method, statistic=distance, threshold=chosen[method],
                           drifted=distance >= chosen[method])
    if method in ("wasserstein", "ks"):
        raise InvalidInputError(f"method {method!r} does not apply to categorical columns such as {name!r}; "
                                "use js, chi2, psi or linf there (method={column: method} sets one per column)")
    _, r, c, how = _category_counts(ref, cur)
    unseen, unseen_share, unseen_note = _unseen(ref, cur)
    note = "; ".join(n for n in (how, unseen_note) if n) or None
    tag = " (hashed)" if how and "hash" in how else ""
    if not r.sum() or not c.sum():
        return ColumnDrift(**common, method=method, statistic=math.nan, threshold=math.nan, drifted=False,
                           unseen=unseen, unseen_share=unseen_share, note="no values on one side")
    if method == "chi2":
        statistic, p = _pooled_chi_square(r, c)
        return ColumnDrift(**common, method="chi2" + tag, statistic=statistic, threshold=chosen["chi2"],
                           drifted=p < chosen["chi2"], p_value=p, alpha=chosen["chi2"], unseen=unseen,
                           unseen_share=unseen_share, note=note)
    if method == "auto":
        statistic, p = _pooled_chi_square(r, c)
        distance = stats.js_distance(r, c)
        threshold, alpha = chosen["js"], chosen["alpha"]
        return ColumnDrift(**common, method="chi2+js" + tag, statistic=distance, threshold=threshold,
                           drifted=p < alpha and distance >= threshold, p_value=p, alpha=alpha, unseen=unseen,
                           unseen_share=unseen_share, note=note)
    fn = {"js": stats.js_distance, "psi": stats.psi, "linf": stats.linf_distance}[method]
    distance = fn(r, c)
    return ColumnDrift(**common, method=method + tag, statistic=distance, threshold=chosen[method],
                       drifted=distance >= chosen[method], unseen=unseen, unseen_share=unseen_share, note=note)


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
        method: one method for every column, or ``{column: method}``; ``auto`` (the default) asks a
            test and a distance, as the module's description says.
        thresholds: per-method thresholds overriding ``DEFAULT_THRESHOLDS``; ``alpha`` sets the
            p-value ``auto`` tests against (0.01).
        share: the dataset has drifted when at least this share of columns has.

    Raises:
        InvalidInputError: an unknown method, or no column in common.
    """
    chosen = dict(DEFAULT_THRESHOLDS)
    chosen.update(thresholds or {})
    for key, value in chosen.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
            raise InvalidInputError(f"threshold {key!r} must be a finite number ≥ 0, not {value!r}")
    methods = method if isinstance(method, Mapping) else {}
    default_method = method if isinstance(method, str) else "auto"
    for m in [default_method, *methods.values()]:
        if m not in METHODS:
            raise InvalidInputError(f"unknown drift method {m!r}; choose one of {', '.join(METHODS)}")
    ref_p = reference if isinstance(reference, Profile) else profile(reference)
    cur_p = current if isinstance(current, Profile) else profile(current)
    common = [c for c in ref_p.columns if c in cur_p.columns]
    if not common:
        raise InvalidInputError("reference and current have no column in common")
    report = DriftReport(
        share=share, reference_rows=ref_p.rows, current_rows=cur_p.rows,
        missing_columns=tuple(c for c in ref_p.columns if c not in cur_p.columns),
        new_columns=tuple(c for c in cur_p.columns if c not in ref_p.columns),
        reference=ref_p, current=cur_p,
    )
    for name in common:
        ref, cur = ref_p.columns[name], cur_p.columns[name]
        chosen_method = methods.get(name, default_method)
        fallback = None
        if name not in methods and default_method in ("ks", "wasserstein") and not _numeric_pair(ref, cur):
            fallback, chosen_method = default_method, "auto"  # one method for all: where it does not apply, auto
        column = _column(name, ref, cur, chosen_method, chosen)
        if fallback:
            column = replace(column, note="; ".join(filter(None, [f"{fallback} does not apply to categories: auto", column.note])))
        report.columns[name] = column
    return report
