"""Serving: `modelcycle serve` against `mlflow models serve`, same model, same machine, same load generator, one run.

Run with the benchmark environment (MLflow installed) and ``wrk`` on the PATH (``apt-get install wrk``)::

    .venv-bench/bin/python bench/serving.py                   # 10 s per load, 3 repetitions (~5 min)
    .venv-bench/bin/python bench/serving.py --quick           # 5 s, 1 repetition

The model is scikit-learn's breast-cancer data (30 columns) through a StandardScaler and a
LogisticRegression, saved by each tool its own way. Each server runs with one uvicorn worker on
127.0.0.1; wrk (2 threads, 16 connections) posts the same body to each server's ``/invocations``
(MLflow's ``dataframe_split``): one row, then 1,000 rows. modelcycle runs twice, with the
prediction log on (the default) and off (``--no-log``), to price the log. The table shows medians
over repetitions (servers restarted each time). Last, each server gets a row with a null value:
the answers are printed side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _report import print_targets  # bench/ is on the path when a benchmark runs as a script

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
LUA = """wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = io.open("{body}"):read("*a")
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen, path: str, timeout: float = 90) -> None:
    import urllib.request

    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stderr.read()[-2000:] if proc.stderr else ''}")
        try:
            with urllib.request.urlopen(url + path, timeout=1) as r:
                if r.status == 200:
                    return
        except Exception:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not become ready")


def prepare(work: Path) -> dict:
    """Train the model; save it for MLflow and register it for modelcycle; write the request bodies."""
    import warnings

    warnings.filterwarnings("ignore")
    import mlflow.sklearn
    import numpy as np
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    import modelcycle as mc

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X.columns = [c.replace(" ", "_") for c in X.columns]
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(X, y)
    mlflow.sklearn.save_model(model, str(work / "mlflow-model"), input_example=X.head(2))
    client = mc.Client(mc.Settings.for_home(work / "home", capture=False))
    with client.start_run(experiment="bench"):
        logged = client.log_model(model, reference_data=X)
    from modelcycle.registry import Registry

    registry = Registry(client)
    registry.register_model(logged, "bc")
    registry.set_alias("bc", "champion", 1)
    client.close()
    rng = np.random.default_rng(0)
    big = X.sample(1000, replace=True, random_state=0).reset_index(drop=True)
    bodies = {"one": {"dataframe_split": X.head(1).to_dict("split")}, "thousand": {"dataframe_split": big.to_dict("split")}}
    for name, body in bodies.items():
        body["dataframe_split"].pop("index", None)
        (work / f"{name}.json").write_text(json.dumps(body))
        (work / f"{name}.lua").write_text(LUA.format(body=work / f"{name}.json"))
    null_row = X.head(1).copy().astype(object)
    null_row.iloc[0, 3] = None
    split = null_row.to_dict("split")
    split.pop("index", None)
    (work / "null.json").write_text(json.dumps({"dataframe_split": split}))
    del rng
    return {"columns": X.shape[1]}


def start(tool: str, work: Path, log: bool = True) -> tuple[subprocess.Popen, str]:
    port = free_port()
    bindir = Path(sys.executable).parent
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELCYCLE_")} | {
        "MODELCYCLE_HOME": str(work / "home"), "MODELCYCLE_CAPTURE": "0",
        "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"}  # mlflow starts `uvicorn` from the PATH
    if tool == "mlflow":  # its tracking store in the temporary folder too, though serving logs nothing there
        env["MLFLOW_TRACKING_URI"] = f"sqlite:///{work}/mlflow.db"
        cmd = [str(bindir / "mlflow"), "models", "serve", "-m", str(work / "mlflow-model"), "--env-manager", "local", "-h", "127.0.0.1",
               "-p", str(port), "-w", "1"]
        path = "/ping"
    else:
        cmd = [sys.executable, "-m", "modelcycle", "serve", "models:/bc@champion", "--port", str(port), *([] if log else ["--no-log"])]
        path = "/v2/health/ready"
    proc = subprocess.Popen(cmd, env=env, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, proc, path)
    return proc, url


def stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    except Exception:
        os.killpg(proc.pid, signal.SIGKILL)


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    if not m:
        return float("nan")
    value, unit = float(m.group(1)), m.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def wrk(url: str, script: Path, seconds: int, connections: int = 16) -> dict:
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url + "/invocations"],
                         capture_output=True, text=True, timeout=seconds + 60).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = {p: _ms(v) for p, v in re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M)}
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    return {"rps": rps, "p50_ms": lat.get("50"), "p99_ms": lat.get("99"), "non2xx": int(non2xx.group(1)) if non2xx else 0,
            "socket_errors": errors.group(0) if errors else None}


