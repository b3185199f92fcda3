"""The training pipeline of churn: load → validate → split → train, returning what the controller gates.

    python pipelines/training.py                                 # write an example dataset into data/ (when it is empty)
    modelcycle pipeline run pipelines/training.py:training       # one tracked, cached run
    pytest                                                       # the steps' unit tests (tests/test_steps.py)

Replace the example data and the steps with your own; keep the contract: the pipeline takes ``data``
(the data folder, which `modelcycle agent` and `modelcycle ci` pass) and ``feedback`` (the labelled
predictions of the served model, which the agent passes; None elsewhere) and returns
``{"model": <fitted model>, "train": <training rows>, "test": <held-out rows with the target>}``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import modelcycle as mc

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
SCHEMA = ROOT / "schema.yaml"
TARGET = "churned"
FEATURES = ["tenure_months", "monthly_charges", "support_calls"]
SUFFIXES = (".parquet", ".csv")


def generate_data(rows: int = 3000, seed: int = 0) -> pd.DataFrame:
    """Example customers whose churn depends on tenure, charges and support calls."""
    rng = np.random.default_rng(seed)
    tenure = rng.integers(0, 73, rows).astype(float)
    charges = rng.normal(70, 20, rows).clip(18, 120).round(2)
    calls = rng.poisson(1.5, rows)
    logit = -0.6 - 0.05 * (tenure - 24) + 0.03 * (charges - 70) + 0.6 * (calls - 1.5)
    churned = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame({"tenure_months": tenure, "monthly_charges": charges, "support_calls": calls, TARGET: churned})


def write_example_data(folder: Path = DATA, rows: int = 3000, seed: int = 0) -> Path | None:
    """Write the example dataset into ``folder`` when it holds no data yet; the file written, or None."""
    folder = Path(folder)
    if folder.is_dir() and any(p.suffix in SUFFIXES for p in folder.iterdir()):
        return None
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "customers-000.parquet"
    generate_data(rows, seed).to_parquet(path, index=False)
    return path


@mc.step
def load(data: str, feedback: str | None = None) -> pd.DataFrame:
    """Every .parquet and .csv file in the folder ``data`` (or the one file it names), then the labelled predictions
    the agent hands over as ``feedback`` (a Parquet file of the served model's inputs, the target and when each was
    predicted; see data.feedback in modelcycle.yaml), as one frame."""
    where = Path(data)
    files = [where] if where.is_file() else sorted(p for p in where.glob("*") if p.suffix in SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no .parquet or .csv files in {where}; put the training data there "
                                "(python pipelines/training.py writes an example dataset)")
    frames = [pd.read_parquet(f) if f.suffix == ".parquet" else pd.read_csv(f) for f in files]
    if feedback:
        served = pd.read_parquet(feedback)
        if len(served):
            # predicted_at stays: the gate of a retraining an alert started judges the test rows predicted after the change
            frames.append(served[FEATURES + [TARGET] + [c for c in ("predicted_at",) if c in served]])
    return pd.concat(frames, ignore_index=True)


@mc.step
def validate(df: pd.DataFrame, schema: str = str(SCHEMA)) -> pd.DataFrame:
    """Stop the pipeline when the data breaks schema.yaml (the report is logged with the step)."""
    mc.data.validate(df, mc.data.Schema.load(schema)).raise_for_errors()
    return df


@mc.step(outputs=("train", "test"))
def split(df: pd.DataFrame, test_size: float = 0.25, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hold out ``test_size`` of the rows, at random, for the gate."""
    test = df.sample(frac=test_size, random_state=seed)
    return df.drop(test.index), test


@mc.step
def train(train: pd.DataFrame, C: float = 1.0):
    """Fit the model on the features; the scaler keeps the solver well conditioned."""
    model = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=1000))
    return model.fit(train[FEATURES], train[TARGET])


@mc.pipeline
def training(data: str = str(DATA), feedback: str | None = None, C: float = 1.0, test_size: float = 0.25):
    train_rows, test_rows = split(validate(load(data, feedback)), test_size=test_size)
    model = train(train_rows, C=C)
    return {"model": model, "train": train_rows, "test": test_rows}


if __name__ == "__main__":
    written = write_example_data()
    print(f"wrote {written}" if written else f"{DATA} already holds data; nothing written")
