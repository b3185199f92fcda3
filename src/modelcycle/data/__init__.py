"""Data: distribution statistics for drift and train/serving skew (profiles and validation build on them)."""

from __future__ import annotations

from modelcycle.data.drift import ColumnDrift, DriftReport, compare
from modelcycle.data.profile import ColumnProfile, Profile, profile
from modelcycle.data.schema import ColumnSchema, Schema, infer_schema
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
from modelcycle.data.validate import Anomaly, ValidationReport, validate

__all__ = [
    "Anomaly",
    "ColumnDrift",
    "ColumnProfile",
    "ColumnSchema",
    "DriftReport",
    "Profile",
    "Schema",
    "ValidationReport",
    "align_counts",
    "chi_square",
    "compare",
    "infer_schema",
    "js_distance",
    "ks_two_sample",
    "linf_distance",
    "profile",
    "psi",
    "validate",
    "wasserstein_from_quantiles",
    "wasserstein_normalized",
]
