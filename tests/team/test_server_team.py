"""A team that shares one `modelcycle server` (over PostgreSQL and an S3-compatible object store): every other machine
— two laptops, a serving replica, a Dask worker, the agent — knows only the server's URL and its own token, with no
database password, no object-store key and no folder in common."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import S3_ENV
from tests.serving.test_server_process import free_port, start
from tests.team.test_replicas import data

pytestmark = pytest.mark.postgres

USERS = {"ana": ["experiment:*=write", "model:*=manage"], "ben": ["experiment:*=write", "model:*=write"],
         "replica": ["experiment:*=read", "model:churn=write"], "analyst": ["experiment:*=read", "model:churn=read"]}


def _clean() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("MODELCYCLE_", "AWS_"))}


def machine(url: str, token: str, home: Path) -> dict[str, str]:
    """A machine that knows the server's URL and a token, and nothing else of the team's infrastructure."""
    home.mkdir(parents=True, exist_ok=True)
    return {**_clean(), "MODELCYCLE_HOME": str(home), "MODELCYCLE_TRACKING_URI": url, "MODELCYCLE_TRACKING_TOKEN": token,
            "MODELCYCLE_CAPTURE": "0", "COLUMNS": "200"}


class Server:
    """``modelcycle server`` in its own process and folder, the only one with the database's and the bucket's keys."""

    def __init__(self, pg_uri: str, bucket: str, endpoint: str, home: Path) -> None:
        self.env = {**_clean(), **S3_ENV, "AWS_ENDPOINT_URL": endpoint, "MODELCYCLE_HOME": str(home),
                    "MODELCYCLE_STORE_URI": pg_uri, "MODELCYCLE_ARTIFACT_URI": f"s3://{bucket}/artifacts"}
        self.tokens = {}
        for name, grants in USERS.items():
            out = subprocess.run([sys.executable, "-m", "modelcycle", "server", "users", "add", name, "--json",
                                  *[a for g in grants for a in ("--grant", g)]], env=self.env, capture_output=True, text=True, timeout=300)
            assert out.returncode == 0, out.stderr[-2000:]
            self.tokens[name] = json.loads(out.stdout)["token"]
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen([sys.executable, "-m", "modelcycle", "server", "--port", str(port), "--json"],
                                     env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()  # printed once the server answers
        assert self.url.split("//")[1] in line, self.proc.stderr.read()[-3000:] if self.proc.poll() is not None else line

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def python(env: dict[str, str], code: str, cwd: Path) -> subprocess.CompletedProcess:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr[-3000:]
    return out


def cli(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "modelcycle", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=600)


def test_a_team_that_knows_only_the_servers_url(pg_uri: str, s3_bucket: str, s3_endpoint: str, tmp_path: Path) -> None:
    server = Server(pg_uri, s3_bucket, s3_endpoint, tmp_path / "server")
    procs: list[subprocess.Popen] = []
    try:
        url, tokens = server.url, server.tokens
        ana = machine(url, tokens["ana"], tmp_path / "ana" / ".modelcycle")
        X, y = data(600, 0)
        X.assign(y=y).to_parquet(tmp_path / "ana" / "train.parquet")
        python(ana, """
            import pandas as pd, modelcycle as mc
            from sklearn.linear_model import LogisticRegression
            frame = pd.read_parquet("train.parquet"); X, y = frame[["a", "b"]], frame["y"]
            with mc.start_run(experiment="team"):
                mc.log_param("C", 1.0)
                logged = mc.log_model(LogisticRegression().fit(X, y), reference_data=X)
            mc.register_model(logged, "churn")
            mc.set_alias("churn", "champion", 1)
        """, tmp_path / "ana")
        promoted = time.time()

        # a serving replica: the model and its log through the server only
        replica_env = machine(url, tokens["replica"], tmp_path / "replica" / ".modelcycle")
        proc, replica = start(tmp_path / "replica" / ".modelcycle", env=replica_env, model="churn@champion")
        procs.append(proc)
        live, _ = data(40, 1, shift=3.0)  # drifted traffic
        while time.time() // 20 <= promoted // 20:  # in a 20 s window that began after the promotion (the agent judges those)
            time.sleep(0.2)
        ids = []
        for i in range(len(live)):
            r = httpx.post(f"{replica}/predict", json={"records": [live.iloc[i].to_dict()]}, timeout=60)
            assert r.status_code == 200, r.text
            ids.append(r.headers["x-request-id"])
        labelled = httpx.post(f"{replica}/labels", json={"request_ids": ids[:10], "labels": [1] * 10}, timeout=120)
        assert labelled.status_code == 200, labelled.text

        # Ben, on another laptop, labels more of what the replica answered and reads the log
        ben = machine(url, tokens["ben"], tmp_path / "ben" / ".modelcycle")
        python(ben, f"""
            import time, modelcycle as mc
            deadline = time.monotonic() + 120  # the replica publishes its log every second
            while len(mc.read_predictions("churn")) < 40 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert len(mc.read_predictions("churn")) == 40
            assert mc.log_labels({ids[10:15]!r}, [0] * 5, model="churn") == 5
        """, tmp_path / "ben")
        analyst = machine(url, tokens["analyst"], tmp_path / "analyst" / ".modelcycle")  # may read, not write
        monitored = cli(analyst, tmp_path / "analyst", "monitor", "churn", "--window", "1m", "--json")
        assert monitored.returncode == 0, monitored.stderr[-3000:]
        report = json.loads(monitored.stdout)
        assert sum(w["rows"] for w in report["windows"]) == 40
        assert sum(w["performance"]["labelled"] for w in report["windows"]) == 15

        # the agent on a third machine sees the drift in the replica's log and retrains
        from tests.automation.conftest import batch, write_project

        carl = machine(url, tokens["ana"], tmp_path / "carl" / ".modelcycle")
        project = write_project(tmp_path / "carl" / "project")
        batch(300, 0).to_parquet(project / "data" / "batch-000.parquet")
        (project / "modelcycle.yaml").write_text(
            "name: team\npipeline: pipelines/training.py:training\ndata: {source: data/}\n"
            "model: {name: churn, target: y, policy: policy.yaml}\nserve: {model: churn@champion}\n"
            "monitor: {window: 20s, drift: {share: 0.5}, min_rows: 10}\nagent: {interval: 20s}\ntriggers:\n  - on: drift\n")
        deadline = time.monotonic() + 240  # the last 20 s window with traffic closes (and settles) within ~25 s
        cycles: list = []
        while not cycles and time.monotonic() < deadline:
            agent = cli(carl, project, "agent", "--once", "--json")
            assert agent.stdout.strip() and "Traceback" not in agent.stderr, agent.stderr[-3000:]
            cycles = [c for c in json.loads(agent.stdout) if c["trigger"] == "drift"]
            if not cycles:
                time.sleep(2)
        if not cycles:  # say what the agent and monitoring saw
            said = cli(carl, project, "agent", "--once")
            seen = cli(carl, project, "monitor", "churn", "--window", "20s")
            pytest.fail(f"the agent never saw the drift in the replica's log:\n{said.stdout}{said.stderr}\n{seen.stdout}{seen.stderr}")

        # batch scoring on a Dask worker that knows only the URL and Ben's token
        dask = str(Path(sys.executable).with_name("dask"))
        (tmp_path / "cluster").mkdir()
        scheduler_file = tmp_path / "cluster" / "scheduler.json"
        procs.append(subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                                       "--scheduler-file", str(scheduler_file)], cwd=tmp_path / "cluster", env=_clean(),
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.monotonic() + 120
        while not scheduler_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        address = json.loads(scheduler_file.read_text())["address"]
        worker_home = tmp_path / "worker" / ".modelcycle"
        procs.append(subprocess.Popen([dask, "worker", address, "--nthreads", "1", "--no-dashboard", "--local-directory",
                                       str(tmp_path / "worker" / "dask")], cwd=tmp_path / "worker",
                                      env=machine(url, tokens["ben"], worker_home), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        X.to_parquet(tmp_path / "ben" / "batch.parquet")
        scored = cli(ben, tmp_path / "ben", "predict", "models:/churn/1", "batch.parquet", "-o", "scores.parquet",
                     "--chunk-rows", "200", "--executor", "dask://" + address.split("://", 1)[1], "--json")
        assert scored.returncode == 0, scored.stderr[-3000:]
        assert json.loads(scored.stdout)["rows"] == 600
        assert list(worker_home.rglob("manifest.json")), "the worker fetched the model package through the server"
        # and a pipeline whose steps run on that worker, logging into their runs through the server
        from tests.pipelines.test_processes import PIPELINE

        (tmp_path / "ben" / "flow.py").write_text(PIPELINE)
        piped = cli(ben, tmp_path / "ben", "pipeline", "run", "flow.py:chain", "-p", "n=20", "--executor",
                    "dask://" + address.split("://", 1)[1], "--json")
        assert piped.returncode == 0, piped.stderr[-3000:]
        result = json.loads(piped.stdout)
        assert result["status"] == "FINISHED" and all(s["status"] == "finished" for s in result["steps"].values())
        shown = cli(ben, tmp_path / "ben", "runs", "show", result["steps"]["wait_for"]["run_id"], "--json")
        assert json.loads(shown.stdout)["metrics"]["total"] == 2 * sum(range(20)), "the worker logged into the step's run"
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
        server.close()
    assert not list((tmp_path / "replica").rglob("*.parquet")), "nothing of the log stays on the replica's disk"
