"""The model server through FastAPI's TestClient: every protocol, every bad input, hot swap, shadow, log, labels."""

from __future__ import annotations

import json
import pickle
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import modelcycle as mc
from modelcycle.registry import Registry
from modelcycle.serving.app import ServeConfig, create_app
from modelcycle.store.predictions import read_labels, read_log
from modelcycle.tracking.client import Client


def data(n: int = 300, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"age": rng.integers(18, 80, n).astype(float), "income": rng.normal(50, 10, n), "visits": rng.poisson(3, n).astype(float)})
    return X, pd.Series((X["income"] + rng.normal(0, 5, n) > 50).astype(int))


def register(client: Client, C: float = 1.0, name: str = "churn") -> int:
    X, y = data()
    with client.start_run(experiment="serving"):
        logged = client.log_model(make_pipeline(StandardScaler(), LogisticRegression(C=C)).fit(X, y), reference_data=X)
    return Registry(client).register_model(logged, name).version


@pytest.fixture
def served(client: Client):
    register(client)
    Registry(client).set_alias("churn", "champion", 1)
    client.flush()
    # poll_seconds=60: the tests check for alias moves by hand, so no watcher races them
    app = create_app(client.settings, "models:/churn@champion", config=ServeConfig(poll_seconds=60, max_body_mb=1), client=client)
    with TestClient(app, base_url="http://127.0.0.1") as http:
        yield http, app
    # leaving the block ran the app's shutdown: the prediction log is flushed


def rows(n: int = 3) -> list[dict]:
    return data(n, seed=1)[0].to_dict("records")


def test_every_protocol_answers(served) -> None:
    http, _ = served
    X = pd.DataFrame(rows(3))
    plain = http.post("/predict", json={"records": rows(3)}, headers={"X-Request-ID": "req-1"})
    assert plain.status_code == 200 and plain.headers["x-request-id"] == "req-1" and plain.headers["x-model-version"] == "1"
    body = plain.json()
    assert len(body["predictions"]) == 3 and len(body["probabilities"][0]) == 2 and body["classes"] == ["0", "1"]
    assert http.post("/predict", json={"columns": X.to_dict("list")}).json()["predictions"] == body["predictions"]
    assert http.post("/invocations", json={"dataframe_split": X.to_dict("split")}).json() == {"predictions": body["predictions"]}
    assert http.post("/invocations", json={"dataframe_records": rows(3)}).json() == {"predictions": body["predictions"]}
    oip = http.post("/v2/models/churn/infer", json={"inputs": [{"name": c, "shape": [3], "datatype": "FP64", "data": X[c].tolist()} for c in X]})
    outputs = {o["name"]: o for o in oip.json()["outputs"]}
    assert outputs["predict"]["data"] == body["predictions"] and outputs["predict_proba"]["shape"] == [3, 2]
    meta = http.get("/v2/models/churn").json()
    assert [i["name"] for i in meta["inputs"]] == ["age", "income", "visits"] and meta["versions"] == ["1"]
    assert http.get("/v2/health/live").json() == {"live": True} and http.get("/v2/health/ready").status_code == 200
    assert http.get("/v2/models/churn/ready").json()["ready"] is True and http.get("/ping").status_code == 200
    assert http.get("/version").json()["model"]["version"] == 1
    assert "modelcycle_requests_total" in http.get("/metrics").text


BAD = [
    ("missing column", {"records": [{"age": 30.0, "income": 50.0}]}, "missing columns: visits"),
    ("wrong type", {"records": [{"age": 30.0, "income": "rich", "visits": 2.0}]}, "income (expected double, got string)"),
    ("null", {"records": [{"age": None, "income": 50.0, "visits": 2.0}]}, "non-nullable columns: age"),
    ("empty batch", {"records": []}, "the batch is empty"),
    ("unknown shape", {"rows": []}, "send rows as"),
    ("unicode names", {"records": [{"âge": 30.0, "income": 50.0, "visits": 1.0}]}, "missing columns: age"),
    ("NaN", {"columns": {"age": [float("nan")], "income": [50.0], "visits": [1.0]}}, "non-nullable columns: age"),
    ("infinity", {"columns": {"age": [30.0], "income": [float("inf")], "visits": [1.0]}}, "infinite values in income"),
    ("ragged columns", {"columns": {"age": [30.0, 31.0], "income": [50.0], "visits": [1.0]}}, "different lengths"),
]


