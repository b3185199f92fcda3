"""Models: loading and evaluating, modelcycle side by side with joblib, hand-written scikit-learn and MLflow.

Run from the repository root; with ``.venv-bench`` (``make bench``) MLflow is measured too::

    .venv-bench/bin/python bench/models.py                 # 3 repetitions, ~10 min
    .venv/bin/python bench/models.py --quick               # 1 repetition, smaller data, no MLflow needed
    .venv-bench/bin/python bench/models.py --json bench/results/models.json

Every repetition runs each workload in a fresh subprocess (this file with ``--worker``); each
reports medians over several calls, and the table shows the median over repetitions. Imports and
training are never timed.

- ``first load``, per model (a scaler + logistic-regression pipeline, a 100-iteration
  HistGradientBoosting, a 100-tree RandomForest): ``joblib.load`` of the estimator (the unsafe
  baseline: an unpickler); modelcycle's ``load_package`` of its package folder (verify every file's
  sha256, then skops with the recorded types); ``mc.load_model("models:/…/1")`` through a fresh
  Registry (no in-process cache: resolve the version, read and check the manifest from the artifact
  store, verify, load); and ``mlflow.sklearn.load_model`` of the same estimator saved by MLflow
  (which, since MLflow 3, also saves scikit-learn models with skops by default).
- ``load by alias again``, after a first load in the same process: cached in process,
  ``mc.load_model("models:/bench@champion")`` 200 times (the alias is read from the store on every
  call; the model object built for that package is reused); uncached, ``Registry(client).load_model``
  of the same alias (a new Registry has no in-process cache: resolve the alias, read the manifest,
  verify every file, deserialise with skops) against MLflow's ``mlflow.sklearn.load_model`` of the
  same alias (MLflow keeps no loaded model: it resolves the alias, copies the files to a temporary
  folder and deserialises them), 10 calls each, interleaved. Both rows are compared with the same
  MLflow load.
- ``evaluate``: 100,000 rows, the HistGradientBoosting model, loaded once on each side (modelcycle's
  package, MLflow's pyfunc); every variant warm (one untimed call), then called in turn, median of 5.
  Metrics only: modelcycle's ``evaluate_model`` (signature check, predict, predict_proba, accuracy,
  precision, recall, F1, ROC AUC, log loss, confusion matrix, calibration, latency; no run, nothing
  written) against (a) the same predictions and scikit-learn metric calls by hand on the bare
  estimator, (b) ``mlflow.models.evaluate`` with the least MLflow allows (classifier,
  ``log_model_explainability=False``, in a run started outside the timing), which still draws and
  logs its five plots because MLflow 3 has no option to skip them, and (c) the same with those
  plot-and-log methods replaced by no-ops (not a user option; MLflow's metric work alone). With
  the report: ``mc.evaluate`` inside ``mc.start_run`` (metrics logged, ``evaluation.json`` and the
  HTML report written) against ``mlflow.models.evaluate`` with its defaults inside
  ``mlflow.start_run`` (metrics and five PNG plots logged), the runs' start and end included.

MLflow's store and artifacts are in each worker's temporary folder (the worker runs from there).
"""

from __future__ import annotations

import argparse
import contextlib
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
KINDS = ("pipeline", "hgb", "rf")
FULL = {"train_rows": 20_000, "eval_rows": 100_000, "loads": 7, "alias_calls": 200, "uncached_calls": 10, "evals": 5}
QUICK = {"train_rows": 5_000, "eval_rows": 20_000, "loads": 3, "alias_calls": 50, "uncached_calls": 3, "evals": 2}


# --- worker side ----------------------------------------------------------------------------------
def _quiet() -> None:
    import logging

    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)


def _data(n: int, seed: int = 0):
    import pandas as pd
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=n, n_features=20, n_informative=8, random_state=seed)
    return pd.DataFrame(X, columns=[f"f{i:02d}" for i in range(20)]), pd.Series(y, name="y")


