"""A team on shared infrastructure, as separate processes with separate folders: a PostgreSQL store, an
S3-compatible object store, two `modelcycle serve` replicas, and laptops that know only the URIs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from modelcycle.registry import Registry
from modelcycle.settings import Settings
from modelcycle.tracking.client import Client
from tests.conftest import S3_ENV
from tests.serving.test_server_process import start

pytestmark = pytest.mark.postgres


def machine_env(uris: dict[str, str], home: Path) -> dict[str, str]:
    """The environment of one machine of the team: its own folder, the shared URIs and the object store's keys."""
    return {**os.environ, **S3_ENV, "AWS_ENDPOINT_URL": uris["endpoint"], "MODELCYCLE_HOME": str(home),
            "MODELCYCLE_STORE_URI": uris["store"], "MODELCYCLE_ARTIFACT_URI": uris["artifacts"], "MODELCYCLE_CAPTURE": "0",
            "COLUMNS": "200"}


@pytest.fixture
def uris(pg_uri: str, s3_bucket: str, s3_endpoint: str) -> dict[str, str]:
    return {"store": pg_uri, "artifacts": f"s3://{s3_bucket}/artifacts", "endpoint": s3_endpoint}


def data(n: int, seed: int, shift: float = 0.0) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"a": rng.normal(shift, 1, n), "b": rng.normal(size=n)})
    return X, (X["a"] + 0.3 * X["b"] > shift).astype(int)


def test_two_replicas_one_log_labels_anywhere_and_monitoring_from_a_third_machine(uris: dict[str, str], tmp_path: Path) -> None:
    laptop = Settings.for_home(tmp_path / "laptop-a", capture=False).replace(store_uri=uris["store"], artifact_uri=uris["artifacts"])
    client = Client(laptop)
    X, y = data(500, 0)
    with client.start_run(experiment="team"):
        logged = client.log_model(LogisticRegression().fit(X, y), reference_data=X)
    registry = Registry(client)
    registry.register_model(logged, "churn")
    registry.set_alias("churn", "champion", 1)
    client.close()

    replicas = []
    try:
        for name in ("replica-1", "replica-2"):
            env = machine_env(uris, tmp_path / name)
            replicas.append(start(tmp_path / name, env=env, model="churn@champion"))
        answered: dict[str, list[str]] = {}
        for (_, url), seed in zip(replicas, (1, 2), strict=True):
            X_live, _ = data(40, seed, shift=3.0 if seed == 2 else 0.0)  # the second replica's traffic has drifted
            ids = []
            for i in range(len(X_live)):
                r = httpx.post(f"{url}/predict", json={"records": [X_live.iloc[i].to_dict()]}, timeout=30)
                assert r.status_code == 200, r.text
                ids.append(r.headers["x-request-id"])
            answered[url] = ids
        (_, first), (_, second) = replicas
        # labels for what replica 1 answered, sent through "the load balancer" to replica 2
        sent = httpx.post(f"{second}/labels", json={"request_ids": answered[first][:10], "labels": [1] * 10}, timeout=60)
        assert sent.status_code == 200, sent.text
        metrics = httpx.get(f"{second}/metrics", timeout=30).text
        assert "modelcycle_prediction_log_spool_bytes" in metrics and "modelcycle_prediction_log_ship_failures" in metrics
        import re
        import time

        for _, url in replicas:  # each replica counts the files it shipped from its spool (it ships every second)
            deadline = time.monotonic() + 60
            shipped = 0.0
            while time.monotonic() < deadline and shipped < 1:
                found = re.search(r"^modelcycle_prediction_log_shipped_files (\S+)$", httpx.get(f"{url}/metrics", timeout=30).text, re.M)
                shipped = float(found.group(1)) if found else 0.0
                time.sleep(0.2)
            assert shipped >= 1, f"{url} says it shipped no file"
        # and labels for replica 2's answers from a laptop that knows only the URIs
        other = Settings.for_home(tmp_path / "laptop-b", capture=False).replace(store_uri=uris["store"], artifact_uri=uris["artifacts"])
        from modelcycle.store.predictions import append_labels, read_labels, read_log

        deadline_ids = answered[second][:5]
        deadline = time.monotonic() + 60  # the replica publishes its log every second
        while len(read_log(other.log_uri, "churn")) < 80 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert append_labels(other.log_uri, "churn", deadline_ids, [0] * 5) == 5
        assert len(read_labels(other.log_uri, "churn")) == 15
    finally:
        for proc, _ in replicas:
            proc.terminate()
            proc.wait(timeout=60)
    assert not [p for r in ("replica-1", "replica-2") for p in (tmp_path / r).rglob("*.parquet")], \
        "nothing of the log stays on a replica's disk"
    # a third machine: `modelcycle monitor --json` sees every row of both replicas and every label
    out = subprocess.run([sys.executable, "-m", "modelcycle", "monitor", "churn", "--window", "1d", "--json"],
                         env=machine_env(uris, tmp_path / "laptop-c"), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout)
    assert sum(w["rows"] for w in report["windows"]) == 80
    assert sum(w["performance"]["labelled"] for w in report["windows"]) == 15
    # and the agent on that third machine: its drift trigger fires on what the second replica answered
    from tests.automation.conftest import batch, write_project

    project = write_project(tmp_path / "laptop-c" / "project")
    batch(300, 0).to_parquet(project / "data" / "batch-000.parquet")
    (project / "modelcycle.yaml").write_text(
        "name: churn-team\npipeline: pipelines/training.py:training\ndata: {source: data/}\n"
        "model: {name: churn, target: y, policy: policy.yaml}\nserve: {model: churn@champion}\n"
        "monitor: {window: 20s, drift: {share: 0.5}, min_rows: 10}\nagent: {interval: 20s}\ntriggers:\n  - on: drift\n")
    import time

    deadline = time.monotonic() + 180  # the last 20 s window with traffic closes (and settles) within ~25 s
    cycles: list = []
    while not cycles and time.monotonic() < deadline:
        agent = subprocess.run([sys.executable, "-m", "modelcycle", "agent", "--once", "--json"], cwd=project,
                               env=machine_env(uris, tmp_path / "laptop-c"), capture_output=True, text=True, timeout=300)
        assert agent.stdout.strip() and "Traceback" not in agent.stderr, agent.stderr[-2000:]
        cycles = [c for c in json.loads(agent.stdout) if c["trigger"] == "drift"]
        if not cycles:
            time.sleep(2)
    if not cycles:  # say what the agent and monitoring saw
        said = subprocess.run([sys.executable, "-m", "modelcycle", "agent", "--once"], cwd=project,
                              env=machine_env(uris, tmp_path / "laptop-c"), capture_output=True, text=True, timeout=300)
        seen = subprocess.run([sys.executable, "-m", "modelcycle", "monitor", "churn", "--window", "20s"], cwd=project,
                              env=machine_env(uris, tmp_path / "laptop-c"), capture_output=True, text=True, timeout=300)
        pytest.fail(f"the agent on a third machine never saw the drift in the replicas' log:\n{said.stdout}{said.stderr}\n"
                    f"{seen.stdout}{seen.stderr}")


