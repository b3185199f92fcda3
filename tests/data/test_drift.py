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


def test_auto_names_its_test_and_its_distance() -> None:
    small = compare(make(500, 0, False), make(500, 1, True))
    shifted = small.columns["shifted"]
    assert shifted.method == "ks+wasserstein" and shifted.p_value < 0.01 and shifted.alpha == 0.01
    assert shifted.statistic >= shifted.threshold == 0.1
    assert small.columns["color"].method == "chi2+js" and small.columns["color"].p_value < 0.01
    large = compare(make(20_000, 0, False), make(20_000, 1, True))
    assert large.columns["shifted"].method == "ks+wasserstein"
    assert large.columns["shifted"].statistic == pytest.approx(0.5, abs=0.05)
    assert large.columns["color"].method == "chi2+js"


def test_a_tiny_difference_in_a_large_sample_is_significant_but_not_drift() -> None:
    rng = np.random.default_rng(3)
    ref = pd.DataFrame({"x": rng.normal(0, 1, 200_000)})
    cur = pd.DataFrame({"x": rng.normal(0.03, 1, 200_000)})
    column = compare(ref, cur).columns["x"]
    assert column.p_value < 1e-6, "the test sees the difference"
    assert column.statistic < 0.1 and not column.drifted, "the distance says it is too small to matter"
    assert compare(ref, cur, method="ks").columns["x"].drifted, "the test alone can be chosen"


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
    strict = compare(make(5000, 0, False), make(5000, 2, False), method={"stable": "wasserstein"},
                     thresholds={"wasserstein": 1e-9})
    assert "stable" in strict.drifted_columns, "a threshold of ~0 flags sampling noise"
    loose = compare(make(300, 0, False), make(300, 1, True), thresholds={"alpha": 1e-12})
    assert "shifted" not in loose.drifted_columns, "alpha sets the tests' level"
    with pytest.raises(InvalidInputError, match="threshold 'js' must be a finite number"):
        compare(make(100, 0, False), make(100, 1, False), thresholds={"js": float("nan")})


def test_columns_missing_or_new_are_listed_and_reports_serialise() -> None:
    ref = make(2000, 0, False)
    cur = make(2000, 1, False).drop(columns=["plan"]).assign(extra=1)
    report = compare(ref, cur)
    assert report.missing_columns == ("plan",) and report.new_columns == ("extra",)
    data = json.loads(report.to_json())
    assert set(data["columns"]) == {"stable", "shifted", "color", "plan"} and data["missing_columns"] == ["plan"]
    assert data["columns"]["plan"]["status"] == "missing"
    frame = report.to_frame()
    assert frame["column"].tolist() == ["stable", "shifted", "color", "plan"]
    assert frame.set_index("column").loc["plan", "status"] == "missing"
    assert frame.set_index("column").loc["color", "method"] == "chi2+js"
    page = report.to_html()
    assert "<td>plan</td>" in page and "missing" in page


def test_a_type_change_is_reported_as_such_not_as_drift_of_values() -> None:
    ref = pd.DataFrame({"age": np.arange(1000) % 60 + 20, "x": np.linspace(0, 1, 1000)})
    cur = ref.assign(age=["unknown", "40.0", "70.0", "33", "41"] * 200)
    report = compare(ref, cur)
    age = report.columns["age"]
    assert age.type_change == "integer → text" and age.status == "type changed" and age.drifted
    assert age.unseen == () and age.method == "type", "values of another type are not 'unseen categories'"
    assert report.type_changes == {"age": "integer → text"}
    data = json.loads(report.to_json())
    assert data["type_changes"] == {"age": "integer → text"} and data["columns"]["age"]["status"] == "type changed"
    assert data["columns"]["age"]["statistic"] is None, "JSON without NaN"
    assert "type changed" in report.to_html()
    assert not report.columns["x"].drifted


def test_bad_requests_are_named() -> None:
    ref = make(100, 0, False)
    with pytest.raises(InvalidInputError, match="unknown drift method 'magic'"):
        compare(ref, ref, method="magic")
    with pytest.raises(InvalidInputError, match="no column in common"):
        compare(ref, pd.DataFrame({"other": [1, 2]}))
    with pytest.raises(InvalidInputError, match="does not apply to categorical"):
        compare(make(5000, 0, False), make(5000, 1, False), method={"color": "wasserstein"})


def test_numbers_with_few_values_are_compared_as_categories() -> None:
    rng = np.random.default_rng(0)
    ref = pd.DataFrame({"flag": rng.integers(0, 2, 2000), "visits": rng.poisson(2, 2000), "x": rng.normal(0, 1, 2000)})
    cur = pd.DataFrame({"flag": rng.integers(0, 2, 300), "visits": rng.poisson(2, 300), "x": rng.normal(0, 1, 300)})
    report = compare(ref, cur)
    assert report.columns["flag"].method == "chi2+js" and report.columns["visits"].method == "chi2+js"
    assert report.columns["x"].method == "ks+wasserstein"
    assert report.columns["flag"].kind == "integer", "the type is still the column's"


def test_ks_from_sketches_agrees_with_scipy_on_large_samples() -> None:
    """Above 5,000 effective rows the p-value comes from the limiting distribution (Stephens' correction): it must
    still say what scipy's two-sample KS says on the raw values."""
    import numpy as np
    import pandas as pd
    from scipy.stats import ks_2samp

    from modelcycle.data import compare

    rng = np.random.default_rng(7)
    for shift, n in ((0.0, 40_000), (0.02, 40_000), (0.05, 200_000)):
        a, b = rng.normal(0, 1, n), rng.normal(shift, 1, n)
        got = compare(pd.DataFrame({"x": a}), pd.DataFrame({"x": b}), method="ks").columns["x"]
        want = ks_2samp(a, b, method="asymp")
        assert abs(got.statistic - want.statistic) < 0.01, (shift, got.statistic, want.statistic)
        assert (got.p_value < 0.01) == (want.pvalue < 0.01), (shift, got.p_value, want.pvalue)
