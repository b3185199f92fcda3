"""Experiment tracking: modelcycle vs MLflow 3.x (SQLite store), side by side in one run.

Set-up (once), from the repository root; the ``bench`` extra brings MLflow and scikit-learn::

    python3 -m venv .venv-bench && .venv-bench/bin/pip install -e '.[bench]'

Run from inside the git repository (reproducibility capture stays on and records git state)::

    .venv-bench/bin/python bench/tracking.py                 # full sizes, ~10 min more the first time
    .venv-bench/bin/python bench/tracking.py --quick         # small sizes, about a minute
    .venv-bench/bin/python bench/tracking.py --json bench/results/tracking.json

Workloads, each tool in a fresh subprocess per repetition (this file with ``--worker``), median
of ``--repeats`` (default 3):

- ``import``: wall time of ``python -c "import <tool>"``.
- ``log_metric``: N per-call ``log_metric`` in one run, timed from the first call to the end of
  the run (durable in SQLite). modelcycle buffers and flushes in a background thread; MLflow is
  measured twice: its synchronous default (one SQLite transaction per call) and its asynchronous
  logging (``mlflow.config.enable_async_logging(True)``, timed through ``flush_async_logging()``
  and the run's end, which drains the queue).
- ``runs``: R runs with 10 params, 5 metrics, 3 tags each through the fluent API, from inside this
  checkout: modelcycle with capture on (git commit and diff, checked per run); MLflow recording
  the checkout's git commit (its default, read once per process), synchronous and asynchronous.
- ``runs_repo``: the same ``runs`` workload with the working directory inside a generated git
  repository of 10,000 small files (200 folders × 50 ``.py`` files, one commit, clean; created
  once under ``bench/.cache/``). The worker starts from a launcher script committed in that
  repository, because MLflow reads the git commit of the script it runs (``sys.argv[0]``) while
  modelcycle reads the working directory's. modelcycle with capture on; MLflow synchronous.
- ``search``: ``search_runs`` with ``metrics.m0 > 0.5``, ordered by ``metrics.m0 DESC``, 100 rows
  with their params, metrics and tags, over stores of 1,000 and 10,000 runs (``--search-sizes``;
  same data for both tools). Each tool in a fresh process per repetition, interleaved: the first
  search timed from before ``import <tool>`` (import, store opening, search), then the median of
  ``--searches`` warm calls of each variant: a DataFrame (``mc.search_runs`` against
  ``mlflow.search_runs``) and a list of run records (``Client.search_runs(as_frame=False)``
  against ``MlflowClient.search_runs``); ``mc.search_runs(..., output="list")`` is measured too.
  The MLflow stores are filled with ``MlflowClient.create_run`` + ``log_batch`` + ``set_terminated``
  and cached under ``bench/.cache/`` (keyed by MLflow version and run count); modelcycle's are filled
  fresh through the fluent API.

Every MLflow store is a SQLite file in a temporary folder, and every MLflow run goes to an
experiment whose artifact location is in that folder: nothing is written into the repository.
Ratios compare rates (MLflow is measured on fewer calls and runs because it is slower). Each
table says what each side did; ``--workloads`` runs a subset. Without MLflow installed (or with
``--no-mlflow``) only modelcycle runs.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from _report import print_targets  # bench/ is on the path when a benchmark runs as a script

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CACHE = HERE / ".cache"
MARK = "BENCH-RESULT "
DATA_VERSION = "v1"  # bump when payload() changes, to invalidate cached MLflow stores
REPO_SHAPE = (200, 50)  # folders × .py files of the generated repository (runs_repo)
REPO_VERSION = "v2"  # bump when generated_repo() changes
LAUNCHER = "bench_worker.py"
LAUNCHER_TEXT = '''"""Runs bench/tracking.py's worker from inside this repository: MLflow records the git commit of
the script it runs (sys.argv[0]), modelcycle that of the working directory."""
import os
import sys

sys.path.insert(0, os.environ["MC_BENCH_DIR"])  # not runpy: it would set sys.argv[0] to tracking.py
import tracking  # noqa: E402

sys.exit(tracking.main())
'''
EXPERIMENT = "bench"
FILTER, ORDER, LIMIT = "metrics.m0 > 0.5", ["metrics.m0 DESC"], 100
FULL = {"mc_metric": 100_000, "mlflow_metric": 1_000, "mc_runs": 1_000, "mlflow_runs": 200,
        "searches": 30, "imports": 5}
QUICK = {"mc_metric": 10_000, "mlflow_metric": 200, "mc_runs": 200, "mlflow_runs": 50,
         "searches": 10, "imports": 3}
SEARCH_SIZES = {"full": (1_000, 10_000), "quick": (500, 1_000)}  # runs in the store
SEARCH_GOALS = {1_000: 3.0, 10_000: 5.0}  # modelcycle's median, ms


def payload(i: int) -> tuple[dict, dict, dict]:
    """Params (10), metrics (5) and tags (3) of run ``i``; the same for both tools."""
    rng = random.Random(i)
    params = {"model": rng.choice(("rf", "lr", "gbm")), "lr": round(rng.uniform(1e-4, 0.1), 5),
              **{f"p{j}": rng.randint(0, 1000) for j in range(8)}}
    metrics = {f"m{j}": rng.random() for j in range(5)}
    tags = {"team": "bench", "split": f"s{i % 7}", "seed": str(i)}
    return params, metrics, tags


# --- worker side: runs in a fresh subprocess, prints one MARK line ---------------------------
def _modelcycle(home: str):
    os.environ["MODELCYCLE_HOME"] = home
    import modelcycle

    return modelcycle


def _mlflow(home: str, async_logging: bool = False):
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{home}/mlflow.db")
    mlflow.config.enable_async_logging(async_logging)
    client = mlflow.MlflowClient()
    exp = client.get_experiment_by_name(EXPERIMENT)
    exp_id = exp.experiment_id if exp else client.create_experiment(
        EXPERIMENT, artifact_location=Path(home, "artifacts").as_uri())
    mlflow.set_experiment(experiment_id=exp_id)
    return mlflow, client, exp_id


def work_log_metric(tool: str, home: str, n: int) -> dict:
    if tool == "modelcycle":
        mc = _modelcycle(home)
        mc.set_experiment(EXPERIMENT)
        with mc.start_run(experiment=EXPERIMENT, name="log_metric"):
            t0 = time.perf_counter()
            for i in range(n):
                mc.log_metric("loss", 1.0 / (i + 1), step=i)
        return {"seconds": time.perf_counter() - t0}
    mlflow, _, _ = _mlflow(home, async_logging=tool == "mlflow-async")
    with mlflow.start_run(run_name="log_metric"):
        t0 = time.perf_counter()
        for i in range(n):
            mlflow.log_metric("loss", 1.0 / (i + 1), step=i)
        if tool == "mlflow-async":
            mlflow.flush_async_logging()  # wait for the queue; the run's end below drains it too
    return {"seconds": time.perf_counter() - t0}


def work_runs(tool: str, home: str, n: int) -> dict:
    payloads = [payload(i) for i in range(n)]
    if tool == "modelcycle":
        mc = _modelcycle(home)
        mc.set_experiment(EXPERIMENT)
        t0 = time.perf_counter()
        for i, (params, metrics, tags) in enumerate(payloads):
            with mc.start_run(experiment=EXPERIMENT, name=f"r{i}") as run:
                mc.log_params(params)
                mc.log_metrics(metrics)
                mc.set_tags(tags)
        seconds = time.perf_counter() - t0
        context = mc.get_run(run.id).context
        return {"seconds": seconds, "git_commit": context.git_commit, "git_dirty": context.git_dirty}
    mlflow, client, _ = _mlflow(home, async_logging=tool == "mlflow-async")
    t0 = time.perf_counter()
    for i, (params, metrics, tags) in enumerate(payloads):
        with mlflow.start_run(run_name=f"r{i}") as run:
            mlflow.log_params(params)
            mlflow.log_metrics(metrics)
            mlflow.set_tags(tags)
    if tool == "mlflow-async":
        mlflow.flush_async_logging()  # each run's end has drained the queue already; this makes sure
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "git_commit": client.get_run(run.info.run_id).data.tags.get("mlflow.source.git.commit")}


def work_populate(tool: str, home: str, n: int) -> dict:
    if tool == "modelcycle":
        return work_runs(tool, home, n)
    from mlflow.entities import Metric, Param, RunTag

    _, client, exp_id = _mlflow(home)
    t0 = time.perf_counter()
    for i in range(n):
        params, metrics, tags = payload(i)
        run_id = client.create_run(exp_id, run_name=f"r{i}").info.run_id
        now = int(time.time() * 1000)
        client.log_batch(run_id, metrics=[Metric(k, v, now, 0) for k, v in metrics.items()],
                         params=[Param(k, str(v)) for k, v in params.items()],
                         tags=[RunTag(k, v) for k, v in tags.items()])
        client.set_terminated(run_id)
    return {"seconds": time.perf_counter() - t0}


def _record(rec) -> tuple[dict, dict, dict]:
    """Params, metrics and tags of one run record: modelcycle's Run, MLflow's Run, or a mapping."""
    if hasattr(rec, "data"):  # MLflow
        return rec.data.params, rec.data.metrics, rec.data.tags
    if isinstance(rec, dict):
        if "metrics" in rec:
            return rec.get("params", {}), rec["metrics"], rec.get("tags", {})
        return tuple({k.split(".", 1)[1]: v for k, v in rec.items() if k.startswith(p + ".")}
                     for p in ("params", "metrics", "tags"))
    return rec.params, rec.metrics, rec.tags


def _shape(result) -> dict:
    """What a search returned: rows, whether m0 is sorted, the top values, and the columns of a row."""
    if hasattr(result, "columns"):  # a DataFrame
        top = [round(float(v), 12) for v in result["metrics.m0"]]
        cols = {p: sum(str(c).startswith(p + ".") for c in result.columns) for p in ("params", "metrics", "tags")}
    else:
        records = [_record(r) for r in result]
        top = [round(float(m["m0"]), 12) for _, m, _ in records]
        cols = dict(zip(("params", "metrics", "tags"), map(len, records[0]), strict=True)) if records else {}
    return {"rows": len(top), "sorted": top == sorted(top, reverse=True), "top": top[:5], "columns": cols}


def work_search(tool: str, home: str, n: int) -> dict:
    """The first search in this fresh process, timed from before the import, then ``n`` warm calls per variant."""
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    t0 = time.perf_counter()
    if tool == "modelcycle":
        mc = _modelcycle(home)
        variants = {"frame": lambda: mc.search_runs(experiment=EXPERIMENT, filter=FILTER, order_by=ORDER, limit=LIMIT)}
        first_result = variants["frame"]()
        first = time.perf_counter() - t0
        client = mc.get_client()
        variants["records"] = lambda: client.search_runs(EXPERIMENT, FILTER, ORDER, LIMIT, as_frame=False)
        variants["output_list"] = lambda: mc.search_runs(experiment=EXPERIMENT, filter=FILTER, order_by=ORDER,
                                                         limit=LIMIT, output="list")
    else:
        import mlflow

        mlflow.set_tracking_uri(f"sqlite:///{home}/mlflow.db")
        variants = {"frame": lambda: mlflow.search_runs(experiment_names=[EXPERIMENT], filter_string=FILTER,
                                                        order_by=ORDER, max_results=LIMIT)}
        first_result = variants["frame"]()
        first = time.perf_counter() - t0
        client = mlflow.MlflowClient()
        exp_id = client.get_experiment_by_name(EXPERIMENT).experiment_id
        variants["records"] = lambda: client.search_runs([exp_id], FILTER, order_by=ORDER, max_results=LIMIT)
    out: dict = {"first_ms": first * 1e3, "first": _shape(first_result)}
    results = {v: fn() for v, fn in variants.items()}  # each variant warmed once
    times: dict[str, list[float]] = {v: [] for v in variants}
    for _ in range(n):  # interleaved
        for v, fn in variants.items():
            t = time.perf_counter()
            results[v] = fn()
            times[v].append((time.perf_counter() - t) * 1e3)
    out["variants"] = {v: {"times_ms": times[v], **_shape(results[v])} for v in variants}
    return out


WORKERS = {"log_metric": work_log_metric, "runs": work_runs, "populate": work_populate,
           "search": work_search}
WORKLOADS = ("import", "log_metric", "runs", "runs_repo", "search")


def worker(spec: str) -> None:
    s = json.loads(spec)
    out = WORKERS[s["workload"]](s["tool"], s["home"], s["n"])
    print("\n" + MARK + json.dumps(out), flush=True)


# --- driver side ---------------------------------------------------------------------------
LABEL = {"modelcycle": "modelcycle", "mlflow": "MLflow (sync, default)", "mlflow-async": "MLflow (async logging)",
         "modelcycle/frame": "modelcycle, DataFrame", "modelcycle/records": "modelcycle, records",
         "modelcycle/output_list": "modelcycle, output=\"list\"", "mlflow/frame": "MLflow, DataFrame",
         "mlflow/records": "MLflow, records"}
COUNTERPART = {"frame": "frame", "records": "records", "output_list": "records"}  # the MLflow variant compared
WORK = {
    ("import", "python (baseline)"): "python -c pass",
    ("import", "modelcycle"): "python -c 'import modelcycle'",
    ("import", "mlflow"): "python -c 'import mlflow'",
    ("log_metric", "modelcycle"): "mc.log_metric per call in one run; buffered, written by a background thread; "
                                  "timed to the run's end (all durable)",
    ("log_metric", "mlflow"): "mlflow.log_metric per call in one run, one SQLite write each; timed to the run's end",
    ("log_metric", "mlflow-async"): "mlflow.log_metric per call, queued (enable_async_logging); timed through "
                                    "flush_async_logging() and the run's end",
    ("runs", "modelcycle"): "per run: start_run, log_params(10), log_metrics(5), set_tags(3), end; capture on "
                            "(git commit + diff of this checkout, checked per run)",
    ("runs", "mlflow"): "the same calls, synchronous; records this checkout's git commit (read once per process)",
    ("runs", "mlflow-async"): "the same calls with enable_async_logging; each run's end drains the queue",
    ("runs_repo", "modelcycle"): "the runs workload, working directory in the generated repository (clean, one "
                                 "commit); capture on: commit, branch, dirty state and diff, checked per run",
    ("runs_repo", "mlflow"): "the same calls, synchronous, from a script in that repository; records its git "
                             "commit (read once per process)",
    ("search", "modelcycle/frame"): "mc.search_runs(experiment, filter, order_by, limit=100) → DataFrame with "
                                    "params.*, metrics.*, tags.* columns",
    ("search", "modelcycle/records"): "mc.get_client().search_runs(…, as_frame=False) → list of Run records "
                                      "(params, metrics, tags)",
    ("search", "modelcycle/output_list"): "mc.search_runs(…, output=\"list\") → list",
    ("search", "mlflow/frame"): "mlflow.search_runs(experiment_names, filter_string, order_by, max_results=100) → "
                                "DataFrame with params.*, metrics.*, tags.* columns",
    ("search", "mlflow/records"): "MlflowClient().search_runs([experiment_id], …, max_results=100) → list of Run "
                                  "records (params, metrics, tags)",
}
TIMED = ("log_metric", "runs", "runs_repo")  # the workloads measured as rates


def child_env() -> dict[str, str]:
    """No MODELCYCLE_*/MLFLOW_* from outside (capture stays on); MLflow quiet and offline."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MODELCYCLE_", "MLFLOW_"))}
    return env | {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true", "PYTHONWARNINGS": "ignore",
                  "GIT_PYTHON_REFRESH": "quiet", "MLFLOW_LOGGING_LEVEL": "ERROR"}


