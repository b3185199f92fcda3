"""The model server against hostile or broken clients: it answers what the model's predict answers, a 4xx in the
route's shape for every bad body, and refuses requests a web page or a wrong Host could send.

The prediction tests drive :class:`ModelServer` without HTTP; the request tests use FastAPI's TestClient.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from modelcycle.models import PythonModel
from modelcycle.registry import Registry
from modelcycle.serving.app import ServeConfig, create_app
from modelcycle.serving.model_server import ModelServer
from modelcycle.settings import Settings
from modelcycle.tracking.client import Client


class DisagreeingModel(PythonModel):
    """predict says 1 for x > 0; predict_proba always leans to class 0: argmax(proba) is not predict."""

    classes_ = np.array([0, 1])

    def predict(self, model_input):
        return (np.asarray(model_input["x"]) > 0).astype(int)

    def predict_proba(self, model_input):
        n = len(model_input)
        return np.column_stack([np.full(n, 0.9), np.full(n, 0.1)])


@pytest.fixture
def client(tmp_path: Path):
    c = Client(Settings.for_home(tmp_path / "home", capture=False))
    yield c
    c.close()


def register(client: Client, model, X: pd.DataFrame, name: str, **options) -> str:
    with client.start_run(experiment="serving"):
        logged = client.log_model(model, reference_data=X, **options)
    version = Registry(client).register_model(logged, name)
    Registry(client).set_alias(name, "champion", version.version)
    client.flush()
    return f"models:/{name}@champion"


def data(n: int = 400, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"x": rng.normal(size=n), "z": rng.normal(size=n)})
    return X, ((X["x"] + 0.5 * rng.normal(size=n)) > 0).astype(int)


def _models() -> dict:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import FixedThresholdClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    return {
        "threshold 0.2": lambda: FixedThresholdClassifier(LogisticRegression(), threshold=0.2),
        "SVC(probability=True)": lambda: SVC(probability=True, random_state=0),
        "random forest in a pipeline": lambda: make_pipeline(StandardScaler(), RandomForestClassifier(n_estimators=20, random_state=0)),
        "a PythonModel whose proba disagrees": DisagreeingModel,
    }


@pytest.mark.parametrize("kind", list(_models()))
def test_the_server_answers_what_predict_answers(client: Client, kind: str) -> None:
    X, y = data()
    model = _models()[kind]()
    if not isinstance(model, PythonModel):
        model.fit(X, y)
    uri = register(client, model, X, "m", allow_pickle=isinstance(model, PythonModel))
    server = ModelServer(client.settings, uri, config=ServeConfig(log_predictions=False, trust=isinstance(model, PythonModel)), client=client)
    expected = np.asarray(model.predict(X))
    assert kind == "random forest in a pipeline" or not np.array_equal(expected, np.asarray(model.predict_proba(X)).argmax(axis=1)), \
        "the case must have rows where predict and argmax(predict_proba) differ"
    for i in range(0, 400, 10):  # 40 requests: well past any number of "agreeing" requests a shortcut could count
        rows = X.iloc[i:i + 10]
        for protocol, body in (("predict", {"records": rows.to_dict("records")}),
                               ("mlflow", {"dataframe_split": {"columns": ["x", "z"], "data": rows.to_numpy().tolist()}})):
            got = server.predict(body, protocol, f"r{i}", want_proba=protocol == "predict")
            np.testing.assert_array_equal(got.prediction, expected[i:i + 10], err_msg=f"{kind}, {protocol}, rows {i}..")
            if protocol == "predict":
                np.testing.assert_allclose(got.proba, np.asarray(model.predict_proba(rows)), rtol=0, atol=1e-12)


@pytest.fixture
def served(client: Client):
    """A served pipeline with a number, a category (one-hot, unknown categories refused) and the server's HTTP client."""
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    rng = np.random.default_rng(3)
    X = pd.DataFrame({"x": rng.normal(size=200), "city": rng.choice(["Lyon", "Oslo", "Porto"], 200)})
    y = (X["x"] > 0).astype(int)
    model = make_pipeline(make_column_transformer((OneHotEncoder(handle_unknown="error"), ["city"]), remainder="passthrough"),
                          LogisticRegression()).fit(X, y)
    uri = register(client, model, X, "churn")
    app = create_app(client.settings, uri, config=ServeConfig(poll_seconds=60, token="s3cret"), client=client)
    with TestClient(app, base_url="http://127.0.0.1", headers={"Authorization": "Bearer s3cret"}) as http:
        yield http


