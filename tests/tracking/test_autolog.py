"""scikit-learn autologging: one run per outermost fit, with params, training metrics and data fingerprint."""

from __future__ import annotations

import json

import pytest

import modelcycle as mc
from modelcycle.tracking.client import Client

sklearn = pytest.importorskip("sklearn")


@pytest.fixture
def autologged(client: Client):
    mc.set_client(client)
    mc.autolog()
    yield client
    mc.autolog(disable=True)
    mc.set_client(None)


def test_fit_outside_a_run_gets_its_own_finished_run(autologged: Client) -> None:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    X, y = load_iris(return_X_y=True, as_frame=True)
    LogisticRegression(C=0.5, max_iter=500).fit(X, y)
    runs = autologged.search_runs(as_frame=False)
    assert len(runs) == 1
    run = autologged.get_run(runs[0].id)
    assert run.status.value == "FINISHED"
    assert run.params["C"] == "0.5" and run.params["max_iter"] == "500"
    assert 0.9 < run.metrics["training_accuracy"] <= 1.0
    assert {"training_f1", "training_log_loss", "training_roc_auc", "fit_seconds"} <= set(run.metrics)
    assert run.tags["estimator_class"] == "LogisticRegression"
    summary = json.loads(autologged.read_artifact(run.id, "model_summary.json"))
    assert summary["n_features_in_"] == 4 and summary["classes_"] == [0, 1, 2]
    assert run.inputs[0].role == "train" and run.inputs[0].rows == 150


def test_pipeline_inside_a_run_logs_once_to_that_run(autologged: Client) -> None:
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = load_diabetes(return_X_y=True)
    with mc.start_run(name="mine") as run:
        make_pipeline(StandardScaler(), Ridge(alpha=2.0)).fit(X, y)
    assert len(autologged.search_runs(as_frame=False)) == 1, "nested fits do not start runs"
    got = autologged.get_run(run.id)
    assert got.params["ridge.alpha"] == "2.0"
    assert {"training_r2", "training_rmse", "training_mae"} <= set(got.metrics)


def test_failing_fit_ends_its_run_failed_and_raises(autologged: Client) -> None:
    from sklearn.linear_model import LogisticRegression

    with pytest.raises(ValueError):
        LogisticRegression().fit([[1.0], [2.0]], [0, 0])  # a single class
    run = autologged.search_runs(as_frame=False)[0]
    assert run.status.value == "FAILED"


def test_disable_restores_plain_fit(autologged: Client) -> None:
    from sklearn.linear_model import LinearRegression

    mc.autolog(disable=True)
    LinearRegression().fit([[1.0], [2.0]], [1.0, 2.0])
    assert autologged.search_runs(as_frame=False) == []
