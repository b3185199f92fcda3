"""Team mode: what an object store and PostgreSQL cost, measured on real servers on this machine.

Run with the benchmark environment (``make bench`` installs it; moto, s3fs and psycopg come with it)::

    .venv-bench/bin/python bench/team.py                 # everything (~10 min; the PostgreSQL part needs a server)
    MODELCYCLE_BENCH_POSTGRES_URI=postgresql+psycopg://user:pw@127.0.0.1:5432/postgres .venv-bench/bin/python bench/team.py
    .venv-bench/bin/python bench/team.py --parts requests,monitor --rows 200000

An S3-compatible server (moto's, from PyPI) is started on 127.0.0.1 for the run, a process of its own.

- ``requests``: every request s3fs sends is counted (botocore's ``before-send`` event) while a run logs one
  new small artifact, and while ``log_model`` logs a scikit-learn pipeline with its reference data (the
  package's files). Targets: ≤ 3 requests for the artifact, ≤ 10 for a ``log_model`` of 5 files.
- ``postgres``: the tracking workload of ``bench/tracking.py`` (runs with 10 params, 5 metrics, 3 tags,
  capture off) populating 10,000 runs, once in SQLite and once in PostgreSQL (a fresh database on the
  server ``MODELCYCLE_BENCH_POSTGRES_URI`` names, dropped afterwards), then 30 warm ``search_runs``
  (``metrics.m0 > 0.5``, ordered by it, 100 rows to a DataFrame) in each of ``--repeats`` fresh processes per store,
  the stores taking turns; a store's figure is the median of its processes' medians. Targets: PostgreSQL ≥ 200
  runs/s, and its search within 2x SQLite's.
- ``monitor``: a day of predictions (``--rows``, default 1,000,000; one row per request, 10 inputs, the
  last four hours drifted, 20 % labelled in four batches) logged by two replicas into the bucket as the
  server's writers leave a past day — each replica's hours merged into one file per hour, under its
  writer name — then ``mc.monitor(window="1h")`` over the day in a fresh process on a laptop's empty
  store (``first``), then again in that process (``again``: the windows read back, as a notebook or a dashboard
  calls it), and again in another fresh process (shown beside it: that one also makes the S3 client anew). The
  answer is checked: 24 windows with every row of both replicas and every label. Targets: first < 10 s, again
  < 0.5 s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

from _report import MARK, print_targets, run_worker  # bench/ is on the path when a benchmark runs as a script

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DAY, HOUR = 86_400, 3_600
S3_ENV = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench-secret", "AWS_DEFAULT_REGION": "us-east-1"}
FILTER, ORDER = "metrics.m0 > 0.5", ["metrics.m0 DESC"]
INPUTS = [f"x{i}" for i in range(10)]


# --- worker side ------------------------------------------------------------------------------------
def _settings(spec: dict):
    from modelcycle.settings import Settings

    return Settings.for_home(spec["home"], capture=False).replace(
        store_uri=spec.get("store") or f"sqlite:///{Path(spec['home']) / 'modelcycle.db'}",
        artifact_uri=spec.get("artifacts") or str(Path(spec["home"]) / "artifacts"))


def work_requests(spec: dict) -> dict:
    import numpy as np
    import pandas as pd
    from fsspec.asyn import sync
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from modelcycle.store import open_artifact_store
    from modelcycle.tracking.client import Client

    settings = _settings(spec)
    fs = open_artifact_store(settings.artifact_uri).fs
    sync(fs.loop, fs.set_session)
    calls: list[str] = []
    fs.s3.meta.events.register("before-send.s3", lambda request, **_: calls.append(request.method))
    client = Client(settings)
    note = Path(spec["home"]) / "note.txt"
    note.parent.mkdir(parents=True, exist_ok=True)
    note.write_text(f"a note {uuid.uuid4().hex}")
    X = pd.DataFrame(np.random.default_rng(0).normal(size=(2000, 10)), columns=INPUTS)
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, (X["x0"] > 0).astype(int))
    with client.start_run(experiment="bench-team") as run:
        calls.clear()
        t0 = time.perf_counter()
        run.log_artifact(note)
        artifact = (len(calls), list(calls), time.perf_counter() - t0)
        calls.clear()
        t0 = time.perf_counter()
        client.log_model(model, reference_data=X)
        model_calls = (len(calls), sorted(set(calls)), time.perf_counter() - t0)
    files = [a for a in client.get_run(run.id).artifacts if a.path.startswith("model/")]
    client.close()
    return {"artifact_requests": artifact[0], "artifact_methods": artifact[1], "artifact_s": artifact[2],
            "model_requests": model_calls[0], "model_methods": model_calls[1], "model_s": model_calls[2], "model_files": len(files)}


def work_populate(spec: dict) -> dict:
    import random

    from modelcycle.tracking.client import Client

    client = Client(_settings(spec))
    rnd = random.Random(0)
    with client.start_run(experiment="bench"):
        pass
    t0 = time.perf_counter()
    for _ in range(spec["runs"]):
        with client.start_run(experiment="bench") as run:
            run.log_params({f"p{j}": rnd.random() for j in range(10)})
            run.log_metrics({f"m{j}": rnd.random() for j in range(5)})
            run.set_tags({f"t{j}": "x" for j in range(3)})
    client.flush()
    seconds = time.perf_counter() - t0
    client.close()
    return {"runs": spec["runs"], "seconds": seconds, "rate": spec["runs"] / seconds}


def work_search(spec: dict) -> dict:
    """A fresh process opens the populated store and searches it: one warm-up, then the median of ``searches``."""
    from modelcycle.tracking.client import Client

    client = Client(_settings(spec))
    client.search_runs("bench", FILTER, ORDER, 100)  # warm
    times = []
    for _ in range(spec["searches"]):
        t0 = time.perf_counter()
        frame = client.search_runs("bench", FILTER, ORDER, 100)
        times.append(time.perf_counter() - t0)
    client.close()
    return {"search_ms": statistics.median(times) * 1000, "rows": len(frame), "columns": len(frame.columns)}


def work_generate(spec: dict) -> dict:
    """Register the model, then write two replicas' day of log (hourly merged files, each under its writer name)
    and the labels into the bucket."""
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from modelcycle.registry import Registry
    from modelcycle.store.predictions import append_labels, model_dir, parquet_bytes
    from modelcycle.tracking.client import Client

    settings = _settings(spec)
    client = Client(settings)
    rng = np.random.default_rng(0)
    rows, day_start = spec["rows"], spec["day_start"]
    means, sds = rng.uniform(-2, 2, 10), rng.uniform(0.5, 3, 10)
    weights = rng.normal(0, 1, 10)
    z_ref = rng.normal(0, 1, (20_000, 10))
    reference = pd.DataFrame(means + sds * z_ref, columns=INPUTS)
    model = LogisticRegression(max_iter=1000).fit(reference, (z_ref @ weights > 0).astype(int))
    with client.start_run(experiment="bench-team"):
        logged = client.log_model(model, reference_data=reference)
    registry = Registry(client)
    registry.register_model(logged, "churn")
    registry.set_alias("churn", "champion", 1)
    offsets = np.sort(rng.uniform(0, DAY, rows))
    hours = (offsets // HOUR).astype(int)
    drifted = hours >= 20
    z = rng.normal(0, 1, (rows, 10))
    inputs = pd.DataFrame(means + sds * (z + np.outer(drifted, [0.5] * 6 + [0.0] * 4)), columns=INPUTS)
    proba = model.predict_proba(inputs)
    ids = np.array([f"{uuid.uuid4().hex[:20]}{i:012x}" for i in range(rows)], dtype=object)
    replica = rng.integers(0, 2, rows)
    frame = pd.DataFrame({"request_id": ids, "row": np.zeros(rows, dtype=np.int64),
                          "time": pd.to_datetime(day_start + offsets, unit="s", utc=True), "model": "churn", "version": 1,
                          "role": "champion", "latency_ms": rng.gamma(2.0, 0.4, rows)})
    frame = pd.concat([frame, inputs.add_prefix("input.")], axis=1)
    frame["prediction"] = model.classes_[proba.argmax(axis=1)]
    frame["proba.0"], frame["proba.1"] = proba[:, 0], proba[:, 1]
    from modelcycle.store.predictions import log_root

    root = log_root(settings.log_uri)
    folder = f"{model_dir(root, 'predictions', 'churn')}/date={time.strftime('%Y-%m-%d', time.gmtime(day_start))}"
    t0 = time.perf_counter()
    files = 0
    for r, writer in enumerate(("replicaone", "replicatwo")):
        for h in range(24):
            pick = (replica == r) & (hours == h)
            if not pick.any():
                continue
            first_ns, last_ns = int((day_start + h * HOUR + 1.2) * 1e9), int((day_start + (h + 1) * HOUR + 0.2) * 1e9)
            root.write_bytes(f"{folder}/part-{last_ns}-compact{first_ns}_{writer}.parquet",
                             parquet_bytes(frame[pick], row_group_size=256_000))
            files += 1
    write_s = time.perf_counter() - t0
    labelled = rng.random(rows) < 0.2
    y = (z @ weights > 0).astype(int)
    t0 = time.perf_counter()
    for batch in range(4):
        pick = labelled & (offsets >= batch * DAY / 4) & (offsets < (batch + 1) * DAY / 4)
        append_labels(root, "churn", ids[pick].tolist(), y[pick].tolist())
    labels_s = time.perf_counter() - t0
    client.close()
    client.store.close()  # the last connection: SQLite folds its WAL into the file, which the driver copies
    return {"files": files, "write_s": write_s, "labels_s": labels_s, "truth_rows": np.bincount(hours, minlength=24).tolist(),
            "truth_labelled": np.bincount(hours[labelled], minlength=24).tolist()}


def work_monitor(spec: dict) -> dict:
    import importlib

    for name in ("pandas", "pyarrow.dataset", "pyarrow.parquet", "sklearn.metrics", "s3fs", "modelcycle.data", "modelcycle.monitoring",
                 "modelcycle.registry.fluent", "modelcycle.store.predictions"):
        importlib.import_module(name)
    from modelcycle.monitoring import monitor
    from modelcycle.tracking.client import Client

    client = Client(_settings(spec))
    _ = client.store
    t0 = time.perf_counter()
    report = monitor("churn", window="1h", start=spec["day_start"], end=spec["day_start"] + DAY, client=client)
    seconds = time.perf_counter() - t0
    t0 = time.perf_counter()  # again in this process, as a notebook or a dashboard calls it
    again = monitor("churn", window="1h", start=spec["day_start"], end=spec["day_start"] + DAY, client=client)
    again_s = time.perf_counter() - t0
    client.close()
    return {"seconds": seconds, "computed": report.computed, "rows": [w.rows for w in report.windows],
            "labelled": [w.labelled for w in report.windows], "again_s": again_s, "again_computed": again.computed}


WORKERS = {"requests": work_requests, "populate": work_populate, "search": work_search, "generate": work_generate,
           "monitor": work_monitor}


def worker(arg: str) -> None:
    spec = json.loads(arg)
    os.environ.update(spec.get("env", {}))
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    print("\n" + MARK + json.dumps(WORKERS[spec["workload"]](spec)), flush=True)


# --- driver side --------------------------------------------------------------------------------------
def call(spec: dict) -> dict:
    return run_worker(__file__, json.dumps(spec), REPO)


class S3Server:
    def __init__(self) -> None:
        server = shutil.which("moto_server", path=os.path.dirname(sys.executable))
        if server is None:
            raise SystemExit("moto_server is not installed: pip install 'moto[server]' (make bench installs it)")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.proc = subprocess.Popen([server, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{self.url}/moto-api/", timeout=2).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("the S3-compatible server did not start") from None
                time.sleep(0.2)
        os.environ.update({**S3_ENV, "AWS_ENDPOINT_URL": self.url})

    def bucket(self) -> str:
        import boto3

        name = f"bench-{uuid.uuid4().hex[:12]}"
        boto3.client("s3", endpoint_url=self.url).create_bucket(Bucket=name)
        return name

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def _searches(stores: dict, rows: dict, args: argparse.Namespace) -> None:
    """Each store searched in ``--repeats`` fresh processes, the stores taking turns (a slow spell of the machine falls
    on both alike); a store's figure is the median of its processes' medians."""
    each: dict[str, list[float]] = {store: [] for store in stores}
    for _ in range(args.repeats):
        for store, where in stores.items():
            r = call({"workload": "search", "searches": args.searches, **where})
            assert r["rows"] == 100, r
            each[store].append(r["search_ms"])
    for store, times in each.items():
        rows[store].update(search_ms=statistics.median(times), search_each_ms=times)


def main() -> None:
    from rich.console import Console
    from rich.table import Table

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--parts", default="requests,postgres,monitor")
    p.add_argument("--rows", type=int, default=1_000_000, help="predictions in the day monitored (default 1,000,000)")
    p.add_argument("--runs", type=int, default=10_000, help="runs populated per store (default 10,000)")
    p.add_argument("--searches", type=int, default=30)
    p.add_argument("--repeats", type=int, default=3,
                   help="fresh-process repetitions of the monitor calls and of each store's searches (default 3)")
    p.add_argument("--json", help="write the numbers to this file")
    args = p.parse_args()
    if args.worker:
        worker(args.worker)
        return
    console = Console(width=160)
    parts = set(args.parts.split(","))
    pg_admin = os.environ.get("MODELCYCLE_BENCH_POSTGRES_URI") or os.environ.get("MODELCYCLE_TEST_POSTGRES_URI")
    console.print(f"[bold]team benchmark[/] {platform.python_version()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
    s3 = S3Server()
    env = {**S3_ENV, "AWS_ENDPOINT_URL": s3.url}
    results: dict = {"load_start": os.getloadavg()[0]}
    targets: list[tuple[str, str, str]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="mc-bench-team-") as tmp:
            if "requests" in parts:
                bucket = s3.bucket()
                r = call({"workload": "requests", "home": f"{tmp}/req", "artifacts": f"s3://{bucket}/artifacts", "env": env})
                results["requests"] = r
                table = Table(title="requests to the object store", title_justify="left")
                for col in ("what", "requests", "methods", "time"):
                    table.add_column(col)
                table.add_row("log_artifact of a new 40-byte file", str(r["artifact_requests"]), ", ".join(r["artifact_methods"]),
                              f"{r['artifact_s'] * 1000:.0f} ms")
                table.add_row(f"log_model of a scikit-learn pipeline ({r['model_files']} files)", str(r["model_requests"]),
                              ", ".join(r["model_methods"]), f"{r['model_s'] * 1000:.0f} ms")
                console.print(table)
                targets.append(("a new small artifact: ≤ 3 requests", str(r["artifact_requests"]),
                                "PASS" if r["artifact_requests"] <= 3 else "FAIL"))
                ok = (r["model_requests"] <= 10 and r["model_files"] <= 5) or r["model_requests"] <= 2 * r["model_files"]
                targets.append((f"log_model of {r['model_files']} files: ≤ 10 requests (2 per file beyond 5)", str(r["model_requests"]),
                                "PASS" if ok else "FAIL"))
            if "postgres" in parts:
                rows = {}
                stores = {"SQLite": {"home": f"{tmp}/sqlite"}}
                rows["SQLite"] = call({"workload": "populate", "runs": args.runs, **stores["SQLite"]})
                if pg_admin:
                    from sqlalchemy import create_engine, text

                    admin = create_engine(pg_admin, isolation_level="AUTOCOMMIT")
                    name = f"mc_bench_{uuid.uuid4().hex[:10]}"
                    with admin.connect() as conn:
                        conn.execute(text(f'CREATE DATABASE "{name}"'))
                    try:
                        stores["PostgreSQL"] = {"home": f"{tmp}/pg", "store": f"{pg_admin.rsplit('/', 1)[0]}/{name}"}
                        rows["PostgreSQL"] = call({"workload": "populate", "runs": args.runs, **stores["PostgreSQL"]})
                        _searches(stores, rows, args)
                    finally:
                        with admin.connect() as conn:
                            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                        admin.dispose()
                if not pg_admin:
                    _searches(stores, rows, args)
                results["postgres"] = rows
                table = Table(title=f"tracking on SQLite and PostgreSQL, {args.runs:,} runs (10 params, 5 metrics, 3 tags)",
                              title_justify="left")
                for col in ("store", "run creation", f"search_runs → DataFrame of 100: median of {args.repeats} fresh processes' "
                                                     f"medians of {args.searches} warm calls (the processes' own)"):
                    table.add_column(col)
                for store, r in rows.items():
                    spread = f"{min(r['search_each_ms']):.1f}–{max(r['search_each_ms']):.1f}"
                    table.add_row(store, f"{r['rate']:,.0f} runs/s", f"{r['search_ms']:.1f} ms ({spread})")
                console.print(table)
                if "PostgreSQL" in rows:
                    pg, lite = rows["PostgreSQL"], rows["SQLite"]
                    targets.append(("PostgreSQL run creation ≥ 200 runs/s", f"{pg['rate']:,.0f} runs/s", "PASS" if pg["rate"] >= 200 else "FAIL"))
                    ratio = pg["search_ms"] / lite["search_ms"]
                    targets.append((f"PostgreSQL search at {args.runs:,} runs within 2x SQLite's", f"{ratio:.2f}x",
                                    "PASS" if ratio <= 2 else "FAIL"))
                else:
                    targets.append(("PostgreSQL targets", "no server (set MODELCYCLE_BENCH_POSTGRES_URI)", "n/a"))
            if "monitor" in parts:
                bucket = s3.bucket()
                artifacts = f"s3://{bucket}/artifacts"
                day_start = (int(time.time()) // DAY - 1) * DAY
                store = f"sqlite:///{tmp}/shared.db"  # the team's database; each process has its own home
                console.print(f"[dim]writing a day of {args.rows:,} predictions by two replicas into {artifacts} …[/]")
                gen = call({"workload": "generate", "home": f"{tmp}/writer", "store": store, "artifacts": artifacts, "rows": args.rows,
                            "day_start": day_start, "env": env})
                firsts, agains, fresh, answers = [], [], [], []
                for i in range(args.repeats):
                    shutil.copyfile(f"{tmp}/shared.db", f"{tmp}/laptop-{i}.db")  # a fresh store: no windows yet
                    spec = {"workload": "monitor", "home": f"{tmp}/laptop-{i}", "store": f"sqlite:///{tmp}/laptop-{i}.db",
                            "artifacts": artifacts, "day_start": day_start, "env": env}
                    first = call(spec)
                    again = call(spec)  # a new process: the stored windows, and the object store's client made anew
                    firsts.append(first["seconds"])
                    agains.append(first["again_s"])
                    fresh.append(again["seconds"])
                    answers.append(first["rows"] == gen["truth_rows"] and first["labelled"] == gen["truth_labelled"]
                                   and first["again_computed"] == 0 and again["computed"] == 0)
                results["monitor"] = {"generate": gen, "first_s": firsts, "again_s": agains, "again_new_process_s": fresh,
                                      "exact": answers}
                table = Table(title=f"monitoring a day of {args.rows:,} predictions logged by two replicas on the object store "
                                    f"({gen['files']} files), medians of {args.repeats} fresh processes", title_justify="left")
                for col in ("first call (new process)", "again (stored windows)", "again, in a new process¹",
                            "every row and label of both replicas"):
                    table.add_column(col)
                table.add_row(f"{statistics.median(firsts):.2f} s", f"{statistics.median(agains):.3f} s",
                              f"{statistics.median(fresh):.3f} s", str(all(answers)))
                table.caption = ("¹ includes making the S3 client (botocore's session and service model) and its first "
                                 "request, which the first call pays too")
                console.print(table)
                targets.append(("monitor, first call < 10 s", f"{statistics.median(firsts):.2f} s",
                                "PASS" if statistics.median(firsts) < 10 and all(answers) else "FAIL"))
                targets.append(("monitor, again < 0.5 s", f"{statistics.median(agains):.3f} s",
                                "PASS" if statistics.median(agains) < 0.5 and all(answers) else "FAIL"))
    finally:
        s3.close()
    results["load_end"] = os.getloadavg()[0]
    print_targets(console, targets, f"load average {results['load_start']:.2f} at the start, {results['load_end']:.2f} at the end "
                                    f"({os.cpu_count()} CPUs); S3: moto_server on 127.0.0.1")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
