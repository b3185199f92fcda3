"""Tuning on Optuna with every trial a child run; feature selection with scores, logged when a run is active."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import modelcycle as mc
from modelcycle.errors import InvalidInputError
from modelcycle.tracking.client import Client

pytest.importorskip("optuna")


def test_tune_finds_the_optimum_and_records_every_trial(client: Client) -> None:
    def objective(params):
        return -((params["x"] - 3.0) ** 2) - (0.0 if params["kind"] == "good" else 1.0)

    result = mc.tune(objective, {"x": mc.uniform(0, 10), "kind": mc.choice(["good", "bad"]), "fixed": 7}, n_trials=40, seed=1,
                     client=client, experiment="tuning")
    assert abs(result.best_params["x"] - 3.0) < 0.5 and result.best_params["kind"] == "good" and result.best_params["fixed"] == 7
    assert len(result.trials) == 40 and set(result.trials["state"]) == {"complete"}
    parent = client.get_run(result.run_id)
    assert parent.params["best.kind"] == "good" and parent.metrics["best_value"] == pytest.approx(result.best_value)
    children = client.search_runs(experiment="tuning", filter=f"parent_id = '{parent.id}'", limit=None, as_frame=False)
    assert len(children) == 40 and all(c.status.value == "FINISHED" for c in children)
    best = client.get_run(result.best_run_id)
    assert best.metrics["value"] == pytest.approx(result.best_value) and float(best.params["x"]) == pytest.approx(result.best_params["x"])


def test_tune_after_logging_outside_a_run_is_top_level_in_its_experiment(client: Client) -> None:
    client.log_metric("warm_up", 1.0)  # starts an implicit run
    implicit = client.active_run()
    assert implicit is not None and implicit.implicit
    result = mc.tune(lambda p: p["x"], {"x": mc.uniform(0, 1)}, n_trials=3, seed=0, client=client, experiment="tuned")
    parent = client.get_run(result.run_id)
    assert parent.parent_id is None and parent.experiment == "tuned", "the tuning run is not the implicit run's child"
    assert client.get_run(implicit.id).metrics["warm_up"] == 1.0


def test_pruned_and_failed_trials_are_recorded_as_such(client: Client) -> None:
    def objective(params, trial):
        if params["n"] == 1:
            raise RuntimeError("this configuration crashes")
        for step in range(5):
            trial.report(params["n"] * (step + 1), step)
            if trial.should_prune():
                raise mc.TrialPruned()
        return params["n"]

    result = mc.tune(objective, {"n": mc.intrange(1, 6)}, n_trials=30, direction="minimize", sampler="random", seed=0,
                     pruner="median", client=client, experiment="pruning")
    states = set(result.trials["state"])
    assert {"complete", "failed", "pruned"} <= states
    failed = result.trials[result.trials["state"] == "failed"].iloc[0]
    assert client.get_run(failed["run_id"]).status.value == "FAILED"
    pruned = result.trials[result.trials["state"] == "pruned"].iloc[0]
    pruned_run = client.get_run(pruned["run_id"])
    assert pruned_run.status.value == "KILLED" and pruned_run.tags["modelcycle.trial_state"] == "pruned"
    complete = result.trials[result.trials["state"] == "complete"]
    assert result.best_value == complete["value"].min() and result.best_value >= 2


def test_dict_metrics_need_a_name(client: Client) -> None:
    def objective(params):
        return {"auc": 1 - abs(params["C"] - 1), "loss": abs(params["C"] - 1)}

    result = mc.tune(objective, {"C": mc.loguniform(0.01, 100)}, n_trials=10, metric="auc", seed=0, client=client)
    trial = client.get_run(result.best_run_id)
    assert set(trial.metrics) == {"auc", "loss"}
    with pytest.raises(InvalidInputError, match="name the one to optimise with metric="):
        mc.tune(objective, {"C": mc.loguniform(0.01, 100)}, n_trials=2, client=client)


@pytest.mark.parametrize("bad,words", [
    (lambda: mc.loguniform(0, 1), "0 < low < high"),
    (lambda: mc.intrange(5, 1), "low ≤ high"),
    (lambda: mc.choice([]), "at least one option"),
    (lambda: mc.tune(lambda p: 1, {"x": mc.uniform(0, 1)}, n_trials=0), "n_trials"),
    (lambda: mc.tune(lambda p: 1, {"x": mc.uniform(0, 1)}, direction="up"), "direction"),
])
def test_bad_search_spaces_are_named(bad, words: str) -> None:
    with pytest.raises(InvalidInputError, match=words):
        bad()


@pytest.mark.slow
def test_trials_in_parallel_on_dask(client: Client) -> None:
    pytest.importorskip("distributed")

    def objective(params):
        return -abs(params["x"] - 0.5)

    result = mc.tune(objective, {"x": mc.uniform(0, 1)}, n_trials=8, executor="dask", seed=0, client=client, experiment="dask-tune")
    assert len(result.trials) == 8 and set(result.trials["state"]) == {"complete"}
    trial = client.get_run(result.best_run_id)
    assert trial.metrics["value"] == pytest.approx(result.best_value), "a worker logged the trial's metric into its run"


def frame(n: int = 400, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"signal": rng.normal(size=n), "weak": rng.normal(size=n), "noise": rng.normal(size=n),
                      "city": rng.choice(["a", "b", "c"], n)})
    y = pd.Series(((X["signal"] + 0.3 * X["weak"] + (X["city"] == "a")) > 0.5).astype(int))
    return X, y


@pytest.mark.parametrize("method", ["mutual_info", "model_importance", "rfe"])
def test_every_method_ranks_the_signal_first(method: str) -> None:
    X, y = frame()
    selection = mc.select_features(X, y, method=method, k=2)
    ranked = sorted(selection.scores, key=lambda c: -selection.scores[c])
    assert ranked[0] == "signal" and "signal" in selection.selected and "noise" not in selection.selected
    assert selection.transform(X).columns.tolist() == selection.selected
    assert "<svg" in selection.to_html()


def test_threshold_and_regression() -> None:
    X, _ = frame()
    y = 2 * X["signal"] + 0.1 * np.random.default_rng(1).normal(size=len(X))
    selection = mc.select_features(X, y, threshold=0.2)
    assert selection.task == "regression" and selection.selected == ["signal"]
    assert all(not math.isnan(v) for v in selection.scores.values())


def test_selection_is_logged_inside_a_run(client: Client) -> None:
    X, y = frame()
    mc.set_client(client)
    try:
        with mc.start_run(experiment="features") as run:
            mc.select_features(X, y, k=2)
    finally:
        mc.set_client(None)
    stored = client.get_run(run.id)
    assert stored.metrics["features_selected"] == 2
    assert {"features/selection.json", "features/selection.html"} <= {a.path for a in stored.artifacts}


def test_bad_feature_selection_input() -> None:
    X, y = frame()
    with pytest.raises(InvalidInputError, match="unknown method"):
        mc.select_features(X, y, method="magic")
    with pytest.raises(InvalidInputError, match="k must be between 1 and the number of columns"):
        mc.select_features(X, y, k=10)
    with pytest.raises(InvalidInputError, match="X must be a DataFrame"):
        mc.select_features(X.to_numpy(), y)
    with pytest.raises(InvalidInputError, match="same, non-zero number"):
        mc.select_features(X, y.iloc[:10])
