"""Monitoring on a real prediction log (Parquet files as the server writes them) and a real SQLite store."""

from __future__ import annotations

import http.server
import json
import threading
import time
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from modelcycle.errors import InvalidInputError
from modelcycle.monitoring import AlertRules, monitor
from modelcycle.monitoring.alerts import flush
from modelcycle.registry import Registry
from modelcycle.store.predictions import append_labels, model_dir, write_atomic
from modelcycle.tracking.client import Client

HOUR = 3600
T0 = 1_790_000_000 - 1_790_000_000 % HOUR  # an hour boundary in 2026


def data(n: int, seed: int, shift: float = 0.0, flip: bool = False) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"a": rng.normal(shift, 1, n), "b": rng.normal(0, 1, n), "c": rng.normal(shift, 1, n)})
    y = ((X["a"] - shift) + 0.5 * X["b"] + rng.normal(0, 0.5, n) > 0).astype(int).to_numpy()
    return X, (1 - y if flip else y)


@pytest.fixture
def served(client: Client):
    X, y = data(2000, 0)
    model = LogisticRegression().fit(X, y)
    with client.start_run(experiment="monitor"):
        logged = client.log_model(model, reference_data=X)
    registry = Registry(client)
    registry.register_model(logged, "churn")
    registry.set_alias("churn", "champion", 1)
    return model, registry


def log(home: Path, model, frame: pd.DataFrame, start: float, seconds: float, version: int = 1, role: str = "champion",
        prefix: str = "r", files: int = 6) -> list[str]:
    """Log ``frame`` as a server would have between ``start`` and ``start + seconds``: one request per row, in
    ``files`` files each published just after its last row."""
    n = len(frame)
    times = start + np.sort(np.random.default_rng(int(start)).uniform(0, seconds, n))
    proba = model.predict_proba(frame)
    ids = [f"{prefix}{int(start)}-{i}" for i in range(n)]
    rows = pd.DataFrame({"request_id": ids, "row": 0, "time": pd.to_datetime(times, unit="s", utc=True), "model": "churn",
                         "version": version, "role": role, "latency_ms": 0.4})
    rows = pd.concat([rows, frame.reset_index(drop=True).add_prefix("input.")], axis=1)
    rows["prediction"] = model.predict(frame)
    rows["proba.0"], rows["proba.1"] = proba[:, 0], proba[:, 1]
    folder = model_dir(home, "predictions", "churn")
    for part in np.array_split(np.arange(n), files):
        chunk = rows.iloc[part]
        day = chunk["time"].iloc[0].strftime("%Y-%m-%d")
        write_atomic(chunk, f"{folder}/date={day}", written_ns=int((times[part[-1]] + 0.5) * 1e9), root=home)
    return ids


def test_windows_show_drift_and_decay_and_are_stored(client: Client, served) -> None:
    model, _ = served
    home = Path(client.settings.log_uri)
    for hour in range(4):
        drifted = hour >= 2
        X, y = data(600, 10 + hour, shift=2.5 if drifted else 0.0, flip=drifted)
        ids = log(home, model, X, T0 + hour * HOUR, HOUR)
        append_labels(home, "churn", ids, y.tolist())
    report = monitor("churn", window="1h", start=T0, end=T0 + 4 * HOUR, client=client)
    assert [w.rows for w in report.windows] == [600] * 4 and report.computed == 4
    shares = [w.drift["share"] for w in report.windows]
    assert shares[0] < 0.5 and shares[1] < 0.5 and shares[2] >= 2 / 3 and shares[3] >= 2 / 3
    assert report.windows[3].drift["drifted_columns"] == ["a", "c"]
    pred = [w.prediction_drift["statistic"] for w in report.windows]
    assert max(pred[:2]) < min(pred[2:]), pred
    auc = [w.metrics["roc_auc"] for w in report.windows]
    assert auc[0] > 0.85 and auc[1] > 0.85 and auc[2] < 0.3 and auc[3] < 0.3, auc
    assert all(w.labelled == 600 for w in report.windows)
    assert report.windows[0].quality["errors"] == 0 and report.windows[0].version == 1
    frame = report.to_frame()
    assert list(frame["rows"]) == [600] * 4 and "roc_auc" in frame.columns

    again = monitor("churn", window="1h", start=T0, end=T0 + 4 * HOUR, client=client)
    assert again.computed == 0 and all(w.stored for w in again.windows)  # read back, not recomputed
    assert [w.summary["drift"] for w in again.windows] == [w.summary["drift"] for w in report.windows]

    # labels that arrive later change the live performance of stored windows
    late = log(home, model, data(100, 99)[0], T0 + 10, 60, prefix="late")
    append_labels(home, "churn", late, [1] * 100)
    third = monitor("churn", window="1h", start=T0, end=T0 + 4 * HOUR, client=client)
    assert third.windows[0].rows == 700 and third.windows[0].labelled == 700  # a late file: the window was made again
    assert third.computed == 1

    page = third.to_html(str(client.settings.home / "monitor.html"))
    assert "<svg" in page and "Input drift" in page and "roc_auc" in page