GOOD = {"records": [{"x": 0.3, "city": "Oslo"}]}
ROUTES = {"/predict": lambda rows: {"records": rows}, "/invocations": lambda rows: {"dataframe_records": rows},
          "/v2/models/churn/infer": lambda rows: {"inputs": [{"name": k, "datatype": "FP64" if k == "x" else "BYTES",
                                                              "shape": [len(rows)], "data": [r[k] for r in rows]} for k in rows[0]]}}


def message(response) -> str:
    body = response.json()
    return body["error"]["message"] if isinstance(body.get("error"), dict) else body.get("error") or body["message"]


def good_request_works(http: TestClient) -> None:
    answer = http.post("/predict", json=GOOD)
    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize("route", list(ROUTES))
@pytest.mark.parametrize(("value", "words"), [(True, "boolean"), ("lots", "string"), (int("9" * 4000), "infinite values in x")])
def test_a_value_of_the_wrong_kind_is_a_4xx_naming_the_column_on_every_route(served: TestClient, route: str, value, words) -> None:
    raw = json.dumps(ROUTES[route]([{"x": value, "city": "Oslo"}]))
    answer = served.post(route, content=raw, headers={"Content-Type": "application/json"})
    assert 400 <= answer.status_code < 500, answer.text
    assert "x" in message(answer) and "Traceback" not in answer.text
    if words:
        assert words in message(answer)
    good_request_works(served)


@pytest.mark.parametrize("route", list(ROUTES))
def test_a_lone_surrogate_is_a_4xx_naming_the_column(served: TestClient, route: str) -> None:
    raw = json.dumps(ROUTES[route]([{"x": 0.1, "city": "\ud800"}]))  # json.dumps writes it as the escape \ud800
    answer = served.post(route, content=raw, headers={"Content-Type": "application/json"})
    assert answer.status_code == 400, answer.text
    assert "city" in message(answer) and "surrogate" in message(answer)
    good_request_works(served)


def test_an_unseen_category_is_a_4xx_naming_the_column(served: TestClient) -> None:
    answer = served.post("/predict", json={"records": [{"x": 0.1, "city": "Atlantis"}]})
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["details"]["columns"] == ["city"]
    assert "Atlantis" in message(answer)
    good_request_works(served)


@pytest.mark.parametrize("name", ["数据", "bad\r\nX-Injected: yes", "nul\x00byte", "esc\x1b[31m"])
def test_extra_columns_with_any_name_are_ignored_and_named_safely(served: TestClient, name: str) -> None:
    answer = served.post("/predict", json={"records": [{"x": 0.1, "city": "Oslo", name: 1}]})
    assert answer.status_code == 200, answer.text
    warning = answer.headers["x-modelcycle-warning"]
    assert warning.isascii() and warning.isprintable()
    assert "x-injected" not in answer.headers
    assert name.encode("unicode_escape").decode("ascii") in warning


def test_wide_records_are_not_materialised(served: TestClient) -> None:
    """10,000 rows, each with its own extra key: the frame holds the model's two columns; extras are counted."""
    rows = [{"x": 0.1, "city": "Oslo", f"k{i}": i} for i in range(10_000)]
    answer = served.post("/predict", json={"records": rows})
    assert answer.status_code == 200
    assert len(answer.json()["predictions"]) == 10_000
    assert "and 9990 more" in answer.headers["x-modelcycle-warning"]


@pytest.mark.parametrize("route", ["/predict", "/invocations", "/v2/models/churn/infer", "/labels"])
@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"])
def test_posts_must_be_json(served: TestClient, route: str, content_type: str | None) -> None:
    """A web page can send these content types without asking the server first (no CORS preflight)."""
    headers = {"Content-Type": content_type} if content_type else {}
    answer = served.post(route, content=json.dumps(GOOD).encode(), headers=headers)
    assert answer.status_code == 415, answer.text
    assert "application/json" in answer.text


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8080", "127.0.0.1.evil.example", "0.0.0.0", "", "localhost.evil"])
def test_a_loopback_server_refuses_foreign_host_headers(served: TestClient, host: str) -> None:
    answer = served.post("/predict", json=GOOD, headers={"Host": host})
    assert answer.status_code == 400 and "does not answer for host" in answer.text
    assert served.get("/health", headers={"Host": host}).status_code == 400


@pytest.mark.parametrize("host", ["localhost", "localhost:8080", "127.0.0.1:8080", "127.0.0.2", "[::1]:8080"])
def test_a_loopback_server_answers_loopback_names(served: TestClient, host: str) -> None:
    assert served.post("/predict", json=GOOD, headers={"Host": host}).status_code == 200


