"""Drift reports: modelcycle ``compare`` vs Evidently 0.7.23 ``DataDriftPreset``, side by side in one run.

Workload: the shared ``datagen.make(n_rows, seed)`` from ``../shared/bench`` (beside this clone):
20 numeric and 5 categorical columns, 6 of them drifted, scored with ``datagen.score``.

Run from the repository root with the project's own environment::

    .venv/bin/python bench/drift.py                        # 10k, 100k, 1M rows, 3 repeats (~11 min, 2 cores)
    .venv/bin/python bench/drift.py --quick                # 10k and 100k rows
    .venv/bin/python bench/drift.py --sizes 50000 --repeats 5 --json bench/results/drift.json
    .venv/bin/python bench/drift.py --no-evidently         # modelcycle only

Evidently 0.7 needs pandas < 3, so it runs in its own environment, ``.venv-evidently``; when
that is missing (or cannot import evidently) this script creates it and installs
``evidently==0.7.23 'pandas<3' pyarrow``, printing each step. ``--evidently-python`` points at
another interpreter instead.

Every (tool, size, repetition) runs in a fresh subprocess (this file with ``--worker``) that
generates the data itself (same seed for both tools), makes one untimed report on its first 200 rows
(what each tool imports or prepares on its first call: modelcycle's tests import scipy.stats), and
times only the report:
``compare(reference, current)`` for modelcycle, ``Report([DataDriftPreset()]).run(current,
reference)`` for Evidently (defaults; per-column verdicts are read from its data-drift table).
Memory: ``peak`` is the worker's peak RSS over its whole life (``ru_maxrss``); ``baseline`` is
the RSS after data generation (after ``gc`` and ``malloc_trim``); ``over baseline`` is the peak
RSS during the report (the peak is reset via ``/proc/self/clear_refs`` before it) minus baseline.
A third worker per size times modelcycle's ``profile(ref)``, ``infer_schema(ref)``,
``validate(cur, schema)`` and ``compare`` of two stored profiles (through ``to_bytes``).
Calibration (``--calibration-seeds``, 200 by default; ``--calibration-only``): false alarms of
modelcycle's ``compare`` (defaults) when a small current sample (50, 300, 1,000 rows) and the
reference come from one distribution (``datagen``'s reference frames of other seeds), against
references of 1,000 to 1,000,000 rows: per column, the share of seeds that called it drifted.
References of up to 10,000 rows are drawn anew for every seed; larger ones once, because their
sampling noise is small next to the current sample's. Runs in this process.
Last, a worker profiles a 10M-row Parquet file (reference frames of ``datagen`` written in
1M-row row groups to ``bench/.cache/``, once) and reports its time and peak RSS (``--no-large``
skips it; ``--quick`` too).
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
import time
from collections import Counter
from pathlib import Path

from _report import print_targets  # bench/ is on the path when a benchmark runs as a script

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SHARED = REPO.parent / "shared" / "bench"
EV_VENV = REPO / ".venv-evidently"
EV_REQUIREMENTS = ["evidently==0.7.23", "pandas<3", "pyarrow"]
MARK = "BENCH-RESULT "
SIZES, QUICK_SIZES = [10_000, 100_000, 1_000_000], [10_000, 100_000]
TARGET_ROWS = 1_000_000
LARGE_ROWS, LARGE_CHUNK = 10_000_000, 1_000_000
CACHE = HERE / ".cache"
STORED_CALLS = 11


# --- worker side: runs in a fresh subprocess (either interpreter), stdlib imports only at the top ---
def _datagen():
    if not (SHARED / "datagen.py").is_file():
        raise SystemExit(f"shared workload missing: {SHARED / 'datagen.py'} (expected shared/ beside the clone)")
    sys.path.insert(0, str(SHARED))
    import datagen

    return datagen


def _status_mb(key: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    raise KeyError(key)


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _settle() -> None:
    import gc

    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM and ru_maxrss to the current RSS
        return True
    except OSError:
        return False


def _mc_report(ref, cur):
    from modelcycle.data import compare

    t0 = time.perf_counter()
    report = compare(ref, cur)
    secs = time.perf_counter() - t0
    detail = {n: {"method": c.method, "score": c.statistic, "threshold": c.threshold} for n, c in report.columns.items()}
    return secs, {n: bool(c.drifted) for n, c in report.columns.items()}, detail, []


def _ev_report(ref, cur):
    from evidently import Report
    from evidently.core.report import _default_input_data_generator
    from evidently.legacy.metrics import DataDriftTable
    from evidently.presets import DataDriftPreset

    t0 = time.perf_counter()
    snapshot = Report([DataDriftPreset()]).run(cur, ref)
    secs = time.perf_counter() - t0
    # The preset renders a legacy DataDriftTable; the context caches it, with drift_detected per column.
    table = snapshot.context.get_legacy_metric(DataDriftTable(), _default_input_data_generator, None)[0]
    cols = table.drift_by_columns
    verdicts = {n: bool(c.drift_detected) for n, c in cols.items()}
    detail = {n: {"method": c.stattest_name, "score": float(c.drift_score), "threshold": c.stattest_threshold} for n, c in cols.items()}
    problems = []
    count = next(m["value"]["count"] for m in snapshot.dict()["metrics"] if m["config"]["type"].endswith("DriftedColumnsCount"))
    if int(count) != sum(verdicts.values()):
        problems.append(f"evidently: DriftedColumnsCount says {count}, the table {sum(verdicts.values())}")
    return secs, verdicts, detail, problems


def work_drift(tool: str, n: int, seed: int) -> dict:
    run = _mc_report if tool == "modelcycle" else _ev_report
    if tool == "modelcycle":
        import modelcycle.data  # noqa: F401  (imports are not timed)
    else:
        import evidently.presets  # noqa: F401
    datagen = _datagen()
    ref, cur, truth = datagen.make(n, seed)
    run(ref.head(200), cur.head(200))  # untimed, on both sides: what the tool imports or prepares on its first call
    gen_peak = _maxrss_mb()
    _settle()
    baseline = _status_mb("VmRSS")
    reset = _reset_peak()
    secs, verdicts, detail, problems = run(ref, cur)
    report_peak = _status_mb("VmHWM") if reset else _maxrss_mb()
    return {"seconds": secs, "baseline_mb": baseline, "datagen_peak_mb": gen_peak, "report_peak_mb": report_peak,
            "peak_mb": max(gen_peak, report_peak), "over_baseline_mb": report_peak - baseline, "peak_reset": reset,
            "score": datagen.score(verdicts, truth), "verdicts": verdicts, "detail": detail, "problems": problems}


def work_extras(tool: str, n: int, seed: int) -> dict:
    from modelcycle.data import Profile, compare, infer_schema, profile, validate

    datagen = _datagen()
    ref, cur, truth = datagen.make(n, seed)
    out: dict = {}

    def timed(key, fn, *a):
        t0 = time.perf_counter()
        value = fn(*a)
        out[key] = time.perf_counter() - t0
        return value

    p_ref, p_cur = timed("profile_s", profile, ref), timed("profile_cur_s", profile, cur)
    schema = timed("infer_schema_s", infer_schema, ref)
    report = timed("validate_s", validate, cur, schema)
    out["anomalies"] = [f"{a.column}:{a.check}" for a in report.anomalies]
    stored_ref, stored_cur = Profile.from_bytes(p_ref.to_bytes()), Profile.from_bytes(p_cur.to_bytes())
    out["stored_kb"] = (len(p_ref.to_bytes()) + len(p_cur.to_bytes())) / 2 / 1024
    times = []
    for _ in range(STORED_CALLS):
        t0 = time.perf_counter()
        drift = compare(stored_ref, stored_cur)
        times.append(time.perf_counter() - t0)
    verdicts = {name: bool(c.drifted) for name, c in drift.columns.items()}
    out |= {"stored_first_ms": times[0] * 1e3, "stored_ms": statistics.median(times) * 1e3, "columns": len(drift.columns),
            "stored_score": datagen.score(verdicts, truth), "stored_verdicts": verdicts}
    return out


def large_path(n: int, seed: int) -> Path:
    return CACHE / f"datagen-ref-{n}-seed{seed}.parquet"


def work_write_large(tool: str, n: int, seed: int) -> dict:
    """Write ``n`` rows of reference data, 1M-row chunks with successive seeds, as one Parquet file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    datagen = _datagen()
    path = large_path(n, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part")
    writer = None
    for i in range(0, n, LARGE_CHUNK):
        ref = datagen.make(min(LARGE_CHUNK, n - i), seed + i // LARGE_CHUNK)[0]
        table = pa.Table.from_pandas(ref, preserve_index=False, schema=writer.schema if writer else None)
        writer = writer or pq.ParquetWriter(tmp, table.schema)
        writer.write_table(table, row_group_size=LARGE_CHUNK)
    assert writer is not None
    writer.close()
    tmp.replace(path)
    return {"bytes": path.stat().st_size}


def work_large(tool: str, n: int, seed: int) -> dict:
    from modelcycle.data import profile

    path = large_path(n, seed)
    before = _maxrss_mb()
    t0 = time.perf_counter()
    p = profile(path)
    secs = time.perf_counter() - t0
    return {"seconds": secs, "rows": p.rows, "columns": len(p.columns), "import_peak_mb": before, "peak_mb": _maxrss_mb(),
            "file_mb": path.stat().st_size / 2**20}


WORKERS = {"drift": work_drift, "extras": work_extras, "write_large": work_write_large, "large": work_large}


def worker(spec: str) -> None:
    s = json.loads(spec)
    out = WORKERS[s["workload"]](s["tool"], s["n"], s["seed"])
    print("\n" + MARK + json.dumps(out), flush=True)


# --- driver side ------------------------------------------------------------------------------
def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELCYCLE_")}
    return env | {"PYTHONWARNINGS": "ignore", "DO_NOT_TRACK": "1"}


def run_worker(python: str, tool: str, workload: str, n: int, seed: int) -> dict:
    spec = json.dumps({"tool": tool, "workload": workload, "n": n, "seed": seed})
    proc = subprocess.run([python, __file__, "--worker", spec], cwd=REPO, env=child_env(), capture_output=True, text=True)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(MARK):
            return json.loads(line[len(MARK):])
    tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-30:])
    raise RuntimeError(f"{tool} {workload} (n={n:,}) exited {proc.returncode}:\n{tail}")


