"""`modelcycle demo`: a notebook-style sweep, tracked and reproducible, whose best model goes through a gate.

Several scikit-learn models and parameter sets are trained on a dataset scikit-learn ships
(breast cancer diagnosis, 569 rows, 30 features), every run is tracked with its data
fingerprint, parameters, metrics, code version and model package, then the runs are compared
and the best one is shown with the exact steps that reproduce it. The best model is registered,
validated against a written policy (and against the current champion, from an earlier demo), and
promoted to ``champion`` only if it passes.
"""

from __future__ import annotations

import time
from typing import Any

__all__ = ["CONFIGS", "EXPERIMENT", "MODEL_NAME", "POLICY", "main", "train_all"]

EXPERIMENT = "level0-breast-cancer"
MODEL_NAME = "breast-cancer"
POLICY = {
    "thresholds": {"roc_auc": ">= 0.95", "log_loss": "<= 0.35"},
    "improvement": {"metric": "roc_auc", "over": "champion", "min_delta": 0.0},
    "latency_ms_per_row": "<= 1",
    "require_data_validation": True,
    "target": "target",
}

# (run name, model kind, parameters)
CONFIGS: list[tuple[str, str, dict[str, Any]]] = [
    ("logreg C=0.01", "logreg", {"C": 0.01}),
    ("logreg C=0.1", "logreg", {"C": 0.1}),
    ("logreg C=1", "logreg", {"C": 1.0}),
    ("logreg C=10", "logreg", {"C": 10.0}),
    ("forest depth=3", "random_forest", {"n_estimators": 200, "max_depth": 3}),
    ("forest depth=full", "random_forest", {"n_estimators": 200, "max_depth": None}),
    ("boosting lr=0.05", "gradient_boosting", {"learning_rate": 0.05, "n_estimators": 150}),
    ("boosting lr=0.2", "gradient_boosting", {"learning_rate": 0.2, "n_estimators": 150}),
]


def _model(kind: str, params: dict[str, Any], seed: int) -> Any:
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if kind == "logreg":
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, **params))
    if kind == "random_forest":
        return RandomForestClassifier(random_state=seed, n_jobs=1, **params)
    return GradientBoostingClassifier(random_state=seed, **params)


def train_all(progress: Any = None, seed: int = 42) -> list[str]:
    """Train every configuration as one tracked run; returns the run ids."""
    import pandas as pd
    from sklearn.datasets import load_breast_cancer
    from sklearn.metrics import accuracy_score, f1_score, log_loss, roc_auc_score
    from sklearn.model_selection import train_test_split

    import modelcycle as mc

    mc.seed_everything(seed)
    data = load_breast_cancer(as_frame=True)
    X, y = data.data, data.target
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=seed, stratify=y)
    ids = []
    task = progress.add_task("training", total=len(CONFIGS)) if progress else None
    for name, kind, params in CONFIGS:
        with mc.start_run(experiment=EXPERIMENT, name=name, params={"model": kind, **params},
                          tags={"dataset": "sklearn.breast_cancer", "level": "0"}) as run:
            mc.log_dataset(X_train.assign(target=y_train), name="breast_cancer", role="train")
            mc.log_dataset(X_test.assign(target=y_test), name="breast_cancer", role="test")
            model = _model(kind, params, seed)
            start = time.perf_counter()
            model.fit(X_train, y_train)
            mc.log_metric("fit_seconds", time.perf_counter() - start)
            proba = model.predict_proba(X_test)[:, 1]
            pred = (proba >= 0.5).astype(int)
            mc.log_metrics({
                "accuracy": accuracy_score(y_test, pred),
                "roc_auc": roc_auc_score(y_test, proba),
                "f1": f1_score(y_test, pred),
                "log_loss": log_loss(y_test, proba),
            })
            mc.log_table(pd.DataFrame({"y_true": y_test.to_numpy(), "proba": proba}), "predictions")
            mc.log_model(model, reference_data=X_train)
            ids.append(run.id)
        if progress:
            progress.advance(task)
    return ids


