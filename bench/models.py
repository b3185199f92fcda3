"""Models: loading and evaluating, modelcycle side by side with joblib, hand-written scikit-learn and MLflow.

Run from the repository root; with ``.venv-bench`` (``make bench``) MLflow is measured too::

    .venv-bench/bin/python bench/models.py                 # 3 repetitions, ~3 min
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
- ``load by alias again``: ``mc.load_model("models:/bench@champion")`` after a first load, 200
  calls (the alias is read from the store on every call); MLflow's ``load_model`` of the same alias.
- ``evaluate``: 100,000 rows, the HistGradientBoosting model. modelcycle's ``evaluate_model`` on the
  loaded package (signature check, predict, predict_proba, accuracy, precision, recall, F1, ROC AUC,
  log loss, confusion matrix, calibration) against the same predictions and scikit-learn metric
  calls written by hand on the bare estimator; and ``mlflow.models.evaluate`` (default evaluator,
  classifier) when MLflow is installed.
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
KINDS = ("pipeline", "hgb", "rf")
FULL = {"train_rows": 20_000, "eval_rows": 100_000, "loads": 7, "alias_calls": 200, "mlflow_alias_calls": 10, "evals": 5}
QUICK = {"train_rows": 5_000, "eval_rows": 20_000, "loads": 3, "alias_calls": 50, "mlflow_alias_calls": 3, "evals": 2}


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
    mc, _ = _client(home)
    X, y = _data(sizes["train_rows"])
    model = _model("hgb", X, y)
    with mc.start_run(experiment="bench"):
        logged = mc.log_model(model, input_example=X.head())
    version = mc.register_model(logged, "bench")
    mc.set_alias("bench", "champion", version.version)
    first = _median_ms(lambda: mc.load_model("models:/bench@champion"), 1)
    out = {"mc_first_ms": first, "mc_again_ms": _median_ms(lambda: mc.load_model("models:/bench@champion"), sizes["alias_calls"])}
    mlflow = _mlflow(home)
    if mlflow is not None:
        with mlflow.start_run():
            info = mlflow.sklearn.log_model(model, name="model", input_example=X.head(), **_mlflow_kwargs(model))
        mv = mlflow.register_model(info.model_uri, "bench")
        mlflow.MlflowClient().set_registered_model_alias("bench", "champion", mv.version)
        mlflow.sklearn.load_model("models:/bench@champion")
        out["mlflow_again_ms"] = _median_ms(lambda: mlflow.sklearn.load_model("models:/bench@champion"), sizes["mlflow_alias_calls"])
    return out


def work_evaluate(sizes: dict, home: str) -> dict:
    _quiet()
    import numpy as np
    from sklearn import metrics as m

    from modelcycle.evaluation import evaluate_model
    from modelcycle.models import load_package, save_model

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

    def ours():
        evaluate_model(loaded, data)

    by_hand()
    ours()
    out = {"hand_ms": _median_ms(by_hand, sizes["evals"]), "mc_ms": _median_ms(ours, sizes["evals"])}
    ev = evaluate_model(loaded, data)
    out["same_auc"] = bool(np.isclose(ev.metrics["roc_auc"], m.roc_auc_score(ye, model.predict_proba(Xe)[:, 1])))
    mlflow = _mlflow(home)
    if mlflow is not None:
        mlflow_dir = Path(home) / "mlflow-hgb"
        mlflow.sklearn.save_model(model, str(mlflow_dir), **_mlflow_kwargs(model))

        def theirs():
            with mlflow.start_run():
                mlflow.models.evaluate(str(mlflow_dir), data, targets="y", model_type="classifier",
                                       evaluator_config={"log_model_explainability": False})

        try:
            out["mlflow_ms"] = _median_ms(theirs, 1)
        except Exception as e:  # an MLflow without its optional evaluation dependencies
            out["mlflow_error"] = f"{type(e).__name__}: {str(e)[:200]}"
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
    loads = Table(title="first load of a scikit-learn model (median ms per load)", title_justify="left", header_style="bold")
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
    again = med(samples["alias"], "mc_again_ms")
    ml_again = med(samples["alias"], "mlflow_again_ms")
    console.print(f"load by alias again: modelcycle {fmt(again)} (first {fmt(med(samples['alias'], 'mc_first_ms'))}), "
                  f"MLflow {fmt(ml_again)}" + (f" ({ml_again / again:,.0f}x)" if again and ml_again else ""))
    hand, ours = med(samples["evaluate"], "hand_ms"), med(samples["evaluate"], "mc_ms")
    theirs = med(samples["evaluate"], "mlflow_ms")
    console.print(f"evaluate {sizes['eval_rows']:,} rows: modelcycle {fmt(ours)}, by hand {fmt(hand)} ({ratio(ours, hand)}), "
                  f"mlflow.models.evaluate {fmt(theirs)}" + (f" ({theirs / ours:,.1f}x modelcycle)" if theirs and ours else "")
                  + ("" if all(s.get("same_auc") for s in samples["evaluate"]) else " [red]ROC AUC differs![/]"))
    for s in samples["evaluate"]:
        if "mlflow_error" in s:
            errors.append("mlflow.models.evaluate: " + s["mlflow_error"])

    def check(ok: bool | None) -> str:
        return "n/a" if ok is None else "PASS" if ok else "FAIL"

    tgts = [("load by alias a second time < 5 ms", fmt(again), check(None if again is None else again < 5))]
    for kind in KINDS:
        j, pk = med(samples["first_load"], kind, "joblib_ms"), med(samples["first_load"], kind, "package_ms")
        tgts.append((f"first load within 2x of joblib.load ({kind})", ratio(pk, j), check(None if not (j and pk) else pk <= 2 * j)))
    tgts.append(("evaluate 100,000 rows within 1.5x of by hand" if not args.quick else "evaluate within 1.5x of by hand",
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
