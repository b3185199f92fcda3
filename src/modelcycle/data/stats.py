"""Distances and tests between a reference and a current distribution.

Binned statistics (PSI, Jensen–Shannon, L-infinity, chi-square) take counts over the same bins
or categories, so they work as well on counts read from mergeable profiles as on raw data;
``align_counts`` lines two category tables up. Sample statistics (Kolmogorov–Smirnov,
Wasserstein) take raw values, for small data where exact tests are affordable;
``wasserstein_from_quantiles`` works on quantile sketches. Every function ignores NaN and
raises ``InvalidInputError`` for input it cannot judge.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from modelcycle.errors import InvalidInputError

__all__ = [
    "align_counts",
    "chi_square",
    "js_distance",
    "ks_two_sample",
    "linf_distance",
    "psi",
    "wasserstein_from_quantiles",
    "wasserstein_normalized",
]


def _counts(name: str, values: Any) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1 or arr.size == 0:
        raise InvalidInputError(f"{name} must be a non-empty list of counts, one per bin")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise InvalidInputError(f"{name} must hold finite, non-negative counts")
    return arr


def _pair(reference: Any, current: Any) -> tuple[np.ndarray, np.ndarray]:
    ref, cur = _counts("reference", reference), _counts("current", current)
    if ref.shape != cur.shape:
        raise InvalidInputError(f"reference has {ref.size} bins but current has {cur.size}; count both over the same bins")
    if ref.sum() == 0 or cur.sum() == 0:
        raise InvalidInputError("reference and current each need at least one counted value")
    return ref, cur


def _proportions(reference: Any, current: Any) -> tuple[np.ndarray, np.ndarray]:
    ref, cur = _pair(reference, current)
    return ref / ref.sum(), cur / cur.sum()


def align_counts(reference: Mapping[Any, float], current: Mapping[Any, float]) -> tuple[list[Any], np.ndarray, np.ndarray]:
    """Line two category → count tables up over the union of their categories.

    Categories missing on one side count 0 there; the order is the reference's, then the
    categories only the current data has (unseen ones).

    Example:
        >>> keys, ref, cur = align_counts({"a": 3, "b": 1}, {"b": 2, "new": 5})
        >>> keys, ref.tolist(), cur.tolist()
        (['a', 'b', 'new'], [3.0, 1.0, 0.0], [0.0, 2.0, 5.0])
    """
    keys = list(reference) + [k for k in current if k not in reference]
    ref = np.array([float(reference.get(k, 0)) for k in keys])
    cur = np.array([float(current.get(k, 0)) for k in keys])
    return keys, ref, cur


def psi(reference: Any, current: Any, epsilon: float = 1e-4) -> float:
    """Population stability index over shared bins: sum((c - r) * ln(c / r)) of the proportions.

    Empty bins are floored at ``epsilon`` so a bin seen on one side only counts without
    making the index infinite. Under 0.1 is usually read as stable, over 0.25 as drifted.

    Example:
        >>> round(psi([50, 50], [50, 50]), 6)
        0.0
        >>> round(psi([50, 50], [90, 10]), 3)
        0.879
    """
    r, c = _proportions(reference, current)
    r, c = np.maximum(r, epsilon), np.maximum(c, epsilon)
    return float(np.sum((c - r) * np.log(c / r)))


def js_distance(reference: Any, current: Any) -> float:
    """Jensen–Shannon distance (base 2): 0 for equal distributions, 1 for disjoint ones; symmetric.

    Example:
        >>> js_distance([1, 0], [0, 1])
        1.0
    """
    r, c = _proportions(reference, current)
    m = (r + c) / 2

    def kl(p: np.ndarray) -> float:
        mask = p > 0
        return float(np.sum(p[mask] * np.log2(p[mask] / m[mask])))

    return math.sqrt(max(0.0, (kl(r) + kl(c)) / 2))


def linf_distance(reference: Any, current: Any) -> float:
    """The largest difference of a bin's share between the two: TFDV's train/serving skew measure.

    Example:
        >>> linf_distance([8, 2], [5, 5])
        0.3
    """
    r, c = _proportions(reference, current)
    return float(round(np.max(np.abs(r - c)), 15))


def chi_square(reference: Any, current: Any) -> tuple[float, float]:
    """Chi-square test that both count tables come from one distribution; returns (statistic, p-value).

    Bins empty on both sides are dropped first.

    Example:
        >>> stat, p = chi_square([30, 70], [30, 70])
        >>> round(stat, 6), round(p, 6)
        (0.0, 1.0)
    """
    from scipy.stats import chi2_contingency

    ref, cur = _pair(reference, current)
    keep = (ref + cur) > 0
    table = np.vstack([ref[keep], cur[keep]])
    if table.shape[1] < 2:
        return 0.0, 1.0
    result = chi2_contingency(table, correction=False)
    return float(result.statistic), float(result.pvalue)


def _sample(name: str, values: Any) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=float).ravel()
    except (TypeError, ValueError):
        raise InvalidInputError(f"{name} must hold numbers") from None
    arr = arr[~np.isnan(arr)]
    if arr.size == 0:
        raise InvalidInputError(f"{name} has no values once missing ones are left out")
    if np.isinf(arr).any():
        raise InvalidInputError(f"{name} holds ±inf; sample statistics need finite values")
    return arr


def ks_two_sample(reference: Any, current: Any) -> tuple[float, float]:
    """Two-sample Kolmogorov–Smirnov test on raw values; returns (statistic, p-value).

    Example:
        >>> ks_two_sample([1, 2, 3], [1, 2, 3])
        (0.0, 1.0)
    """
    from scipy.stats import ks_2samp

    result = ks_2samp(_sample("reference", reference), _sample("current", current))
    return float(result.statistic), float(result.pvalue)


def wasserstein_normalized(reference: Any, current: Any) -> float:
    """Wasserstein (earth mover's) distance divided by the reference's standard deviation.

    Dividing by the spread makes the threshold comparable across columns: 0.1 means the mass
    moved a tenth of a standard deviation on average.

    Example:
        >>> round(wasserstein_normalized([0, 1, 2, 3], [1, 2, 3, 4]), 4)
        0.8944
    """
    from scipy.stats import wasserstein_distance

    ref, cur = _sample("reference", reference), _sample("current", current)
    scale = float(np.std(ref))
    distance = float(wasserstein_distance(ref, cur))
    if scale == 0:
        return 0.0 if distance == 0 else math.inf
    return distance / scale


def wasserstein_from_quantiles(reference_quantiles: Any, current_quantiles: Any, scale: float) -> float:
    """Wasserstein distance estimated from quantiles at the same evenly spaced levels, over ``scale``.

    With quantiles at levels (i + 0.5) / n the mean absolute difference approximates the
    integral of |F⁻¹ − G⁻¹|, which is the Wasserstein-1 distance.

    Example:
        >>> wasserstein_from_quantiles([0, 1, 2], [1, 2, 3], scale=2.0)
        0.5
    """
    ref, cur = _sample("reference quantiles", reference_quantiles), _sample("current quantiles", current_quantiles)
    if ref.shape != cur.shape:
        raise InvalidInputError("reference and current quantiles must be taken at the same levels")
    if not scale > 0 or not math.isfinite(scale):
        raise InvalidInputError(f"scale must be a positive number, not {scale!r}")
    return float(np.mean(np.abs(ref - cur)) / scale)
