"""Data: distribution statistics for drift and train/serving skew (profiles and validation build on them)."""

from __future__ import annotations

from modelcycle.data.drift import ColumnDrift, DriftReport, compare
from modelcycle.data.profile import ColumnProfile, Profile, profile
from modelcycle.data.stats import (
    align_counts,
    chi_square,
    js_distance,
    ks_two_sample,
    linf_distance,
    psi,
    wasserstein_from_quantiles,
    wasserstein_normalized,
)

__all__ = [
    "ColumnDrift",
    "ColumnProfile",
    "DriftReport",
    "Profile",
    "align_counts",
    "chi_square",
    "compare",
    "js_distance",
    "ks_two_sample",
    "linf_distance",
    "profile",
    "psi",
    "wasserstein_from_quantiles",
    "wasserstein_normalized",
]