def _model(kind: str, X, y):
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = {"pipeline": lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)),
             "hgb": lambda: HistGradientBoostingClassifier(max_iter=100, random_state=0),
             "rf": lambda: RandomForestClassifier(n_estimators=100, max_depth=12, random_state=0, n_jobs=1)}[kind]()
    return model.fit(X, y)


def _interleaved_ms(fns: dict, k: int, warm: bool = True) -> dict[str, float]:
    """Median ms of ``k`` calls of each function, called in turn (after one untimed call each when ``warm``).
    A function that returns a number returns its own elapsed seconds (to leave set-up out of the timing)."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for i in range(k + (1 if warm else 0)):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            took = fn()
            elapsed = took if isinstance(took, float) else time.perf_counter() - t0
            if i or not warm:
                times[name].append(elapsed)
    return {name: statistics.median(t) * 1e3 for name, t in times.items()}


def _median_ms(fn, k: int) -> float:
    times = []
    for _ in range(k):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def _mlflow(home: str):
    """MLflow with its store and its artifacts in ``home`` (a temporary folder), never in the repository."""
    try:
        import mlflow
    except ImportError:
        return None
    mlflow.set_tracking_uri(f"sqlite:///{home}/mlflow.db")
    client = mlflow.MlflowClient()
    if client.get_experiment_by_name("bench") is None:
        client.create_experiment("bench", artifact_location=Path(home, "mlflow-artifacts").as_uri())
    mlflow.set_experiment("bench")
    return mlflow


def _mlflow_kwargs(model) -> dict:
    """MLflow 3 saves scikit-learn models with skops too; it asks for the same types to be trusted."""
    import skops.io as sio

    return {"skops_trusted_types": sio.get_untrusted_types(data=sio.dumps(model))}


def _client(home: str):
    import modelcycle as mc

    client = mc.Client(mc.Settings.for_home(home, capture=False))
    mc.set_client(client)
    return mc, client


def work_first_load(sizes: dict, home: str) -> dict:
    _quiet()
    import joblib

    from modelcycle.models import load_package
    from modelcycle.registry import Registry

    mc, client = _client(home)
    mlflow = _mlflow(home)
    X, y = _data(sizes["train_rows"])
    out: dict = {}
    for kind in KINDS:
        model = _model(kind, X, y)
        folder = Path(home) / kind
        joblib.dump(model, folder.with_suffix(".joblib"))
        with mc.start_run(experiment="bench"):
            logged = mc.log_model(model, input_example=X.head())
        mc.register_model(logged, f"bench-{kind}")
        client.flush()
        from modelcycle.models import save_model

        save_model(model, folder, input_example=X.head())
        load_package(folder)  # skops and the flavour imported before timing
        row = {
            "joblib_ms": _median_ms(lambda f=folder: joblib.load(f.with_suffix(".joblib")), sizes["loads"]),
            "package_ms": _median_ms(lambda f=folder: load_package(f), sizes["loads"]),
            "registry_ms": _median_ms(lambda k=kind: Registry(client).load_model(f"models:/bench-{k}/1"), sizes["loads"]),
            "size_kb": (folder / "model.skops").stat().st_size / 1024,
        }
        if mlflow is not None:
            mlflow_dir = Path(home) / f"mlflow-{kind}"
            mlflow.sklearn.save_model(model, str(mlflow_dir), **_mlflow_kwargs(model))
            mlflow.sklearn.load_model(str(mlflow_dir))
            row["mlflow_ms"] = _median_ms(lambda d=mlflow_dir: mlflow.sklearn.load_model(str(d)), sizes["loads"])
        out[kind] = row
    return out


def work_alias(sizes: dict, home: str) -> dict:
    _quiet()
    from modelcycle.registry import Registry

    mc, client = _client(home)
    X, y = _data(sizes["train_rows"])
    model = _model("hgb", X, y)
    with mc.start_run(experiment="bench"):
        logged = mc.log_model(model, input_example=X.head())
    version = mc.register_model(logged, "bench")
    mc.set_alias("bench", "champion", version.version)
    uri = "models:/bench@champion"
    out = {"mc_first_ms": _median_ms(lambda: mc.load_model(uri), 1),  # materialise, verify, deserialise
           "mc_cached_ms": _median_ms(lambda: mc.load_model(uri), sizes["alias_calls"])}
    # Uncached: a new Registry has no in-process cache, so each call resolves the alias, reads the run and the
    # manifest, verifies every file of the package (already in the local cache folder) and deserialises it.
    uncached = {"mc_uncached_ms": lambda: Registry(client).load_model(uri)}
    mlflow = _mlflow(home)
    if mlflow is not None:
        with mlflow.start_run():
            info = mlflow.sklearn.log_model(model, name="model", input_example=X.head(), **_mlflow_kwargs(model))
        mv = mlflow.register_model(info.model_uri, "bench")
        mlflow.MlflowClient().set_registered_model_alias("bench", "champion", mv.version)
        uncached["mlflow_again_ms"] = lambda: mlflow.sklearn.load_model(uri)  # MLflow keeps no loaded model
    out |= _interleaved_ms(uncached, sizes["uncached_calls"])
    return out


@contextlib.contextmanager
def _mlflow_without_plots():
    """MLflow's classifier evaluator with its plot-and-log methods replaced by no-ops (not a user option:
    MLflow 3 has none to skip them); yields False when this MLflow has no such methods to replace."""
    try:
        from mlflow.models.evaluation.evaluators.classifier import ClassifierEvaluator
    except ImportError:
        yield False
        return
    names = ("_log_binary_classifier_artifacts", "_log_multiclass_classifier_artifacts", "_log_confusion_matrix")
    saved = {n: getattr(ClassifierEvaluator, n, None) for n in names}
    if None in saved.values():
        yield False
        return
    for n in names:
        setattr(ClassifierEvaluator, n, lambda self: None)
    try:
        yield True
    finally:
        for n, fn in saved.items():
            setattr(ClassifierEvaluator, n, fn)


def work_evaluate(sizes: dict, home: str) -> dict:
    _quiet()
    import importlib.util

    import numpy as np
    from sklearn import metrics as m

    from modelcycle.evaluation import evaluate_model
    from modelcycle.models import load_package, save_model

    mc, _ = _client(home)
    X, y = _data(sizes["train_rows"])
    model = _model("hgb", X, y)
    save_model(model, Path(home) / "hgb", reference_data=X)
    loaded = load_package(Path(home) / "hgb")
    Xe, ye = _data(sizes["eval_rows"], seed=1)
    data = Xe.assign(y=ye)

    def by_hand():
        pred = model.predict(Xe)
        proba = model.predict_proba(Xe)
        m.accuracy_score(ye, pred)
        m.precision_recall_fscore_support(ye, pred, average="binary")
        m.roc_auc_score(ye, proba[:, 1])
        m.log_loss(ye, proba)
        m.confusion_matrix(ye, pred)

    def ours():  # metrics only: no run, no report
        evaluate_model(loaded, data)

    def ours_report():  # in a run: metrics logged, evaluation.json and report.html written; the run's end included
        with mc.start_run(experiment="bench"):
            mc.evaluate(loaded, data)

    fns = {"hand_ms": by_hand, "mc_ms": ours, "mc_report_ms": ours_report}
    ev = evaluate_model(loaded, data)
    out: dict = {"same_auc": bool(np.isclose(ev.metrics["roc_auc"], m.roc_auc_score(ye, model.predict_proba(Xe)[:, 1])))}
    mlflow = _mlflow(home)
    if mlflow is not None:
        mlflow_dir = Path(home) / "mlflow-hgb"
        mlflow.sklearn.save_model(model, str(mlflow_dir), **_mlflow_kwargs(model))
        pyfunc = mlflow.pyfunc.load_model(str(mlflow_dir))  # loaded once, as modelcycle's package is
        least = {"log_model_explainability": False}
        out["shap_installed"] = importlib.util.find_spec("shap") is not None

        def theirs_least() -> float:  # the least MLflow allows, in a run started and ended outside the timing
            with mlflow.start_run():
                t0 = time.perf_counter()
                mlflow.models.evaluate(pyfunc, data, targets="y", model_type="classifier", evaluator_config=least)
                return time.perf_counter() - t0

        def theirs_no_plots() -> float:
            with _mlflow_without_plots():
                return theirs_least()

        def theirs_default():  # MLflow's defaults in a run (its plots and their logging); the run's end included
            with mlflow.start_run():
                return mlflow.models.evaluate(pyfunc, data, targets="y", model_type="classifier")

        fns |= {"mlflow_least_ms": theirs_least, "mlflow_report_ms": theirs_default}
        with _mlflow_without_plots() as patched:
            if patched:
                fns["mlflow_noplots_ms"] = theirs_no_plots
        try:
            result = theirs_default()
            out["mlflow_same_auc"] = bool(np.isclose(result.metrics["roc_auc"], ev.metrics["roc_auc"]))
            out["mlflow_artifacts"] = sorted(result.artifacts)
        except Exception as e:  # an MLflow without its optional evaluation dependencies
            out["mlflow_error"] = f"{type(e).__name__}: {str(e)[:200]}"
            fns = {k: v for k, v in fns.items() if not k.startswith("mlflow")}
    out |= _interleaved_ms(fns, sizes["evals"])  # all warm: one untimed call each, then called in turn
    return out


WORKERS = {"first_load": work_first_load, "alias": work_alias, "evaluate": work_evaluate}


def worker(spec: str) -> None:
    s = json.loads(spec)
    with tempfile.TemporaryDirectory(prefix="mc-bench-models-") as home:
        os.chdir(home)  # anything written to a relative default path lands here, not in the repository
        out = WORKERS[s["workload"]](s["sizes"], home)
    print("\n" + MARK + json.dumps(out), flush=True)


# --- driver side ----------------------------------------------------------------------------------
def run_worker(workload: str, sizes: dict) -> dict:
    return _run_worker(__file__, json.dumps({"workload": workload, "sizes": sizes}), REPO)


def med(samples: list[dict], *keys: str) -> float | None:
    values = []
    for s in samples:
        v = s
        for k in keys:
            v = v.get(k) if isinstance(v, dict) else None
        if isinstance(v, (int, float)):
            values.append(v)
    return statistics.median(values) if values else None


def fmt(ms: float | None) -> str:
    return "—" if ms is None else f"{ms:,.2f} ms" if ms < 10 else f"{ms:,.1f} ms"


def ratio(a: float | None, b: float | None) -> str:
    return "—" if a is None or b is None or b == 0 else f"{a / b:.2f}x"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--quick", action="store_true", help="1 repetition, smaller data")
    p.add_argument("--repeats", type=int, help="fresh-process repetitions (default 3, 1 with --quick)")
    p.add_argument("--json", type=Path, help="write the raw numbers here")
    args = p.parse_args()
    if args.worker:
        worker(args.worker)
        return 0
    from importlib.util import find_spec

    from rich.console import Console
    from rich.table import Table

    sizes = QUICK if args.quick else FULL
    repeats = args.repeats or (1 if args.quick else 3)
    console = Console(width=None if sys.stdout.isatty() else 150)
    has_mlflow = find_spec("mlflow") is not None
    versions = {"python": platform.python_version()}
    for name in ("modelcycle", "scikit-learn", "skops", "mlflow"):
        try:
            from importlib.metadata import version

            versions[name] = version(name)
        except Exception:
            pass
    console.print(f"[bold]models benchmark[/] {versions}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}, repeats={repeats}"
                  + ("" if has_mlflow else " — MLflow not installed here: its columns stay empty (use .venv-bench)"))
    samples: dict[str, list[dict]] = {w: [] for w in WORKERS}
    errors: list[str] = []
    started = time.time()
    for r in range(repeats):
        for workload in WORKERS:
            try:
                samples[workload].append(run_worker(workload, sizes))
                console.print(f"[dim]rep {r + 1}/{repeats} {workload} done[/]")
            except RuntimeError as e:
                errors.append(str(e))
    loads = Table(title="first load of a scikit-learn model (median ms per load)", title_justify="left", header_style="bold",
                  caption="joblib.load: unpickle the estimator (runs any code); load_package: verify each file's sha256, "
                          "then skops with the recorded types; mc.load_model via registry: a new Registry each call (no "
                          "in-process cache), models:/bench-<model>/1: resolve, read the manifest, verify, skops (files "
                          "already in the local cache folder); mlflow.sklearn.load_model(folder): read MLmodel, skops, "
                          "no registry")
    for col in ("model", "skops file", "joblib.load (pickle)", "load_package", "ratio", "mc.load_model via registry", "ratio",
                "mlflow.sklearn.load_model"):
        loads.add_column(col, justify="left" if col == "model" else "right")
    for kind in KINDS:
        j = med(samples["first_load"], kind, "joblib_ms")
        pk = med(samples["first_load"], kind, "package_ms")
        rg = med(samples["first_load"], kind, "registry_ms")
        size = med(samples["first_load"], kind, "size_kb")
        loads.add_row(kind, "—" if size is None else f"{size:,.0f} KB", fmt(j), fmt(pk), ratio(pk, j), fmt(rg), ratio(rg, j),
                      fmt(med(samples["first_load"], kind, "mlflow_ms")))
    console.print(loads)
    al = {k: med(samples["alias"], k) for k in ("mc_first_ms", "mc_cached_ms", "mc_uncached_ms", "mlflow_again_ms")}
    alias = Table(title="load models:/bench@champion again, after a first load in the same process (median ms per load)",
                  title_justify="left", header_style="bold",
                  caption=f"the first load in the process took {fmt(al['mc_first_ms'])} for modelcycle (package files fetched, "
                          "verified, deserialised); MLflow has no in-process cache: each of its loads does the same work")
    for col in ("load", "modelcycle does", "modelcycle", "MLflow does", "MLflow", "MLflow ÷ modelcycle"):
        alias.add_column(col, justify="right" if col in ("modelcycle", "MLflow", "MLflow ÷ modelcycle") else "left",
                         overflow="fold")
    ml_load = ("mlflow.sklearn.load_model: resolves the alias in its registry, copies the model's files from the "
               "artifact store to a temporary folder, loads them with skops")
    alias.add_row(f"cached in process ({sizes['alias_calls']} calls)",
                  "mc.load_model: reads the alias from the store, returns the model it already built for that package hash",
                  fmt(al["mc_cached_ms"]), ml_load, fmt(al["mlflow_again_ms"]), ratio(al["mlflow_again_ms"], al["mc_cached_ms"]))
    alias.add_row(f"uncached ({sizes['uncached_calls']} calls each, interleaved)",
                  "Registry(client).load_model (a new registry: no in-process cache): resolves the alias, reads the "
                  "manifest, verifies every file's sha256 (files already in the local cache folder), loads with skops",
                  fmt(al["mc_uncached_ms"]), "the same as above", fmt(al["mlflow_again_ms"]),
                  ratio(al["mlflow_again_ms"], al["mc_uncached_ms"]))
    console.print(alias)

    ev = {k: med(samples["evaluate"], k) for k in ("hand_ms", "mc_ms", "mc_report_ms", "mlflow_least_ms", "mlflow_noplots_ms",
                                                   "mlflow_report_ms")}
    shap = any(s.get("shap_installed") for s in samples["evaluate"])
    evals = Table(title=f"evaluate {sizes['eval_rows']:,} rows, HistGradientBoosting loaded once on each side (median ms of "
                        f"{sizes['evals']} calls after one untimed call, all variants called in turn)",
                  title_justify="left", header_style="bold",
                  caption="MLflow 3's classifier evaluator has no option to skip its plots (ROC, precision-recall, lift, "
                          "calibration, confusion matrix) or their logging; the least it allows is explainability off. "
                          + ("shap is installed: MLflow's default also computes explanations." if shap else
                             "shap is not installed, so MLflow's default computes no explanations either.")
                          + ("" if all(s.get("same_auc") for s in samples["evaluate"]) else " [red]ROC AUC differs from by hand![/]")
                          + ("" if all(s.get("mlflow_same_auc", True) for s in samples["evaluate"]) else
                             " [red]MLflow's ROC AUC differs from modelcycle's![/]"))
    for col in ("comparison", "modelcycle does", "modelcycle", "the other side does", "other", "other ÷ modelcycle"):
        evals.add_column(col, justify="right" if col in ("modelcycle", "other", "other ÷ modelcycle") else "left",
                         overflow="fold")
    ours_does = ("evaluate_model(package, frame): signature check, predict, predict_proba, accuracy, precision, recall, "
                 "F1, ROC AUC, log loss, confusion matrix, calibration, latency (5 × 1,000 rows); no run, nothing written")
    evals.add_row("metrics only, by hand", ours_does, fmt(ev["mc_ms"]),
                  "the same predictions and scikit-learn metric calls written by hand on the bare estimator",
                  fmt(ev["hand_ms"]), ratio(ev["hand_ms"], ev["mc_ms"]))
    evals.add_row("metrics only, MLflow's least", ours_does, fmt(ev["mc_ms"]),
                  "mlflow.models.evaluate(pyfunc, classifier, log_model_explainability=False) in a run started and ended "
                  "outside the timing: predict, predict_proba, score, metrics logged, and its five plots drawn and logged",
                  fmt(ev["mlflow_least_ms"]), ratio(ev["mlflow_least_ms"], ev["mc_ms"]))
    evals.add_row("metrics only, MLflow without plots", ours_does, fmt(ev["mc_ms"]),
                  "the same with the evaluator's plot-and-log methods replaced by no-ops (not a user option): its "
                  "metrics and their logging only", fmt(ev["mlflow_noplots_ms"]), ratio(ev["mlflow_noplots_ms"], ev["mc_ms"]))
    evals.add_row("with the report", "with mc.start_run(): mc.evaluate(package, frame): the same metrics, logged to the "
                  "run with evaluation.json and the HTML report (metrics, confusion matrix, calibration); the run's "
                  "start and end included", fmt(ev["mc_report_ms"]),
                  "with mlflow.start_run(): mlflow.models.evaluate(pyfunc, classifier), defaults: its metrics and five "
                  "PNG plots logged to the run; the run's start and end included",
                  fmt(ev["mlflow_report_ms"]), ratio(ev["mlflow_report_ms"], ev["mc_report_ms"]))
    console.print(evals)
    hand, ours = ev["hand_ms"], ev["mc_ms"]
    for s in samples["evaluate"]:
        if "mlflow_error" in s:
            errors.append("mlflow.models.evaluate: " + s["mlflow_error"])

    def check(ok: bool | None) -> str:
        return "n/a" if ok is None else "PASS" if ok else "FAIL"

    again = al["mc_cached_ms"]
    tgts = [("load by alias a second time, cached in process (mc.load_model) < 5 ms", fmt(again),
             check(None if again is None else again < 5))]
    for kind in KINDS:
        j, pk = med(samples["first_load"], kind, "joblib_ms"), med(samples["first_load"], kind, "package_ms")
        tgts.append((f"first load: load_package (verify + skops) within 2x of joblib.load ({kind})", ratio(pk, j),
                     check(None if not (j and pk) else pk <= 2 * j)))
    tgts.append((f"evaluate {sizes['eval_rows']:,} rows, metrics only (evaluate_model), within 1.5x of the same metrics by hand",
                 ratio(ours, hand), check(None if not (ours and hand) else ours <= 1.5 * hand)))
    print_targets(console, tgts)
    console.print(f"[dim]took {time.time() - started:.0f} s; load average now {os.getloadavg()[0]:.2f}[/]")
    for e in errors:
        console.print(f"error: {e}", style="red", markup=False, highlight=False)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"versions": versions, "sizes": sizes, "repeats": repeats, "samples": samples,
                                         "targets": [dict(zip(("target", "measured", "result"), t, strict=True)) for t in tgts],
                                         "errors": errors}, indent=1))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