def test_allowed_hosts_are_answered_beside_loopback_names(client: Client) -> None:
    X, y = data()
    from sklearn.linear_model import LogisticRegression

    uri = register(client, LogisticRegression().fit(X, y), X, "m")
    app = create_app(client.settings, uri, config=ServeConfig(allowed_hosts=["models.example.com"]), client=client)
    with TestClient(app, base_url="http://models.example.com") as http:
        assert http.post("/predict", json={"records": [{"x": 1.0, "z": 0.0}]}).status_code == 200
        assert http.post("/predict", json={"records": [{"x": 1.0, "z": 0.0}]}, headers={"Host": "localhost"}).status_code == 200
        assert http.post("/predict", json={"records": [{"x": 1.0, "z": 0.0}]}, headers={"Host": "evil.example"}).status_code == 400


def test_a_wrong_token_is_refused(served: TestClient) -> None:
    for header in ("Bearer wrong", "Bearer s3cre", "Bearer s3cret ", "bearer s3cret", "", b"Bearer s3cret\xe9"):
        answer = served.post("/predict", json=GOOD, headers={"Authorization": header})
        assert answer.status_code == 401, header
    good_request_works(served)


def test_request_ids_are_random_per_request(served: TestClient) -> None:
    ids = [served.post("/predict", json=GOOD).headers["x-request-id"] for _ in range(30)]
    assert len(set(ids)) == 30
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    shared = [next((k for k, (x, y) in enumerate(zip(a, b, strict=True)) if x != y), len(a)) for a, b in itertools.pairwise(ids)]
    assert max(shared) < 8, "consecutive ids share a prefix: the next one is guessable"


def test_a_client_request_id_must_be_a_plain_token(served: TestClient) -> None:
    assert served.post("/predict", json=GOOD, headers={"X-Request-ID": "order-17"}).headers["x-request-id"] == "order-17"
    given = served.post("/predict", json=GOOD, headers={"X-Request-ID": "a b\tc"}).headers["x-request-id"]
    assert given != "a b\tc" and len(given) == 32


class Exits:
    """Unpickling this calls sys.exit: a trusted pickle that ends whatever loads it."""

    def __reduce__(self):
        import sys

        return (sys.exit, (3,))


def test_a_version_that_exits_while_loading_is_counted_and_the_alias_is_still_followed(client: Client, tmp_path: Path) -> None:
    import pickle

    from modelcycle.serving.holder import ModelHolder
    from tests.security.hostile import rehash

    X, _ = data()
    register(client, DisagreeingModel(), X, "m", allow_pickle=True)  # version 1
    with client.start_run(experiment="serving"):
        logged = client.log_model(DisagreeingModel(), reference_data=X, allow_pickle=True)
    registry = Registry(client)
    # version 2: the same package with its pickle replaced, its manifest rehashed and registered as it is
    from modelcycle.models import save_model

    save_model(DisagreeingModel(), tmp_path / "exits", allow_pickle=True)
    (tmp_path / "exits" / "python_model.pkl").write_bytes(pickle.dumps(Exits()))
    rehash(tmp_path / "exits")
    with client.start_run(experiment="serving") as run:
        run.log_artifact(tmp_path / "exits", "model")
    registry.register_model(f"runs:/{run.id}/model", "m")
    registry.register_model(logged, "m")  # version 3: fine
    client.flush()
    holder = ModelHolder(registry, "models:/m@champion", trust=True)
    registry.set_alias("m", "champion", 2)
    assert holder.check() is False and holder.failures == 1 and "sys.exit(3)" in holder.last_error
    registry.set_alias("m", "champion", 3)
    assert holder.check() is True and holder.version == 3


@pytest.mark.parametrize("library", ["xgboost", "lightgbm"])
def test_categorical_tree_models_are_served_what_they_predict(client: Client, library: str) -> None:
    """Trained on a pandas category column; requests send plain text: the column becomes that categorical again."""
    lib = pytest.importorskip(library)
    rng = np.random.default_rng(5)
    X = pd.DataFrame({"age": rng.normal(40, 10, 300), "region": pd.Categorical(rng.choice(["north", "south", "east"], 300))})
    y = ((X["age"] > 40) ^ (X["region"] == "south")).astype(int)
    model = (lib.XGBClassifier(n_estimators=10, enable_categorical=True) if library == "xgboost"
             else lib.LGBMClassifier(n_estimators=10, verbose=-1)).fit(X, y)
    uri = register(client, model, X, "cat")
    app = create_app(client.settings, uri, config=ServeConfig(log_predictions=False), client=client)
    rows = [{"age": float(a), "region": str(r)} for a, r in zip(X["age"].head(30), X["region"].head(30), strict=True)]
    with TestClient(app, base_url="http://127.0.0.1") as http:
        for route, body in (("/predict", {"records": rows}), ("/invocations", {"dataframe_records": rows})):
            answer = http.post(route, json=body)
            assert answer.status_code == 200, answer.text
            assert answer.json()["predictions"] == model.predict(X.head(30)).tolist()


