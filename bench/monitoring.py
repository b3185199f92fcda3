"""Monitoring a day of 1,000,000 logged predictions in hourly windows: the first ``monitor()`` and the next one.

Run from the repository root (it needs only modelcycle and scikit-learn: ``.venv`` or ``.venv-bench``)::

    .venv-bench/bin/python bench/monitoring.py             # all three layouts (~9 min; ~20 min more the first time, writing logs)
    .venv-bench/bin/python bench/monitoring.py --quick     # per-minute files only, 1 repetition
    .venv-bench/bin/python bench/monitoring.py --layouts minute --repeats 5 --json bench/results/monitoring.json

The workload, generated once and cached under ``bench/.cache/monitoring-<layout>-<rows>/``: a
LogisticRegression on 10 numeric inputs (different means and spreads), logged with 20,000 rows of
reference data, registered as ``churn`` version 1 with the alias ``champion``; then yesterday
(UTC, 00:00–24:00, the day the cache was made) served 1,000,000 requests of one row each at
uniformly random times (~11.6 requests a second, ~41,700 an hour). Rows have exactly the server's
columns and types (``request_id`` as the server makes them, ``row``, ``time``, ``model``,
``version``, ``role`` = champion, ``latency_ms``, ``input.x0``…``input.x9``, ``prediction``,
``proba.0``, ``proba.1``). In hours 20–23, 6 of the 10 inputs (x0–x5) are shifted by half a
standard deviation (a dataset drift: 60 % of the columns, over the 50 % share) and the concept
changes (the labels follow other weights), so live performance falls. 20 % of the requests get a
label, sent in 4 batches (one ``append_labels`` call per 6 hours of traffic).

Three layouts of the same rows, written with ``modelcycle.store.predictions.write_atomic``
(temporary name, fsync, rename) into the artifact store's ``predictions/`` folder, and named by their
``written_ns`` as the server's writer names them:

- ``minute`` (the layout the targets were set for): one file per minute, 1,440 files of ~694 rows,
  each published 0.2 s after its minute ends — a writer batching a minute at a time. The monitor
  lets a 1-h window's files arrive up to 60 s after their rows (``settle``), so minute batches are
  the coarsest it assigns to windows correctly, which the row counts below check.
- ``second-compacted``: what the shipped server leaves behind for a past day. ``PredictionLog``
  publishes a file every second (86,400 files of ~12 rows a day) and, a few seconds after each hour
  has closed, merges the files written in that hour into one with ``store.predictions.compact``
  (commit e9e3ca2). Made here by running that same ``compact`` for each hour over the per-second
  files (hard links of the ``second`` cache), so ~25 files.
- ``second``: the per-second files left as they are (a server from before compaction, or a
  compaction that failed). Measured because the monitor's cost per file (listing, and a
  ``pyarrow.dataset`` per file per window) dominates there. Writing it takes ~15 min once (~7 ms
  per file, mostly the fsync; its 4 ``append_labels`` calls ~3 min). Its first call takes ~5 min, so
  it and the ``scan`` run once (``--second-repeats``); its ``again`` runs every repetition, on the
  store that first call filled.

Each measurement runs in a fresh process (this file with ``--worker``), 3 repetitions, medians:

- ``first``: ``monitor("churn", window="1h", start=<day>, end=<day + 24 h>)`` on a fresh store:
  a copy of the cached store (its window table empty) with the cached log and labels symlinked
  in, so each repetition reads the same files. The log was just read by the previous repetition,
  so it is in the page cache, as a day's log a server has just written usually is;
  ``first, cold`` evicts the log and labels from the page cache first (``posix_fadvise
  DONTNEED`` on every file; best effort) and is measured for the minute layout.
- ``again``: the same call in a new process on the store the ``first`` call filled (the 24
  windows are read back, not recomputed), and ``in-process`` a third call right after it.

Imports (modelcycle and the modules ``monitor()`` imports on first use: pandas, pyarrow, scikit-learn's
metrics, datasketches) and opening the store are done before the clock starts and reported
separately (``setup``): a ``modelcycle monitor`` command pays them too.
Peak RSS is the worker's ``ru_maxrss`` (imports included). A ``scan`` worker times the parts that
grow with the number of files: ``list_files`` of the day, reading one hour's files as the monitor
does (``read_window``), reading the labels, and ``find_predictions`` for a batch of 1,000 labels (which every
``append_labels`` call runs, newest file first).

The answer is checked, not assumed: 24 windows, each with exactly the rows generated for that hour
and the labels sent for it, dataset drift in hours 20–23 with x0–x5 drifted there, none in hours
0–19, live accuracy lower in the drifted hours, and the second call returns the same findings
from the store (``computed`` = 0).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _report import MARK, print_targets  # bench/ is on the path when a benchmark runs as a script

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CACHE = HERE / ".cache"
CACHE_VERSION = 2  # 2: the log and labels in the artifact store (<home>/artifacts/predictions, …/labels)
ROWS = 1_000_000
DAY, HOUR = 86_400, 3_600
INPUTS = [f"x{i}" for i in range(10)]
DRIFT_HOURS = (20, 21, 22, 23)
DRIFT_COLUMNS = ("x0", "x1", "x2", "x3", "x4", "x5")
SHIFT = 0.5  # reference standard deviations
LABEL_SHARE = 0.2
LABEL_BATCHES = 4
REF_ROWS = 20_000
LAYOUTS = {"minute": 60, "second-compacted": 1, "second": 1}  # seconds of traffic per file
LAYOUT_LABELS = {"minute": "one file per minute", "second-compacted": "one per second, hours compacted",
                 "second": "one per second, not compacted"}
PUBLISH_DELAY = 0.2  # a file is published this long after the last second it covers
MODEL = "churn"
FIRST_TARGET, AGAIN_TARGET = 5.0, 0.5
LAZY_IMPORTS = ("pandas", "pyarrow.dataset", "pyarrow.parquet", "sklearn.metrics", "modelcycle.data", "modelcycle.evaluation.metrics",
                "modelcycle.models.package", "modelcycle.registry.fluent", "modelcycle.store.predictions", "modelcycle.monitoring")


# --- worker side: runs in a fresh subprocess ----------------------------------------------------
def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _quiet() -> None:
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)


def _client(home: str):
    import modelcycle as mc

    client = mc.Client(mc.Settings.for_home(home, capture=False))
    _ = client.store  # opens the database (and checks its migrations) before any clock starts
    return client


def log_of(home: Path) -> Path:
    """Where the log and labels of a home are: its artifact store."""
    return home / "artifacts"


def cache_dir(layout: str, rows: int) -> Path:
    return CACHE / f"monitoring-{layout}-{rows}"


def work_compact(spec: dict) -> dict:
    """The per-second layout with each hour's files merged by ``compact``, as the server's log writer does once an hour has
    closed (the files written in ``[end - 1 h, end)``). The per-second cache's log files are hard-linked, not copied."""
    _quiet()
    from modelcycle.store.predictions import compact, model_dir

    rows = spec["rows"]
    source, final = cache_dir("second", rows), cache_dir("second-compacted", rows)
    meta = json.loads((source / "meta.json").read_text())
    part = final.with_name(final.name + ".part")
    shutil.rmtree(part, ignore_errors=True)
    (part / "home").mkdir(parents=True)
    started = time.perf_counter()
    for item in (source / "home").iterdir():
        if item.is_dir():  # the artifact store: its log and labels hard-linked, not copied
            shutil.copytree(item, part / "home" / item.name, copy_function=os.link if item.name == "artifacts" else shutil.copy2)
        else:
            shutil.copy2(item, part / "home" / item.name)
    home, day_start = part / "home", meta["day_start"]
    merged = 0
    for h in range(25):  # the writer compacts [end - 1 h, end) a few seconds after each hour ends
        end = day_start + (h + 1) * HOUR
        merged += compact(log_of(home), "predictions", MODEL, end - HOUR, end)
    compact_s = time.perf_counter() - started
    folder = next(Path(model_dir(log_of(home), "predictions", MODEL)).iterdir())
    names = [f for f in folder.iterdir() if f.name.endswith(".parquet")]
    meta |= {"layout": "second-compacted", "files": len(names), "log_mb": sum(f.stat().st_size for f in names) / 2**20,
             "compacted_files": merged, "compact_s": compact_s}
    (part / "meta.json").write_text(json.dumps(meta, indent=1))
    shutil.rmtree(final, ignore_errors=True)
    part.replace(final)
    return meta


