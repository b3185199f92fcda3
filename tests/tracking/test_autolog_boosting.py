"""XGBoost and LightGBM autologging: their scikit-learn estimators and their native ``train``, on a real SQLite store."""

from __future__ import annotations

import inspect
import json

import numpy as np
import pytest

import modelcycle as mc
from modelcycle.tracking.client import Client

pytestmark = pytest.mark.filterwarnings("error::modelcycle.errors.ModelcycleWarning")  # autolog recorded all


@pytest.fixture
def autologged(client: Client):
    mc.set_client(client)
    mc.autolog(log_datasets=False)
    yield client
    mc.autolog(disable=True)
    mc.set_client(None)


@pytest.fixture
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 3))
    y = (X[:, 0] + 0.5 * X[:, 1] + rng.normal(0, 0.3, 120) > 0).astype(int)
    return X, y


def _history(client: Client, run_id: str, key: str) -> tuple[list[int], list[float]]:
    frame = client.get_metric_history(run_id, key)
    return frame["step"].tolist(), frame["value"].tolist()


def _is(expected: list[float]) -> tuple[list[int], object]:
    """A history of these values at steps 0, 1, …"""
    return list(range(len(expected))), pytest.approx(expected)


def _summary(client: Client, run_id: str) -> dict:
    return json.loads(client.read_artifact(run_id, "model_summary.json"))


def test_xgboost_estimators_are_logged_once_with_their_evaluation_history(autologged: Client, data) -> None:
    pytest.importorskip("sklearn")  # XGBoost's estimators need it
    xgboost = pytest.importorskip("xgboost")
    X, y = data
    mc.autolog()  # with the training data's fingerprint
    model = xgboost.XGBClassifier(n_estimators=4, max_depth=2, eval_metric="logloss")
    model.fit(X, y, eval_set=[(X, y)], verbose=False)
    runs = autologged.search_runs(as_frame=False)
    assert [r.name for r in runs] == ["XGBClassifier"], "the train behind fit is not a run of its own"
    run = autologged.get_run(runs[0].id)
    assert run.tags["modelcycle.autolog"] == "xgboost" and run.params["n_estimators"] == "4"
    assert run.metrics["training_accuracy"] > 0.8 and "training_roc_auc" in run.metrics
    assert run.inputs[0].role == "train" and run.inputs[0].rows == 120
    expected = model.evals_result()["validation_0"]["logloss"]
    assert _history(autologged, run.id, "validation_0-logloss") == _is(expected)


def test_lightgbm_estimators_are_logged_once_with_their_evaluation_history(autologged: Client, data) -> None:
    pytest.importorskip("sklearn")  # LightGBM's estimators need it
    lightgbm = pytest.importorskip("lightgbm")
    X = data[0]
    target = X @ np.array([1.0, 2.0, 0.0])
    with mc.start_run(name="mine") as run:
        model = lightgbm.LGBMRegressor(n_estimators=5, num_leaves=4, verbose=-1)
        if "eval_X" in inspect.signature(model.fit).parameters:  # LightGBM 4.7 deprecates eval_set
            model.fit(X[:80], target[:80], eval_X=(X[80:],), eval_y=(target[80:],))
        else:
            model.fit(X[:80], target[:80], eval_set=[(X[80:], target[80:])])
    assert len(autologged.search_runs(as_frame=False)) == 1
    got = autologged.get_run(run.id)
    assert got.tags["modelcycle.autolog"] == "lightgbm" and got.tags["estimator_class"] == "LGBMRegressor"
    assert got.params["n_estimators"] == "5" and got.params["num_leaves"] == "4"
    assert {"training_r2", "training_rmse"} <= set(got.metrics)
    expected = model.evals_result_["valid_0"]["l2"]
    assert _history(autologged, run.id, "valid_0-l2") == _is(expected)
    assert _summary(autologged, run.id)["feature_name_"] == ["Column_0", "Column_1", "Column_2"]


def test_xgboost_train_logs_params_rounds_history_and_feature_names(autologged: Client, data) -> None:
    xgboost = pytest.importorskip("xgboost")
    X, y = data
    train = xgboost.DMatrix(X[:80], label=y[:80], feature_names=["age", "income", "tenure"])
    valid = xgboost.DMatrix(X[80:], label=y[80:], feature_names=["age", "income", "tenure"])
    mine: dict = {}
    params = {"objective": "binary:logistic", "max_depth": 2, "eval_metric": ["logloss", "auc"]}
    booster = xgboost.train(params, train, num_boost_round=6, evals=[(train, "train"), (valid, "valid")],
                            evals_result=mine, verbose_eval=False)
    assert booster.num_boosted_rounds() == 6
    (run,) = autologged.search_runs(as_frame=False)
    run = autologged.get_run(run.id)
    assert run.name == "xgboost.train" and run.status.value == "FINISHED"
    assert run.tags["modelcycle.autolog"] == "xgboost"
    assert run.params["objective"] == "binary:logistic" and run.params["max_depth"] == "2"
    assert run.params["eval_metric"] == "['logloss', 'auc']" and run.params["num_boost_round"] == "6"
    for key in ("train-logloss", "train-auc", "valid-logloss", "valid-auc"):
        data_name, metric = key.split("-")
        assert _history(autologged, run.id, key) == _is(mine[data_name][metric]), key
    summary = _summary(autologged, run.id)
    assert summary["feature_names"] == ["age", "income", "tenure"] and summary["boosted_rounds"] == 6
    assert summary["params"]["num_boost_round"] == "6"


