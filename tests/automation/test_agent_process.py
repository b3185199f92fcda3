"""`modelcycle agent` as real processes: killed with SIGKILL mid-cycle and restarted, and two agents at once."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from modelcycle.registry import Registry
from modelcycle.settings import Settings
from modelcycle.tracking.client import Client


def agent(project: Path, home: Path, *extra: str, slow: float = 0.0) -> subprocess.Popen:
    env = {**os.environ, "MODELCYCLE_HOME": str(home), "MODELCYCLE_CAPTURE": "0", "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    if slow:
        env["SLOW_TRAINING"] = str(slow)
    return subprocess.Popen([sys.executable, "-m", "modelcycle", "agent", "--once", "--lease", "2", *extra], cwd=project, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def state(home: Path) -> tuple[list[dict], list, list]:
    client = Client(Settings.for_home(home, capture=False))
    try:
        registry = Registry(client)
        cycles = client.store.cycle_list("churn", 100)
        try:
            versions = registry.search_model_versions("name = 'churn'")
        except KeyError:
            versions = []
        promotions = [e for e in registry.history("churn", "champion") if e.action == "promote"] if versions else []
        return cycles, versions, promotions
    finally:
        client.close()


@pytest.mark.slow
@pytest.mark.parametrize(("during", "line", "slow"), [
    ("training", "running pipeline", 3.0),
    ("validation", "registered churn version", 0.0),
    ("promotion", "passed the gate", 0.0),
])
def test_kill_9_mid_cycle_then_restart_finishes_it_with_one_promotion(project: Path, tmp_path: Path, during: str, line: str,
                                                                       slow: float) -> None:
    home = tmp_path / "home"
    first = agent(project, home, slow=slow)
    seen = []
    for out in first.stdout:  # type: ignore[union-attr]
        seen.append(out)
        if line in out:
            if slow:
                time.sleep(1.0)  # inside the slow training step
            first.kill()
            break
    first.wait(timeout=30)
    assert first.returncode == -9, f"the agent finished before it could be killed during {during}: {''.join(seen)}"
    cycles, _, _ = state(home)
    assert len(cycles) == 1 and cycles[0].finished_at is None, "the cycle is left unfinished by the kill"

    time.sleep(2.5)  # the dead agent's lease runs out
    second = agent(project, home)
    out, err = second.communicate(timeout=180)
    assert second.returncode == 0, err[-2000:]
    assert "resuming cycle" in out
    cycles, versions, promotions = state(home)
    assert len(cycles) == 1 and cycles[0].state == "done", cycles
    assert [v.version for v in versions] == [1], "the candidate was registered once"
    assert len(promotions) == 1 and promotions[0].to_version == 1, "the trigger promoted once"

    third = agent(project, home)
    assert third.communicate(timeout=120)[0].count("trigger fired: cycle") == 0, "the same trigger never runs a second cycle"


@pytest.mark.slow
def test_two_agents_at_once_run_the_cycle_once(project: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    Client(Settings.for_home(home, capture=False)).close()  # the database exists before both start
    procs = [agent(project, home, slow=1.0) for _ in range(2)]
    outs = [p.communicate(timeout=180) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e[-1500:] for _, e in outs]
    assert sum(o.count("trigger fired: cycle") for o, _ in outs) == 1
    cycles, versions, promotions = state(home)
    assert len(cycles) == 1 and cycles[0].state == "done"
    assert len(versions) == 1 and len(promotions) == 1
