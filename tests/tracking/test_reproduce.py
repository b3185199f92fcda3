"""`modelcycle runs reproduce --execute` end to end: a dirty git tree, a sweep, and a faithful re-run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from modelcycle.settings import Settings
from modelcycle.tracking.client import Client
from tests.conftest import git

pytestmark = pytest.mark.slow

TRAIN = """\
import random
import sys

import modelcycle as mc
from params import OFFSET

mc.seed_everything(int(sys.argv[1]))
with mc.start_run(experiment="repro", name="first"):
    mc.log_metric("score", random.random())
with mc.start_run(experiment="repro", name="second", params={"offset": OFFSET}):
    mc.log_metric("score", random.random() + OFFSET)
"""


def test_reproduce_execute_rebuilds_code_state_and_matches_metrics(tmp_path: Path, make_repo) -> None:
    repo = make_repo({"train.py": TRAIN, "params.py": "OFFSET = 0\n"})
    (repo / "params.py").write_text("OFFSET = 10\n")  # an uncommitted experiment
    home = tmp_path / "store"
    env = {**os.environ, "MODELCYCLE_HOME": str(home)}
    subprocess.run([sys.executable, "train.py", "3"], cwd=repo, env=env, check=True, capture_output=True)
    git(repo, "checkout", "params.py")  # the experiment is gone from the working tree

    client = Client(Settings.for_home(home, capture=False))
    second = client.search_runs(experiment="repro", filter="name = 'second'", as_frame=False)[0]
    assert second.params == {"offset": "10"} and second.metrics["score"] > 10

    plan = subprocess.run([sys.executable, "-m", "modelcycle", "runs", "reproduce", second.id[:10]], env=env,
                          capture_output=True, text=True)
    assert plan.returncode == 0, plan.stderr
    assert "git apply" in plan.stdout and "python train.py 3" in plan.stdout

    done = subprocess.run([sys.executable, "-m", "modelcycle", "runs", "reproduce", second.id, "--execute", "--json"],
                          env=env, capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr + done.stdout
    result = json.loads(done.stdout[done.stdout.index("{"):])
    assert result["matches"] is True
    new = client.get_run(result["reproduced_run_id"])
    assert new.reproduces == second.id
    assert new.metrics == second.metrics and new.params == second.params
    linked = client.search_runs(filter=f"reproduces = '{second.id}'", as_frame=False)
    assert [r.id for r in linked] == [new.id], "only the run started in the same order is linked"
    assert (repo / "params.py").read_text() == "OFFSET = 0\n", "the user's working tree is untouched"


def test_runs_outside_git_explain_why_they_cannot_be_executed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    home = tmp_path / "store"
    client = Client(Settings.for_home(home))
    with client.start_run() as run:
        pass
    client.close()
    env = {**os.environ, "MODELCYCLE_HOME": str(home)}
    out = subprocess.run([sys.executable, "-m", "modelcycle", "runs", "reproduce", run.id, "--execute"], env=env,
                         capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 1
    assert "error:" in out.stderr and "cannot reproduce" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