def evidently_python(args, console) -> tuple[str | None, str | None]:
    """The interpreter for Evidently workers and its version; creates .venv-evidently when needed."""
    if args.no_evidently:
        console.print("[yellow]Evidently skipped (--no-evidently)[/]")
        return None, None
    python = Path(args.evidently_python or EV_VENV / "bin" / "python")
    probe = [str(python), "-c", "import evidently, pandas; print(evidently.__version__, pandas.__version__)"]

    def versions() -> str | None:
        if not python.exists():
            return None
        p = subprocess.run(probe, capture_output=True, text=True, env=child_env())
        return p.stdout.strip() if p.returncode == 0 else None

    found = versions()
    if found is None and not args.evidently_python:
        base = getattr(sys, "_base_executable", None) or shutil.which("python3") or sys.executable
        if not python.exists():
            console.print(f"[bold]creating {EV_VENV.relative_to(REPO)}[/]: {base} -m venv {EV_VENV}")
            subprocess.run([base, "-m", "venv", str(EV_VENV)], check=True)
        console.print(f"[bold]installing into it[/]: {python} -m pip install -q " + " ".join(f"'{r}'" for r in EV_REQUIREMENTS))
        subprocess.run([str(python), "-m", "pip", "install", "-q", *EV_REQUIREMENTS], check=True)
        found = versions()
    if found is None:
        raise SystemExit(f"cannot import evidently with {python}; try: {python} -m pip install "
                         + " ".join(f"'{r}'" for r in EV_REQUIREMENTS) + "  (or pass --no-evidently)")
    ev_version, pd_version = found.split()
    if ev_version != "0.7.23":
        console.print(f"[yellow]note: Evidently {ev_version}, not the 0.7.23 this benchmark was written for[/]")
    return str(python), f"{ev_version} (pandas {pd_version})"