def gate(best_run_id: str, con: Any) -> None:
    """Register the best model, validate it against the policy and the champion, promote it if it passes."""
    from rich import box
    from rich.table import Table
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    import modelcycle as mc

    data = load_breast_cancer(as_frame=True)
    _, X_test, _, y_test = train_test_split(data.data, data.target, test_size=0.3, random_state=42, stratify=data.target)
    version = mc.register_model(f"runs:/{best_run_id}/model", MODEL_NAME, description="best of the demo sweep")
    con.print(f"\n[bold]Registered[/] {MODEL_NAME} version {version.version} (package sha256 {version.hash[:12]}…)")
    verdict = mc.validate_model(version, X_test.assign(target=y_test), POLICY)
    table = Table(title=f"Validation gate for {MODEL_NAME}/{version.version}" + (f" against {verdict.baseline}" if verdict.baseline else ""),
                  header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("rule", "result", "evidence"):
        table.add_column(col)
    for r in verdict.rules:
        table.add_row(r.rule, "[green]pass[/]" if r.passed else "[bold red]FAIL[/]", r.detail)
    con.print(table)
    if verdict.passed:
        event = mc.promote(MODEL_NAME, version.version, alias="champion", verdict=verdict)
        con.print(f"[bold green]Promoted[/]: {MODEL_NAME}@champion {event.from_version or '—'} → {event.to_version}")
    else:
        con.print(f"[bold red]Not promoted[/]: {'; '.join(verdict.failures())}")
    try:
        champion = mc.load_model(f"models:/{MODEL_NAME}@champion")
    except mc.errors.NotFoundError:
        return
    sample = X_test.head(3)
    con.print(f"Serving-ready: mc.load_model('models:/{MODEL_NAME}@champion') → version {champion.version.version}, "
              f"predictions for 3 rows: {champion.predict(sample).tolist()}")


def number(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def main() -> None:
    """Run the demo and print the comparison and the reproduction steps."""
    from rich import box
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    import modelcycle as mc
    from modelcycle.tracking import reproduce

    con = Console(highlight=False)
    con.rule("[bold]modelcycle demo — a tracked, reproducible model sweep, and a gate before the registry")
    con.print(f"Training {len(CONFIGS)} models on scikit-learn's breast-cancer data; every run is tracked.\n")
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=con) as progress:
        ids = train_all(progress)
    runs = mc.search_runs(experiment=EXPERIMENT, filter=None, order_by=["metrics.roc_auc DESC", "metrics.log_loss ASC"], limit=None)
    runs = runs[runs["run_id"].isin(ids)]
    table = Table(title="This sweep, best first", header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("run", "name", "roc_auc", "accuracy", "f1", "log_loss", "fit s"):
        table.add_column(col, justify="left" if col in ("run", "name") else "right", no_wrap=True)
    for i, r in enumerate(runs.to_dict("records")):
        table.add_row(r["run_id"][:8], r["name"], *[number(r[f"metrics.{m}"]) for m in ("roc_auc", "accuracy", "f1", "log_loss")],
                      f"{r['metrics.fit_seconds']:.2f}", style="bold green" if i == 0 else None)
    con.print(table)
    best = runs.iloc[0]["run_id"]
    plan = reproduce.plan(mc.get_client(), best)
    run = plan.run
    con.print(f"\n[bold]Best run[/] {run.name} ({run.id[:8]}): roc_auc {number(run.metrics['roc_auc'])}")
    con.print(f"  data: {', '.join(f'{d.role} {d.rows} rows, fingerprint {d.fingerprint[:12]}' for d in run.inputs)}")
    con.print(f"  seed: {run.context.seed}   python {run.context.python}   artifacts: {', '.join(a.path for a in run.artifacts)}")
    con.print("\n[bold]To reproduce it[/] (`modelcycle runs reproduce "
              f"{run.id[:8]}`; add --execute to run it and compare metrics):")
    for i, step in enumerate(plan.steps, 1):
        con.print(f"  {i}. {step.title}" + (f": [cyan]{step.command}[/]" if step.command else "")
                  + (f" [dim]({step.note})[/]" if step.note else ""))
    gate(best, con)
    con.print("\nExplore: [cyan]modelcycle runs ls -e " + EXPERIMENT + " -o 'metrics.roc_auc DESC'[/], "
              f"[cyan]modelcycle runs show {run.id[:8]}[/], [cyan]modelcycle runs compare {runs.iloc[0]['run_id'][:8]} "
              f"{runs.iloc[-1]['run_id'][:8]}[/], [cyan]modelcycle models show {MODEL_NAME}[/], "
              f"[cyan]modelcycle models history {MODEL_NAME}[/]")


if __name__ == "__main__":
    main()
