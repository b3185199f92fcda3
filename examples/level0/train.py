"""Level 0, tracked: a notebook-style training script whose every attempt is recorded and whose best model is registered.

    python train.py                          # or paste it into a notebook, cell by cell
    modelcycle runs ls -e churn-level0       # what was tried, with its parameters and metrics
    modelcycle models ls                     # what was registered
    modelcycle serve models:/churn-level0/1  # serve it over HTTP

The data are generated here (customers and whether they churned); use your own frame instead.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import modelcycle as mc

FEATURES = ["tenure_months", "monthly_charges", "support_calls"]
TARGET = "churned"
MODEL_NAME = "churn-level0"


def generate_data(rows: int = 3000, seed: int = 0) -> pd.DataFrame:
    """Customers whose churn depends on tenure, charges and support calls."""
    rng = np.random.default_rng(seed)
    tenure = rng.integers(0, 73, rows).astype(float)
    charges = rng.normal(70, 20, rows).clip(18, 120).round(2)
    calls = rng.poisson(1.5, rows)
    logit = -0.6 - 0.05 * (tenure - 24) + 0.03 * (charges - 70) + 0.6 * (calls - 1.5)
    churned = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame({"tenure_months": tenure, "monthly_charges": charges, "support_calls": calls, TARGET: churned})


def main() -> None:
    df = generate_data()
    train, test = train_test_split(df, test_size=0.25, random_state=0, stratify=df[TARGET])

    candidates = {  # what a notebook tries one cell at a time: a name, its parameters, and the model they make
        "logistic_regression": ({"C": 1.0}, lambda p: make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, **p))),
        "random_forest": ({"n_estimators": 50, "max_depth": 4}, lambda p: RandomForestClassifier(random_state=0, **p)),
        "deep_random_forest": ({"n_estimators": 50, "max_depth": 12}, lambda p: RandomForestClassifier(random_state=0, **p)),
    }
    best = None
    for name, (params, make) in candidates.items():  # each attempt is one run: its parameters, metrics and model are kept
        with mc.start_run(experiment="churn-level0", name=name, params={"model": name, **params}):
            model = make(params)
            model.fit(train[FEATURES], train[TARGET])
            proba = model.predict_proba(test[FEATURES])[:, 1]
            auc = roc_auc_score(test[TARGET], proba)
            mc.log_metrics({"roc_auc": auc, "accuracy": accuracy_score(test[TARGET], proba > 0.5)})
            logged = mc.log_model(model, reference_data=train[FEATURES])  # a safe package with its signature and data profile
            print(f"{name}: roc_auc {auc:.3f}")
            if best is None or auc > best[0]:
                best = (auc, name, logged)

    auc, name, logged = best
    version = mc.register_model(logged.uri, MODEL_NAME, description=f"the best of {len(candidates)} tries: {name}",
                                tags={"roc_auc": f"{auc:.3f}"})
    print(f"registered {MODEL_NAME} version {version.version} ({name}, roc_auc {auc:.3f}); "
          f"serve it with: modelcycle serve models:/{MODEL_NAME}/{version.version}")


if __name__ == "__main__":
    main()