class Cluster:
    """A Dask scheduler and two workers, each its own process in its own folder, started with only the URIs and
    the object store's credentials in their environment: no disk shared with the client."""

    def __init__(self, uris: dict[str, str], root: Path) -> None:
        import time

        root.mkdir(parents=True)
        self.procs: list[subprocess.Popen] = []
        dask = str(Path(sys.executable).with_name("dask"))
        file = root / "scheduler.json"
        base = {k: v for k, v in os.environ.items() if not k.startswith(("MODELCYCLE_", "AWS_"))}
        self.procs.append(subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                                            "--scheduler-file", str(file)], cwd=root, env=base,
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.monotonic() + 120
        while not file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        self.address = json.loads(file.read_text())["address"]
        for i in range(2):
            folder = root / f"worker-{i}"
            folder.mkdir()
            env = {**machine_env(uris, folder / ".modelcycle")}
            self.procs.append(subprocess.Popen([dask, "worker", self.address, "--nthreads", "1", "--no-dashboard",
                                                "--local-directory", str(folder / "dask")], cwd=folder, env=env,
                                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        from distributed import Client as DaskClient

        with DaskClient(self.address, timeout="60s") as c:
            c.wait_for_workers(2, timeout=180)

    def close(self) -> None:
        for p in reversed(self.procs):
            p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()


def test_batch_scoring_on_a_remote_cluster_from_and_to_the_object_store(uris: dict[str, str], tmp_path: Path) -> None:
    import fsspec

    laptop = machine_env(uris, tmp_path / "laptop" / ".modelcycle")
    (tmp_path / "laptop").mkdir()
    client = Client(Settings.from_env(laptop))
    X, y = data(3000, 0)
    with client.start_run(experiment="team"):
        logged = client.log_model(LogisticRegression().fit(X, y), reference_data=X)
    Registry(client).register_model(logged, "churn")
    Registry(client).set_alias("churn", "champion", 1)
    client.close()
    fs = fsspec.filesystem("s3", endpoint_url=uris["endpoint"], key=S3_ENV["AWS_ACCESS_KEY_ID"],
                           secret=S3_ENV["AWS_SECRET_ACCESS_KEY"], skip_instance_cache=True)
    bucket = uris["artifacts"].split("/")[2]
    X.to_parquet(tmp_path / "in.parquet")
    fs.put_file(str(tmp_path / "in.parquet"), f"{bucket}/inputs/batch.parquet")
    cluster = Cluster(uris, tmp_path / "cluster")
    try:
        out = subprocess.run([sys.executable, "-m", "modelcycle", "predict", "churn@champion", f"s3://{bucket}/inputs/batch.parquet",
                              "-o", f"s3://{bucket}/scores/batch.parquet", "--chunk-rows", "500", "--executor",
                              "dask://" + cluster.address.split("://", 1)[1], "--json"],
                             env=laptop, capture_output=True, text=True, timeout=600, cwd=tmp_path / "laptop")
    finally:
        cluster.close()
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout)["rows"] == 3000
    with fs.open(f"{bucket}/scores/batch.parquet", "rb") as f:
        scored = pd.read_parquet(f)
    expected = LogisticRegression().fit(X, y).predict(X)
    assert len(scored) == 3000 and (scored["prediction"].to_numpy() == expected).all()
    assert not fs.exists(f"{bucket}/scores/.batch.parquet.partial")
    for i in range(2):  # each worker fetched the package into its own folder
        assert list((tmp_path / "cluster" / f"worker-{i}" / ".modelcycle").rglob("manifest.json"))


def test_nothing_secret_is_sent_to_a_remote_worker(tmp_path: Path) -> None:
    from modelcycle.errors import ConfigurationError
    from modelcycle.pipelines.executors import worker_settings

    settings = Settings.for_home(tmp_path, capture=False).replace(
        store_uri="postgresql+psycopg://ds:s3cret-pw@db.internal/mc", artifact_uri="s3://team/artifacts", serve_token="tok-123")
    sent = repr(worker_settings(settings, remote=True))
    assert "s3cret-pw" not in sent and "tok-123" not in sent and "ds:***@db.internal" in sent
    env = {"MODELCYCLE_HOME": str(tmp_path / "w"), "MODELCYCLE_STORE_URI": "postgresql+psycopg://ds:s3cret-pw@db.internal/mc",
           "MODELCYCLE_ARTIFACT_URI": "s3://team/artifacts"}
    on_worker = Settings.on_worker(worker_settings(settings, remote=True)["shared"], env)
    assert on_worker.store_uri.endswith("ds:s3cret-pw@db.internal/mc") and on_worker.capture is False
    with pytest.raises(ConfigurationError, match="MODELCYCLE_STORE_URI and MODELCYCLE_ARTIFACT_URI"):
        Settings.on_worker(worker_settings(settings, remote=True)["shared"], {**env, "MODELCYCLE_ARTIFACT_URI": "s3://other/a"})


def test_two_people_on_two_machines_a_stale_verdict_is_refused(uris: dict[str, str], tmp_path: Path) -> None:
    """Ana and Ben, each on a machine of their own, validate a candidate while there is no champion; Ana promotes.
    Ben's verdict compared his candidate with no champion: promoting with it now is refused, on any machine."""
    X, y = data(600, 3)
    (tmp_path / "test.parquet").parent.mkdir(exist_ok=True)
    X.assign(y=y).to_parquet(tmp_path / "test.parquet")
    (tmp_path / "policy.yaml").write_text("thresholds: {roc_auc: '>= 0.5'}\nimprovement: {metric: roc_auc, over: champion, min_delta: 0.0}\n")
    setup = Client(Settings.from_env(machine_env(uris, tmp_path / "setup" / ".modelcycle")))
    for C in (1.0, 0.001):
        with setup.start_run(experiment="team"):
            logged = setup.log_model(LogisticRegression(C=C).fit(X, y), reference_data=X)
        Registry(setup).register_model(logged, "churn")
    setup.close()

    def cli(person: str, *args: str) -> subprocess.CompletedProcess:
        folder = tmp_path / person
        folder.mkdir(exist_ok=True)
        return subprocess.run([sys.executable, "-m", "modelcycle", *args], env=machine_env(uris, folder / ".modelcycle"),
                              cwd=folder, capture_output=True, text=True, timeout=300)

    for person, version in (("ana", "1"), ("ben", "2")):
        out = cli(person, "models", "validate", "churn", version, "--data", str(tmp_path / "test.parquet"),
                  "--policy", str(tmp_path / "policy.yaml"))
        assert out.returncode == 0, out.stdout + out.stderr
    assert cli("ana", "models", "promote", "churn", "1").returncode == 0
    refused = cli("ben", "models", "promote", "churn", "2")
    assert refused.returncode != 0 and "compared it with champion when that was no version" in refused.stdout + refused.stderr
    assert "Traceback" not in refused.stdout + refused.stderr
    check = Client(Settings.from_env(machine_env(uris, tmp_path / "carl" / ".modelcycle")))
    assert Registry(check).get_model_version("churn", "champion").version == 1
    check.close()
