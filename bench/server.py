"""The team server: ``modelcycle server`` against ``mlflow server``, side by side on this machine, in one run.

Set-up (once), from the repository root; the ``bench`` extra brings MLflow::

    python3 -m venv .venv-bench && .venv-bench/bin/pip install -e '.[bench]'
    .venv-bench/bin/python bench/server.py                  # full sizes (a 1 GB artifact), ~15 min
    .venv-bench/bin/python bench/server.py --quick          # small sizes, a few minutes
    .venv-bench/bin/python bench/server.py --parts search,artifacts --json out.json

Both servers run as their own command on 127.0.0.1, one worker process each, over a SQLite store and a local
artifact folder; MLflow proxies artifacts (``--serve-artifacts``, its default), as modelcycle always does. modelcycle
is called with a user's token (its roles are checked on every call); MLflow without authentication. Every client is a
fresh process outside any git repository, with modelcycle's reproducibility capture off (MLflow has no git commit to
record there either). Workloads, each tool in turn, repeated (``--repeats``, default 3) and interleaved; medians:

- ``log_metric``: N per-call ``log_metric`` in one run, timed from the first call to the end of the run (modelcycle
  buffers and sends batches; MLflow sends one request per call).
- ``runs``: R runs with 10 params, 5 metrics and 3 tags each, through the fluent API, timed to the last run's end.
- ``search``: ``search_runs`` of 100 rows with params, metrics and tags (``metrics.m0 > 0.5`` by ``metrics.m0 DESC``)
  over 10,000 runs; both stores filled before their server starts (modelcycle's by its own client, MLflow's copied
  from ``bench/tracking.py``'s cache); the first call in the process, then the median of the warm calls.
- ``artifacts``: one file of 1 GB (200 MB with ``--quick``) uploaded into a run, then downloaded, against a fresh
  server each time; MB/s of the median times, and the server's largest peak resident memory above its idle size (its
  process tree, sampled every 50 ms).
- ``concurrent``: 16 client processes at once against the modelcycle server, each one run with 2,000 metrics and
  10 params; then every value is counted on the server (nothing lost, no error).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path
from typing import Any

from _report import print_targets

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
MARK = "BENCH-RESULT "
EXPERIMENT = "bench"
FULL = {"mc_metric": 20_000, "mlflow_metric": 500, "mc_runs": 500, "mlflow_runs": 100, "search_runs": 10_000,
        "searches": 20, "artifact_mb": 1024, "clients": 16, "client_metrics": 2_000}
QUICK = {"mc_metric": 5_000, "mlflow_metric": 100, "mc_runs": 100, "mlflow_runs": 30, "search_runs": 1_000,
         "searches": 5, "artifact_mb": 200, "clients": 8, "client_metrics": 500}
PARTS = ("log_metric", "runs", "search", "artifacts", "concurrent")


# --- worker side: a client in a fresh process, prints one MARK line -------------------------------------------------
def _client(tool: str, url: str) -> Any:
    if tool == "modelcycle":
        import modelcycle

        return modelcycle
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    import mlflow

    mlflow.set_tracking_uri(url)
    mlflow.set_experiment(EXPERIMENT)
    return mlflow


def worker(spec: dict) -> dict:
    tool, url, n, job = spec["tool"], spec["url"], spec["n"], spec["job"]
    sys.path.insert(0, str(HERE))
    from tracking import FILTER, LIMIT, ORDER, payload

    t0 = time.perf_counter()
    lib = _client(tool, url)
    mc = tool == "modelcycle"
    if job == "log_metric":
        t0 = time.perf_counter()
        if mc:
            with lib.start_run(experiment=EXPERIMENT):
                for i in range(n):
                    lib.log_metric("loss", i * 1e-3, step=i)
        else:
            with lib.start_run():
                for i in range(n):
                    lib.log_metric("loss", i * 1e-3, step=i)
        return {"seconds": time.perf_counter() - t0}
    if job == "runs":
        t0 = time.perf_counter()
        for i in range(n):
            params, metrics, tags = payload(i)
            with lib.start_run(**({"experiment": EXPERIMENT} if mc else {})):
                lib.log_params(params)
                lib.log_metrics(metrics)
                lib.set_tags(tags)
        if mc:
            lib.get_client().flush()
        return {"seconds": time.perf_counter() - t0}
    if job == "search":
        def search() -> Any:
            if mc:
                return lib.search_runs(experiment=EXPERIMENT, filter=FILTER, order_by=ORDER, limit=LIMIT)
            return lib.search_runs(experiment_names=[EXPERIMENT], filter_string=FILTER, order_by=ORDER, max_results=LIMIT)

        first = search()
        first_s = time.perf_counter() - t0
        times = []
        for _ in range(n):
            t = time.perf_counter()
            frame = search()
            times.append(time.perf_counter() - t)
        cols = [c for c in frame.columns if c.startswith(("params.", "metrics.", "tags."))]
        return {"seconds": statistics.median(times), "first": first_s, "rows": len(first), "columns": len(cols)}
    if job == "artifacts":
        path, dst = Path(spec["file"]), Path(spec["dst"])
        t0 = time.perf_counter()
        if mc:
            with lib.start_run(experiment=EXPERIMENT) as run:
                lib.log_artifact(path)
            lib.get_client().flush()
            run_id = run.id
        else:
            with lib.start_run() as run:
                lib.log_artifact(str(path))
            run_id = run.info.run_id
        up = time.perf_counter() - t0
        t0 = time.perf_counter()
        if mc:
            got = lib.get_client().download_artifacts(run_id, path.name, dst)
        else:
            got = lib.artifacts.download_artifacts(run_id=run_id, artifact_path=path.name, dst_path=str(dst))
        down = time.perf_counter() - t0
        same = Path(got).stat().st_size == path.stat().st_size
        return {"seconds": up, "up": up, "down": down, "same_size": same}
    if job == "concurrent":
        with lib.start_run(experiment=EXPERIMENT) as run:
            lib.log_params({f"p{j}": j for j in range(10)})
            for i in range(n):
                lib.log_metric("loss", i * 1e-3, step=i)
        lib.get_client().flush()
        return {"seconds": time.perf_counter() - t0, "run": run.id}
    raise SystemExit(f"unknown job {job}")


# --- orchestrator side ---------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MODELCYCLE_", "MLFLOW_"))}
    return env | {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true", "PYTHONWARNINGS": "ignore",
                  "GIT_PYTHON_REFRESH": "quiet", "MLFLOW_LOGGING_LEVEL": "ERROR", "MODELCYCLE_CAPTURE": "0"} | (extra or {})


class Server:
    """One server process (and its children), its URL, the token clients use, and its memory sampled on demand."""

    def __init__(self, tool: str, home: Path) -> None:
        self.tool, self.home = tool, home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token: str | None = None
        home.mkdir(parents=True, exist_ok=True)
        if tool == "modelcycle":
            env = child_env({"MODELCYCLE_HOME": str(home)})
            out = subprocess.run([sys.executable, "-m", "modelcycle", "server", "users", "add", "bench",
                                  "--grant", "experiment:*=manage", "--grant", "model:*=manage", "--json"],
                                 env=env, capture_output=True, text=True, check=True)
            self.token = json.loads(out.stdout)["token"]
            cmd = [sys.executable, "-m", "modelcycle", "server", "--port", str(self.port)]
            health = "/api/v1/health"
        else:
            env = child_env()
            cmd = [str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(self.port),
                   "--workers", "1", "--backend-store-uri", f"sqlite:///{home}/mlflow.db",
                   "--artifacts-destination", str(home / "artifacts")]
            health = "/health"
        self.log = open(home / "server.log", "w")  # noqa: SIM115  # closed in stop()
        self.proc = subprocess.Popen(cmd, env=env, cwd=home, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        end = time.monotonic() + 180
        while True:
            try:
                if urllib.request.urlopen(self.url + health, timeout=5).status == 200:
                    break
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > end:
                raise RuntimeError(f"{tool} server did not start: {(home / 'server.log').read_text()[-2000:]}")
            time.sleep(0.2)

    def client_env(self, home: Path) -> dict[str, str]:
        if self.tool == "modelcycle":
            return child_env({"MODELCYCLE_TRACKING_URI": self.url, "MODELCYCLE_TRACKING_TOKEN": self.token or "",
                              "MODELCYCLE_HOME": str(home)})
        return child_env()

    def rss(self) -> int:
        import psutil

        try:
            root = psutil.Process(self.proc.pid)
            return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])
        except psutil.Error:
            return 0

    def stop(self) -> None:
        import signal

        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=60)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=60)
        self.log.close()


@contextmanager
def serving(tool: str, home: Path) -> Any:
    s = Server(tool, home)
    try:
        yield s
    finally:
        s.stop()


def run_client(server: Server, job: str, n: int, cwd: Path, **more: Any) -> dict:
    cwd.mkdir(parents=True, exist_ok=True)
    spec = json.dumps({"tool": server.tool, "url": server.url, "n": n, "job": job, **more})
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", spec], cwd=cwd,
                          env=server.client_env(cwd), capture_output=True, text=True)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(MARK):
            return json.loads(line[len(MARK):])
    raise RuntimeError(f"{server.tool} {job} exited {proc.returncode}: {proc.stderr.strip()[-1500:]}")


def timed(args: Any, sizes: dict, job: str, tmp: Path) -> dict:
    """Both tools, each against its own fresh server, ``args.repeats`` times interleaved; medians."""
    out: dict[str, list[dict]] = {"modelcycle": [], "mlflow": []}
    n = {"modelcycle": sizes[f"mc_{'metric' if job == 'log_metric' else 'runs'}"],
         "mlflow": sizes[f"mlflow_{'metric' if job == 'log_metric' else 'runs'}"]}
    for r in range(args.repeats):
        for tool in out:
            with serving(tool, tmp / f"{job}-{tool}-{r}" / "server") as s:
                out[tool].append(run_client(s, job, n[tool], tmp / f"{job}-{tool}-{r}" / "client"))
    rows = {}
    for tool, got in out.items():
        med = statistics.median(g["seconds"] for g in got)
        rows[tool] = {"n": n[tool], "median_s": med, "rate": n[tool] / med, "samples": [g["seconds"] for g in got]}
    return rows


def search_part(args: Any, sizes: dict, tmp: Path, console: Any) -> dict:
    sys.path.insert(0, str(HERE))
    import tracking

    n = sizes["search_runs"]
    mc_home = tmp / "search-modelcycle" / "server"
    mc_home.mkdir(parents=True)
    t0 = time.perf_counter()
    fill = (f"import os, sys; sys.path.insert(0, {str(HERE)!r}); import modelcycle as mc; from tracking import payload\n"
            f"for i in range({n}):\n    p, m, t = payload(i)\n"
            f"    with mc.start_run(experiment={EXPERIMENT!r}):\n        mc.log_params(p); mc.log_metrics(m); mc.set_tags(t)\n"
            "mc.get_client().close()\n")
    subprocess.run([sys.executable, "-c", fill], env=child_env({"MODELCYCLE_HOME": str(mc_home)}), cwd=mc_home, check=True)
    console.print(f"[dim]modelcycle's store: {n:,} runs in {time.perf_counter() - t0:.0f} s[/]")
    ml_tmp = tmp / "search-mlflow"
    ml_home, info = tracking.mlflow_store(ml_tmp, n, console)  # a SQLite file: ml_home / "mlflow.db"
    out: dict[str, list[dict]] = {"modelcycle": [], "mlflow": []}
    with serving("modelcycle", mc_home) as mc_server, serving("mlflow", ml_home) as ml_server:
        for r in range(args.repeats):
            for server in (mc_server, ml_server):
                out[server.tool].append(run_client(server, "search", sizes["searches"], tmp / f"search-client-{server.tool}-{r}"))
    rows = {}
    for tool, got in out.items():
        rows[tool] = {"median_ms": statistics.median(g["seconds"] for g in got) * 1e3,
                      "first_ms": statistics.median(g["first"] for g in got) * 1e3,
                      "rows": got[-1]["rows"], "columns": got[-1]["columns"], "runs": n, **({"mlflow_store": info} if tool == "mlflow" else {})}
    return rows


def artifacts_part(args: Any, sizes: dict, tmp: Path) -> dict:
    mb = sizes["artifact_mb"]
    big = tmp / "artifact" / f"data-{mb}mb.bin"
    big.parent.mkdir(parents=True)
    with open(big, "wb") as f:
        block = os.urandom(1 << 20)
        for i in range(mb):
            f.write(block[:-8] + i.to_bytes(8, "little"))  # every MiB different, cheap to make
    runs: dict[str, list[dict]] = {"modelcycle": [], "mlflow": []}
    for r in range(args.repeats):
        for tool in runs:
            where = tmp / f"artifacts-{tool}-{r}"
            with serving(tool, where / "server") as s:
                idle = s.rss()
                peak = [idle]
                stop = threading.Event()

                def sample(server: Server = s, highest: list[int] = peak, stop: threading.Event = stop) -> None:
                    while not stop.wait(0.05):
                        highest[0] = max(highest[0], server.rss())

                t = threading.Thread(target=sample, daemon=True)
                t.start()
                try:
                    got = run_client(s, "artifacts", 0, where / "client", file=str(big), dst=str(where / "down"))
                finally:
                    stop.set()
                    t.join()
            runs[tool].append({**got, "idle": idle, "peak": peak[0]})
            shutil.rmtree(where, ignore_errors=True)
    big.unlink()
    rows = {}
    for tool, got in runs.items():
        idle = statistics.median(g["idle"] for g in got)
        peak = max(g["peak"] for g in got)
        rows[tool] = {"mb": mb, "up_mb_s": mb / statistics.median(g["up"] for g in got),
                      "down_mb_s": mb / statistics.median(g["down"] for g in got),
                      "same_size": all(g["same_size"] for g in got), "idle_rss_mb": idle / 2**20,
                      "peak_rss_mb": peak / 2**20, "growth_mb": max(g["peak"] - g["idle"] for g in got) / 2**20,
                      "up_samples_s": [g["up"] for g in got], "down_samples_s": [g["down"] for g in got]}
    return rows


def concurrent_part(args: Any, sizes: dict, tmp: Path) -> dict:
    k, n = sizes["clients"], sizes["client_metrics"]
    with serving("modelcycle", tmp / "concurrent" / "server") as s:
        spec = {"tool": "modelcycle", "url": s.url, "n": n, "job": "concurrent"}
        t0 = time.perf_counter()
        procs = []
        for i in range(k):
            cwd = tmp / "concurrent" / f"client-{i}"
            cwd.mkdir(parents=True)
            procs.append(subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)],
                                          cwd=cwd, env=s.client_env(cwd), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                          text=True))
        results, errors = [], []
        for p in procs:
            out, err = p.communicate(timeout=1800)
            line = next((x for x in reversed(out.splitlines()) if x.startswith(MARK)), None)
            if p.returncode != 0 or line is None:
                errors.append(err.strip()[-500:])
            else:
                results.append(json.loads(line[len(MARK):]))
        seconds = time.perf_counter() - t0
        os.environ.update(s.client_env(tmp / "concurrent" / "check"))
        from modelcycle.settings import Settings
        from modelcycle.tracking.client import Client

        c = Client(Settings.from_env())
        counted = sum(len(c.get_metric_history(r["run"], "loss")) for r in results)
        params = sum(len(c.get_run(r["run"]).params) for r in results)
        c.close()
    return {"clients": k, "metrics_each": n, "seconds": seconds, "errors": errors, "metrics_counted": counted,
            "metrics_sent": k * n, "params_counted": params, "params_sent": k * 10,
            "values_per_s": k * n / seconds}


def show(console: Any, title: str, columns: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for col in columns:
        table.add_column(col, justify="right")
    for row in rows:
        table.add_row(*row)
    console.print(table)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--repeats", type=int)
    p.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated among {', '.join(PARTS)}")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    if args.worker:
        print(MARK + json.dumps(worker(json.loads(args.worker))), flush=True)
        return 0
    from rich.console import Console

    console = Console()
    sizes = QUICK if args.quick else FULL
    args.repeats = args.repeats or (1 if args.quick else 3)
    parts = [x.strip() for x in args.parts.split(",") if x.strip()]
    console.print(f"server benchmark {{'modelcycle': {version('modelcycle')!r}, 'mlflow': {version('mlflow')!r}}}, "
                  f"{os.cpu_count()} CPUs, repeats={args.repeats}")
    res: dict[str, Any] = {"sizes": sizes, "repeats": args.repeats}
    targets: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="mc-bench-server-") as t:
        tmp = Path(t)
        for job, goal, what in (("log_metric", 100, "per-call log_metric from a client"),
                                ("runs", 20, "run creation (10 params, 5 metrics, 3 tags) from a client")):
            if job not in parts:
                continue
            console.print(f"[dim]{job} ...[/]")
            rows = res[job] = timed(args, sizes, job, tmp)
            show(console, job, ("tool", "n", "median", "rate/s"),
                 [(tool, f"{r['n']:,}", f"{r['median_s']:.2f} s", f"{r['rate']:,.0f}") for tool, r in rows.items()])
            ratio = rows["modelcycle"]["rate"] / rows["mlflow"]["rate"]
            targets.append((f"{what}: ≥ {goal}x MLflow's client against its server", f"{ratio:,.0f}x",
                            "PASS" if ratio >= goal else "FAIL"))
        if "search" in parts:
            console.print("[dim]search ...[/]")
            rows = res["search"] = search_part(args, sizes, tmp, console)
            show(console, f"search_runs → DataFrame of 100 runs, {sizes['search_runs']:,} runs in the store",
                 ("tool", "median (warm)", "first call in the process", "rows; columns"),
                 [(tool, f"{r['median_ms']:,.1f} ms", f"{r['first_ms']:,.0f} ms", f"{r['rows']}; {r['columns']}")
                  for tool, r in rows.items()])
            ratio = rows["mlflow"]["median_ms"] / rows["modelcycle"]["median_ms"]
            targets.append((f"search_runs at {sizes['search_runs']:,} runs through the server: ≥ 20x MLflow",
                            f"{ratio:,.0f}x", "PASS" if ratio >= 20 else "FAIL"))
        if "artifacts" in parts:
            console.print(f"[dim]artifacts: {sizes['artifact_mb']:,} MB ...[/]")
            rows = res["artifacts"] = artifacts_part(args, sizes, tmp)
            show(console, f"one {sizes['artifact_mb']:,} MB artifact, up then down",
                 ("tool", "upload", "download", "server idle", "server peak", "growth", "same size"),
                 [(tool, f"{r['up_mb_s']:,.0f} MB/s", f"{r['down_mb_s']:,.0f} MB/s", f"{r['idle_rss_mb']:,.0f} MB",
                   f"{r['peak_rss_mb']:,.0f} MB", f"{r['growth_mb']:,.0f} MB", str(r["same_size"])) for tool, r in rows.items()])
            mc, ml = rows["modelcycle"], rows["mlflow"]
            targets.append(("artifact upload ≥ MLflow's MB/s", f"{mc['up_mb_s']:,.0f} vs {ml['up_mb_s']:,.0f}",
                            "PASS" if mc["up_mb_s"] >= ml["up_mb_s"] else "FAIL"))
            targets.append(("artifact download ≥ MLflow's MB/s", f"{mc['down_mb_s']:,.0f} vs {ml['down_mb_s']:,.0f}",
                            "PASS" if mc["down_mb_s"] >= ml["down_mb_s"] else "FAIL"))
            flat = mc["growth_mb"] < 0.1 * sizes["artifact_mb"]
            targets.append(("server memory flat during the transfer (growth < 10% of the file)",
                            f"+{mc['growth_mb']:,.0f} MB", "PASS" if flat else "FAIL"))
        if "concurrent" in parts:
            console.print(f"[dim]{sizes['clients']} clients at once ...[/]")
            r = res["concurrent"] = concurrent_part(args, sizes, tmp)
            console.print(f"{r['clients']} client processes × {r['metrics_each']:,} metrics + 10 params: "
                          f"{r['seconds']:.1f} s, {r['values_per_s']:,.0f} metrics/s; counted {r['metrics_counted']:,} of "
                          f"{r['metrics_sent']:,} metrics and {r['params_counted']} of {r['params_sent']} params; "
                          f"{len(r['errors'])} error(s) {r['errors'][:2]}")
            ok = not r["errors"] and r["metrics_counted"] == r["metrics_sent"] and r["params_counted"] == r["params_sent"]
            targets.append((f"{r['clients']} client processes logging at once: no error, nothing lost",
                            f"{r['metrics_counted']:,}/{r['metrics_sent']:,}", "PASS" if ok else "FAIL"))
    print_targets(console, targets, caption="modelcycle with a user's token (roles checked); MLflow without auth; "
                                            "one server worker each; SQLite; artifacts proxied by both")
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