def work_generate(spec: dict) -> dict:
    """Write the cached store, log and labels for one layout (see the module docstring)."""
    _quiet()
    if spec["layout"] == "second-compacted":
        return work_compact(spec)
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from modelcycle.registry import Registry
    from modelcycle.store.predictions import append_labels, model_dir, write_atomic

    layout, rows, period = spec["layout"], spec["rows"], LAYOUTS[spec["layout"]]
    final = cache_dir(layout, rows)
    part = final.with_name(final.name + ".part")
    shutil.rmtree(part, ignore_errors=True)
    home = part / "home"
    started = time.perf_counter()
    day_start = (int(time.time()) // DAY - 1) * DAY  # yesterday, 00:00 UTC: every window has closed

    rng = np.random.default_rng(0)
    k = len(INPUTS)
    means, sds = rng.uniform(-2, 2, k), rng.uniform(0.5, 3, k)
    weights = rng.normal(0, 1, k)
    drifted_weights = weights.copy()
    drifted_weights[:3] *= -1  # hours 20-23: the labels follow other weights (concept drift)

    def labels_for(z, w):
        return (z @ w + rng.normal(0, 0.5, len(z)) > 0).astype(int)

    z_ref = rng.normal(0, 1, (REF_ROWS, k))
    reference = pd.DataFrame(means + sds * z_ref, columns=INPUTS)
    model = LogisticRegression(max_iter=1000).fit(reference, labels_for(z_ref, weights))
    client = _client(str(home))
    with client.start_run(experiment="bench-monitoring"):
        logged = client.log_model(model, reference_data=reference)
    registry = Registry(client)
    registry.register_model(logged, MODEL)
    registry.set_alias(MODEL, "champion", 1)

    offsets = np.sort(rng.uniform(0, DAY, rows))
    hours = (offsets // HOUR).astype(int)
    drifted = np.isin(hours, DRIFT_HOURS)
    z = rng.normal(0, 1, (rows, k))
    y = np.where(drifted, labels_for(z, drifted_weights), labels_for(z, weights))
    shift = np.array([SHIFT if c in DRIFT_COLUMNS else 0.0 for c in INPUTS])
    inputs = pd.DataFrame(means + sds * (z + np.outer(drifted, shift)), columns=INPUTS)
    proba = model.predict_proba(inputs)
    prefix = "3f9c2b7e1d0a4c5b8e6f"  # the server: 20 random hex digits per process, then a counter
    ids = np.array([f"{prefix}{i:012x}" for i in range(rows)], dtype=object)
    frame = pd.DataFrame({"request_id": ids, "row": np.zeros(rows, dtype=np.int64),
                          "time": pd.to_datetime(day_start + offsets, unit="s", utc=True),
                          "model": np.full(rows, MODEL, dtype=object), "version": np.ones(rows, dtype=np.int64),
                          "role": np.full(rows, "champion", dtype=object), "latency_ms": rng.gamma(2.0, 0.4, rows)})
    frame = pd.concat([frame, inputs.add_prefix("input.")], axis=1)
    frame["prediction"] = model.classes_[proba.argmax(axis=1)]
    frame["proba.0"], frame["proba.1"] = proba[:, 0], proba[:, 1]

    folder = Path(model_dir(log_of(home), "predictions", MODEL)) / f"date={time.strftime('%Y-%m-%d', time.gmtime(day_start))}"
    bounds = np.searchsorted(offsets, np.arange(0, DAY + period, period))
    files = 0
    write_started = time.perf_counter()
    for i in range(len(bounds) - 1):
        a, b = bounds[i], bounds[i + 1]
        if a == b:
            continue  # an idle second: the writer publishes nothing
        written = day_start + (i + 1) * period + PUBLISH_DELAY
        write_atomic(frame.iloc[a:b], folder, written_ns=int(written * 1e9))
        files += 1
    write_s = time.perf_counter() - write_started

    labelled = rng.random(rows) < LABEL_SHARE
    label_s = []
    for batch in range(LABEL_BATCHES):
        span = DAY // LABEL_BATCHES
        pick = labelled & (offsets >= batch * span) & (offsets < (batch + 1) * span)
        t0 = time.perf_counter()
        append_labels(log_of(home), MODEL, ids[pick].tolist(), y[pick].tolist())
        label_s.append(time.perf_counter() - t0)
    client.close()
    client.store.close()

    size = sum(f.stat().st_size for f in folder.iterdir())
    meta = {"cache_version": CACHE_VERSION, "layout": layout, "period_s": period, "rows": rows, "day_start": day_start,
            "files": files, "log_mb": size / 2**20, "write_s": write_s, "write_labels_s": label_s,
            "generate_s": time.perf_counter() - started,
            "truth": {"rows": np.bincount(hours, minlength=24).tolist(),
                      "labelled": np.bincount(hours[labelled], minlength=24).tolist(),
                      "drift_hours": list(DRIFT_HOURS), "drift_columns": list(DRIFT_COLUMNS)}}
    (part / "meta.json").write_text(json.dumps(meta, indent=1))
    shutil.rmtree(final, ignore_errors=True)
    part.replace(final)
    return meta


def _evict(paths: list[Path]) -> int:
    """Drop these files' pages from the page cache (best effort; no root needed)."""
    n = 0
    for root in paths:
        for dirpath, _, names in os.walk(root.resolve()):
            for name in names:
                fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
                try:
                    os.fsync(fd)
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                    n += 1
                finally:
                    os.close(fd)
    return n


def _findings(report) -> list[dict]:
    out = []
    for w in report.windows:
        drift = w.drift or {}
        out.append({"start": w.start, "rows": w.rows, "closed": w.closed, "stored": w.stored,
                    "dataset_drift": drift.get("dataset_drift"), "share": drift.get("share"),
                    "drifted_columns": drift.get("drifted_columns"), "labelled": w.labelled,
                    "accuracy": w.metrics.get("accuracy"), "roc_auc": w.metrics.get("roc_auc"),
                    "prediction_drift": (w.prediction_drift or {}).get("statistic"),
                    "quality_errors": (w.quality or {}).get("errors")})
    return out


def work_monitor(spec: dict) -> dict:
    """``monitor()`` over the day on ``spec['home']``: once (``first``, optionally cold) or twice (``again``)."""
    t0 = time.perf_counter()
    _quiet()
    import importlib

    for name in LAZY_IMPORTS:  # what monitor() imports on first use: imports are not timed
        importlib.import_module(name)
    from modelcycle.monitoring import monitor

    client = _client(spec["home"])
    setup_s = time.perf_counter() - t0
    setup_rss = _rss_mb()
    home = Path(spec["home"])
    evicted = _evict([log_of(home) / "predictions", log_of(home) / "labels", home / "modelcycle.db"]) if spec.get("cold") else 0
    start, end = spec["day_start"], spec["day_start"] + DAY
    t0 = time.perf_counter()
    report = monitor(MODEL, window="1h", start=start, end=end, client=client)
    seconds = time.perf_counter() - t0
    out = {"seconds": seconds, "computed": report.computed, "windows": _findings(report), "setup_s": setup_s,
           "setup_rss_mb": setup_rss, "evicted_files": evicted}
    if spec["kind"] == "again":
        t0 = time.perf_counter()
        third = monitor(MODEL, window="1h", start=start, end=end, client=client)
        out["in_process_s"] = time.perf_counter() - t0
        out["in_process_computed"] = third.computed
    out["peak_mb"] = _maxrss_mb()
    client.close()
    return out


def work_scan(spec: dict) -> dict:
    """The parts of a monitor call whose cost grows with the number of files."""
    _quiet()
    import pandas  # noqa: F401  (imports are not timed)
    import pyarrow.dataset  # noqa: F401

    from modelcycle.monitoring.windows import read_window
    from modelcycle.store.predictions import find_predictions, list_files, read_labels

    home, start = log_of(Path(spec["home"])), spec["day_start"]
    out: dict = {}

    def timed(key, fn, *a):
        t0 = time.perf_counter()
        value = fn(*a)
        out[key] = time.perf_counter() - t0
        return value

    timed("list_files_s", list_files, home, "predictions", MODEL)  # the first call warms the interpreter's code paths
    files = timed("list_files_s", list_files, home, "predictions", MODEL)
    hour = [f for f in files if start + HOUR <= f.written_ns / 1e9 < start + 2 * HOUR]  # hour 1's files
    frame = timed("read_hour_s", read_window, home, hour, start + HOUR, start + 2 * HOUR)
    labels = timed("read_labels_s", read_labels, home, MODEL)
    recent = labels.sort_values("time")["request_id"].tail(1000).tolist()  # a batch of labels, as append_labels checks them
    ids = timed("logged_request_ids_s", find_predictions, home, MODEL, recent)
    out |= {"files": len(files), "hour_files": len(hour), "hour_rows": len(frame), "labels": len(labels), "ids": len(ids),
            "peak_mb": _maxrss_mb()}
    return out


WORKERS = {"generate": work_generate, "monitor": work_monitor, "scan": work_scan}


def worker(arg: str) -> None:
    spec = json.loads(arg)
    out = WORKERS[spec["workload"]](spec)
    print("\n" + MARK + json.dumps(out), flush=True)


# --- driver side --------------------------------------------------------------------------------
def run_worker(spec: dict) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELCYCLE_")} | {"PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)], cwd=REPO, env=env, capture_output=True, text=True)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(MARK):
            return json.loads(line[len(MARK):])
    tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-25:])
    raise RuntimeError(f"{spec['workload']} {spec.get('layout', '')} exited {proc.returncode}:\n{tail}")