def median_of(samples: list[dict], key: str) -> float:
    return statistics.median(s[key] for s in samples)


def measure(args, tools: dict[str, str], console, errors: list[str]) -> dict:
    res: dict = {}
    for n in args.sizes:
        drift: dict[str, list[dict]] = {t: [] for t in tools}
        extras: list[dict] = []
        for r in range(args.repeats):  # interleaved, so noise hits both tools alike
            for tool, python in tools.items():
                try:
                    out = run_worker(python, tool, "drift", n, args.seed)
                    drift[tool].append(out)
                    errors.extend(out["problems"])
                    console.print(f"[dim]{n:>9,} rows  rep {r + 1}/{args.repeats}  {tool:<10}  {out['seconds']:8.2f} s  "
                                  f"peak {out['peak_mb']:6,.0f} MB  over baseline {out['over_baseline_mb']:6,.0f} MB  {out['score']}[/]")
                except RuntimeError as e:
                    errors.append(str(e))
            try:
                extras.append(run_worker(sys.executable, "modelcycle", "extras", n, args.seed))
            except RuntimeError as e:
                errors.append(str(e))
        res[n] = {"drift": {}, "extras": None}
        for tool, samples in drift.items():
            if samples:
                res[n]["drift"][tool] = {
                    "median_s": median_of(samples, "seconds"), "peak_mb": median_of(samples, "peak_mb"),
                    "baseline_mb": median_of(samples, "baseline_mb"), "over_baseline_mb": median_of(samples, "over_baseline_mb"),
                    "max_fp": max(s["score"]["fp"] for s in samples), "max_fn": max(s["score"]["fn"] for s in samples),
                    "peak_reset": all(s["peak_reset"] for s in samples), "samples": samples}
        if extras:
            res[n]["extras"] = {k: median_of(extras, k) for k in
                                ("profile_s", "profile_cur_s", "infer_schema_s", "validate_s", "stored_first_ms", "stored_ms", "stored_kb")}
            res[n]["extras"] |= {"columns": extras[0]["columns"], "samples": extras}
    if args.large:
        path = large_path(args.large, args.seed)
        try:
            if not path.exists():
                console.print(f"[dim]writing {path.relative_to(REPO)} ({args.large:,} rows, once)…[/]")
                run_worker(sys.executable, "modelcycle", "write_large", args.large, args.seed)
            res["large"] = run_worker(sys.executable, "modelcycle", "large", args.large, args.seed)
            console.print(f"[dim]{args.large:>9,} rows from Parquet  profile {res['large']['seconds']:8.2f} s  "
                          f"peak {res['large']['peak_mb']:6,.0f} MB[/]")
        except RuntimeError as e:
            errors.append(str(e))
    return res