def run_worker(tool: str, workload: str, home: Path, n: int, cwd: Path = REPO) -> dict:
    """The worker in a fresh process, from this checkout or (through its launcher) from a generated repository."""
    home.mkdir(parents=True, exist_ok=True)
    spec = json.dumps({"tool": tool, "workload": workload, "home": str(home), "n": n})
    script, env = (__file__, child_env()) if cwd == REPO else (str(cwd / LAUNCHER), child_env() | {"MC_BENCH_DIR": str(HERE)})
    proc = subprocess.run([sys.executable, script, "--worker", spec], cwd=cwd, env=env, capture_output=True, text=True)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(MARK):
            return json.loads(line[len(MARK):])
    tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-25:])
    raise RuntimeError(f"{tool} {workload} (n={n}) exited {proc.returncode}:\n{tail}")


def time_import(module: str, k: int) -> dict:
    code = f"import {module}" if module else "pass"
    times = []
    for _ in range(k):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], cwd=REPO, env=child_env(), check=True)
        times.append(time.perf_counter() - t0)
    return {"size": k, "median": statistics.median(times), "best": min(times), "samples": times}


def mlflow_store(tmp: Path, n: int, console) -> tuple[Path, dict]:
    """A populated MLflow store of ``n`` runs in ``tmp``, copied from (or saved to) the cache."""
    cached = CACHE / f"mlflow-{version('mlflow')}-{DATA_VERSION}-search-{n}.db"
    home = tmp / "mlflow"
    home.mkdir(parents=True)
    if cached.exists():
        shutil.copyfile(cached, home / "mlflow.db")
        return home, {"cached": str(cached)}
    console.print(f"[dim]populating the MLflow search store with {n:,} runs "
                  f"(once; cached at {cached.relative_to(REPO)}) ...[/]")
    info = run_worker("mlflow", "populate", home, n)
    CACHE.mkdir(exist_ok=True)
    partial = cached.with_suffix(".partial")
    shutil.copyfile(home / "mlflow.db", partial)
    os.replace(partial, cached)
    return home, {"populate_seconds": info["seconds"], "cached": str(cached)}