def load_cache(layout: str, rows: int, console) -> dict:
    meta_file = cache_dir(layout, rows) / "meta.json"
    if meta_file.exists():
        meta = json.loads(meta_file.read_text())
        if meta.get("cache_version") == CACHE_VERSION:
            return meta
    if layout == "second-compacted":
        load_cache("second", rows, console)  # made from the per-second files
    console.print(f"[dim]writing {cache_dir(layout, rows).relative_to(REPO)}: {rows:,} predictions, {LAYOUT_LABELS[layout]} (once)…[/]")
    meta = run_worker({"workload": "generate", "layout": layout, "rows": rows})
    if layout == "second-compacted":
        console.print(f"[dim]  {meta['compacted_files']:,} files merged into {meta['files']:,}, {meta['log_mb']:.0f} MB, "
                      f"in {meta['compact_s']:.0f} s[/]")
    else:
        console.print(f"[dim]  {meta['files']:,} files, {meta['log_mb']:.0f} MB, written in {meta['write_s']:.0f} s; "
                      f"labels {sum(meta['write_labels_s']):.1f} s; {meta['generate_s']:.0f} s in all[/]")
    return meta


def fresh_home(layout: str, rows: int, parent: Path) -> Path:
    """A new home: a copy of the cached store (no windows yet), the cached log and labels linked in."""
    template = cache_dir(layout, rows) / "home"
    home = Path(tempfile.mkdtemp(prefix=f"mc-bench-monitoring-{layout}-", dir=parent))
    for item in template.iterdir():
        if item.name == "artifacts":
            (home / item.name).mkdir()
            for inner in item.iterdir():
                if inner.name in ("predictions", "labels"):
                    (home / item.name / inner.name).symlink_to(inner.resolve(), target_is_directory=True)
                elif inner.is_dir():
                    shutil.copytree(inner, home / item.name / inner.name)
        elif item.is_dir():
            shutil.copytree(item, home / item.name)
        else:
            shutil.copy2(item, home / item.name)
    return home