def null_answer(url: str, work: Path) -> tuple[int, str]:
    import urllib.error
    import urllib.request

    req = urllib.request.Request(url + "/invocations", data=(work / "null.json").read_bytes(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read().decode()[:400]
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()[:400]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--seconds", type=int)
    p.add_argument("--repeats", type=int)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    from importlib.metadata import version

    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 150)
    if shutil.which("wrk") is None:
        console.print("wrk is not installed: apt-get install wrk")
        return 2
    try:
        import mlflow  # noqa: F401
    except ImportError:
        console.print("MLflow is not installed here: run with .venv-bench/bin/python (make bench creates it)")
        return 2
    seconds = args.seconds or (5 if args.quick else 10)
    repeats = args.repeats or (1 if args.quick else 3)
    versions = {n: version(n) for n in ("modelcycle", "mlflow", "scikit-learn", "fastapi", "uvicorn")}
    versions["python"] = platform.python_version()
    console.print(f"[bold]serving benchmark[/] {versions}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}, "
                  f"wrk 2 threads × 16 connections, {seconds} s per load, {repeats} repetitions")
    samples: dict[str, list[dict]] = {}
    answers: dict[str, tuple[int, str]] = {}
    with tempfile.TemporaryDirectory(prefix="mc-bench-serving-") as tmp:
        work = Path(tmp)
        prepare(work)
        for rep in range(repeats):
            order = [("mlflow", True), ("modelcycle", True), ("modelcycle-nolog", False)]
            if rep % 2:  # log on and off take turns going first, so neither always follows MLflow's run
                order[1], order[2] = order[2], order[1]
            for tool, log in order:
                proc, url = start("mlflow" if tool == "mlflow" else "modelcycle", work, log)
                try:
                    wrk(url, work / "one.lua", 2)  # warm-up
                    one = wrk(url, work / "one.lua", seconds)
                    thousand = wrk(url, work / "thousand.lua", seconds)
                    if rep == 0 and tool != "modelcycle-nolog":
                        answers[tool] = null_answer(url, work)
                finally:
                    stop(proc)
                samples.setdefault(tool, []).append({"one": one, "thousand": thousand})
                console.print(f"[dim]rep {rep + 1}/{repeats} {tool}: 1 row {one['rps']:.0f} req/s p99 {one['p99_ms']:.1f} ms; "
                              f"1,000 rows {thousand['rps']:.1f} req/s[/]")

    def med(tool: str, load: str, key: str) -> float:
        return statistics.median(s[load][key] for s in samples[tool])

    table = Table(title="one uvicorn worker each, same model and load generator (medians)", header_style="bold")
    for col in ("server", "1 row: req/s", "p50", "p99", "1,000 rows: req/s", "rows/s", "non-2xx"):
        table.add_column(col, justify="left" if col == "server" else "right")
    for tool in samples:
        table.add_row(tool, f"{med(tool, 'one', 'rps'):,.0f}", f"{med(tool, 'one', 'p50_ms'):.1f} ms", f"{med(tool, 'one', 'p99_ms'):.1f} ms",
                      f"{med(tool, 'thousand', 'rps'):,.1f}", f"{med(tool, 'thousand', 'rps') * 1000:,.0f}",
                      str(sum(s["one"]["non2xx"] + s["thousand"]["non2xx"] for s in samples[tool])))
    console.print(table)
    for tool, (status, body) in answers.items():
        console.print(f"[bold]{tool}[/] answers a null value with {status}: {body}", markup=True, highlight=False)
    rps, ml_rps = med("modelcycle", "one", "rps"), med("mlflow", "one", "rps")
    p99, ml_p99 = med("modelcycle", "one", "p99_ms"), med("mlflow", "one", "p99_ms")
    rows, ml_rows = med("modelcycle", "thousand", "rps"), med("mlflow", "thousand", "rps")
    nolog = med("modelcycle-nolog", "one", "rps")
    # the log's price from paired repetitions (log on and off run back to back, so they share the machine's mood)
    cost = {load: statistics.median(1 - a[load]["rps"] / b[load]["rps"] for a, b in zip(samples["modelcycle"], samples["modelcycle-nolog"],
                                                                                       strict=True)) for load in ("one", "thousand")}

    def check(ok: bool) -> str:
        return "PASS" if ok else "FAIL"

    tgts = [
        ("single-row requests/s ≥ 3x MLflow's", f"{rps / ml_rps:.2f}x ({rps:,.0f} vs {ml_rps:,.0f})", check(rps >= 3 * ml_rps)),
        ("single-row p99 ≤ 1/3 of MLflow's", f"{p99:.1f} vs {ml_p99:.1f} ms", check(p99 * 3 <= ml_p99)),
        ("1,000-row rows/s ≥ 2x MLflow's", f"{rows / ml_rows:.2f}x", check(rows >= 2 * ml_rows)),
        ("prediction log costs < 10% of throughput (median of paired repetitions)",
         f"1 row {cost['one'] * 100:.1f}%, 1,000 rows {cost['thousand'] * 100:.1f}% (medians {rps:,.0f} vs {nolog:,.0f} req/s)",
         check(max(cost.values()) < 0.10)),
    ]
    print_targets(console, tgts)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"versions": versions, "samples": samples, "answers": answers,
                                         "targets": [dict(zip(("target", "measured", "result"), t, strict=True)) for t in tgts]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