def generated_repo(console) -> Path:
    """A clean git repository of REPO_SHAPE small .py files and the launcher, one commit, cached in bench/.cache/."""
    folders, files = REPO_SHAPE
    root = CACHE / f"repo-{folders}x{files}-{REPO_VERSION}"
    if (root / ".git" / "bench-complete").exists():
        return root
    console.print(f"[dim]generating a git repository of {folders * files:,} files (once; cached at "
                  f"{root.relative_to(REPO)}) ...[/]")
    staging = root.with_name(root.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(root, ignore_errors=True)
    staging.mkdir(parents=True)
    old = 1_577_836_800  # 2020-01-01: older than git's index, so no entry is "racily clean" and re-read
    for i in range(folders):
        folder = staging / f"pkg{i:03d}"
        folder.mkdir()
        for j in range(files):
            path = folder / f"mod{j:02d}.py"
            path.write_text(f'"""Module {j} of package {i}."""\n\n\ndef value(x: int) -> int:\n    return x + {i * files + j}\n')
            os.utime(path, (old, old))
    (staging / LAUNCHER).write_text(LAUNCHER_TEXT)
    os.utime(staging / LAUNCHER, (old, old))
    env = os.environ | {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.invalid",
                        "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.invalid",
                        "GIT_AUTHOR_DATE": "2020-01-01T00:00:00Z", "GIT_COMMITTER_DATE": "2020-01-01T00:00:00Z"}
    for cmd in (["init", "-q", "-b", "main"], ["add", "-A"], ["-c", "commit.gpgsign=false", "commit", "-q", "-m", "generated"]):
        subprocess.run(["git", *cmd], cwd=staging, env=env, check=True, capture_output=True)
    os.replace(staging, root)
    (root / ".git" / "bench-complete").touch()
    return root


def git_head(repo: Path) -> str:
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()


def timed_rows(args, workload: str, tools: list[str], tmp: Path, errors: list[str], cwd: Path = REPO) -> dict:
    """Each tool ``args.repeats`` times, interleaved so noise hits all alike; rates from the medians."""
    mc_size, other = (args.mc_metric, args.mlflow_metric) if workload == "log_metric" else (args.mc_runs, args.mlflow_runs)
    sizes = {"modelcycle": mc_size}
    kind = "runs" if workload == "runs_repo" else workload
    outs: dict[str, list[dict]] = {t: [] for t in tools}
    for r in range(args.repeats):
        for tool in tools:
            try:
                home = tmp / f"{tool}-{workload}-{r}"
                outs[tool].append(run_worker(tool, kind, home, sizes.get(tool, other), cwd))
            except RuntimeError as e:
                errors.append(str(e))
    rows = {}
    for tool, o in outs.items():
        if o:
            n, s = sizes.get(tool, other), [x["seconds"] for x in o]
            rows[tool] = {"size": n, "median": statistics.median(s), "samples": s, "rate": n / statistics.median(s),
                          **{k: v for k, v in o[-1].items() if k != "seconds"}}
    return rows


def search_rows(args, size: int, tools: list[str], tmp: Path, console, errors: list[str]) -> dict:
    """Rows ``tool/variant`` for one store size; each repetition a fresh process per tool, interleaved."""
    homes, extra = {}, {}
    for tool in tools:
        try:
            if tool == "mlflow":
                homes[tool], extra[tool] = mlflow_store(tmp, size, console)
            else:
                homes[tool] = tmp / "modelcycle"
                extra[tool] = {"populate_seconds": run_worker(tool, "populate", homes[tool], size)["seconds"]}
        except RuntimeError as e:
            errors.append(str(e))
    outs: dict[str, list[dict]] = {t: [] for t in homes}
    for _ in range(args.repeats):
        for tool, home in homes.items():
            try:
                outs[tool].append(run_worker(tool, "search", home, args.searches))
            except RuntimeError as e:
                errors.append(str(e))
    rows = {}
    for tool, o in outs.items():
        if not o:
            continue
        for variant in o[0]["variants"]:
            times = [t for x in o for t in x["variants"][variant]["times_ms"]]
            last = o[-1]["variants"][variant]
            row = {"size": size, "median": statistics.median(times), "samples": times,
                   "process_medians": [statistics.median(x["variants"][variant]["times_ms"]) for x in o],
                   "sorted": all(x["variants"][variant]["sorted"] for x in o),
                   **{k: last[k] for k in ("rows", "top", "columns")}}
            if variant == "frame":
                row |= {"first_ms": [x["first_ms"] for x in o], **extra[tool]}
            rows[f"{tool}/{variant}"] = row
    return rows


def measure(args, tools: list[str], tmp: Path, console, errors: list[str]) -> dict:
    res: dict = {}
    if "import" in args.workloads:
        console.print("[dim]import ...[/]")
        res["import"] = {"python (baseline)": time_import("", args.imports)}
        for tool in tools:
            res["import"][tool] = time_import(tool, args.imports)
    timed_tools = tools + (["mlflow-async"] if "mlflow" in tools else [])
    for workload in ("log_metric", "runs"):
        if workload in args.workloads:
            console.print(f"[dim]{workload} ...[/]")
            res[workload] = timed_rows(args, workload, timed_tools, tmp, errors)
    if "runs_repo" in args.workloads:
        repo = generated_repo(console)
        console.print(f"[dim]runs_repo (in {repo}) ...[/]")
        res["runs_repo"] = timed_rows(args, "runs_repo", tools, tmp, errors, cwd=repo)
        folders, files = REPO_SHAPE
        res["repo"] = {"path": str(repo), "files": folders * files, "head": git_head(repo)}
    if "search" in args.workloads:
        res["search"] = {}
        for size in args.search_sizes:
            console.print(f"[dim]search, {size:,} runs in the store ...[/]")
            res["search"][str(size)] = search_rows(args, size, tools, tmp / f"search-{size}", console, errors)
    return res


def ratio(rows: dict | None, other: str, mine: str = "modelcycle") -> float | None:
    """How many times faster ``mine`` was than ``other`` in ``rows`` (rates, or times for searches)."""
    mc, ml = (rows or {}).get(mine), (rows or {}).get(other)
    if not (mc and ml):
        return None
    return mc["rate"] / ml["rate"] if "rate" in mc else ml["median"] / mc["median"]


def fx(r: float | None) -> str:
    return "—" if r is None else f"{r:,.0f}x" if r >= 10 else f"{r:.2f}x"


def check(ok: bool | None) -> str:
    return "n/a" if ok is None else "PASS" if ok else "FAIL"


def targets(res: dict, args) -> list[tuple[str, str, str]]:
    out = []
    for workload, label, goal in (
            ("log_metric", f"log_metric: {args.mc_metric:,} per-call log_metric in one run, timed to its end "
                           "(durable): rate ≥ 200x MLflow's synchronous default", 200),
            ("runs", f"runs: {args.mc_runs:,} runs × (10 params, 5 metrics, 3 tags) in this checkout, capture on: "
                     "rate ≥ 20x MLflow's synchronous default (recording its git commit)", 20)):
        rows = res.get(workload)
        r = ratio(rows, "mlflow")
        out.append((label, fx(r), check(None if r is None else r >= goal)))
        r = ratio(rows, "mlflow-async")
        out.append(("  the same against MLflow's async logging, flushed (no target)", fx(r), "info"))
    rows, files = res.get("runs_repo"), REPO_SHAPE[0] * REPO_SHAPE[1]
    r = ratio(rows, "mlflow")
    out.append((f"runs_repo: {args.mc_runs:,} runs × (10 params, 5 metrics, 3 tags) in a generated {files:,}-file git "
                "repository, capture on: rate ≥ 20x MLflow's synchronous default (recording its git commit)",
                fx(r), check(None if r is None else r >= 20)))
    mc = (rows or {}).get("modelcycle")
    out.append(("  the same: modelcycle ≥ 300 runs/s", "—" if mc is None else f"{mc['rate']:,.0f} runs/s",
                check(None if mc is None else mc["rate"] >= 300)))
    for size, goal in SEARCH_GOALS.items():
        rows = res.get("search", {}).get(str(size))
        mc = (rows or {}).get("modelcycle/frame")
        label = (f"search: mc.search_runs → DataFrame of {LIMIT} runs with params, metrics, tags ({FILTER}, "
                 f"{ORDER[0]}), {size:,} runs in the store")
        spread = "" if mc is None or len(mc.get("process_medians", ())) < 2 else \
            f" (processes {min(mc['process_medians']):.1f}–{max(mc['process_medians']):.1f})"
        out.append((f"{label}: ≤ {goal:g} ms median (modelcycle)", "not run" if mc is None else f"{mc['median']:.1f} ms{spread}",
                    check(None if mc is None else mc["median"] <= goal)))
        r = ratio(rows, "mlflow/frame", "modelcycle/frame")
        out.append((f"  the same ≥ 20x mlflow.search_runs → DataFrame ({size:,} runs)", fx(r),
                    check(None if r is None else r >= 20)))
    imp = res.get("import", {}).get("modelcycle")
    out.append(("import modelcycle < 0.15 s (median wall)",
                "—" if imp is None else f"{imp['median']:.3f} s", check(imp and imp["median"] < 0.15)))
    return out


def render_search(rows: dict, console) -> None:
    from rich.markup import escape
    from rich.table import Table

    size = next(iter(rows.values()))["size"]
    table = Table(title=f"search, {size:,} runs in the store", title_justify="left")
    for col in ("tool", "work", "median (warm)", "first search¹", "rows; params/metrics/tags",
                "modelcycle is … faster²"):
        table.add_column(col, justify="left" if col in ("tool", "work") else "right",
                         overflow="fold" if col == "work" else "ellipsis")
    for key, r in rows.items():
        tool, variant = key.split("/")
        first = f"{statistics.median(r['first_ms']):,.0f} ms" if "first_ms" in r else "—"
        cols = r["columns"]
        returned = (f"{r['rows']}{'' if r['sorted'] else ' NOT SORTED'}; "
                    f"{cols.get('params', 0)}/{cols.get('metrics', 0)}/{cols.get('tags', 0)}")
        faster = fx(ratio(rows, f"mlflow/{COUNTERPART[variant]}", key)) if tool == "modelcycle" else ""
        table.add_row(LABEL.get(key, key), escape(WORK.get(("search", key), "")), f"{r['median']:,.2f} ms", first,
                      returned, faster)
    if "modelcycle/output_list" not in rows:
        table.add_row(LABEL["modelcycle/output_list"], "not in this modelcycle yet (measured once "
                      "mc.search_runs has output=)", "—", "—", "—", "")
    notes = ["¹ in a fresh process, from before `import <tool>` to the first result (store opened, DataFrame built)",
             "² than MLflow returning the same kind of output"]
    for key, r in rows.items():
        if "populate_seconds" in r:
            notes.append(f"{key.split('/')[0]} store populated in {r['populate_seconds']:.0f} s")
        elif "cached" in r:
            notes.append(f"{key.split('/')[0]} store from {Path(r['cached']).name}")
    tops = {repr(r["top"]) for r in rows.values()}
    notes.append(f"same top 5 m0 values in every row: {len(tops) == 1}")
    table.caption = "; ".join(notes)
    console.print(table)


def render(res: dict, tgts: list, console, has_mlflow: bool) -> None:
    from rich.markup import escape
    from rich.table import Table

    for workload, rows in res.items():
        if workload == "repo":
            continue
        if workload == "search":
            for size_rows in rows.values():
                render_search(size_rows, console)
            continue
        table = Table(title=workload, title_justify="left")
        for col in ("tool", "work", "size", "median", "rate", "modelcycle is … faster"):
            table.add_column(col, justify="left" if col in ("tool", "work") else "right",
                             max_width=70 if col == "work" else None)
        for tool, r in rows.items():
            work = WORK.get((workload, tool), "")
            if workload == "import":
                cells = (f"{r['size']} × python -c", f"{r['median']:.3f} s (best {r['best']:.3f})", "—")
            else:
                unit = "calls" if workload == "log_metric" else "runs"
                cells = (f"{r['size']:,} {unit}", f"{r['median']:.3f} s", f"{r['rate']:,.0f} {unit}/s")
            faster = "" if tool == "modelcycle" or workload == "import" else fx(ratio(rows, tool))
            table.add_row(LABEL.get(tool, tool), escape(work), *cells, faster)
        notes = []
        if workload in TIMED and rows:
            notes.append(f"rates compared (MLflow measured on fewer {'calls' if workload == 'log_metric' else 'runs'})")
            commits = [f"{LABEL.get(t, t)} {str(r['git_commit'])[:10]}" + (" (dirty)" if r.get("git_dirty") else "")
                       for t, r in rows.items() if "git_commit" in r]
            if commits:
                notes.append("git commit recorded on the last run: " + ", ".join(commits))
            if workload == "runs_repo" and "repo" in res:
                repo = res["repo"]
                notes.append(f"working directory {repo['path']} ({repo['files']:,} files, HEAD {repo['head'][:10]})")
        table.caption = "; ".join(notes) or None
        console.print(table)
    print_targets(console, tgts, None if has_mlflow else "MLflow skipped: the ratio targets are n/a")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--quick", action="store_true", help="small sizes, 1 repeat")
    p.add_argument("--repeats", type=int, help="repetitions per measurement (default 3; 1 with --quick)")
    p.add_argument("--no-mlflow", action="store_true", help="run modelcycle only")
    p.add_argument("--workloads", default=",".join(WORKLOADS),
                   help=f"comma-separated subset of {','.join(WORKLOADS)} (default: all)")
    p.add_argument("--search-sizes", help=f"comma-separated runs in the search stores (default "
                   f"{','.join(map(str, SEARCH_SIZES['full']))}; {','.join(map(str, SEARCH_SIZES['quick']))} with --quick)")
    p.add_argument("--json", type=Path, help="write the raw numbers here")
    for key in FULL:
        p.add_argument("--" + key.replace("_", "-"), type=int, dest=key,
                       help=f"default {FULL[key]:,} ({QUICK[key]:,} with --quick)")
    args = p.parse_args()
    if args.worker:
        worker(args.worker)
        return 0
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.repeats = args.repeats or (1 if args.quick else 3)
    args.search_sizes = ([int(x) for x in args.search_sizes.split(",")] if args.search_sizes
                         else list(SEARCH_SIZES["quick" if args.quick else "full"]))
    args.workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    unknown = set(args.workloads) - set(WORKLOADS)
    if unknown:
        p.error(f"unknown workloads: {', '.join(sorted(unknown))}; choose from {', '.join(WORKLOADS)}")

    from rich.console import Console

    console = Console(width=None if sys.stdout.isatty() else 160)  # no wrapping in logs
    tools = ["modelcycle"]
    versions = {"modelcycle": version("modelcycle"), "python": platform.python_version()}
    if args.no_mlflow:
        console.print("[yellow]MLflow skipped (--no-mlflow)[/]")
    elif importlib.util.find_spec("mlflow") is None:
        console.print("[yellow]MLflow skipped: not installed in this interpreter "
                      "(use .venv-bench/bin/python, see the module docstring)[/]")
    else:
        tools.append("mlflow")
        versions["mlflow"] = version("mlflow")
    console.print(f"[bold]tracking benchmark[/] {versions}, {os.cpu_count()} CPUs, "
                  f"repeats={args.repeats}, cwd={REPO}")
    errors: list[str] = []
    with tempfile.TemporaryDirectory(prefix="mc-bench-tracking-") as tmp:
        res = measure(args, tools, Path(tmp), console, errors)
    tgts = targets(res, args)
    render(res, tgts, console, "mlflow" in tools)
    for e in errors:
        console.print(f"error: {e}", style="red", markup=False, highlight=False)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        sizes = {k: getattr(args, k) for k in FULL} | {"search_sizes": args.search_sizes}
        args.json.write_text(json.dumps({
            "versions": versions, "cpus": os.cpu_count(), "repeats": args.repeats, "sizes": sizes,
            "workloads": args.workloads, "work": {f"{w}/{t}": d for (w, t), d in WORK.items()},
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "results": res, "errors": errors,
            "targets": [dict(zip(("target", "measured", "result"), t, strict=True)) for t in tgts]}, indent=1))
        console.print(f"raw numbers written to {args.json}")
    return 1 if errors else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except PackageNotFoundError as e:
        sys.exit(f"not installed: {e}")
