"""The agent's idle cost between triggers: CPU time of a running ``modelcycle agent`` while nothing new arrives.

Run from the repository root (it needs modelcycle with scikit-learn: ``.venv`` or ``.venv-bench``)::

    .venv-bench/bin/python bench/agent_idle.py             # 60 s per measurement (~5 min)
    .venv-bench/bin/python bench/agent_idle.py --quick     # 20 s per measurement (~2.5 min)
    .venv-bench/bin/python bench/agent_idle.py --no-log --json bench/results/agent_idle.json

In a temporary folder it writes the project ``tests/automation/conftest.py`` writes (copied here, so
the benchmark needs no pytest): ``modelcycle.yaml`` with the triggers ``on: new_data`` and
``on: drift``, a monitor section (1-h windows, drift share 0.5, roc_auc ≥ 0.75), a three-step
LogisticRegression pipeline, a policy, and one 600-row Parquet file in ``data/``. Then, as
separate real processes (``python -m modelcycle agent --interval N`` with ``MODELCYCLE_HOME`` in
the temporary folder and ``MODELCYCLE_CAPTURE=0``, as ``tests/automation/test_agent_process.py``
runs it):

1. ``--interval 5``: the first cycle runs (new data: train, register, gate, promote); once the
   store says it finished and the agent's CPU use has settled (a ``2 × interval`` period under 5 %,
   or two periods alike), its CPU time (``utime + stime`` of every thread, from
   ``/proc/<pid>/stat``) is read before and after 60 s of idling: each check fingerprints the data
   folder and runs ``monitor()`` over the last 24 windows of an empty prediction log.
2. ``--interval 1`` on the same home, for scale (the trigger already has its cycle: none runs).
3. ``--interval 5`` again, after a day of predictions for the served model was logged (the 24 h
   before the start of the current hour, ~11.6 requests a second = 1,000,000 rows, inputs like the
   training data, scored like the model, 20 % labelled in one ``append_labels`` call) as the server
   leaves it: written in one-minute files, then each closed hour's files merged into one by
   ``store.predictions.compact``, as the server's log writer does (so ~25 files). Now each check
   reads back the stored windows (the first check summarises them; the settling leaves that out).
   ``--no-log`` skips it.

An idle agent that measured 0 % because it had stopped checking would pass, so each measurement
ends with a liveness probe: a new file is dropped into ``data/`` and the agent must fire a
``new_data`` cycle within ``interval + 30`` s (its reaction time is reported); the probe's cycle
is left to finish before the agent is stopped with SIGTERM. Also checked: no cycle started while
idle. One 60-s measurement per row (CPU time varies far less than wall time on a noisy machine;
the clock tick is 10 ms, 0.02 % of a core over 60 s).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

from _report import print_targets  # bench/ is on the path when a benchmark runs as a script

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
TARGET = 1.0  # % of one core
TICK = os.sysconf("SC_CLK_TCK")
LOG_ROWS, LOG_FILE_SECONDS, LABEL_SHARE = 1_000_000, 60, 0.2
HOUR, DAY = 3600, 86_400

# --- the project of tests/automation/conftest.py ------------------------------------------------
PIPELINE = '''
import os
import time

import pandas as pd
from sklearn.linear_model import LogisticRegression

import modelcycle as mc


@mc.step
def load(data: str) -> pd.DataFrame:
    files = sorted(f for f in os.listdir(data) if f.endswith(".parquet"))
    return pd.concat([pd.read_parquet(os.path.join(data, f)) for f in files], ignore_index=True)


@mc.step
def split(df: pd.DataFrame) -> dict:
    test = df.sample(frac=0.3, random_state=0)
    return {"train": df.drop(test.index), "test": test}


@mc.step
def train(train: pd.DataFrame, C: float = 1.0):
    if os.environ.get("SLOW_TRAINING"):
        time.sleep(float(os.environ["SLOW_TRAINING"]))
    return LogisticRegression(C=C).fit(train[["a", "b", "c"]], train["y"])


@mc.pipeline
def training(data: str = "data", C: float = 1.0):
    parts = split(load(data))
    model = train(parts["train"], C=C)
    return {"model": model, "train": parts["train"], "test": parts["test"]}
'''


def batch(n: int, seed: int, shift: float = 0.0, flip: bool = False):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"a": rng.normal(shift, 1, n), "b": rng.normal(0, 1, n), "c": rng.normal(shift, 1, n)})
    y = ((df["a"] - shift) + 0.5 * df["b"] + rng.normal(0, 0.5, n) > 0).astype(int)
    df["y"] = 1 - y if flip else y
    return df


def write_project(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pipelines").mkdir(exist_ok=True)
    (root / "pipelines" / "training.py").write_text(PIPELINE)
    (root / "data").mkdir(exist_ok=True)
    (root / "policy.yaml").write_text("thresholds: {roc_auc: '>= 0.7'}\nimprovement: {metric: roc_auc, min_delta: -0.05}\n")
    (root / "modelcycle.yaml").write_text(textwrap.dedent("""\
        name: churn
        pipeline: pipelines/training.py:training
        data: {source: data/}
        model: {name: churn, target: y, policy: policy.yaml}
        serve: {model: churn@champion}
        monitor: {window: 1h, drift: {share: 0.5}, performance: {metric: roc_auc, min: 0.75}}
        triggers:
          - on: new_data
          - on: drift
        """))
    return root


# --- the prediction log of the third measurement ------------------------------------------------
def write_log(home: Path, end: float) -> dict:
    """A day of predictions before ``end`` as the server leaves them (each closed hour's files merged into one), 20 % labelled."""
    import numpy as np
    import pandas as pd

    from modelcycle.store.predictions import append_labels, compact, list_files, model_dir, write_atomic

    t0 = time.perf_counter()
    rng = np.random.default_rng(1)
    start = end - DAY
    offsets = np.sort(rng.uniform(0, DAY, LOG_ROWS))
    x = batch(LOG_ROWS, 7).drop(columns="y")
    y = ((x["a"] + 0.5 * x["b"] + rng.normal(0, 0.5, LOG_ROWS)) > 0).astype(int).to_numpy()
    p1 = 1 / (1 + np.exp(-3.0 * (x["a"] + 0.5 * x["b"]).to_numpy()))  # what the trained model answers, near enough
    ids = np.array([f"5d1e0c9a7b3f42e6a8c1{i:012x}" for i in range(LOG_ROWS)], dtype=object)
    frame = pd.DataFrame({"request_id": ids, "row": np.zeros(LOG_ROWS, dtype=np.int64),
                          "time": pd.to_datetime(start + offsets, unit="s", utc=True),
                          "model": np.full(LOG_ROWS, "churn", dtype=object), "version": np.ones(LOG_ROWS, dtype=np.int64),
                          "role": np.full(LOG_ROWS, "champion", dtype=object), "latency_ms": rng.gamma(2.0, 0.4, LOG_ROWS)})
    frame = pd.concat([frame, x.add_prefix("input.")], axis=1)
    frame["prediction"] = (p1 > 0.5).astype(np.int64)
    frame["proba.0"], frame["proba.1"] = 1 - p1, p1
    log = str(Path(home) / "artifacts")  # the log lives in the artifact store
    folder = model_dir(log, "predictions", "churn")
    bounds = np.searchsorted(offsets, np.arange(0, DAY + LOG_FILE_SECONDS, LOG_FILE_SECONDS))
    files = 0
    for i in range(len(bounds) - 1):
        a, b = bounds[i], bounds[i + 1]
        if a == b:
            continue
        chunk = frame.iloc[a:b]
        written = start + (i + 1) * LOG_FILE_SECONDS + 0.2
        write_atomic(chunk, f"{folder}/date={chunk['time'].iloc[0].strftime('%Y-%m-%d')}", written_ns=int(written * 1e9), root=log)
        files += 1
    for h in range(25):  # the server's writer merges the files written in each closed hour
        compact(log, "predictions", "churn", start + h * HOUR, start + (h + 1) * HOUR)
    labelled = rng.random(LOG_ROWS) < LABEL_SHARE
    append_labels(log, "churn", ids[labelled].tolist(), y[labelled].tolist())
    return {"rows": LOG_ROWS, "written_files": files, "files": len(list_files(log, "predictions", "churn")),
            "labels": int(labelled.sum()), "start": start, "end": end, "seconds": time.perf_counter() - t0}


# --- the agent process --------------------------------------------------------------------------
def cpu_seconds(pid: int) -> float:
    """utime + stime of every thread of ``pid``, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # fields 14 and 15 of proc(5), counted from 3 after the name


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class AgentProcess:
    """``python -m modelcycle agent --interval N`` in ``project`` with its own home; its stdout kept with times."""

    def __init__(self, project: Path, home: Path, interval: float, log: Path):
        env = {k: v for k, v in os.environ.items() if not k.startswith("MODELCYCLE_")}
        env |= {"MODELCYCLE_HOME": str(home), "MODELCYCLE_CAPTURE": "0", "PYTHONUNBUFFERED": "1", "COLUMNS": "200",
                "PYTHONWARNINGS": "ignore"}
        self.interval = interval
        self.stderr = open(log, "a")  # noqa: SIM115  (closed in stop)
        self.proc = subprocess.Popen([sys.executable, "-m", "modelcycle", "agent", "--interval", f"{interval:g}"], cwd=project,
                                     env=env, stdout=subprocess.PIPE, stderr=self.stderr, text=True)
        self.lines: list[tuple[float, str]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:  # type: ignore[union-attr]
            self.lines.append((time.monotonic(), line.rstrip()))

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_line(self, text: str, since: float, timeout: float) -> float | None:
        """When a line containing ``text`` appeared after ``since`` (monotonic), waiting up to ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.alive():
            for t, line in list(self.lines):
                if t >= since and text in line:
                    return t
            time.sleep(0.1)
        return None

    def stop(self) -> int:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)  # the agent stops after its current wait
            try:
                self.proc.wait(timeout=self.interval + 30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(timeout=5)
        self.stderr.close()
        return self.proc.returncode

    def tail(self, log: Path) -> str:
        out = "\n".join(line for _, line in self.lines[-10:])
        err = "\n".join(log.read_text().strip().splitlines()[-15:]) if log.exists() else ""
        return f"{out}\n{err}".strip()


def cycles(home: Path) -> list[dict]:
    import modelcycle as mc

    client = mc.Client(mc.Settings.for_home(home, capture=False))
    try:
        return client.store.cycle_list("churn", 100)
    finally:
        client.close()
        client.store.close()


def wait_cycles_finished(home: Path, agent: AgentProcess, count: int, timeout: float) -> list[dict]:
    """Wait until the store holds ``count`` cycles, all finished."""
    deadline = time.monotonic() + timeout
    found: list[dict] = []
    while time.monotonic() < deadline and agent.alive():
        found = cycles(home)
        if len(found) >= count and all(c.finished for c in found):
            return found
        time.sleep(1.0)
    raise RuntimeError(f"{count} finished cycle(s) expected within {timeout:.0f} s; found "
                       f"{[(c.trigger, c.state) for c in found]}; agent {'running' if agent.alive() else 'exited'}")


def settle(agent: AgentProcess, most: float = 180.0) -> tuple[float, list[float]]:
    """Wait until the agent's CPU use is steady: a period of 2 × interval (at least 4 s) under 5 % of a core,
    or two periods in a row within 25 % of each other. Returns the seconds waited and the periods' shares."""
    period = max(2 * agent.interval, 4.0)
    t0 = time.monotonic()
    shares: list[float] = []
    while time.monotonic() - t0 < most:
        c0, w0 = cpu_seconds(agent.proc.pid), time.monotonic()
        time.sleep(period)
        shares.append(100 * (cpu_seconds(agent.proc.pid) - c0) / (time.monotonic() - w0))
        if shares[-1] < 5 or (len(shares) > 1 and shares[-1] < 50 and abs(shares[-1] - shares[-2]) <= 0.25 * max(shares[-2:])):
            break
    return time.monotonic() - t0, shares


def measure(name: str, project: Path, home: Path, interval: float, duration: float, probe: int, expect_cycles: int,
            log: Path, console) -> dict:
    """One agent process: (its first cycle,) settle, idle for ``duration`` s, then the liveness probe."""
    agent = AgentProcess(project, home, interval, log)
    out: dict = {"name": name, "interval_s": interval, "duration_s": duration}
    try:
        started = time.monotonic()
        if agent.wait_line("checking", started, 120) is None:
            raise RuntimeError(f"{name}: the agent did not start:\n{agent.tail(log)}")
        wait_cycles_finished(home, agent, expect_cycles, 600)
        out["ready_s"] = time.monotonic() - started
        out["settle_s"], out["settle_shares"] = settle(agent)
        console.print(f"[dim]{name}: ready after {out['ready_s']:.0f} s, settled after {out['settle_s']:.0f} s "
                      f"({', '.join(f'{s:.1f}' for s in out['settle_shares'])} % of a core); idling {duration:.0f} s…[/]")
        before_cycles = len(cycles(home))
        c0, w0 = cpu_seconds(agent.proc.pid), time.monotonic()
        time.sleep(duration)
        c1, w1 = cpu_seconds(agent.proc.pid), time.monotonic()
        if not agent.alive():
            raise RuntimeError(f"{name}: the agent exited while idling:\n{agent.tail(log)}")
        out |= {"cpu_s": c1 - c0, "wall_s": w1 - w0, "percent": 100 * (c1 - c0) / (w1 - w0), "rss_mb": rss_mb(agent.proc.pid),
                "checks": (w1 - w0) / interval}
        out["per_check_ms"] = 1e3 * out["cpu_s"] / out["checks"]
        out["cycles_while_idle"] = len(cycles(home)) - before_cycles
        # liveness: new data must start a cycle within one interval (plus slack)
        tmp = project / "data" / f".batch-{probe:03d}.parquet.tmp"  # the agent skips dot-files: it sees the file whole
        batch(200, 100 + probe).to_parquet(tmp)
        t0 = time.monotonic()
        tmp.rename(project / "data" / f"batch-{probe:03d}.parquet")
        fired = agent.wait_line("new_data trigger fired", t0, interval + 30)
        out["reaction_s"] = None if fired is None else fired - t0
        if fired is not None:
            wait_cycles_finished(home, agent, expect_cycles + out["cycles_while_idle"] + 1, 600)
    finally:
        out["returncode"] = agent.stop()
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="20 s per measurement instead of 60")
    p.add_argument("--duration", type=float, help="seconds of idling measured (default 60, 20 with --quick)")
    p.add_argument("--no-log", action="store_true", help="skip the measurement with a day of logged predictions")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (printed)")
    p.add_argument("--json", type=Path, help="write the raw numbers here")
    args = p.parse_args()
    duration = args.duration or (20.0 if args.quick else 60.0)

    from importlib.metadata import version

    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 160)
    versions = {"python": platform.python_version()}
    for name in ("modelcycle", "pandas", "scikit-learn"):
        try:
            versions[name] = version(name)
        except Exception:
            pass
    load = os.getloadavg()
    console.print(f"[bold]agent idle benchmark[/] {versions}, {os.cpu_count()} CPUs, load {load[0]:.2f}, {duration:.0f} s per measurement")
    root = Path(tempfile.mkdtemp(prefix="mc-bench-agent-"))
    project, home, log = write_project(root / "project"), root / "home", root / "agent.stderr"
    batch(600, 0).to_parquet(project / "data" / "batch-000.parquet")
    errors: list[str] = []
    results: list[dict] = []
    log_info: dict | None = None
    started = time.time()
    try:
        plan = [("interval 5 s, no prediction log", 5.0, 1), ("interval 1 s, no prediction log", 1.0, 2)]
        if not args.no_log:
            plan.append(("interval 5 s, a day of predictions logged", 5.0, 3))
        for i, (name, interval, probe) in enumerate(plan):
            if "logged" in name:
                end = time.time() // HOUR * HOUR  # nothing new arrives: the log stops at the start of this hour
                console.print(f"[dim]logging {LOG_ROWS:,} predictions of the day before {time.strftime('%H:%M', time.gmtime(end))} UTC…[/]")
                log_info = write_log(home, end)
                console.print(f"[dim]  {log_info['written_files']:,} files merged hourly into {log_info['files']:,}, "
                              f"{log_info['labels']:,} labels, {log_info['seconds']:.0f} s[/]")
            try:
                r = measure(name, project, home, interval, duration, probe, expect_cycles=i + 1, log=log, console=console)
                results.append(r)
                console.print(f"[dim]{name}: {r['percent']:.2f} % of a core ({r['cpu_s']:.2f} s CPU in {r['wall_s']:.0f} s), "
                              f"reaction to new data {r['reaction_s'] if r['reaction_s'] is None else round(r['reaction_s'], 1)} s[/]")
            except RuntimeError as e:
                errors.append(str(e))
                break  # the next measurement reuses this one's home
    finally:
        if args.keep:
            console.print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)

    table = Table(title=f"modelcycle agent between triggers (new_data + drift), {duration:.0f} s of idling each", title_justify="left",
                  header_style="bold")
    for col in ("agent", "CPU time", "% of one core", "CPU per check", "≈ at the spec's default 60 s", "RSS", "reacts to new data in",
                "cycles while idle"):
        table.add_column(col, justify="left" if col == "agent" else "right")
    for r in results:
        table.add_row(r["name"], f"{r['cpu_s']:.2f} s", f"{r['percent']:.2f} %", f"{r['per_check_ms']:.0f} ms",
                      f"{r['per_check_ms'] / 60e3 * 100:.3f} %", f"{r['rss_mb']:,.0f} MB",
                      "—" if r["reaction_s"] is None else f"{r['reaction_s']:.1f} s", str(r["cycles_while_idle"]))
    caption = "CPU: utime + stime of all the agent's threads (/proc/<pid>/stat); per check: CPU time ÷ (idle time ÷ interval)"
    if log_info:
        caption += (f"; the log: {log_info['rows']:,} predictions over the 24 h before the current hour in {log_info['files']:,} files "
                    f"(hours compacted), {log_info['labels']:,} labels")
    table.caption = caption
    console.print(table)

    for r in results:
        if r["reaction_s"] is None:
            errors.append(f"{r['name']}: the agent did not react to new data within {r['interval_s'] + 30:.0f} s — was it still checking?")
        if r["cycles_while_idle"]:
            errors.append(f"{r['name']}: {r['cycles_while_idle']} cycle(s) started while nothing new arrived")

    def row(r: dict | None, label: str) -> tuple[str, str, str]:
        if r is None:
            return label, "—", "n/a"
        return label, f"{r['percent']:.2f} %", "PASS" if r["percent"] < TARGET else "FAIL"

    by_name = {r["name"]: r for r in results}
    tgts = [row(by_name.get("interval 5 s, no prediction log"), f"idle agent < {TARGET:g} % of a core (interval 5 s, nothing new arrives)")]
    if not args.no_log:
        tgts.append(row(by_name.get("interval 5 s, a day of predictions logged"),
                        f"  same, the served model with a day of logged predictions ({LOG_ROWS:,} rows, 20 % labelled)"))
    print_targets(console, tgts, caption="interval 1 s is shown for scale, not judged")
    end_load = os.getloadavg()
    console.print(f"[dim]took {time.time() - started:.0f} s; load average now {end_load[0]:.2f} / {end_load[1]:.2f} / {end_load[2]:.2f}[/]")
    for e in errors:
        console.print(f"error: {e}", style="red", markup=False, highlight=False)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "versions": versions, "cpus": os.cpu_count(), "load": [load, end_load], "duration_s": duration, "clock_tick": TICK,
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "log": log_info, "results": results, "errors": errors,
            "targets": [dict(zip(("target", "measured", "result"), t, strict=True)) for t in tgts]}, indent=1))
        console.print(f"raw numbers written to {args.json}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
