"""The controller on a real project folder, a real SQLite store and real pipeline runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelcycle.automation import Agent, lineage, load_spec
from modelcycle.registry import Registry
from modelcycle.tracking.client import Client

from .conftest import batch, write_project


@pytest.fixture
def agent_for(client: Client):
    made = []

    def make(root: Path, **kw) -> Agent:
        lines: list[str] = []
        agent = Agent(load_spec(root), client=client, say=lines.append, **kw)
        agent.lines = lines  # type: ignore[attr-defined]
        made.append(agent)
        return agent

    yield make
    from modelcycle.tracking import fluent

    fluent.set_client(None)


def test_new_data_trains_gates_promotes_and_is_not_repeated(project: Path, client: Client, agent_for) -> None:
    agent = agent_for(project)
    registry = Registry(client)
    [cycle] = agent.run_once()
    assert cycle.state == "done" and cycle.version == 1, cycle
    assert registry.get_model_version("churn", "champion").version == 1
    assert agent.run_once() == [], "the same data is not a new trigger"

    batch(600, 1).to_parquet(project / "data" / "batch-001.parquet")
    [second] = agent.run_once()
    assert second.trigger == "new_data" and second.version == 2 and second.state == "done"
    assert registry.get_model_version("churn", "champion").version == 2
    history = registry.history("churn", "champion")
    assert [e.to_version for e in history] == [1, 2]
    assert all(f"cycle {c.id}" in e.reason for e, c in zip(history, [cycle, second], strict=True))
    chain = lineage(second.id[:8], client=client)
    steps = [link["step"] for link in chain["chain"]]
    assert steps[:5] == ["trigger", "pipeline run", "candidate", "verdict", "alias move"]
    assert chain["chain"][2]["version"] == 2 and chain["chain"][3]["passed"] is True and chain["chain"][4]["to_version"] == 2
    assert lineage("churn/2", client=client)["cycle_id"] == second.id  # found from any link, forwards and backwards
    assert lineage(second.run_id, client=client)["cycle_id"] == second.id


def test_a_manual_cycle_on_the_data_as_it_is_leaves_no_new_data_trigger_behind(project: Path, client: Client,
                                                                                 agent_for) -> None:
    """`agent --now` trains on the data folder as it is: the next check does not train on the same data again."""
    agent = agent_for(project)
    manual = agent.run_now("first model")
    assert manual.state == "done" and manual.version == 1
    assert agent.run_once() == [], "the data the manual cycle trained on is not new"
    assert [c.detail["merged_into"] for c in client.store.cycle_list("churn", trigger="new_data")] == [manual.id]
    batch(600, 1).to_parquet(project / "data" / "batch-001.parquet")
    [second] = agent.run_once()
    assert second.trigger == "new_data" and second.version == 2


def test_a_candidate_failing_the_gate_is_never_promoted(tmp_path: Path, client: Client, agent_for) -> None:
    root = write_project(tmp_path / "strict", policy="thresholds: {roc_auc: '>= 0.999'}\n")
    batch(600, 0).to_parquet(root / "data" / "batch-000.parquet")
    [cycle] = agent_for(root).run_once()
    assert cycle.state == "rejected" and any("roc_auc" in f for f in cycle.detail["failures"])
    with pytest.raises(KeyError):
        Registry(client).get_model_version("churn", "champion")
    assert lineage(cycle.id, client=client)["chain"][-1]["step"] == "verdict"


def test_a_promoted_version_that_cannot_be_loaded_is_rolled_back_with_an_alert(project: Path, client: Client, agent_for) -> None:
    agent = agent_for(project)
    agent.run_once()  # version 1 is the champion
    batch(600, 1).to_parquet(project / "data" / "batch-001.parquet")
    registry = Registry(client)

    def damage_when_gated(line: str) -> None:
        agent.lines.append(line)
        if "version 2 passed the gate" in line:  # between the verdict and the promotion, the package is damaged in the store
            run = client.get_run(registry.get_model_version("churn", 2).run_id)
            digest = next(a.digest for a in run.artifacts if a.path.endswith("model.skops"))
            blob = next(Path(client.settings.artifact_uri).rglob(digest))
            blob.chmod(0o644)
            blob.write_bytes(blob.read_bytes()[:-8] + b"damaged!")

    agent.say = damage_when_gated
    [cycle] = agent.run_once()
    assert cycle.state == "rolled_back" and "changed in the artifact store" in cycle.detail["error"]
    assert registry.get_model_version("churn", "champion").version == 1
    assert [e.action for e in registry.history("churn", "champion")] == ["promote", "promote", "rollback"]
    alerts = client.store.alert_list("churn")
    assert [a.rule for a in alerts] == ["load_failure"] and "rolled back" in alerts[0].message


def test_a_failing_pipeline_is_recorded_and_the_champion_stays(project: Path, client: Client, agent_for) -> None:
    agent = agent_for(project)
    agent.run_once()
    (project / "data" / "batch-001.parquet").write_bytes(b"not parquet")
    [cycle] = agent.run_once()
    assert cycle.state == "failed" and cycle.detail["error"]
    assert Registry(client).get_model_version("churn", "champion").version == 1
    assert any(a.rule == "cycle_failed" for a in client.store.alert_list("churn"))


def test_with_serve_url_the_cycle_waits_until_the_server_answers_with_the_new_version(project: Path, client: Client, agent_for) -> None:
    import socket
    import threading
    import time

    import uvicorn

    from modelcycle.serving.app import ServeConfig, create_app

    agent = agent_for(project)
    agent.run_once()  # version 1 is the champion, so the server has something to serve
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(client.settings, "models:/churn@champion", config=ServeConfig(poll_seconds=0.2, freeze_gc=False))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.05)
        (project / "modelcycle.yaml").write_text((project / "modelcycle.yaml").read_text().replace(
            "serve: {model: churn@champion}", f"serve: {{model: churn@champion, url: 'http://127.0.0.1:{port}'}}"))
        watched = agent_for(project)
        from modelcycle.monitoring.alerts import raise_alert

        raise_alert(client.store, "churn", "server_unreachable", "an earlier cycle's server did not answer")
        batch(600, 1).to_parquet(project / "data" / "batch-001.parquet")
        [cycle] = watched.run_once()
    finally:
        server.should_exit = True
        thread.join(timeout=30)
    assert cycle.state == "done" and cycle.version == 2
    assert cycle.detail["served_version"] == 2, "the cycle ends when the server answers with the new version"
    assert "server_unreachable" not in client.store.alert_firing("churn"), "a server seen serving answers again"


def _log_predictions(home: str, model: str, n: int, version: int = 1):
    """n logged predictions of ``model`` as the server writes them (the log's own writer), returning their request ids."""
    import time
    import uuid

    import pandas as pd

    from modelcycle.store.predictions import model_dir, write_atomic

    frame = batch(n, 7).drop(columns=["y"]).add_prefix("input.")
    ids = [uuid.uuid4().hex for _ in range(n)]
    head = pd.DataFrame({"request_id": ids, "row": 0, "time": pd.Timestamp.now(tz="UTC"), "model": model, "version": version,
                         "role": "champion", "latency_ms": 1.0})
    logged = pd.concat([head, frame], axis=1).assign(prediction=0)
    day = time.strftime("%Y-%m-%d", time.gmtime())
    write_atomic(logged, f"{model_dir(home, 'predictions', model)}/date={day}", root=home)
    return ids


def _rejecting_project(tmp_path: Path, agent_yaml: str, data: str | None = None) -> Path:
    """A project whose gate nothing passes, retrained on drift only, with ``agent_yaml`` as its agent: section."""
    root = write_project(tmp_path / "p", policy="thresholds: {roc_auc: '>= 0.999'}\n")
    spec = (root / "modelcycle.yaml").read_text().replace("  - on: new_data\n", "")
    if data is not None:
        spec = spec.replace("data: {source: data/}", data)
    (root / "modelcycle.yaml").write_text(spec + f"agent: {agent_yaml}\n")
    batch(600, 0).to_parquet(root / "data" / "batch-000.parquet")
    return root


def test_an_alert_that_still_fires_is_retried_when_there_is_something_new_and_never_promotes_the_same_model(
        tmp_path: Path, client: Client, agent_for) -> None:
    import time

    import modelcycle as mc
    from modelcycle.monitoring.alerts import raise_alert

    root = _rejecting_project(tmp_path, "{retry: {min_new_rows: 50, backoff: 1h, max_backoff: 6h}}",
                              "data: {source: data/, feedback: 1d}")
    agent = agent_for(root)
    alert = raise_alert(client.store, "churn", "drift", "input drift: 100% of the columns drifted")
    [first] = agent.run_once()
    assert first.trigger == "drift" and first.state == "rejected" and first.alert_id == alert["id"] and first.version == 1, first.detail
    assert agent.run_once() == [], "nothing new: no retry"
    assert "retries when 50 more labelled predictions arrive" in agent.waiting and "back-off 1h" in agent.waiting
    assert "files in" in agent.explain()
    from typer.testing import CliRunner

    from modelcycle.cli import app

    status = CliRunner().invoke(app, ["agent", "--status", "--spec", str(root)],
                                env={"MODELCYCLE_HOME": str(client.settings.home), "COLUMNS": "250"})
    assert status.exit_code == 0 and "Now:" in status.output and "retries when 50 more labelled" in status.output, status.output

    ids = _log_predictions(client.settings.log_uri, "churn", 60)
    mc.set_client(client)
    mc.log_labels(ids, batch(60, 7)["y"].tolist(), model="churn")
    [second] = agent.run_once()
    assert second.trigger == "drift" and second.trigger_key == f"retry:{first.id}"
    assert second.attempt == 2 and "60 new labelled predictions" in second.detail["trigger"]["why"]
    assert second.state == "rejected" and second.version == 2, "the pipeline learned from the labels: a new model, gated"

    assert agent.run_once() == [] and "back-off 2h" in agent.waiting
    client.store.cycle_update(second.id, finished_at=time.time() - 2 * 3600 - 1)  # the back-off has passed
    [third] = agent.run_once()
    assert third.trigger_key == f"retry:{second.id}" and third.attempt == 3
    assert any("back-off of 2h" in why for why in third.detail["trigger"]["why"])
    assert third.state == "no_change" and third.detail["same_as"] == 2, "every step came from the cache: the same model"
    assert third.version is None, "no candidate: the cycle made no version"
    assert "version 2 again" in third.detail["reason"] and "new labelled predictions" in third.detail["reason"]
    assert [v.version for v in Registry(client).search_model_versions("name = 'churn'")] == [2, 1], "nothing new registered"

    batch(300, 5).to_parquet(root / "data" / "batch-001.parquet")
    [fourth] = agent.run_once()
    assert fourth.trigger_key == f"retry:{third.id}" and fourth.attempt == 4
    assert any("new data in" in why for why in fourth.detail["trigger"]["why"])
    assert fourth.state == "rejected" and fourth.version == 3, "new data: a new model, judged by the gate"
    assert client.store.alert_firing("churn")["drift"].id == alert["id"], "the alert still fires: nothing was fixed"


def test_without_feedback_labels_are_not_a_reason_to_retrain(tmp_path: Path, client: Client, agent_for) -> None:
    """The pipeline is not handed labelled predictions, so their arrival teaches it nothing: only new files or the back-off."""
    import modelcycle as mc
    from modelcycle.monitoring.alerts import raise_alert

    root = _rejecting_project(tmp_path, "{retry: {min_new_rows: 5, backoff: 1h}}")
    agent = agent_for(root)
    raise_alert(client.store, "churn", "drift", "input drift: 100% of the columns drifted")
    [first] = agent.run_once()
    assert first.state == "rejected"
    ids = _log_predictions(client.settings.log_uri, "churn", 60)
    mc.set_client(client)
    mc.log_labels(ids, [1] * 60, model="churn")
    assert agent.run_once() == [], "labels the pipeline never sees are not something new"
    assert "labelled" not in agent.waiting and "files in" in agent.waiting and "back-off 1h" in agent.waiting


def test_a_server_that_does_not_answer_is_a_warning_not_a_rollback(project: Path, client: Client, agent_for) -> None:
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (project / "modelcycle.yaml").write_text((project / "modelcycle.yaml").read_text().replace(
        "serve: {model: churn@champion}", f"serve: {{model: churn@champion, url: 'http://127.0.0.1:{port}'}}"))
    agent = agent_for(project, serve_timeout=3)
    [cycle] = agent.run_once()
    assert cycle.state == "done" and cycle.version == 1, cycle
    assert f"no server answered at serve.url http://127.0.0.1:{port}" in cycle.detail["warning"]
    assert Registry(client).get_model_version("churn", "champion").version == 1, "the promotion stands"
    assert [a.rule for a in client.store.alert_list("churn")] == ["server_unreachable"]
    assert not any("roll" in line for line in agent.lines) and any("warning: no server answered" in line for line in agent.lines)


def test_the_agent_follows_changes_to_the_spec(project: Path, client: Client, agent_for) -> None:
    import os

    agent = agent_for(project)
    [first] = agent.run_once()
    assert first.state == "done"
    spec_file = project / "modelcycle.yaml"
    text = spec_file.read_text()
    spec_file.write_text(text.replace("window: 1h", "window: 2h"))
    os.utime(spec_file, ns=(os.stat(spec_file).st_atime_ns, os.stat(spec_file).st_mtime_ns + 1_000_000_000))
    agent.run_once()
    assert agent.spec.window == "2h" and any("the agent follows the new spec" in line for line in agent.lines)
    spec_file.write_text(text.replace("window: 1h", "window: never"))
    os.utime(spec_file, ns=(os.stat(spec_file).st_atime_ns, os.stat(spec_file).st_mtime_ns + 2_000_000_000))
    agent.run_once()
    assert agent.spec.window == "2h", "a broken spec is reported and the one in use is kept"
    assert any("is not valid, so the agent keeps the spec it had" in line and "line 6" in line for line in agent.lines)


def test_labelled_predictions_reach_the_pipeline(tmp_path: Path, client: Client, agent_for) -> None:
    """data: {source: predictions}: the pipeline trains on the prediction log joined with its labels."""
    import modelcycle as mc

    root = write_project(tmp_path / "p")
    spec = (root / "modelcycle.yaml").read_text().replace("data: {source: data/}", "data: {source: predictions}")
    (root / "modelcycle.yaml").write_text(spec.replace("  - on: new_data\n", ""))
    ids = _log_predictions(client.settings.log_uri, "churn", 400)
    truth = batch(400, 7)["y"].tolist()
    mc.set_client(client)
    mc.log_labels(ids[:300], truth[:300], model="churn")
    table = mc.labelled_predictions("churn", target="y")
    assert len(table) == 300 and list(table.columns[:4]) == ["a", "b", "c", "y"]
    assert dict(zip(table["request_id"], table["y"], strict=True)) == dict(zip(ids[:300], truth[:300], strict=True))
    assert {"predicted_at", "version", "request_id", "row"} <= set(table.columns)
    agent = agent_for(root)
    cycle = agent.run_now("first model from production feedback")
    assert cycle.state == "done", cycle
    assert any("300 labelled predictions from the last 30d handed to the pipeline" in line for line in agent.lines), agent.lines
    trained = client.get_run(next(r.id for r in client.search_runs(experiment="churn", as_frame=False) if r.name == "train"))
    assert trained.params, "the train step ran"
    package = Registry(client).load_model("models:/churn/1")
    assert package.profile is not None and package.profile.rows == 210, "trained on 70% of the 300 labelled rows"


def test_the_ready_made_step_reads_labelled_predictions_afresh_on_every_run(client: Client) -> None:
    import modelcycle as mc
    from modelcycle.pipelines.steps import labelled_predictions

    @mc.step
    def rows(table) -> int:
        return len(table)

    @mc.pipeline
    def feedback_rows():
        return rows(labelled_predictions("churn", since="1d", target="y"))

    ids = _log_predictions(client.settings.log_uri, "churn", 100)
    mc.set_client(client)
    try:
        mc.log_labels(ids[:40], [1] * 40, model="churn")
        first = feedback_rows.run(client=client)
        again = feedback_rows.run(client=client)
        mc.log_labels(ids[40:70], [0] * 30, model="churn")
        grown = feedback_rows.run(client=client)
    finally:
        mc.set_client(None)
    assert (first.output, again.output, grown.output) == (40, 40, 70)
    assert again.steps["rows"].cached and not grown.steps["rows"].cached, "the steps after it re-run only when the table changed"


def test_lineage_finds_a_cycle_whose_id_prefix_is_all_digits(client: Client) -> None:
    """An id prefix such as 60769948 looks like an alias event number; with no such event it is an id prefix."""
    import time

    from modelcycle.entities import Cycle, CycleState

    now = time.time()
    cycle = Cycle(id="60769948" + "a" * 24, project="churn", trigger="manual", trigger_key="manual:x", state=CycleState.FAILED,
                  started_at=now, updated_at=now, finished_at=now, model="churn", detail={"error": "boom"})
    assert client.store.cycle_claim_new(cycle)
    found = lineage("60769948", client=client)
    assert found["cycle_id"] == cycle.id and found["state"] == "failed" and found["error"] == "boom"


def test_labelled_predictions_from_an_epoch_start_leave_older_rows_out(client: Client) -> None:
    import time

    import modelcycle as mc

    ids = _log_predictions(client.settings.log_uri, "churn", 30)
    mc.set_client(client)
    mc.log_labels(ids, [1] * 30, model="churn")
    assert len(mc.labelled_predictions("churn", start=time.time() - 3600, target="y")) == 30
    assert len(mc.labelled_predictions("churn", start=time.time() + 60, target="y")) == 0, "epoch seconds, not nanoseconds"
    for clash in ("version", "prediction", "predicted_at", "row", "request_id"):
        with pytest.raises(Exception, match="one of the log's own columns"):
            mc.labelled_predictions("churn", target=clash)


def test_a_resumed_cycle_judges_with_the_specs_policy_not_a_verdict_recorded_elsewhere(tmp_path: Path, client: Client,
                                                                                      agent_for) -> None:
    import time

    import modelcycle as mc
    from modelcycle.entities import Cycle, CycleState

    root = write_project(tmp_path / "p", policy="thresholds: {roc_auc: '>= 0.999'}\n")
    batch(600, 0).to_parquet(root / "data" / "batch-000.parquet")
    agent = agent_for(root)
    [first] = agent.run_once()
    assert first.state == "rejected" and first.version == 1
    mc.set_client(client)
    lax = mc.validate_model("models:/churn/1", batch(200, 3), {"thresholds": {"roc_auc": ">= 0.0"}}, target="y")
    assert lax.passed
    now = time.time()  # a cycle left in validating by an agent that died (its lease ran out)
    client.store.cycle_claim_new(Cycle(id="d" * 32, project="churn", trigger="manual", trigger_key="manual:resume",
                                       state=CycleState.VALIDATING, started_at=now, updated_at=now, lease_until=now - 1,
                                       owner="dead", model="churn", version=1, run_id=first.run_id))
    [resumed] = agent.run_once()
    assert resumed.id == "d" * 32 and resumed.state == "rejected", resumed.why
    with pytest.raises(KeyError):
        Registry(client).get_model_version("churn", "champion")


def test_an_alert_that_flaps_does_not_skip_the_back_off(tmp_path: Path, client: Client, agent_for) -> None:
    from modelcycle.monitoring.alerts import raise_alert

    root = _rejecting_project(tmp_path, "{retry: {backoff: 1h}}")
    agent = agent_for(root)
    raise_alert(client.store, "churn", "drift", "input drift")
    [first] = agent.run_once()
    assert first.state == "rejected"
    client.store.alert_resolve("churn", "drift", 0.0)
    raise_alert(client.store, "churn", "drift", "input drift again")  # a new alert id
    assert agent.run_once() == [], "the cycle before did not fix anything and nothing new arrived"
    assert "back-off 1h" in agent.waiting


def test_a_damaged_log_file_does_not_stop_the_other_triggers(project: Path, client: Client, agent_for) -> None:
    import os
    import time

    from modelcycle.errors import InvalidInputError
    from modelcycle.store.predictions import check_file, model_dir

    agent = agent_for(project)
    agent.run_once()
    then = time.time() - 2 * 3600  # in a closed window, which monitoring reads
    folder = Path(model_dir(client.settings.log_uri, "predictions", "churn")) / f"date={time.strftime('%Y-%m-%d', time.gmtime(then))}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"part-{int(then * 1e9)}-junk.parquet").write_bytes(b"PAR1junkPAR1")
    fifo = folder / f"part-{time.time_ns()}-fifo.parquet"
    os.mkfifo(fifo)
    with pytest.raises(InvalidInputError, match="not a regular file"):
        check_file(fifo)  # would block forever if opened
    fifo.unlink()
    batch(600, 1).to_parquet(project / "data" / "batch-001.parquet")
    [cycle] = agent.run_once()
    assert cycle.trigger == "new_data" and cycle.state == "done"
    assert any("monitoring failed" in line and "not a readable Parquet file" in line for line in agent.lines)


@pytest.mark.parametrize(("rows", "labels", "words"), [
    ([None], [1], "row numbers are a row's position"),
    (["a"], [1], "row numbers are a row's position"),
    ([0.5], [1], "row numbers are a row's position"),
    ([-1], [1], "row numbers are a row's position"),
    ([0], [float("inf")], "not NaN or infinity"),
])
def test_labels_with_rows_or_values_the_readers_cannot_use_are_refused(client: Client, rows, labels, words) -> None:
    import modelcycle as mc
    from modelcycle.errors import InvalidInputError

    ids = _log_predictions(client.settings.log_uri, "churn", 1)
    mc.set_client(client)
    with pytest.raises(InvalidInputError, match=words):
        mc.log_labels(ids, labels, model="churn", rows=rows)
    assert len(mc.labelled_predictions("churn", target="y")) == 0, "nothing was stored"


def test_a_serve_url_that_serves_another_uri_is_a_warning_not_a_rollback(project: Path, client: Client, agent_for) -> None:
    import socket
    import threading
    import time

    import uvicorn

    from modelcycle.serving.app import ServeConfig, create_app

    agent_for(project).run_once()  # version 1
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(client.settings, "models:/churn/1", config=ServeConfig(poll_seconds=0.2, freeze_gc=False))  # pinned
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 120
        while not server.started:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)
        (project / "modelcycle.yaml").write_text((project / "modelcycle.yaml").read_text().replace(
            "serve: {model: churn@champion}", f"serve: {{model: churn@champion, url: 'http://127.0.0.1:{port}'}}"))
        watched = agent_for(project, serve_timeout=20)
        batch(600, 1).to_parquet(project / "data" / "batch-001.parquet")
        [cycle] = watched.run_once()
    finally:
        server.should_exit = True
        thread.join(timeout=30)
    assert cycle.state == "done" and cycle.version == 2, cycle.why
    assert "serves models:/churn/1, not models:/churn@champion" in cycle.detail["warning"]
    assert Registry(client).get_model_version("churn", "champion").version == 2, "the promotion stands"