def ratios(row: dict) -> dict[str, float | None]:
    mc, ev = row["drift"].get("modelcycle"), row["drift"].get("evidently")
    if not (mc and ev):
        return {"time": None, "peak": None, "over": None}
    return {"time": ev["median_s"] / mc["median_s"], "peak": mc["peak_mb"] / ev["peak_mb"],
            "over": mc["over_baseline_mb"] / ev["over_baseline_mb"] if ev["over_baseline_mb"] > 0 else None}


def fx(r: float | None) -> str:
    return "—" if r is None else f"{r:,.0f}x" if r >= 10 else f"{r:.2f}x"


def pct(r: float | None) -> str:
    return "—" if r is None else f"{r:.0%}"


def scores(samples: list[dict], key: str = "score") -> str:
    counts = Counter(f"{s[key]['tp']}/{s[key]['fp']}/{s[key]['fn']}" for s in samples)
    return ", ".join(k if len(counts) == 1 else f"{k} ×{c}" for k, c in counts.most_common())


def misses(samples: list[dict], truth_cols: set[str], key: str = "verdicts") -> str:
    missed = Counter(c for s in samples for c in truth_cols if not s[key].get(c))
    false = Counter(c for s in samples for c, v in s[key].items() if v and c not in truth_cols)
    parts = [f"missed {c}" + (f" ({k}/{len(samples)})" if k < len(samples) else "") for c, k in sorted(missed.items())]
    parts += [f"false {c}" + (f" ({k}/{len(samples)})" if k < len(samples) else "") for c, k in sorted(false.items())]
    return ", ".join(parts) or "exact"