def check_answer(meta: dict, first: dict, again: dict | None) -> list[tuple[str, str, str]]:
    """Rows of (check, found, PASS/FAIL) comparing a report with what was generated."""
    truth = meta["truth"]
    ws = first["windows"]
    drift_hours, drift_cols = set(truth["drift_hours"]), sorted(truth["drift_columns"])
    hours = range(len(ws))
    out = []

    def row(label: str, found: str, ok: bool) -> None:
        out.append((label, found, "PASS" if ok else "FAIL"))

    row("24 hourly windows, all closed", f"{len(ws)} windows, {sum(w['closed'] for w in ws)} closed",
        len(ws) == 24 and all(w["closed"] for w in ws))
    if len(ws) != 24:
        return out
    for key, what in (("rows", "rows generated"), ("labelled", "labels sent")):
        diff = [ws[h][key] - truth[key][h] for h in hours]
        off = [d for d in diff if d]
        found = f"{24 - len(off)}/24 exact, {sum(w[key] for w in ws):,} of {sum(truth[key]):,}"
        if off:
            found += f"; {len(off)} hours off by {min(off):+,}…{max(off):+,}"
        row(f"{key} per window = {what} for that hour", found, not off)
    hit = [h for h in sorted(drift_hours) if ws[h]["dataset_drift"]]
    row(f"dataset drift in the drifted hours {min(drift_hours)}–{max(drift_hours)}", f"{len(hit)}/{len(drift_hours)}"
        + (", shares " + ", ".join(f"{ws[h]['share']:.0%}" for h in sorted(drift_hours)) if ws[0]["share"] is not None else ""),
        len(hit) == len(drift_hours))
    false = [h for h in hours if h not in drift_hours and ws[h]["dataset_drift"] is not False]
    normal_share = max((ws[h]["share"] or 0) for h in hours if h not in drift_hours)
    row("no dataset drift in the other 20 hours", f"{len(false)} false alarms (max share {normal_share:.0%})", not false)
    wrong = [h for h in sorted(drift_hours) if sorted(ws[h]["drifted_columns"] or []) != drift_cols]
    extra = sorted({c for h in hours if h not in drift_hours for c in ws[h]["drifted_columns"] or []})
    row(f"drifted columns are exactly {drift_cols[0]}–{drift_cols[-1]} in the drifted hours, none elsewhere",
        ("exact" if not wrong and not extra else f"differ in hours {wrong}; elsewhere {extra}"), not wrong and not extra)
    normal = [ws[h]["accuracy"] for h in hours if h not in drift_hours and ws[h]["accuracy"] is not None]
    worse = [ws[h]["accuracy"] for h in sorted(drift_hours) if ws[h]["accuracy"] is not None]
    ok = bool(normal and worse and max(worse) < min(normal))
    row("live accuracy lower in the drifted hours", f"{min(normal, default=float('nan')):.3f}–{max(normal, default=float('nan')):.3f} "
        f"vs {min(worse, default=float('nan')):.3f}–{max(worse, default=float('nan')):.3f}", ok)
    errors = sum(w["quality_errors"] or 0 for w in ws)
    row("no data-quality errors (same columns and types as trained on)", f"{errors} errors", errors == 0)
    row("first call read all 24 windows from the log", f"computed {first['computed']}", first["computed"] == 24)
    if again is not None:
        keys = ("rows", "dataset_drift", "drifted_columns", "labelled", "accuracy")
        same = all(a[k] == b[k] for a, b in zip(first["windows"], again["windows"], strict=True) for k in keys)
        row("second call: all 24 from the store, same findings", f"computed {again['computed']}, stored "
            f"{sum(w['stored'] for w in again['windows'])}, {'same' if same else 'DIFFERENT'}",
            again["computed"] == 0 and all(w["stored"] for w in again["windows"]) and same)
    return out