def test_lineage_of_a_version_made_by_hand_says_so(client: Client) -> None:
    from sklearn.linear_model import LogisticRegression

    from modelcycle.automation import lineage
    from modelcycle.errors import NotFoundError
    from modelcycle.registry import Registry

    X = batch(100, 1)
    with client.start_run(experiment="by-hand"):
        logged = client.log_model(LogisticRegression().fit(X[["a", "b"]], X["y"]))
    Registry(client).register_model(logged, "handmade")
    with pytest.raises(NotFoundError, match="registered or promoted by hand has no lineage"):
        lineage("handmade/1", client=client)


def test_a_new_data_cycle_a_drift_alert_merged_into_judges_the_rows_after_the_change(project: Path, client: Client,
                                                                                     agent_for) -> None:
    """New data and a drift alert fire together: one cycle runs (new data's) and the drift one is merged into it; the
    gate still judges the test rows predicted after the change the alert saw."""
    import time
    import uuid

    import pandas as pd

    from modelcycle.entities import Cycle, CycleState

    agent = agent_for(project)
    now = time.time()
    change = now - 3600
    alert = {"id": uuid.uuid4().hex, "model": "churn", "rule": "drift", "window_start": change, "raised_at": now,
             "message": "input drift", "details": {}}
    assert client.store.alert_raise(alert)
    ran = Cycle(id=uuid.uuid4().hex, project=agent.spec.name, trigger="new_data", trigger_key="data:x",
                state=CycleState.TRAINING, owner="me", lease_until=now + 60, started_at=now, updated_at=now, model="churn")
    merged = Cycle(id=uuid.uuid4().hex, project=agent.spec.name, trigger="drift", trigger_key=f"alert:{alert['id']}",
                   state=CycleState.MERGED, owner="me", started_at=now, updated_at=now, finished_at=now, model="churn",
                   alert_id=alert["id"], detail={"merged_into": ran.id})
    assert client.store.cycle_claim_new(ran) and client.store.cycle_claim_new(merged)
    test = pd.DataFrame({"x": range(200), "predicted_at": [pd.NaT] * 100 + [pd.Timestamp(change + 60, unit="s", tz="UTC")] * 100})
    rows, said = agent._gate_data(ran, test)
    assert len(rows) == 100 and "predicted after the change began" in said
    alone = Cycle(id=uuid.uuid4().hex, project=agent.spec.name, trigger="new_data", trigger_key="data:y",
                  state=CycleState.TRAINING, owner="me", started_at=now, updated_at=now, model="churn")
    assert agent._gate_data(alone, test)[1] == "all 200 test rows", "new data alone: every test row"