def test_shadow_challenger_is_compared_on_the_same_requests(client: Client, served) -> None:
    model, _ = served
    home = Path(client.settings.log_uri)
    X, y = data(400, 5)
    challenger = LogisticRegression(C=0.001).fit(X[["b", "c", "a"]][["a", "b", "c"]], 1 - y)  # disagrees on purpose
    ids = log(home, model, X, T0, HOUR)
    shadow_ids = log(home, challenger, X, T0, HOUR, version=2, role="shadow")
    assert ids == shadow_ids
    append_labels(home, "churn", ids, y.tolist())
    w = monitor("churn", window="1h", start=T0, end=T0 + HOUR, client=client).windows[0]
    shadow = w.summary["shadow"]
    assert shadow["paired"] == 400 and shadow["versions"] == {"2": 400}
    assert shadow["agreement"] < 0.3
    assert shadow["metric_difference"]["accuracy"] < -0.5
    assert w.rows == 400  # the champion's rows; the shadow's are not counted as traffic


class _Hook(http.server.BaseHTTPRequestHandler):
    received: ClassVar[list[dict]] = []

    def do_POST(self) -> None:
        self.received.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def test_alerts_are_raised_once_while_the_condition_holds_and_resolved(client: Client, served, tmp_path: Path) -> None:
    model, _ = served
    home = Path(client.settings.log_uri)
    server = http.server.HTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Hook.received = []
    rules = AlertRules(drift_share=0.5, performance_metric="roc_auc", performance_min=0.75,
                       webhook=f"http://127.0.0.1:{server.server_port}/alerts", file=str(tmp_path / "alerts.jsonl"))
    try:
        X, y = data(300, 1)
        append_labels(home, "churn", log(home, model, X, T0, HOUR), y.tolist())
        first = monitor("churn", "1h", T0, T0 + HOUR, client=client, rules=rules)
        assert first.alerts == []
        for hour in (1, 2):
            X, y = data(300, 1 + hour, shift=2.5, flip=True)
            append_labels(home, "churn", log(home, model, X, T0 + hour * HOUR, HOUR), y.tolist())
        drifted = monitor("churn", "1h", T0, T0 + 2 * HOUR, client=client, rules=rules)
        assert sorted(a["rule"] for a in drifted.alerts) == ["drift", "performance"]
        assert all(a["state"] == "firing" for a in drifted.alerts)
        still = monitor("churn", "1h", T0, T0 + 3 * HOUR, client=client, rules=rules)
        assert still.alerts == [], "an alert whose condition still holds is not raised again"
        X, y = data(300, 8)  # seeds whose samples look like the reference to the KS test at 5%
        append_labels(home, "churn", log(home, model, X, T0 + 3 * HOUR, HOUR), y.tolist())
        recovered = monitor("churn", "1h", T0, T0 + 4 * HOUR, client=client, rules=rules)
        assert sorted((a["rule"], a["state"]) for a in recovered.alerts) == [("drift", "resolved"), ("performance", "resolved")]
        assert flush(60), "the webhook is posted to in the background"
    finally:
        server.shutdown()
    assert len(_Hook.received) == 4
    assert sorted(a["rule"] for a in _Hook.received[:2]) == ["drift", "performance"]
    assert [a["state"] for a in _Hook.received] == ["firing", "firing", "resolved", "resolved"]
    assert "roc_auc" in next(a for a in _Hook.received if a["rule"] == "performance")["message"]
    lines = (tmp_path / "alerts.jsonl").read_text().splitlines()
    assert len(lines) == 4 and {json.loads(line)["state"] for line in lines} == {"firing", "resolved"}
    stored = client.store.alert_list("churn")
    assert len(stored) == 2 and {a.state for a in stored} == {"resolved"}
    assert [(a.delivery["event"], a.delivery["state"], a.delivery["attempts"]) for a in stored] == [("resolved", "delivered", 1)] * 2