def test_xgboost_train_without_evals_logs_the_default_rounds_and_early_stopping(autologged: Client, data) -> None:
    xgboost = pytest.importorskip("xgboost")
    X, y = data
    train = xgboost.DMatrix(X, label=y)
    xgboost.train({"objective": "binary:logistic"}, train)
    valid = xgboost.DMatrix(X[:40], label=1 - y[:40])  # gets worse as the model learns
    with mc.start_run(name="stopped") as run:
        xgboost.train({"objective": "binary:logistic"}, train, 200, evals=[(train, "train"), (valid, "valid")],
                      early_stopping_rounds=2, verbose_eval=False)
    first, second = sorted(autologged.search_runs(as_frame=False), key=lambda r: r.start_time)
    first = autologged.get_run(first.id)
    assert first.params["num_boost_round"] == "10" and set(first.metrics) == {"fit_seconds"}
    assert _summary(autologged, first.id)["feature_names"] == ["f0", "f1", "f2"]
    assert second.id == run.id
    summary = _summary(autologged, run.id)
    assert summary["best_iteration"] < summary["boosted_rounds"] < 200
    assert _history(autologged, run.id, "valid-logloss")[0] == list(range(summary["boosted_rounds"]))


def test_lightgbm_train_logs_params_rounds_history_and_feature_names(autologged: Client, data) -> None:
    lightgbm = pytest.importorskip("lightgbm")
    X, y = data
    train = lightgbm.Dataset(X[:80], label=y[:80], feature_name=["age", "income", "tenure"])
    valid = lightgbm.Dataset(X[80:], label=y[80:], reference=train)
    mine: dict = {}
    callbacks = [lightgbm.record_evaluation(mine)]
    params = {"objective": "binary", "num_leaves": 4, "metric": ["binary_logloss", "auc"], "verbose": -1}
    booster = lightgbm.train(params, train, num_boost_round=5, valid_sets=[train, valid], valid_names=["train", "valid"],
                             callbacks=callbacks)
    assert len(callbacks) == 1 and booster.current_iteration() == 5  # the caller's list is left as it was
    (run,) = autologged.search_runs(as_frame=False)
    run = autologged.get_run(run.id)
    assert run.name == "lightgbm.train" and run.tags["modelcycle.autolog"] == "lightgbm"
    assert run.params["objective"] == "binary" and run.params["num_leaves"] == "4"
    assert run.params["num_boost_round"] == "5"
    for key in ("train-binary_logloss", "train-auc", "valid-binary_logloss", "valid-auc"):
        data_name, metric = key.split("-")
        assert _history(autologged, run.id, key) == _is(mine[data_name][metric]), key
    summary = _summary(autologged, run.id)
    assert summary["feature_names"] == ["age", "income", "tenure"] and summary["boosted_rounds"] == 5


def test_metric_names_keys_cannot_hold_are_rewritten(autologged: Client, data) -> None:
    lightgbm = pytest.importorskip("lightgbm")
    X, y = data
    train = lightgbm.Dataset(X, label=y, group=[40, 40, 40])
    lightgbm.train({"objective": "lambdarank", "metric": "ndcg", "eval_at": [3], "verbose": -1}, train,
                   num_boost_round=3, valid_sets=[train], valid_names=["train"])
    (run,) = autologged.search_runs(as_frame=False)
    assert _history(autologged, run.id, "train-ndcg_at_3")[0] == [0, 1, 2]


def test_a_failing_train_ends_its_run_failed(autologged: Client) -> None:
    xgboost = pytest.importorskip("xgboost")
    train = xgboost.DMatrix(np.zeros((4, 2)), label=[0, 1, 0, 1])
    with pytest.raises(xgboost.core.XGBoostError):
        xgboost.train({"objective": "no-such-objective"}, train)
    (run,) = autologged.search_runs(as_frame=False)
    assert run.status.value == "FAILED" and run.name == "xgboost.train"


def test_disable_puts_back_train_and_fit(client: Client) -> None:
    xgboost = pytest.importorskip("xgboost")
    lightgbm = pytest.importorskip("lightgbm")
    owners = [xgboost, lightgbm]
    classes = [k for cls in (xgboost.XGBClassifier, xgboost.XGBRanker, lightgbm.LGBMRegressor) for k in cls.__mro__]
    before = [vars(o).get("train") for o in owners] + [vars(k).get("fit") for k in classes]
    mc.set_client(client)
    try:
        mc.autolog()
        assert xgboost.train.__wrapped__ is before[0] and lightgbm.train.__wrapped__ is before[1]
        assert vars(xgboost.XGBModel)["fit"].__modelcycle_original__ is before[2 + classes.index(xgboost.XGBModel)]
        mc.autolog(disable=True)
        assert [vars(o).get("train") for o in owners] + [vars(k).get("fit") for k in classes] == before
        xgboost.train({}, xgboost.DMatrix(np.zeros((4, 2)), label=[0, 1, 0, 1]), 1)
        assert client.search_runs(as_frame=False) == []
    finally:
        mc.autolog(disable=True)
        mc.set_client(None)