def med(samples: list[dict], key: str) -> float | None:
    values = [s[key] for s in samples if isinstance(s.get(key), (int, float))]
    return statistics.median(values) if values else None


def fs(v: float | None, digits: int = 2) -> str:
    return "—" if v is None else f"{v:,.{digits}f} s"


def fmb(v: float | None) -> str:
    return "—" if v is None else f"{v:,.0f} MB"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--quick", action="store_true", help="per-minute files only, one repetition, no cold run")
    p.add_argument("--layouts", help="comma-separated: minute,second-compacted,second (default all three)")
    p.add_argument("--repeats", type=int, help="fresh-process repetitions (default 3)")
    p.add_argument("--rows", type=int, default=ROWS, help=argparse.SUPPRESS)  # smaller logs, to try the script out
    p.add_argument("--second-repeats", type=int, default=1,
                   help="repetitions of the per-second layout's first call (~5 min each) and scan (default 1)")
    p.add_argument("--no-cold", action="store_true", help="skip the first call with the log evicted from the page cache")
    p.add_argument("--json", type=Path, help="write the raw numbers here")
    args = p.parse_args()
    if args.worker:
        worker(args.worker)
        return 0
    from importlib.metadata import version

    from rich.console import Console
    from rich.table import Table

    layouts = args.layouts.split(",") if args.layouts else (["minute"] if args.quick else list(LAYOUTS))
    if unknown := [x for x in layouts if x not in LAYOUTS]:
        p.error(f"unknown layout(s) {unknown}; choose from {', '.join(LAYOUTS)}")
    repeats = args.repeats or (1 if args.quick else 3)
    cold = not (args.quick or args.no_cold)
    console = Console(width=None if sys.stdout.isatty() else 160)
    versions = {"python": platform.python_version()}
    for name in ("modelcycle", "pandas", "pyarrow", "scikit-learn", "datasketches"):
        try:
            versions[name] = version(name)
        except Exception:
            pass
    git = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    versions["git"] = git or "?"
    load = os.getloadavg()
    console.print(f"[bold]monitoring benchmark[/] {versions}, {os.cpu_count()} CPUs, load {load[0]:.2f}, rows={args.rows:,}, "
                  f"layouts={layouts}, repeats={repeats}")
    errors: list[str] = []
    started = time.time()
    metas = {layout: load_cache(layout, args.rows, console) for layout in layouts}
    samples: dict[str, dict[str, list[dict]]] = {x: {"first": [], "cold": [], "again": [], "scan": []} for x in layouts}
    scratch = Path(tempfile.mkdtemp(prefix="mc-bench-monitoring-"))
    # the per-second layout's first call takes minutes: its first call and scan run --second-repeats times (default 1);
    # its "again" runs every repetition, on the store its last first call filled
    slow_reps = {layout: repeats if layout != "second" else min(repeats, args.second_repeats) for layout in layouts}
    homes: dict[str, Path] = {}
    try:
        for r in range(repeats):
            for layout in layouts:
                meta = metas[layout]
                base = {"workload": "monitor", "layout": layout, "day_start": meta["day_start"]}
                line = ""
                try:
                    if r < slow_reps[layout]:
                        if layout in homes:
                            shutil.rmtree(homes.pop(layout))
                        homes[layout] = fresh_home(layout, args.rows, scratch)
                        first = run_worker(base | {"kind": "first", "home": str(homes[layout])})
                        samples[layout]["first"].append(first)
                        line += f"first {first['seconds']:.2f} s (peak {first['peak_mb']:,.0f} MB), "
                    again = run_worker(base | {"kind": "again", "home": str(homes[layout])})
                    samples[layout]["again"].append(again)
                    line += f"again {again['seconds']:.3f} s, in-process {again['in_process_s']:.3f} s"
                    if cold and layout == "minute":
                        home = fresh_home(layout, args.rows, scratch)
                        c = run_worker(base | {"kind": "first", "home": str(home), "cold": True})
                        samples[layout]["cold"].append(c)
                        shutil.rmtree(home)
                        line += f", first cold {c['seconds']:.2f} s ({c['evicted_files']:,} files evicted)"
                    if r < slow_reps[layout]:
                        scan = run_worker({"workload": "scan", "layout": layout, "day_start": meta["day_start"],
                                           "home": str(cache_dir(layout, args.rows) / "home")})
                        samples[layout]["scan"].append(scan)
                    console.print(f"[dim]rep {r + 1}/{repeats} {layout:<6}  {line}[/]")
                except (RuntimeError, KeyError) as e:
                    errors.append(f"{layout} rep {r + 1}: {e}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    table = Table(title=f"monitor() over a day of {args.rows:,} logged predictions, 1-h windows (medians of fresh processes)",
                  title_justify="left", header_style="bold")
    for col in ("log layout", "files", "log size", "runs first / again", "first call", "first, cold cache", "again (new process)",
                "again (in process)", "setup (imports, store)", "peak RSS first / again"):
        table.add_column(col, justify="left" if col == "log layout" else "right")
    for layout in layouts:
        s, meta = samples[layout], metas[layout]
        table.add_row(LAYOUT_LABELS[layout], f"{meta['files']:,}", f"{meta['log_mb']:,.0f} MB", f"{len(s['first'])} / {len(s['again'])}",
                      fs(med(s["first"], "seconds")),
                      fs(med(s["cold"], "seconds")), fs(med(s["again"], "seconds"), 3), fs(med(s["again"], "in_process_s"), 3),
                      fs(med(s["first"], "setup_s")),
                      f"{fmb(med(s['first'], 'peak_mb'))} / {fmb(med(s['again'], 'peak_mb'))}")
    table.caption = ("first: the store's window table empty; again: the windows the first call stored; setup is not in the call's time; "
                     "peak RSS includes imports (after imports and opening the store: "
                     + ", ".join(f"{fmb(med(samples[x]['first'], 'setup_rss_mb'))} {x}" for x in layouts) + ")")
    console.print(table)

    table = Table(title="costs that grow with the number of files (medians, warm page cache)", title_justify="left", header_style="bold")
    for col in ("log layout", "files", "list_files (the day)", "read one hour (read_window)", "read_labels", "find 1,000 labelled ids",
                "append_labels × 4 (once, generating)"):
        table.add_column(col, justify="left" if col == "log layout" else "right")
    for layout in layouts:
        s, meta = samples[layout]["scan"], metas[layout]
        hour_files = s[0]["hour_files"] if s else 0
        table.add_row(LAYOUT_LABELS[layout], f"{meta['files']:,}", fs(med(s, "list_files_s"), 3),
                      f"{fs(med(s, 'read_hour_s'), 3)} ({hour_files:,} files)", fs(med(s, "read_labels_s"), 3),
                      fs(med(s, "logged_request_ids_s"), 3),
                      "—" if layout == "second-compacted" else f"{', '.join(f'{x:.1f}' for x in meta['write_labels_s'])} s")
    table.caption = "append_labels looks its request ids up newest file first and stops when all are found"
    console.print(table)

    checks: dict[str, list[tuple[str, str, str]]] = {}
    for layout in layouts:
        s = samples[layout]
        if not s["first"]:
            continue
        rows = check_answer(metas[layout], s["first"][0], s["again"][0] if s["again"] else None)
        for i in range(1, max(len(s["first"]), len(s["again"]))):  # later repetitions give the same answer
            first, again = s["first"][min(i, len(s["first"]) - 1)], s["again"][i] if i < len(s["again"]) else None
            if check_answer(metas[layout], first, again) != rows:
                rows.append((f"repetition {i + 1} gives the same answer", "different", "FAIL"))
        checks[layout] = rows
        table = Table(title=f"is the report right? ({LAYOUT_LABELS[layout]})", title_justify="left", header_style="bold")
        for col in ("check", "found", "result"):
            table.add_column(col)
        for label, found, result in rows:
            table.add_row(label, found, f"[{'green' if result == 'PASS' else 'bold red'}]{result}[/]")
        console.print(table)
        errors += [f"{layout}: {label}: {found}" for label, found, result in rows if result != "PASS"]

    def check(v: float | None, limit: float) -> str:
        return "n/a" if v is None else "PASS" if v < limit else "FAIL"

    tgts = []
    for layout in layouts:
        s = samples[layout]
        first, again = med(s["first"], "seconds"), med(s["again"], "seconds")
        files = f"{metas[layout]['files']:,} files"
        tgts.append((f"first monitor() of the day, 1-h windows < {FIRST_TARGET:g} s ({LAYOUT_LABELS[layout]}: {files})", fs(first),
                     check(first, FIRST_TARGET)))
        if s["cold"]:
            c = med(s["cold"], "seconds")
            tgts.append(("  same, log evicted from the page cache", fs(c), check(c, FIRST_TARGET)))
        tgts.append((f"again, stored windows < {AGAIN_TARGET:g} s (new process; {files})", fs(again, 3), check(again, AGAIN_TARGET)))
    print_targets(console, tgts)
    end_load = os.getloadavg()
    console.print(f"[dim]took {time.time() - started:.0f} s; load average now {end_load[0]:.2f} / {end_load[1]:.2f} / {end_load[2]:.2f}[/]")
    for e in errors:
        console.print(f"error: {e}", style="red", markup=False, highlight=False)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "versions": versions, "cpus": os.cpu_count(), "load": [load, end_load], "repeats": repeats, "rows": args.rows,
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "caches": metas, "samples": samples, "checks": checks, "errors": errors,
            "targets": [dict(zip(("target", "measured", "result"), t, strict=True)) for t in tgts]}, indent=1))
        console.print(f"raw numbers written to {args.json}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
