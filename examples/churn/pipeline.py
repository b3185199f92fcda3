"""Churn, end to end: load → validate → split → select features → tune and train → evaluate → validate and register.

    modelcycle pipeline run examples/churn/pipeline.py:churn_training            # or -p n_trials=30 --executor dask
    modelcycle pipeline show <run>           # steps, cache hits, lineage
    modelcycle models history churn          # what the gate decided

The data are generated (a telecom's customers: contract, tenure, charges, support calls, region)
into examples/churn/data/ the first time; ``schema.yaml`` beside this file was written by
``modelcycle data infer-schema`` and then edited. Run it twice: the second run comes from the cache
except the registration step, whose candidate then meets the first run's champion.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

import modelcycle as mc
from modelcycle.pipelines.steps import (
    evaluate_on,
    load_table,
    select_columns,
    split_table,
    tune_and_train,
    validate_and_register,
    validate_table,
)

HERE = Path(__file__).resolve().parent
DATA = HERE / "data" / "customers.parquet"
SCHEMA = HERE / "schema.yaml"
POLICY = {
    "thresholds": {"roc_auc": ">= 0.75"},
    "improvement": {"metric": "roc_auc", "over": "champion", "min_delta": 0.0},
    "slices": {"column": "region", "max_regression": 0.05},
    "latency_ms_per_row": "<= 2",
    "require_data_validation": True,
}


def generate(rows: int = 6000, seed: int = 0) -> pd.DataFrame:
    """Customers whose churn depends on contract, tenure, charges and support calls (not on customer_id or noise)."""
    rng = np.random.default_rng(seed)
    contract = rng.choice(["monthly", "one_year", "two_year"], rows, p=[0.55, 0.25, 0.20])
    tenure = rng.gamma(2.0, 12.0, rows).round().clip(0, 72)
    charges = rng.normal(70, 20, rows).clip(18, 120).round(2)
    calls = rng.poisson(1.5, rows)
    region = rng.choice(["north", "south", "east", "west"], rows)
    logit = (-1.0 + 1.4 * (contract == "monthly") - 0.04 * tenure + 0.02 * (charges - 70) + 0.45 * calls
             - 0.8 * (contract == "two_year") + rng.normal(0, 0.5, rows))
    churned = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    frame = pd.DataFrame({"customer_id": np.arange(rows), "contract": contract, "tenure_months": tenure, "monthly_charges": charges,
                          "support_calls": calls, "region": region, "noise": rng.normal(size=rows), "churned": churned})
    frame.loc[rng.random(rows) < 0.02, "monthly_charges"] = np.nan  # some missing values, as real exports have
    return frame


def ensure_data(path: Path = DATA) -> str:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        generate().to_parquet(path, index=False)
    return str(path)


@mc.pipeline
def churn_training(data: str = str(DATA), n_trials: int = 12, model: str = "auto", k: int = 4, name: str = "churn"):
    ensure_data(Path(data))
    raw = load_table(data)
    df = validate_table(raw, schema=str(SCHEMA), target="churned")
    train, test = split_table(df, target="churned", method="stratified", test_size=0.25)
    features = select_columns(train, target="churned", k=k)
    model = tune_and_train(train, "churned", features, model=model, n_trials=n_trials)
    metrics = evaluate_on(model, test, "churned")
    decision = validate_and_register(model, train, test, "churned", name=name, policy=POLICY)
    return {"metrics": metrics, "decision": decision}
