"""Pipelines and tuning: modelcycle's overhead, side by side with the same work done by hand, plain Optuna and MLflow.

Run from the repository root (MLflow is measured when it is installed, as in ``.venv-bench``)::

    .venv/bin/python bench/pipelines.py                    # 3 repetitions, ~2 min
    .venv/bin/python bench/pipelines.py --quick            # 1 repetition
    .venv-bench/bin/python bench/pipelines.py --json bench/results/pipelines.json

Each workload runs in a fresh subprocess per repetition (this file with ``--worker``); imports and
the first, uncached run are not timed unless said. The table shows medians over repetitions.

- ``cached``: a 10-step chain over a 100,000-row frame, run once, then re-run fully from the cache
  (median of 5 ``pipeline.run()`` calls, in process).
- ``overhead``: the same 10 steps on new data each time (a new seed, so nothing is cached and every
  output is new): the pipeline's wall time minus the same ten functions called by hand, per step
  (tracking, cache look-up, hashing, encoding a 100,000 × 8 frame as Parquet and writing it).
- ``dask``: 8 independent steps that each sleep 1 s, ``executor="dask"`` with 2 single-thread
  worker processes: the first run in a process (which starts the LocalCluster) and a second run
  (which reuses it); the floor is 4 s.
- ``tune``: 50 trials of an objective that returns at once: ``mc.tune`` (TPE, each trial a child run)
  against plain Optuna (same sampler, no tracking) and Optuna with MLflow logging each trial as a
  nested run (what MLflow users write by hand); per trial. All three are warmed alike first (one
  untimed 5-trial study each: imports, first study, first runs), then timed one after another.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

from _report import MARK, print_targets  # bench/ is on the path when a benchmark runs as a script
from _report import run_worker as _run_worker

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
ROWS = 100_000
STEPS = 10
TRIALS = 50
WARMUP_TRIALS = 5  # one untimed study of this size per side before the timed ones


def _quiet() -> None:
    import logging

    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)


def _client(home: str):
    import modelcycle as mc

    client = mc.Client(mc.Settings.for_home(home, capture=False))
    mc.set_client(client)
    return mc, client


def _chain(mc):
    import numpy as np
    import pandas as pd

    @mc.step
    def source(n: int, seed: int = 0) -> pd.DataFrame:
        rng = np.random.default_rng(seed)
        return pd.DataFrame({f"c{i}": rng.normal(size=n) for i in range(8)})

    def make(i: int):
        def transform(df: pd.DataFrame) -> pd.DataFrame:
            return df * 1.0001 + i

        transform.__name__ = f"t{i}"
        transform.__qualname__ = f"t{i}"
        return transform

    plain = [make(i) for i in range(STEPS - 1)]
    steps = [mc.step(fn) for fn in plain]

    @mc.pipeline
    def chain(n: int = ROWS, seed: int = 0):
        df = source(n, seed)
        for s in steps:
            df = s(df)
        return df

    def by_hand(n: int = ROWS, seed: int = 0):
        df = source.fn(n, seed)
        for fn in plain:
            df = fn(df)
        return df

    return chain, by_hand


def work_cached(home: str) -> dict:
    _quiet()
    mc, client = _client(home)
    chain, _ = _chain(mc)
    chain.run(client=client)
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        result = chain.run(client=client)
        times.append(time.perf_counter() - t0)
        assert all(s.cached for s in result.steps.values())
    return {"cached_s": statistics.median(times)}


def work_overhead(home: str) -> dict:
    _quiet()
    mc, client = _client(home)
    chain, by_hand = _chain(mc)
    chain.run(client=client, cache=False)  # warm: imports, first Parquet write
    hand, piped = [], []
    for seed in range(1, 4):  # new data every time: every output is encoded, hashed and written
        t0 = time.perf_counter()
        by_hand(seed=seed)
        hand.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        chain.run(client=client, seed=seed)
        piped.append(time.perf_counter() - t0)
    h, p = statistics.median(hand), statistics.median(piped)
    return {"hand_s": h, "pipeline_s": p, "per_step_ms": (p - h) / STEPS * 1e3}


def work_dask(home: str) -> dict:
    _quiet()
    mc, client = _client(home)

    @mc.step(cache=False)
    def nap(i: int) -> int:
        time.sleep(1.0)
        return i

    @mc.pipeline
    def naps():
        return [nap(i) for i in range(8)]

    out = {}
    for label in ("first_s", "second_s"):
        t0 = time.perf_counter()
        result = naps.run(client=client, executor="dask")
        out[label] = time.perf_counter() - t0
        assert result.output == list(range(8))
    return out


def work_tune(home: str) -> dict:
    _quiet()
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    mc, client = _client(home)

    def objective(params):
        return -((params["x"] - 1.0) ** 2) - 0.1 * params["n"]

    space = {"x": mc.uniform(-5, 5), "n": mc.intrange(1, 10), "kind": mc.choice(["a", "b"])}

    def suggest(trial) -> dict:
        return {"x": trial.suggest_float("x", -5, 5), "n": trial.suggest_int("n", 1, 10),
                "kind": trial.suggest_categorical("kind", ["a", "b"])}

    def study():
        return optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0))

    sides = {"mc_ms": lambda n: mc.tune(objective, space, n_trials=n, seed=0, client=client),
             "optuna_ms": lambda n: study().optimize(lambda trial: objective(suggest(trial)), n_trials=n)}
    try:
        import mlflow
    except ImportError:
        mlflow = None
    if mlflow is not None:
        mlflow.set_tracking_uri(f"sqlite:///{home}/mlflow.db")  # store and artifacts in the temporary folder
        mlflow.MlflowClient().create_experiment("tune", artifact_location=Path(home, "mlflow-artifacts").as_uri())
        mlflow.set_experiment("tune")

        def mlflow_objective(trial):
            with mlflow.start_run(nested=True):
                params = suggest(trial)
                mlflow.log_params(params)
                value = objective(params)
                mlflow.log_metric("value", value)
                return value

        def with_mlflow(n: int) -> None:
            with mlflow.start_run():
                study().optimize(mlflow_objective, n_trials=n)

        sides["mlflow_ms"] = with_mlflow
    for run in sides.values():  # the same warm-up for every side: imports, first study, first runs
        run(WARMUP_TRIALS)
    out = {}
    for name, run in sides.items():
        t0 = time.perf_counter()
        run(TRIALS)
        out[name] = (time.perf_counter() - t0) / TRIALS * 1e3
    return out


WORKERS = {"cached": work_cached, "overhead": work_overhead, "dask": work_dask, "tune": work_tune}


def worker(name: str) -> None:
    with tempfile.TemporaryDirectory(prefix="mc-bench-pipelines-") as home:
        os.chdir(home)  # anything written to a relative default path lands here, not in the repository
        out = WORKERS[name](home)
    print("\n" + MARK + json.dumps(out), flush=True)


def run_worker(name: str) -> dict:
    return _run_worker(__file__, name, REPO)


def med(samples: list[dict], key: str) -> float | None:
    values = [s[key] for s in samples if isinstance(s.get(key), (int, float))]
    return statistics.median(values) if values else None


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--quick", action="store_true", help="one repetition")
    p.add_argument("--repeats", type=int, help="fresh-process repetitions (default 3)")
    p.add_argument("--json", type=Path, help="write the raw numbers here")
    args = p.parse_args()
    if args.worker:
        worker(args.worker)
        return 0
    from importlib.metadata import version
    from importlib.util import find_spec

    from rich.console import Console
    from rich.table import Table

    repeats = args.repeats or (1 if args.quick else 3)
    console = Console(width=None if sys.stdout.isatty() else 150)
    versions = {"python": platform.python_version()}
    for name in ("modelcycle", "optuna", "dask", "mlflow"):
        try:
            versions[name] = version(name)
        except Exception:
            pass
    console.print(f"[bold]pipelines benchmark[/] {versions}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}, repeats={repeats}"
                  + ("" if find_spec("mlflow") else " — MLflow not installed here (use .venv-bench for its column)"))
    samples: dict[str, list[dict]] = {w: [] for w in WORKERS}
    errors: list[str] = []
    started = time.time()
    for r in range(repeats):
        for name in WORKERS:
            try:
                samples[name].append(run_worker(name))
                console.print(f"[dim]rep {r + 1}/{repeats} {name}: {samples[name][-1]}[/]")
            except RuntimeError as e:
                errors.append(str(e))
    table = Table(title="pipelines and tuning (medians)", header_style="bold")
    for col in ("workload", "modelcycle", "baseline", "note"):
        table.add_column(col)
    cached, per_step = med(samples["cached"], "cached_s"), med(samples["overhead"], "per_step_ms")
    hand, piped = med(samples["overhead"], "hand_s"), med(samples["overhead"], "pipeline_s")
    first, second = med(samples["dask"], "first_s"), med(samples["dask"], "second_s")
    ours, plain, mlf = med(samples["tune"], "mc_ms"), med(samples["tune"], "optuna_ms"), med(samples["tune"], "mlflow_ms")

    def f(v: float | None, unit: str, digits: int = 2) -> str:
        return "—" if v is None else f"{v:,.{digits}f} {unit}"

    table.add_row(f"re-run a fully cached {STEPS}-step pipeline", f(cached, "s", 3), "—", f"{ROWS:,}-row frames between steps")
    table.add_row(f"{STEPS} steps, cache off", f(piped, "s", 3), f"by hand {f(hand, 's', 3)}", f"overhead {f(per_step, 'ms', 1)} per step")
    table.add_row("8 × 1 s steps on Dask, 2 workers", f"first {f(first, 's')} / then {f(second, 's')}", "floor 4 s",
                  "the first run starts the LocalCluster")
    table.add_row(f"{TRIALS} trials of an instant objective", f(ours, "ms/trial", 1), f"Optuna alone {f(plain, 'ms/trial', 1)}",
                  f"Optuna + MLflow nested runs {f(mlf, 'ms/trial', 1)}")
    table.caption = (f"tuning, every side warmed with one untimed {WARMUP_TRIALS}-trial study first: mc.tune = Optuna TPE "
                     "(seed 0), each trial a child run with its params and value logged; Optuna alone = the same "
                     "sampler and objective, no tracking; Optuna + MLflow = the same, each trial a nested MLflow run "
                     "(SQLite store, synchronous) logging its params and value, inside a parent run")
    console.print(table)

    def check(ok: bool | None) -> str:
        return "n/a" if ok is None else "PASS" if ok else "FAIL"

    tgts = [
        (f"re-run a fully cached {STEPS}-step pipeline < 0.5 s", f(cached, "s", 3), check(None if cached is None else cached < 0.5)),
        ("overhead per executed step (100k-row frame) < 50 ms", f(per_step, "ms", 1), check(None if per_step is None else per_step < 50)),
        ("8 × 1 s steps on Dask, 2 workers < 5.5 s (first run, starting the cluster)", f(first, "s"), check(None if first is None else first < 5.5)),
        ("  same, the cluster already up", f(second, "s"), check(None if second is None else second < 5.5)),
        (f"mc.tune, {TRIALS} trials of an instant objective, each a child run: < 20 ms per trial", f(ours, "ms", 1),
         check(None if ours is None else ours < 20)),
    ]
    print_targets(console, tgts)
    console.print(f"[dim]took {time.time() - started:.0f} s; load average now {os.getloadavg()[0]:.2f}[/]")
    for e in errors:
        console.print(f"error: {e}", style="red", markup=False, highlight=False)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"versions": versions, "repeats": repeats, "samples": samples, "errors": errors,
                                         "targets": [dict(zip(("target", "measured", "result"), t, strict=True)) for t in tgts]}, indent=1))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