@pytest.mark.parametrize("label,body,words", BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_a_4xx_in_each_protocols_shape(served, label: str, body: dict, words: str) -> None:
    http, _ = served
    raw = json.dumps(body).encode()  # NaN and Infinity as JavaScript-style literals, as some clients send them
    ours = http.post("/predict", content=raw, headers={"content-type": "application/json"})
    assert ours.status_code == 400 and words in ours.json()["error"]["message"], ours.text
    assert "Traceback" not in ours.text
    if "records" in body:
        mlflow_body = {"dataframe_records": body["records"]}
        theirs = http.post("/invocations", content=json.dumps(mlflow_body).encode(), headers={"content-type": "application/json"})
        assert theirs.status_code == 400 and set(theirs.json()) == {"error_code", "message"}
    assert http.post("/predict", json={"records": rows(1)}).status_code == 200, "the next good request is answered"


def test_transport_level_mistakes(served) -> None:
    http, _ = served
    cases = [
        (http.post("/predict", content=b"{bad json", headers={"content-type": "application/json"}), 400, "not valid JSON"),
        (http.post("/predict", content=pickle.dumps({"records": rows(1)}), headers={"content-type": "application/python-pickle"}), 415,
         "application/json"),
        (http.post("/predict", files={"file": ("x.csv", b"age,income\n1,2\n")}), 415, "application/json"),
        (http.post("/predict", content=b"[" * 100 + b"]" * 100, headers={"content-type": "application/json"}), 400, "nested"),
        (http.post("/predict", content=b"x" * (2 << 20), headers={"content-type": "application/json"}), 413, "limit"),
        (http.post("/predict", content=b"", headers={"content-type": "application/json"}), 400, "no body"),
    ]
    for response, status, words in cases:
        assert response.status_code == status and words in response.json()["error"]["message"], response.text
    oip = http.post("/v2/models/churn/infer", json={"inputs": [{"name": "age", "shape": [2], "datatype": "FP64", "data": [1.0]}]})
    assert oip.status_code == 400 and "shape [2] holds 2 values but data has 1" in oip.json()["error"]
    assert http.post("/v2/models/other/infer", json={}).status_code == 404
    assert http.post("/predict", json={"records": rows(1)}).status_code == 200


def test_extra_columns_are_dropped_with_a_warning(served) -> None:
    http, _ = served
    answer = http.post("/predict", json={"records": [{**r, "customer_id": i} for i, r in enumerate(rows(2))]})
    assert answer.status_code == 200 and "customer_id" in answer.headers["x-modelcycle-warning"]


def test_alias_moves_are_followed_and_damaged_versions_never_served(served, client: Client) -> None:
    http, app = served
    registry = Registry(client)
    register(client, C=0.01)
    register(client, C=0.5)
    damaged = registry.get_model_version("churn", 3)
    run = client.get_run(damaged.run_id)
    digest = next(a.digest for a in run.artifacts if a.path == "model/model.skops")
    blob = next(Path(client.settings.artifact_uri).rglob(digest))
    blob.chmod(0o644)
    blob.write_bytes(blob.read_bytes()[:-10] + b"0123456789")
    registry.set_alias("churn", "champion", 3)
    app.state.holder.check()
    assert http.post("/predict", json={"records": rows(1)}).headers["x-model-version"] == "1", "the damaged version is not served"
    assert app.state.holder.failures == 1 and "did not load" in app.state.holder.last_error
    assert "modelcycle_swap_failures 1.0" in http.get("/metrics").text
    registry.set_alias("churn", "champion", 2)
    app.state.holder.check()
    assert http.post("/predict", json={"records": rows(1)}).headers["x-model-version"] == "2"


def test_every_answer_is_logged_and_labels_join(client: Client) -> None:
    register(client)
    register(client, C=0.01, name="churn")
    registry = Registry(client)
    registry.set_alias("churn", "champion", 1)
    registry.set_alias("churn", "challenger", 2)
    client.flush()
    app = create_app(client.settings, "models:/churn@champion", "models:/churn@challenger", ServeConfig(poll_seconds=60), client=client)
    ids = []
    with TestClient(app, base_url="http://127.0.0.1") as http:
        for i in range(20):
            answer = http.post("/predict", json={"records": rows(2)}, headers={"X-Request-ID": f"r{i}"})
            assert answer.status_code == 200
            ids.append(answer.headers["x-request-id"])
        http.post("/predict", json={"records": []})  # a 400 is not logged
        assert http.post("/labels", json={"request_ids": ids[:5], "labels": [1, 0, 1, 0, 1]}).json() == {"stored": 5}
        time.sleep(0.3)  # the shadow predicts off the response path
    logged = read_log(client.settings.log_uri, "churn")
    champion = logged[logged["role"] == "champion"]
    assert sorted(champion["request_id"].unique()) == sorted(ids) and len(champion) == 40
    assert not champion.duplicated(["request_id", "row"]).any()
    assert set(champion["version"]) == {1} and {"input.age", "prediction", "proba.1"} <= set(champion.columns)
    shadow = logged[logged["role"] == "shadow"]
    assert set(shadow["version"]) == {2} and set(shadow["request_id"]) <= set(ids) and len(shadow) > 0
    labels = read_labels(client.settings.log_uri, "churn")
    assert list(labels["request_id"]) == ids[:5]
    mc.set_client(client)
    try:
        assert len(mc.read_predictions("churn")) == len(logged)
        assert mc.log_labels(["r9"], [0]) == 1
    finally:
        mc.set_client(None)


def test_a_token_guards_the_prediction_routes(client: Client) -> None:
    register(client)
    client.flush()
    app = create_app(client.settings, "models:/churn/1", config=ServeConfig(token="s3cret"), client=client)
    with TestClient(app, base_url="http://127.0.0.1") as http:
        denied = http.post("/predict", json={"records": rows(1)})
        assert denied.status_code == 401 and "Authorization: Bearer" in denied.json()["error"]["message"]
        assert http.post("/invocations", json={"dataframe_records": rows(1)}).json()["error_code"] == "UNAUTHENTICATED"
        ok = http.post("/predict", json={"records": rows(1)}, headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200
        assert http.get("/v2/health/ready").status_code == 200, "health needs no token"


def test_a_log_that_cannot_keep_up_drops_and_counts(tmp_path: Path) -> None:
    from modelcycle.serving import PredictionLog

    log = PredictionLog(tmp_path, flush_interval=3600, max_pending=2)
    frame = pd.DataFrame({"request_id": ["a"], "time": [pd.Timestamp.now(tz="UTC")], "model": ["m"], "x": [1.0]})
    accepted = [log.add(frame) for _ in range(5)]
    assert accepted == [True, True, False, False, False] and log.dropped == 3
    log.close()
    assert len(read_log(tmp_path, "m")) == 2


@pytest.mark.parametrize("body,words", [
    ({"request_ids": ["a"], "labels": [[False, []]]}, "all numbers (or booleans) or all strings"),
    ({"request_ids": ["a"], "labels": [{}]}, "all numbers (or booleans) or all strings"),
    ({"request_ids": ["a", "b"], "labels": [1, "yes"]}, "all numbers (or booleans) or all strings"),
    ({"request_ids": [""], "labels": [1]}, "must not be empty"),
    ({"request_ids": ["a"], "labels": [1], "rows": ["x"]}, "whole numbers"),
    ({"request_ids": ["a"], "labels": [1, 0]}, "one label per request id"),
])
def test_bad_labels_are_a_400(served, body: dict, words: str) -> None:
    http, _ = served
    answer = http.post("/labels", json=body)
    assert answer.status_code == 400 and words in answer.json()["error"]["message"]


class MLflowStyle(mc.models.PythonModel):
    """A class written for MLflow: predict takes the context first, and params."""

    def predict(self, context, model_input, params=None):
        return (model_input["income"] > 50).astype(int).to_numpy()


def test_a_python_model_in_mlflows_form_is_served(client: Client) -> None:
    X, _ = data()
    with client.start_run(experiment="serving"):
        logged = client.log_model(MLflowStyle(), reference_data=X, allow_pickle=True)
    Registry(client).register_model(logged, "mlflow-style")
    client.flush()
    app = create_app(client.settings, "models:/mlflow-style/1", config=ServeConfig(trust=True, log_predictions=False), client=client)
    expected = (pd.DataFrame(rows(3))["income"] > 50).astype(int).tolist()
    with TestClient(app, base_url="http://127.0.0.1") as http:
        assert http.post("/predict", json={"records": rows(3)}).json()["predictions"] == expected
        assert http.post("/invocations", json={"dataframe_records": rows(3)}).json() == {"predictions": expected}


def test_labels_of_a_request_of_several_rows_name_their_rows(served, client: Client) -> None:
    """One label per row, by position; the 400 for one id and several labels says how (README, "Serve a model")."""
    from modelcycle.errors import InvalidInputError
    from modelcycle.store.predictions import append_labels

    http, _ = served
    assert http.post("/predict", json={"records": rows(3)}, headers={"X-Request-ID": "multi"}).status_code == 200
    refused = http.post("/labels", json={"request_ids": ["multi"], "labels": [1, 0, 1]})
    assert refused.status_code == 400 and '"rows": [0, 1, ...]' in refused.json()["error"]["message"], refused.text
    stored = http.post("/labels", json={"request_ids": ["multi"] * 3, "labels": [1, 0, 1], "rows": [0, 1, 2]})
    assert stored.json() == {"stored": 3}
    assert http.post("/labels", json={"request_ids": ["multi"], "labels": [0]}).json() == {"stored": 1}
    labels = read_labels(client.settings.log_uri, "churn")
    assert labels[["row", "label"]].values.tolist() == [[0, 1], [1, 0], [2, 1], [0, 0]], "without rows: the first row"
    with pytest.raises(InvalidInputError, match=r"rows=\[0, 1, \.\.\.\]"):
        append_labels(client.settings.log_uri, "churn", ["multi"], [1, 0, 1])
