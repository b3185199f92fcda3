"""Durability under concurrency, crashes and signals — with real processes on a real SQLite file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from modelcycle.entities import RunStatus
from modelcycle.settings import Settings
from modelcycle.tracking.client import Client

pytestmark = pytest.mark.slow


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"MODELCYCLE_HOME": str(home), "MODELCYCLE_CAPTURE": "0", **extra})
    return env


def _spawn(code: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_eight_processes_logging_at_once_lose_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    code = """
        import sys, modelcycle as mc
        with mc.start_run(experiment="concurrent", name=sys.argv[-1]) as run:
            for i in range(20_000):
                mc.log_metric("x", float(i))
        print(run.id)
    """
    procs = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), str(n)], env=_env(home), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for n in range(8)]
    outputs = [p.communicate(timeout=300) for p in procs]
    for p, (_, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err
        assert "locked" not in err.lower()
    client = Client(Settings.for_home(home, capture=False))
    runs = client.search_runs(experiment="concurrent", as_frame=False, limit=None)
    assert len(runs) == 8
    total = sum(len(client.get_metric_history(r.id, "x")) for r in runs)
    assert total == 160_000
    assert all(r.status is RunStatus.FINISHED and r.metrics["x"] == 19_999.0 for r in runs)


def test_kill_9_keeps_flushed_points_and_the_run_becomes_lost(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = _env(home, MODELCYCLE_HEARTBEAT_TIMEOUT="1.5", MODELCYCLE_HEARTBEAT_INTERVAL="0.2", MODELCYCLE_FLUSH_INTERVAL="0.2")
    proc = _spawn("""
        import time, modelcycle as mc
        run = mc.start_run(experiment="crash")
        for i in range(1000):
            mc.log_metric("x", float(i))
        mc.flush()
        print(run.id, flush=True)
        i = 1000
        while True:
            mc.log_metric("x", float(i)); i += 1
            time.sleep(0.001)
    """, env)
    run_id = proc.stdout.readline().strip()  # type: ignore[union-attr]
    assert run_id, proc.stderr.read()  # type: ignore[union-attr]
    time.sleep(0.5)
    client = Client(Settings.for_home(home, capture=False, heartbeat_timeout=1.5))
    assert client.get_run(run_id).status is RunStatus.RUNNING, "heartbeats keep a live run RUNNING"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    time.sleep(2.0)
    run = client.get_run(run_id)
    assert run.status is RunStatus.LOST
    assert len(client.get_metric_history(run_id, "x")) >= 1000
    assert run.end_time is not None


def test_sigterm_flushes_buffered_points_and_ends_killed(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = _env(home, MODELCYCLE_FLUSH_INTERVAL="3600")  # nothing is flushed before the signal
    proc = _spawn("""
        import time, modelcycle as mc
        run = mc.start_run(experiment="term")
        for i in range(5000):
            mc.log_metric("x", float(i))
        print(run.id, flush=True)
        time.sleep(120)
    """, env)
    run_id = proc.stdout.readline().strip()  # type: ignore[union-attr]
    assert run_id, proc.stderr.read()  # type: ignore[union-attr]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == -signal.SIGTERM, "the process still dies of SIGTERM"
    client = Client(Settings.for_home(home, capture=False))
    run = client.get_run(run_id)
    assert run.status is RunStatus.KILLED
    assert "SIGTERM" in (run.error or "")
    assert len(client.get_metric_history(run_id, "x")) == 5000


def test_uncaught_exception_in_a_script_ends_its_runs_failed(tmp_path: Path) -> None:
    home = tmp_path / "home"
    proc = _spawn("""
        import modelcycle as mc
        run = mc.start_run(experiment="script")
        mc.log_metric("x", 1.0)
        print(run.id, flush=True)
        raise RuntimeError("boom")
    """, _env(home))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "boom" in err
    client = Client(Settings.for_home(home, capture=False))
    run = client.get_run(out.strip())
    assert run.status is RunStatus.FAILED and "RuntimeError: boom" in run.error
    assert run.metrics == {"x": 1.0}


def test_script_that_forgets_to_end_its_run_finishes_it_at_exit(tmp_path: Path) -> None:
    home = tmp_path / "home"
    proc = _spawn("""
        import modelcycle as mc
        run = mc.start_run(experiment="script")
        mc.log_metric("x", 1.0)
        print(run.id, flush=True)
    """, _env(home, MODELCYCLE_FLUSH_INTERVAL="3600"))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    run = Client(Settings.for_home(home, capture=False)).get_run(out.strip())
    assert run.status is RunStatus.FINISHED and run.metrics == {"x": 1.0}


def test_forked_worker_processes_log_into_the_parents_run(tmp_path: Path) -> None:
    home = tmp_path / "home"
    proc = _spawn("""
        import multiprocessing as mp, modelcycle as mc

        def work(i):
            for step in range(100):
                mc.log_metric(f"worker{i}", float(step), step=step)
            return i

        if __name__ == "__main__":
            with mc.start_run(experiment="pool") as run:
                ctx = mp.get_context("fork")
                pool = ctx.Pool(2)
                assert sorted(pool.map(work, range(4))) == [0, 1, 2, 3]
                pool.close()
                pool.join()
            print(run.id)
    """, _env(home, MODELCYCLE_FLUSH_INTERVAL="3600"))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    client = Client(Settings.for_home(home, capture=False))
    run = client.get_run(out.strip())
    assert run.status is RunStatus.FINISHED
    assert run.metrics == {f"worker{i}": 99.0 for i in range(4)}
    assert all(len(client.get_metric_history(run.id, f"worker{i}")) == 100 for i in range(4))


def test_forked_workers_never_hang_while_a_thread_writes(tmp_path: Path) -> None:
    """A thread keeps writing while the process forks workers that log: every worker finishes (SQLite's mutexes
    are never copied held into a child)."""
    code = textwrap.dedent(f"""
        import multiprocessing as mp, os, sys, threading, time
        import modelcycle as mc
        mc.set_client(mc.Client(mc.Settings.for_home({str(tmp_path / 'h')!r}, capture=False)))
        mc.log_metric("warm", 1.0)
        mc.flush()
        stop = threading.Event()
        def writer():
            i = 0
            while not stop.is_set():
                mc.log_metric("busy", float(i)); mc.flush(); i += 1
        threading.Thread(target=writer, daemon=True).start()
        def work(i):
            mc.log_metric(f"child{{i}}", float(i)); mc.flush()
        ctx = mp.get_context("fork")
        procs = [ctx.Process(target=work, args=(i,)) for i in range(12)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
        stop.set()
        hung = [p.pid for p in procs if p.is_alive()]
        for p in procs:
            if p.is_alive():
                p.kill()
        print("hung", len(hung), "failed", sum(1 for p in procs if p.exitcode not in (0, None)))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert "hung 0 failed 0" in out.stdout, (out.stdout, out.stderr[-2000:])
