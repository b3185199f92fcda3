"""Pipelines across processes: the CLI, a real Dask LocalCluster, kill -9 in the middle, two processes at once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from modelcycle.cli import app
from modelcycle.settings import Settings
from modelcycle.tracking.client import Client

PIPELINE = textwrap.dedent('''
    import time
    from pathlib import Path

    import numpy as np
    import pandas as pd

    import modelcycle as mc


    @mc.step
    def make(n: int) -> pd.DataFrame:
        return pd.DataFrame({"x": np.arange(n, dtype=float)})


    @mc.step
    def double(df: pd.DataFrame) -> pd.DataFrame:
        return df * 2


    @mc.step
    def wait_for(df: pd.DataFrame, gate: str) -> float:
        Path(gate + ".started").write_text("started")
        while Path(gate).exists():
            time.sleep(0.05)
        mc.log_metric("total", float(df["x"].sum()))
        return float(df["x"].sum())


    @mc.pipeline
    def chain(n: int = 10, gate: str = "/nonexistent"):
        return wait_for(double(make(n)), gate)
''')


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    (tmp_path / "flow.py").write_text(PIPELINE)
    home = tmp_path / "home"
    env = {**os.environ, "MODELCYCLE_HOME": str(home), "MODELCYCLE_CAPTURE": "0", "MODELCYCLE_HEARTBEAT_INTERVAL": "0.2",
           "MODELCYCLE_HEARTBEAT_TIMEOUT": "1.5", "COLUMNS": "200"}
    for k in ("MODELCYCLE_HOME", "MODELCYCLE_CAPTURE", "COLUMNS"):
        monkeypatch.setenv(k, env[k])
    return {"dir": tmp_path, "file": tmp_path / "flow.py", "home": home, "env": env}


def cli(project: dict, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "modelcycle", *args], env=project["env"], cwd=project["dir"], capture_output=True,
                          text=True, timeout=timeout)


def test_cli_run_show_explain(project: dict) -> None:
    runner = CliRunner()
    target = f"{project['file']}:chain"
    first = runner.invoke(app, ["pipeline", "run", target, "-p", "n=5"])
    assert first.exit_code == 0, first.output
    assert "chain — run" in first.output and "FINISHED" in first.output
    second = runner.invoke(app, ["pipeline", "run", target, "-p", "n=5", "--json"])
    data = json.loads(second.output)
    assert all(s["cached"] for s in data["steps"].values())
    run_id = data["run_id"]
    show = runner.invoke(app, ["pipeline", "show", run_id[:8]])
    assert show.exit_code == 0 and "lineage" in show.output and "from make" in show.output
    explain = runner.invoke(app, ["pipeline", "explain", run_id[:8], "double"])
    assert "came from the cache" in explain.output and "input df" in explain.output
    changed = json.loads(runner.invoke(app, ["pipeline", "run", target, "-p", "n=6", "--json"]).output)
    explain = runner.invoke(app, ["pipeline", "explain", changed["run_id"], "make"])
    assert "was not cached: parameter 'n' changed (5 → 6)" in explain.output
    listed = json.loads(runner.invoke(app, ["pipeline", "ls", "--json"]).output)
    assert [r["pipeline"] for r in listed] == ["chain"] * 3
    (project["dir"] / "params.yaml").write_text("n: 7\n")
    from_config = json.loads(runner.invoke(app, ["pipeline", "run", target, "-c", str(project["dir"] / "params.yaml"), "--json"]).output)
    assert from_config["steps"]["wait_for"]["status"] == "finished"


@pytest.mark.parametrize("args,words", [
    (["-p", "n=many"], "parameter 'n' of pipeline 'chain' expects int, got 'many'"),
    (["-p", "m=1"], "pipeline 'chain' has no parameter 'm'; its parameters: n, gate"),
    (["-p", "n"], "write parameters as name=value"),
])
def test_cli_bad_parameters(project: dict, args: list[str], words: str) -> None:
    out = CliRunner().invoke(app, ["pipeline", "run", f"{project['file']}:chain", *args])
    assert out.exit_code == 1 and words in out.output


def test_cli_bad_targets(project: dict) -> None:
    out = CliRunner().invoke(app, ["pipeline", "run", f"{project['file']}:nothing"])
    assert out.exit_code == 1 and "has no pipeline named 'nothing'; its pipelines: chain" in out.output
    out = CliRunner().invoke(app, ["pipeline", "run", "missing.py:chain"])
    assert out.exit_code == 1 and "is not a file" in out.output


@pytest.mark.slow
def test_kill_9_leaves_no_running_run_and_the_next_run_resumes(project: dict) -> None:
    gate = project["dir"] / "gate"
    gate.write_text("closed")
    proc = subprocess.Popen([sys.executable, "-m", "modelcycle", "pipeline", "run", f"{project['file']}:chain", "-p", f"gate={gate}",
                             "--json"], env=project["env"], cwd=project["dir"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 90
    while not Path(str(gate) + ".started").exists():
        assert proc.poll() is None and time.time() < deadline, "the third step never started"
        time.sleep(0.05)
    time.sleep(0.3)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(2.0)  # longer than the heartbeat timeout
    client = Client(Settings.for_home(project["home"], capture=False).replace(heartbeat_timeout=1.5))
    runs = client.search_runs(experiment="chain", as_frame=False, limit=None)
    parent = next(r for r in runs if r.tags.get("modelcycle.kind") == "pipeline")
    assert parent.status.value in ("LOST", "FAILED")
    steps = {r.name: r.status.value for r in runs if r.parent_id == parent.id}
    assert steps["make"] == "FINISHED" and steps["double"] == "FINISHED" and steps["wait_for"] in ("LOST", "FAILED")
    client.close()
    gate.unlink()
    again = cli(project, "pipeline", "run", f"{project['file']}:chain", "-p", f"gate={gate}", "--json")
    assert again.returncode == 0, again.stderr
    data = json.loads(again.stdout)
    assert {n: s["status"] for n, s in data["steps"].items()} == {"make": "cached", "double": "cached", "wait_for": "finished"}


@pytest.mark.slow
def test_two_processes_at_once(project: dict) -> None:
    cmd = [sys.executable, "-m", "modelcycle", "pipeline", "run", f"{project['file']}:chain", "-p", "n=1000", "--json"]
    procs = [subprocess.Popen(cmd, env=project["env"], cwd=project["dir"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
    values = {json.loads(o[0])["steps"]["wait_for"]["output"]["fingerprint"] for o in outs}
    assert len(values) == 1, "both runs made the same output"
    third = json.loads(cli(project, "pipeline", "run", f"{project['file']}:chain", "-p", "n=1000", "--json").stdout)
    assert all(s["cached"] for s in third["steps"].values())


@pytest.mark.slow
def test_dask_local_cluster(project: dict) -> None:
    pytest.importorskip("distributed")
    out = cli(project, "pipeline", "run", f"{project['file']}:chain", "-p", "n=20", "--executor", "dask", "--json", timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    data = json.loads(out.stdout)
    assert data["status"] == "FINISHED" and all(s["status"] == "finished" for s in data["steps"].values())
    client = Client(Settings.for_home(project["home"], capture=False))
    step_run = client.get_run(data["steps"]["wait_for"]["run_id"])
    assert step_run.metrics["total"] == 2 * sum(range(20)), "the worker logged into the step's run"
    assert client.get_run(data["run_id"]).tags["modelcycle.executor"] == "dask"
    client.close()
    local = json.loads(cli(project, "pipeline", "run", f"{project['file']}:chain", "-p", "n=20", "--json").stdout)
    assert all(s["cached"] for s in local["steps"].values()), "steps run on Dask fill the same cache"