def test_a_window_begun_before_the_promotion_is_judged_only_when_the_promoted_version_served_all_of_it(
        client: Client, served) -> None:
    model, _ = served
    home = Path(client.settings.log_uri)
    rules = AlertRules(drift_share=0.5)
    promoted = T0 + HOUR / 2  # promoted half-way through the hour
    X, _ = data(300, 4, shift=2.5)  # drifted traffic, all served by version 1
    log(home, model, X, promoted, HOUR / 2)
    report = monitor("churn", "1h", T0, T0 + HOUR, client=client, rules=rules, judge_since=promoted, judge_version=1)
    assert [a["rule"] for a in report.alerts] == ["drift"], "the hour holds only what version 1 served: it is judged"
    mixed = monitor("churn", "1h", T0, T0 + HOUR, client=client, rules=rules, judge_since=promoted, judge_version=2)
    assert [(a["rule"], a["state"]) for a in mixed.alerts] == [("drift", "resolved")], \
        "version 2 (promoted by anyone) served none of the hour: it is not judged, and the alert about version 1 ends"
    assert "no longer serves" in mixed.alerts[0]["message"] and client.store.alert_firing("churn") == {}
    later = monitor("churn", "1h", T0, T0 + HOUR, client=client, rules=rules, judge_since=T0 + HOUR, judge_version=1)
    assert later.alerts == [], "a window that ended before the promotion is never judged"


def test_an_unreachable_webhook_does_not_stop_monitoring(client: Client, served) -> None:
    model, _ = served
    X, y = data(300, 3, shift=2.5, flip=True)
    append_labels(client.settings.log_uri, "churn", log(client.settings.log_uri, model, X, T0, HOUR), y.tolist())
    rules = AlertRules(drift_share=0.3, webhook="http://127.0.0.1:9/nothing-listens-here")
    report = monitor("churn", "1h", T0, T0 + HOUR, client=client, rules=rules)
    assert [a["rule"] for a in report.alerts] == ["drift"]
    assert flush(60)
    [alert] = client.store.alert_list("churn")
    assert alert.delivery["state"] == "failed" and alert.delivery["attempts"] == 3
    assert "could not reach the webhook" in alert.delivery["error"]


def test_open_windows_are_shown_but_not_stored(client: Client, served) -> None:
    model, _ = served
    now = time.time()
    log(client.settings.log_uri, model, data(50, 4)[0], now - 30, 20, files=2)
    report = monitor("churn", window="1h", start=now - 60, client=client)
    assert sum(w.rows for w in report.windows) == 50
    assert not report.windows[-1].closed and not report.windows[-1].stored
    assert monitor("churn", window="1h", start=now - 60, client=client).computed >= 1  # made again: it was still open


@pytest.mark.parametrize(("call", "words"), [
    (lambda c: monitor("churn", window="soon", client=c), "write it like 1h"),
    (lambda c: monitor("churn", window="1h", start="2026-11-27", end="2026-11-26", client=c), "before start"),
    (lambda c: monitor("churn", window="1h", start="yesterday-ish", client=c), "is not a time"),
    (lambda c: AlertRules(performance_metric="auc_roc", performance_min=0.7), "unknown metric 'auc_roc'"),
    (lambda c: AlertRules(performance_metric="roc_auc"), "needs min: or max:"),
    (lambda c: AlertRules(drift_share=30), "fraction"),
    (lambda c: AlertRules(webhook="file:///etc/passwd"), "http://"),
    (lambda c: AlertRules(webhook="ftp://x"), "http://"),
])
def test_bad_input_is_named(client: Client, served, call, words: str) -> None:
    with pytest.raises(InvalidInputError, match=words):
        call(client)


def test_labels_for_unknown_request_ids_are_refused_and_nothing_is_stored(client: Client, served) -> None:
    model, _ = served
    home = Path(client.settings.log_uri)
    ids = log(home, model, data(20, 8)[0], T0, 60, files=1)
    with pytest.raises(InvalidInputError, match=r"not in the prediction log of 'churn'.*'nope'"):
        append_labels(home, "churn", [*ids[:5], "nope"], [1] * 6)
    assert not (home / "labels").exists()
    assert append_labels(home, "churn", ids[:5], [1] * 5) == 5


