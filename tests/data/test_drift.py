"""Drift between reference and current data: verdicts, evidence, methods and errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from modelcycle.data import compare, profile
from modelcycle.errors import InvalidInputError


def make(n: int, seed: int, drift: bool) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    shift = 0.5 if drift else 0.0
    probs = [0.1, 0.3, 0.6] if drift else [0.6, 0.3, 0.1]
    df = pd.DataFrame({
        "stable": rng.normal(0, 1, n),
        "shifted": rng.normal(shift, 1, n),
        "color": rng.choice(["red", "green", "blue"], n, p=probs),
        "plan": rng.choice(["free", "pro"], n),
    })
    if drift:
        df.loc[: n // 10, "plan"] = "enterprise"  # a category the reference never had
        df.loc[: n // 5, "stable"] = np.nan
    return df


@pytest.mark.parametrize("n", [500, 20_000])
def test_drifted_columns_are_found_and_stable_ones_are_not(n: int) -> None:
    report = compare(make(n, 0, False), make(n, 1, True))
    assert report.drifted_columns == ["shifted", "color", "plan"]
    assert not report.columns["stable"].drifted
    assert report.dataset_drift and report.drift_share == 0.75
    plan = report.columns["plan"]
    assert plan.unseen == ("enterprise",) and plan.unseen_share == pytest.approx(0.1, abs=0.01)
    assert report.columns["stable"].missing_current == pytest.approx(0.2, abs=0.01)
    assert report.columns["stable"].missing_reference == 0.0


def test_auto_says_which_method_it_picked() -> None:
    small = compare(make(500, 0, False), make(500, 1, True))
    assert small.columns["shifted"].method == "ks" and small.columns["shifted"].p_value < 0.05
    assert small.columns["color"].method == "chi2"
    large = compare(make(20_000, 0, False), make(20_000, 1, True))
    assert large.columns["shifted"].method == "wasserstein"
    assert large.columns["shifted"].statistic == pytest.approx(0.5, abs=0.05)
    assert large.columns["color"].method == "js"


def test_profiles_alone_give_the_same_verdicts() -> None:
    ref, cur = make(20_000, 0, False), make(20_000, 1, True)
    from_data = compare(ref, cur)
    from_profiles = compare(profile(ref), profile(cur))
    assert from_profiles.drifted_columns == from_data.drifted_columns
    for name, col in from_data.columns.items():  # KLL sketches compact at random: equal within their error
        assert from_profiles.columns[name].statistic == pytest.approx(col.statistic, abs=0.03)


@pytest.mark.parametrize("method", ["psi", "js", "linf", "wasserstein", "ks"])
def test_every_numeric_method_separates_shift_from_noise(method: str) -> None:
    ref, cur = make(20_000, 0, False), make(20_000, 1, True)
    report = compare(ref, cur, method={"shifted": method, "stable": method})
    assert report.columns["shifted"].drifted and not report.columns["stable"].drifted
    assert report.columns["shifted"].method == method


def test_identical_data_has_no_drift_and_thresholds_can_be_set() -> None:
    ref = make(5000, 0, False)
    report = compare(ref, ref)
    assert report.drifted_columns == [] and not report.dataset_drift
    strict = compare(make(5000, 0, False), make(5000, 2, False), thresholds={"wasserstein": 1e-9, "js": 1e-9})
    assert "stable" in strict.drifted_columns, "a threshold of ~0 flags sampling noise"


def test_columns_missing_or_new_are_listed_and_reports_serialise() -> None:
    ref = make(2000, 0, False)
    cur = make(2000, 1, False).drop(columns=["plan"]).assign(extra=1)
    report = compare(ref, cur)
    assert report.missing_columns == ("plan",) and report.new_columns == ("extra",)
    data = json.loads(report.to_json())
    assert set(data["columns"]) == {"stable", "shifted", "color"} and data["missing_columns"] == ["plan"]


def test_bad_requests_are_named() -> None:
    ref = make(100, 0, False)
    with pytest.raises(InvalidInputError, match="unknown drift method 'magic'"):
        compare(ref, ref, method="magic")
    with pytest.raises(InvalidInputError, match="no column in common"):
        compare(ref, pd.DataFrame({"other": [1, 2]}))
    with pytest.raises(InvalidInputError, match="does not apply to categorical"):
        compare(make(5000, 0, False), make(5000, 1, False), method={"color": "wasserstein"})