CAL_SIZES, CAL_REFERENCES = (50, 300, 1000), (1_000, 10_000, 100_000, 1_000_000)
CAL_TARGET = 0.06


def calibration(seeds: int, console) -> dict:
    """False alarms per column over ``seeds`` same-distribution samples, for every (reference, current) size."""
    from rich.progress import Progress

    from modelcycle.data import compare, profile

    datagen = _datagen()
    out: dict = {}
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("calibration", total=len(CAL_REFERENCES) * len(CAL_SIZES) * seeds)
        for ref_rows in CAL_REFERENCES:
            fixed = profile(datagen.make(ref_rows, 10**6)[0]) if ref_rows > 10_000 else None
            for size in CAL_SIZES:
                alarms: Counter = Counter()
                started = time.perf_counter()
                for seed in range(seeds):
                    reference = fixed if fixed is not None else profile(datagen.make(ref_rows, 2 * seed + 1)[0])
                    current = datagen.make(size, 2 * seed + 2)[0]
                    alarms.update(compare(reference, current).drifted_columns)
                    bar.advance(task)
                columns = list(datagen.make(10, 0)[0].columns)
                out[f"{ref_rows}/{size}"] = {"reference": ref_rows, "current": size, "seeds": seeds,
                                             "rates": {c: alarms[c] / seeds for c in columns},
                                             "ms_per_compare": (time.perf_counter() - started) / seeds * 1000}
    return out


def render_calibration(cal: dict, console) -> None:
    from rich.table import Table

    if not cal:
        return
    first = next(iter(cal.values()))
    table = Table(title=f"false alarms per column, same distribution, {first['seeds']} seeds (compare defaults)",
                  title_justify="left")
    for col in ("reference rows", "current rows", "worst column", "worst rate", "mean rate", "columns > 6%", "ms per seed"):
        table.add_column(col, justify="right" if col != "worst column" else "left")
    for row in cal.values():
        rates = row["rates"]
        worst = max(rates, key=rates.__getitem__)
        over = sum(r > CAL_TARGET for r in rates.values())
        table.add_row(f"{row['reference']:,}", f"{row['current']:,}", worst, f"{rates[worst]:.1%}",
                      f"{statistics.mean(rates.values()):.2%}", str(over), f"{row['ms_per_compare']:.0f}")
    table.caption = "ms per seed: generating the samples, profiling them and compare(); the worst column is one of 25"
    console.print(table)