def test_compaction_merges_an_hour_into_one_file_and_readers_never_double_count(client: Client, served, tmp_path: Path) -> None:
    import shutil

    from modelcycle.store.predictions import compact, list_files, read_log

    model, _ = served
    home = Path(client.settings.log_uri)
    for hour in range(2):
        log(home, model, data(300, 30 + hour)[0], T0 + hour * HOUR, HOUR, files=120)  # 30 s each: within the writer's settle
    before = monitor("churn", "1h", T0, T0 + 2 * HOUR, client=client)
    tens = [w.rows for w in monitor("churn", "10m", T0, T0 + 2 * HOUR, client=client).windows]
    folder = Path(model_dir(home, "predictions", "churn"))
    day = next(folder.iterdir())
    kept = tmp_path / "copy"
    shutil.copytree(day, kept)  # the originals, to put back as if a compaction stopped before deleting them
    assert compact(home, "predictions", "churn", T0, T0 + HOUR) == 120
    files = list_files(home, "predictions", "churn")
    assert len(files) == 121 and sum("compact" in f.name for f in files) == 1
    for f in kept.iterdir():  # a compaction killed after publishing the merged file: the originals are still there
        if not (day / f.name).exists():
            shutil.copy(f, day / f.name)
    assert len(list_files(home, "predictions", "churn")) == 121, "originals held by a merged file are not read"
    logged = read_log(home, "churn")
    assert len(logged) == 600 and not logged.duplicated(["request_id", "row"]).any()
    client.store.window_put("churn", "champion", 3600, [])  # the stored windows stay; a fresh call reads the merged file
    after = monitor("churn", "1h", T0, T0 + 2 * HOUR, client=client)
    assert [w.rows for w in after.windows] == [w.rows for w in before.windows] == [300, 300]
    assert after.computed == 1, "the compacted hour is summarised again from its one file (its sources changed)"
    assert after.windows[0].summary["performance"] == before.windows[0].summary["performance"]
    assert compact(home, "predictions", "churn", T0 + HOUR, T0 + 2 * HOUR) == 120
    # shorter windows than the merged hour: each still finds its rows in the one file
    assert [w.rows for w in monitor("churn", "10m", T0, T0 + 2 * HOUR, client=client).windows] == tens and sum(tens) == 600
    # without a start, the windows begin at the first logged row, not at the time the merged file was written
    default = monitor("churn", "10m", end=T0 + 2 * HOUR, client=client)
    assert default.windows[0].start <= T0 and sum(w.rows for w in default.windows) == 600


def test_the_servers_log_writer_compacts_each_closed_period(tmp_path: Path) -> None:
    from modelcycle.serving.predlog import PredictionLog
    from modelcycle.store.predictions import list_files, read_log

    writer = PredictionLog(tmp_path, flush_interval=0.1, compact_every=1.0)
    sent = 0
    deadline = time.time() + 3.5
    while time.time() < deadline:
        frame = pd.DataFrame({"request_id": [f"r{sent}"], "row": [0], "time": [pd.Timestamp.now(tz="UTC")], "model": ["churn"],
                              "version": [1], "role": ["champion"], "latency_ms": [0.1], "input.a": [0.5], "prediction": [1]})
        writer.add(frame)
        sent += 1
        time.sleep(0.02)
    time.sleep(1.5)
    writer.close()
    files = list_files(tmp_path, "predictions", "churn")
    assert any("compact" in f.name for f in files), [f.name for f in files]
    assert len(files) < 15, "each closed second's files were merged"
    logged = read_log(tmp_path, "churn")
    assert len(logged) == sent and logged["request_id"].is_unique


def test_rows_answered_without_probabilities_do_not_hide_roc_auc_of_the_others() -> None:
    """MLflow's /invocations route answers without probabilities: the window's ROC AUC comes from the rows that have
    them, its accuracy from every labelled row."""
    from modelcycle.monitoring.windows import Labels, performance

    rng = np.random.default_rng(3)
    n = 200
    p1 = rng.uniform(0, 1, n)
    truth = (rng.uniform(0, 1, n) < p1).astype(int)
    rows = pd.DataFrame({"request_id": [f"r{i}" for i in range(n)], "row": 0, "prediction": (p1 > 0.5).astype(int),
                         "proba.0": 1 - p1, "proba.1": p1})
    rows.loc[:9, ["proba.0", "proba.1"]] = np.nan  # ten answered through /invocations
    labels = Labels(pd.DataFrame({"request_id": rows["request_id"], "row": 0, "label": truth}))
    got = performance(rows, labels)
    from sklearn.metrics import accuracy_score, roc_auc_score

    assert got["labelled"] == n and got["with_probabilities"] == n - 10
    assert got["metrics"]["accuracy"] == pytest.approx(accuracy_score(truth, rows["prediction"]))
    assert got["metrics"]["roc_auc"] == pytest.approx(roc_auc_score(truth[10:], p1[10:]))
