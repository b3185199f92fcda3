"""Evaluation gives scikit-learn's numbers, per slice and for a baseline on the same rows; gates judge them."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm
from sklearn.linear_model import LinearRegression, LogisticRegression

from modelcycle.errors import InvalidInputError
from modelcycle.evaluation import Evaluation, Policy, check_policy, evaluate_model


def labelled(n: int = 600, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "region": rng.choice(["north", "south"], n)})
    df["y"] = (df["a"] + 0.5 * rng.normal(size=n) > 0).astype(int)
    return df


def test_classification_metrics_match_scikit_learn() -> None:
    df = labelled()
    model = LogisticRegression().fit(df[["a", "b"]], df["y"])
    ev = evaluate_model(model, df[["a", "b", "y"]])
    proba = model.predict_proba(df[["a", "b"]])
    pred = model.predict(df[["a", "b"]])
    assert ev.task == "classification" and ev.rows == len(df)
    assert ev.metrics["roc_auc"] == pytest.approx(skm.roc_auc_score(df["y"], proba[:, 1]))
    assert ev.metrics["log_loss"] == pytest.approx(skm.log_loss(df["y"], proba))
    assert ev.metrics["f1"] == pytest.approx(skm.f1_score(df["y"], pred))
    assert ev.metrics["accuracy"] == pytest.approx(skm.accuracy_score(df["y"], pred))
    assert ev.confusion["matrix"] == skm.confusion_matrix(df["y"], pred).tolist()
    assert sum(ev.calibration["count"]) == len(df)
    assert ev.latency_ms_per_row > 0


def test_regression_metrics_match_scikit_learn() -> None:
    df = labelled()
    df["y"] = 3 * df["a"] - df["b"] + np.random.default_rng(1).normal(size=len(df))
    model = LinearRegression().fit(df[["a", "b"]], df["y"])
    ev = evaluate_model(model, df[["a", "b", "y"]])
    pred = model.predict(df[["a", "b"]])
    assert ev.task == "regression"
    assert ev.metrics["rmse"] == pytest.approx(math.sqrt(skm.mean_squared_error(df["y"], pred)))
    assert ev.metrics["mae"] == pytest.approx(skm.mean_absolute_error(df["y"], pred))
    assert ev.metrics["r2"] == pytest.approx(skm.r2_score(df["y"], pred))
    assert ev.metrics["mape"] == pytest.approx(skm.mean_absolute_percentage_error(df["y"], pred))


def test_slices_and_baseline_use_the_same_rows() -> None:
    df = labelled()
    features = ["a", "b"]
    strong = LogisticRegression().fit(df[features], df["y"])
    weak = LogisticRegression().fit(df[["b"]].assign(a=0.0)[features], df["y"])

    class Selecting:  # a model that uses only the features, as a signature-checked package would
        def __init__(self, m):
            self.m = m

        def predict(self, X):
            return self.m.predict(X[features])

        def predict_proba(self, X):
            return self.m.predict_proba(X[features])

    ev = evaluate_model(Selecting(strong), df, slices=["region"], baseline=Selecting(weak))
    north = df[df["region"] == "north"]
    assert ev.slices["region"]["north"]["rows"] == len(north)
    assert ev.slices["region"]["north"]["roc_auc"] == pytest.approx(
        skm.roc_auc_score(north["y"], strong.predict_proba(north[features])[:, 1]))
    assert ev.baseline is not None and ev.baseline.rows == ev.rows
    assert ev.baseline.metrics["roc_auc"] == pytest.approx(skm.roc_auc_score(df["y"], weak.predict_proba(df[features])[:, 1]))
    assert set(ev.baseline.slices["region"]) == {"north", "south"}


def test_bad_evaluation_input_is_explained() -> None:
    df = labelled()
    model = LogisticRegression().fit(df[["a", "b"]], df["y"])
    with pytest.raises(InvalidInputError, match="no target column 'label'"):
        evaluate_model(model, df[["a", "b", "y"]], target="label")
    with pytest.raises(InvalidInputError, match="empty"):
        evaluate_model(model, df.iloc[:0])
    with pytest.raises(InvalidInputError, match="slice columns not in the evaluation data: country"):
        evaluate_model(model, df[["a", "b", "y"]], slices=["country"])
    with pytest.raises(InvalidInputError, match="missing values"):
        evaluate_model(model, df[["a", "b", "y"]].assign(y=[None, *df["y"].tolist()[1:]]))


def test_html_report_has_the_plots(tmp_path: Path) -> None:
    df = labelled()
    model = LogisticRegression().fit(df[["a", "b"]], df["y"])

    class M:
        def predict(self, X):
            return model.predict(X[["a", "b"]])

        def predict_proba(self, X):
            return model.predict_proba(X[["a", "b"]])

    page = evaluate_model(M(), df, slices=["region"], baseline=M()).to_html(tmp_path / "ev.html")
    assert (tmp_path / "ev.html").read_text() == page
    assert "Confusion matrix" in page and "Calibration" in page and "roc_auc by region" in page
    assert page.count("<svg") >= 2 and "<script" not in page


def ev(metrics: dict, slices: dict | None = None, latency: float = 0.1) -> Evaluation:
    return Evaluation("classification", 100, metrics, slices or {}, latency_ms_per_row=latency)


POLICY = {
    "thresholds": {"roc_auc": ">= 0.80", "log_loss": "<= 0.45"},
    "improvement": {"metric": "roc_auc", "over": "champion", "min_delta": 0.0},
    "slices": {"column": "region", "max_regression": 0.02},
    "latency_ms_per_row": "<= 2",
    "require_data_validation": True,
}


def test_a_better_candidate_passes_every_rule() -> None:
    cand = ev({"roc_auc": 0.9, "log_loss": 0.3}, {"region": {"n": {"roc_auc": 0.9, "rows": 50}, "s": {"roc_auc": 0.88, "rows": 50}}})
    base = ev({"roc_auc": 0.85, "log_loss": 0.4}, {"region": {"n": {"roc_auc": 0.86, "rows": 50}, "s": {"roc_auc": 0.89, "rows": 50}}})
    verdict = check_policy(Policy.from_dict(POLICY), cand, base, data_errors=[])
    assert verdict.passed, verdict.failures()
    improvement = next(r for r in verdict.rules if r.rule.startswith("improvement"))
    assert (improvement.candidate, improvement.baseline) == (0.9, 0.85)


def test_each_rule_can_fail_with_its_evidence() -> None:
    cand = ev({"roc_auc": 0.84, "log_loss": 0.5}, {"region": {"n": {"roc_auc": 0.80, "rows": 50}}}, latency=3.0)
    base = ev({"roc_auc": 0.85, "log_loss": 0.4}, {"region": {"n": {"roc_auc": 0.86, "rows": 50}}})
    verdict = check_policy(Policy.from_dict(POLICY), cand, base, data_errors=["age: range"])
    failed = {r.rule.split(" (")[0] for r in verdict.rules if not r.passed}
    assert failed == {"threshold log_loss", "improvement roc_auc over champion", "slices by region", "latency_ms_per_row",
                      "data validation"}
    assert not verdict.passed
    assert any("region=n" in f and "regressed by 0.06" in f for f in verdict.failures())


def test_with_no_champion_the_improvement_rule_passes_and_says_why() -> None:
    verdict = check_policy(Policy.from_dict({"improvement": {"metric": "roc_auc"}}), ev({"roc_auc": 0.7}))
    assert verdict.passed and "no champion yet" in verdict.rules[0].detail


@pytest.mark.parametrize("policy,message", [
    ({"thresholds": {"auc": ">= 0.8"}}, "thresholds.auc: unknown metric"),
    ({"thresholds": {"roc_auc": 0.8}}, 'write a comparison such as ">= 0.8"'),
    ({"thresholds": {"roc_auc": "at least 0.8"}}, "is not a bound"),
    ({"improvment": {}}, "unknown policy keys: improvment"),
    ({"improvement": {"over": "champion"}}, "improvement needs"),
])
def test_policy_mistakes_are_named(policy: dict, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Policy.from_dict(policy)


def test_policy_yaml_round_trip(tmp_path: Path) -> None:
    import yaml

    (tmp_path / "policy.yaml").write_text(yaml.safe_dump(POLICY))
    policy = Policy.load(tmp_path / "policy.yaml")
    assert policy.thresholds["log_loss"] == ("<=", 0.45) and policy.slices["column"] == "region"
    (tmp_path / "bad.yaml").write_text("thresholds: {roc_auc: '>= x'}")
    with pytest.raises(InvalidInputError, match=r"bad\.yaml: thresholds\.roc_auc"):
        Policy.load(tmp_path / "bad.yaml")


def test_a_bare_estimator_gets_only_its_features() -> None:
    df = labelled()
    model = LogisticRegression().fit(df[["b", "a"]], df["y"])
    ev = evaluate_model(model, df, slices=["region"])  # region and y are not features: left out
    assert ev.metrics["roc_auc"] == pytest.approx(skm.roc_auc_score(df["y"], model.predict_proba(df[["b", "a"]])[:, 1]))


def test_latency_is_the_median_of_warm_repetitions_not_one_busy_instant() -> None:
    """A model slow on its first call (loading, thread pools) and on one more (the machine was busy for a moment):
    the gate's latency is what a warm model takes, so a latency rule does not fail on a loaded machine."""
    import time

    import numpy as np
    import pandas as pd

    from modelcycle.evaluation import evaluate_model

    class Spiky:
        calls = 0

        def predict(self, X):
            Spiky.calls += 1
            if Spiky.calls in (1, 3):
                time.sleep(0.3)
            return np.zeros(len(X))

    frame = pd.DataFrame({"x": np.arange(200.0), "y": np.arange(200.0) % 7})
    ev = evaluate_model(Spiky(), frame, "y", task="regression")
    assert Spiky.calls >= 6, "one call for the metrics, then repetitions for the latency"
    assert ev.latency_ms_per_row < 0.1, f"{ev.latency_ms_per_row} ms per row: a 300 ms pause was counted"


def test_an_improvement_rule_on_a_metric_the_task_has_not_fails_even_without_a_champion() -> None:
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LinearRegression

    from modelcycle.evaluation import Policy, check_policy, evaluate_model

    frame = pd.DataFrame({"x": np.arange(50.0), "y": np.arange(50.0) * 2 + 1})
    ev = evaluate_model(LinearRegression().fit(frame[["x"]], frame["y"]), frame, "y")
    verdict = check_policy(Policy.from_dict({"improvement": {"metric": "roc_auc", "min_delta": -0.02}}), ev)
    [rule] = verdict.rules
    assert not verdict.passed and rule.detail == "roc_auc was not computed for a regression model"
    assert rule.expected == "-0.02", "the allowed change is written with its own sign"