def targets(res: dict, cal: dict | None = None) -> list[tuple[str, str, str]]:
    def check(ok: bool | None) -> str:
        return "n/a" if ok is None else "PASS" if ok else "FAIL"

    row = res.get(TARGET_ROWS)
    mc = row["drift"].get("modelcycle") if row else None
    ev = row["drift"].get("evidently") if row else None
    ext = row["extras"] if row else None
    rat = ratios(row) if row else {"time": None, "peak": None, "over": None}
    both = mc is not None and ev is not None
    out = [("drift report ≥ 40x faster than Evidently (1M rows)", fx(rat["time"]), check(None if rat["time"] is None else rat["time"] >= 40)),
           ("peak memory ≤ 40% of Evidently's (1M rows)", pct(rat["peak"]), check(None if rat["peak"] is None else rat["peak"] <= 0.4)),
           ("  same, peak over baseline (the report alone)", pct(rat["over"]), check(None if rat["over"] is None else rat["over"] <= 0.4)),
           ("false positives ≤ Evidently's (1M rows, worst rep)", f"{mc['max_fp']} vs {ev['max_fp']}" if both else "—",
            check(mc["max_fp"] <= ev["max_fp"] if both else None)),
           ("false negatives ≤ Evidently's (1M rows, worst rep)", f"{mc['max_fn']} vs {ev['max_fn']}" if both else "—",
            check(mc["max_fn"] <= ev["max_fn"] if both else None))]
    for label, key in (("profile(ref) 1M × 25 < 2 s", "profile_s"), ("validate(cur, schema) 1M < 2 s (schema inferred beforehand)", "validate_s")):
        out.append((label, f"{ext[key]:.2f} s" if ext else "—", check(ext[key] < 2 if ext else None)))
    sizes = [k for k in res if isinstance(k, int)]
    largest = max(sizes) if sizes else None
    stored = res[largest]["extras"] if largest else None
    out.append((f"compare two stored profiles (25 columns) < 50 ms (median; from {largest:,} rows)" if largest else "compare stored profiles < 50 ms",
                f"{stored['stored_ms']:.1f} ms" if stored else "—", check(stored["stored_ms"] < 50 if stored else None)))
    large = res.get("large")
    out.append((f"profile a {LARGE_ROWS // 1_000_000}M-row Parquet file: peak memory < 2 GB",
                f"{large['peak_mb']:,.0f} MB ({large['seconds']:.1f} s)" if large else "—", check(large["peak_mb"] < 2048 if large else None)))
    if cal:
        worst = max((rate, column, key) for key, row in cal.items() for column, rate in row["rates"].items())
        out.append(("false alarms ≤ 6% per column, 50/300/1,000 rows vs 1k–1M references", f"{worst[0]:.1%} ({worst[1]}, {worst[2]})",
                    check(worst[0] <= CAL_TARGET)))
    return out