def test_open_inference_protocol_bodies(served: TestClient) -> None:
    numbers = served.post("/v2/models/churn/infer", json={"inputs": [{"name": "x", "shape": [1.0e30, 1.0e30], "datatype": "FP64", "data": [1.0]},
                                                                     {"name": "city", "datatype": "BYTES", "data": ["Oslo"]}]})
    assert numbers.status_code == 400 and "whole numbers" in numbers.json()["error"]
    ragged = served.post("/v2/models/churn/infer", json={"inputs": [{"name": "x", "datatype": "FP64", "data": [[1.0], 2.0]},
                                                                    {"name": "city", "datatype": "BYTES", "data": ["Oslo", "Oslo"]}]})
    assert ragged.status_code == 400 and "mixes lists" in ragged.json()["error"]
    unknown = served.post("/v2/models/churn/infer", json={"inputs": [{"name": "input-0", "shape": [1, 3], "datatype": "FP64",
                                                                      "data": [1.0, 2.0, 3.0]}]})
    assert unknown.status_code == 400 and "missing columns: x, city" in unknown.json()["error"]


def test_one_2d_tensor_is_read_as_the_models_columns(client: Client) -> None:
    from sklearn.linear_model import LogisticRegression

    X, y = data()
    model = LogisticRegression().fit(X, y)
    app = create_app(client.settings, register(client, model, X, "num"), config=ServeConfig(log_predictions=False), client=client)
    with TestClient(app, base_url="http://127.0.0.1") as http:
        answer = http.post("/v2/models/num/infer", json={"inputs": [{"name": "input-0", "shape": [3, 2], "datatype": "FP64",
                                                                     "data": X.head(3).to_numpy().ravel().tolist()}]})
        assert answer.status_code == 200, answer.text
        assert answer.json()["outputs"][0]["data"] == model.predict(X.head(3)).tolist()


def test_rows_sent_two_ways_are_refused(served: TestClient) -> None:
    answer = served.post("/predict", json={"records": GOOD["records"], "columns": {"x": [5.0], "city": ["Lyon"]}})
    assert answer.status_code == 400 and "send them one way" in message(answer)


@pytest.mark.parametrize(("method", "path", "status", "shape"), [
    ("GET", "/predict", 405, "ours"), ("GET", "/nowhere", 404, "ours"), ("GET", "/invocations", 405, "mlflow"),
    ("PUT", "/v2/models/churn/infer", 405, "oip")])
def test_unknown_routes_and_methods_answer_in_the_routes_shape(served: TestClient, method: str, path: str, status: int, shape: str) -> None:
    answer = served.request(method, path)
    assert answer.status_code == status
    body = answer.json()
    assert {"ours": lambda: "code" in body["error"], "mlflow": lambda: "error_code" in body,
            "oip": lambda: isinstance(body["error"], str)}[shape]()


def test_numbers_sent_as_text_are_read_as_numbers(served: TestClient) -> None:
    as_text = served.post("/predict", json={"records": [{"x": "0.3", "city": "Oslo"}]}).json()
    assert as_text["probabilities"] == served.post("/predict", json=GOOD).json()["probabilities"]


def test_labels_for_a_request_of_several_rows_go_by_row(served: TestClient, client: Client) -> None:
    from modelcycle.store.predictions import read_labels

    rid = served.post("/predict", json={"records": [{"x": 0.1, "city": "Oslo"}, {"x": -2.0, "city": "Lyon"}, {"x": 3.0, "city": "Porto"}]}
                      ).headers["x-request-id"]
    answer = served.post("/labels", json={"request_ids": [rid] * 3, "labels": [1, 0, 1], "rows": [0, 1, 2]})
    assert answer.status_code == 200 and answer.json()["stored"] == 3
    labels = read_labels(client.settings.log_uri, "churn")
    mine = labels[labels["request_id"] == rid].sort_values("row")
    assert mine["row"].tolist() == [0, 1, 2] and mine["label"].astype(int).tolist() == [1, 0, 1]
