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


def test_the_printed_steps_work_when_pasted_into_a_shell(tmp_path: Path, make_repo) -> None:
    """The store is found from the project folder (no MODELCYCLE_HOME); the steps, run in order in one shell,
    check out a worktree beside it, apply the stored diff from the original store and log a linked, equal run."""
    repo = make_repo({"train.py": TRAIN, "params.py": "OFFSET = 0\n", ".gitignore": ".modelcycle/\n"})
    (repo / "params.py").write_text("OFFSET = 10\n")  # an uncommitted experiment
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELCYCLE_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # `python` and `modelcycle` of this environment
    subprocess.run([sys.executable, "train.py", "3"], cwd=repo, env=env, check=True, capture_output=True)
    git(repo, "checkout", "params.py")
    client = Client(Settings.for_home(repo / ".modelcycle", capture=False))
    second = client.search_runs(experiment="repro", filter="name = 'second'", as_frame=False)[0]

    shown = subprocess.run([sys.executable, "-m", "modelcycle", "runs", "reproduce", second.id[:10], "--json"], cwd=repo, env=env,
                           capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    commands = [step["command"] for step in json.loads(shown.stdout)["steps"] if step["command"]]
    script = "set -eu\n" + "\n".join(commands) + "\n"
    pasted = subprocess.run(["bash", "-c", script], cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    assert pasted.returncode == 0, script + pasted.stdout + pasted.stderr

    worktree = tmp_path / f"reproduce-{second.id[:8]}"
    assert (worktree / "params.py").read_text() == "OFFSET = 10\n", "the stored diff was applied there"
    assert not (worktree / ".modelcycle").exists(), "no empty store in the worktree: the steps used the original one"
    [new] = client.search_runs(filter=f"reproduces = '{second.id}'", as_frame=False)
    assert new.metrics == second.metrics and new.params == second.params
    assert client.get_run(new.id).context.git_root == str(worktree.resolve()), "it ran in the worktree"
    assert (repo / "params.py").read_text() == "OFFSET = 0\n", "the user's working tree is untouched"
    client.close()


def test_the_store_step_names_a_remote_store_without_its_password(tmp_path: Path) -> None:
    from modelcycle.tracking.reproduce import _store_step

    settings = Settings.for_home(tmp_path / "h", capture=False).replace(store_uri="postgresql+psycopg://ana:s3cret@db.example/mc",
                                                                        artifact_uri="s3://bucket/mc")
    step = _store_step(Client(settings))
    assert step.command == (f"export MODELCYCLE_HOME={tmp_path / 'h'} MODELCYCLE_STORE_URI='postgresql+psycopg://ana:<password>@db.example/mc' "
                            "MODELCYCLE_ARTIFACT_URI=s3://bucket/mc")
    assert "<password>" in step.note and "s3cret" not in step.command


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


def test_values_from_the_store_are_quoted_in_the_printed_steps(client, make_repo, monkeypatch) -> None:
    """A commit edited in the store by hand must not become a command when the steps are pasted."""
    import shlex

    from modelcycle.tracking.reproduce import plan

    repo = make_repo({"train.py": "print(1)\n"})
    monkeypatch.chdir(repo)
    with client.start_run(name="r") as run:
        pass
    client.flush()
    import dataclasses

    stored = client.get_run(run.id)
    crafted = dataclasses.replace(stored, context=dataclasses.replace(stored.context, git_commit="HEAD $(touch PWNED)",
                                                                       git_root=str(repo)))
    monkeypatch.setattr(client, "get_run", lambda _id: crafted)
    steps = plan(client, run.id).steps
    line = next(s.command for s in steps if "worktree add" in s.command)
    assert shlex.quote("HEAD $(touch PWNED)") in line