def render(res: dict, tgts: list, truth_cols: set[str], console) -> None:
    from rich.table import Table

    for n, row in res.items():
        if n == "large":
            continue
        table = Table(title=f"drift report, datagen {n:,} rows × 25 columns", title_justify="left")
        for col in ("tool", "median time", "peak RSS", "baseline", "over baseline", "tp/fp/fn", "verdict errors",
                    "time Ev/mc", "peak mc/Ev", "over-baseline mc/Ev"):
            table.add_column(col, justify="left" if col in ("tool", "verdict errors") else "right")
        rat = ratios(row)
        for tool, r in row["drift"].items():
            mine = tool == "modelcycle"
            table.add_row(tool, f"{r['median_s']:.3f} s", f"{r['peak_mb']:,.0f} MB", f"{r['baseline_mb']:,.0f} MB",
                          f"{r['over_baseline_mb']:,.0f} MB" + ("" if r["peak_reset"] else "*"), scores(r["samples"]),
                          misses(r["samples"], truth_cols), fx(rat["time"]) if mine else "", pct(rat["peak"]) if mine else "",
                          pct(rat["over"]) if mine else "")
        reps = len(next(iter(row["drift"].values()))["samples"]) if row["drift"] else 0
        table.caption = f"medians of {reps} fresh-process runs; tp/fp/fn per run (×count when runs differ)" + (
            "" if all(r["peak_reset"] for r in row["drift"].values()) else "; * peak not resettable: over baseline includes data generation")
        console.print(table)
    table = Table(title="modelcycle data: profile, schema, validation, stored profiles", title_justify="left")
    for col in ("rows", "profile(ref)", "profile(cur)", "infer_schema(ref)", "validate(cur)", "compare stored (median / first)",
                "profile size", "stored tp/fp/fn", "validation anomalies"):
        table.add_column(col, justify="right" if col != "validation anomalies" else "left", overflow="fold")
    for n, row in res.items():
        e = row.get("extras")
        if e:
            first = statistics.median(s["stored_first_ms"] for s in e["samples"])
            table.add_row(f"{n:,}", f"{e['profile_s']:.3f} s", f"{e['profile_cur_s']:.3f} s", f"{e['infer_schema_s']:.3f} s",
                          f"{e['validate_s']:.3f} s", f"{e['stored_ms']:.1f} / {first:.1f} ms",
                          f"{e['stored_kb']:.0f} KB", scores(e["samples"], "stored_score"),
                          ", ".join(sorted(set(e["samples"][0]["anomalies"]))) or "none")
    console.print(table)
    large = res.get("large")
    if large:
        console.print(f"profile of {large['rows']:,} rows × {large['columns']} columns from Parquet ({large['file_mb']:,.0f} MB file): "
                      f"{large['seconds']:.1f} s, peak RSS {large['peak_mb']:,.0f} MB (after imports {large['import_peak_mb']:,.0f} MB)")
    print_targets(console, tgts)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--quick", action="store_true", help="10k and 100k rows only")
    p.add_argument("--sizes", help="comma-separated row counts (default 10000,100000,1000000)")
    p.add_argument("--repeats", type=int, default=3, help="fresh-process repetitions per tool and size (default 3)")
    p.add_argument("--seed", type=int, default=0, help="datagen seed, the same for both tools (default 0)")
    p.add_argument("--no-evidently", action="store_true", help="run modelcycle only")
    p.add_argument("--evidently-python", help=f"interpreter with evidently installed (default {EV_VENV.name}/bin/python, created if missing)")
    p.add_argument("--no-large", action="store_true", help=f"skip profiling the {LARGE_ROWS // 1_000_000}M-row Parquet file")
    p.add_argument("--calibration-seeds", type=int, default=200, help="seeds per calibration cell (default 200; 0 skips it)")
    p.add_argument("--calibration-only", action="store_true", help="run only the small-sample calibration")
    p.add_argument("--json", type=Path, help="write the raw numbers here")
    args = p.parse_args()
    if args.worker:
        worker(args.worker)
        return 0
    args.sizes = [int(s.replace("_", "")) for s in args.sizes.split(",")] if args.sizes else QUICK_SIZES if args.quick else SIZES
    args.large = 0 if args.no_large or args.quick else LARGE_ROWS
    datagen = _datagen()  # fails early, with the path, when shared/ is missing

    from importlib.metadata import version

    from rich.console import Console

    console = Console(width=None if sys.stdout.isatty() else 160)
    ev_python, ev_version = (None, None) if args.calibration_only else evidently_python(args, console)
    tools = {"modelcycle": sys.executable} | ({"evidently": ev_python} if ev_python else {})
    versions = {"modelcycle": version("modelcycle"), "pandas": version("pandas"), "python": platform.python_version()}
    if ev_version:
        versions["evidently"] = ev_version
    git = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    versions["git"] = git or "?"
    load = os.getloadavg()
    console.print(f"[bold]drift benchmark[/] {versions}, {os.cpu_count()} CPUs, load {load[0]:.2f}, sizes={args.sizes}, "
                  f"repeats={args.repeats}, seed={args.seed}, datagen={SHARED / 'datagen.py'}")
    errors: list[str] = []
    started = time.time()
    res = {} if args.calibration_only else measure(args, tools, console, errors)
    cal = calibration(args.calibration_seeds, console) if args.calibration_seeds > 0 else {}
    tgts = targets(res, cal)
    render_calibration(cal, console)
    if args.calibration_only:
        print_targets(console, tgts[-1:])
    else:
        render(res, tgts, set(datagen.DRIFTED), console)
    end_load = os.getloadavg()
    console.print(f"[dim]took {time.time() - started:.0f} s; load average now {end_load[0]:.2f} / {end_load[1]:.2f} / {end_load[2]:.2f} "
                  f"(1/5/15 min) on {os.cpu_count()} CPUs[/]")
    for e in errors:
        console.print(f"error: {e}", style="red", markup=False, highlight=False)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "versions": versions, "cpus": os.cpu_count(), "load": [load, end_load], "repeats": args.repeats, "seed": args.seed,
            "sizes": args.sizes, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "results": {str(n): r for n, r in res.items()}, "calibration": cal,
            "errors": errors, "targets": [dict(zip(("target", "measured", "result"), t, strict=True)) for t in tgts]}, indent=1))
        console.print(f"raw numbers written to {args.json}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
