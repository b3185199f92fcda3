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
    assert cycle["state"] == "done" and cycle["version"] == 1, cycle
    assert registry.get_model_version("churn", "champion").version == 1
    assert agent.run_once() == [], "the same data is not a new trigger"

    batch(600, 1).to_parquet(project / "data" / "batch-001.parquet")
    [second] = agent.run_once()
    assert second["trigger"] == "new_data" and second["version"] == 2 and second["state"] == "done"
    assert registry.get_model_version("churn", "champion").version == 2
    history = registry.history("churn", "champion")
    assert [e.to_version for e in history] == [1, 2]
    assert all(f"cycle {c['id']}" in e.reason for e, c in zip(history, [cycle, second], strict=True))
    chain = lineage(second["id"][:8], client=client)
    steps = [link["step"] for link in chain["chain"]]
    assert steps[:5] == ["trigger", "pipeline run", "candidate", "verdict", "alias move"]
    assert chain["chain"][2]["version"] == 2 and chain["chain"][3]["passed"] is True and chain["chain"][4]["to_version"] == 2
    assert lineage("churn/2", client=client)["cycle"] == second["id"]  # found from any link, forwards and backwards
    assert lineage(second["run_id"], client=client)["cycle"] == second["id"]


def test_a_candidate_failing_the_gate_is_never_promoted(tmp_path: Path, client: Client, agent_for) -> None:
    root = write_project(tmp_path / "strict", policy="thresholds: {roc_auc: '>= 0.999'}\n")
    batch(600, 0).to_parquet(root / "data" / "batch-000.parquet")
    [cycle] = agent_for(root).run_once()
    assert cycle["state"] == "rejected" and any("roc_auc" in f for f in cycle["detail"]["failures"])
    with pytest.raises(KeyError):
        Registry(client).get_model_version("churn", "champion")
    assert lineage(cycle["id"], client=client)["chain"][-1]["step"] == "verdict"


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
    assert cycle["state"] == "rolled_back" and "changed in the artifact store" in cycle["detail"]["error"]
    assert registry.get_model_version("churn", "champion").version == 1
    assert [e.action for e in registry.history("churn", "champion")] == ["promote", "promote", "rollback"]
    alerts = client.store.alert_list("churn")
    assert [a["rule"] for a in alerts] == ["load_failure"] and "rolled back" in alerts[0]["message"]


def test_a_failing_pipeline_is_recorded_and_the_champion_stays(project: Path, client: Client, agent_for) -> None:
    agent = agent_for(project)
    agent.run_once()
    (project / "data" / "batch-001.parquet").write_bytes(b"not parquet")
    [cycle] = agent.run_once()
    assert cycle["state"] == "failed" and cycle["detail"]["error"]
    assert Registry(client).get_model_version("churn", "champion").version == 1
    assert any(a["rule"] == "cycle_failed" for a in client.store.alert_list("churn"))


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
        batch(600, 1).to_parquet(project / "data" / "batch-001.parquet")
        [cycle] = watched.run_once()
    finally:
        server.should_exit = True
        thread.join(timeout=30)
    assert cycle["state"] == "done" and cycle["version"] == 2
    assert cycle["detail"]["served_version"] == 2, "the cycle ends when the server answers with the new version"
