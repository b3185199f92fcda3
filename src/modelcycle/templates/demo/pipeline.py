"""Churn training: the newest labelled customers (files, then production feedback), split by time, train."""

import os

import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier

import modelcycle as mc

FEATURES = ["tenure_months", "monthly_charges", "support_calls", "data_gb"]


@mc.step
def load_recent(data: str, feedback: str | None = None, rows: int = 2400) -> pd.DataFrame:
    """The newest ``rows`` labelled customers, oldest first: the files in ``data``, then the labelled
    predictions the agent hands over (``feedback``). Customers change, so old data ages out."""
    files = sorted(f for f in os.listdir(data) if f.endswith(".parquet"))
    frames = [pd.read_parquet(os.path.join(data, f)) for f in files]
    if feedback:
        served = pd.read_parquet(feedback)
        if len(served):
            frames.append(served[FEATURES + ["churned", "predicted_at"]])
    return pd.concat(frames, ignore_index=True).tail(rows).reset_index(drop=True)


@mc.step
def split(df: pd.DataFrame) -> dict:
    """The newest 30% is the test set: data no earlier model was trained on, so the gate's comparison is fair."""
    cut = int(len(df) * 0.7)
    return {"train": df.iloc[:cut], "test": df.iloc[cut:]}


@mc.step
def train(train: pd.DataFrame):
    model = HistGradientBoostingClassifier(max_iter=80, learning_rate=0.1, random_state=0)
    return model.fit(train[FEATURES], train["churned"])


@mc.pipeline
def training(data: str = "data", feedback: str | None = None):
    parts = split(load_recent(data, feedback))
    return {"model": train(parts["train"]), "train": parts["train"][FEATURES + ["churned"]], "test": parts["test"]}
