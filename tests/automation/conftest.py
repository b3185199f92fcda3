"""A small real project on disk: a spec, a pipeline file, a data folder, a policy."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

PIPELINE = '''
import os
import time

import pandas as pd
from sklearn.linear_model import LogisticRegression

import modelcycle as mc


@mc.step
def load(data: str, feedback: str | None = None) -> pd.DataFrame:
    files = sorted(f for f in os.listdir(data) if f.endswith(".parquet"))
    frames = [pd.read_parquet(os.path.join(data, f)) for f in files]
    served = pd.read_parquet(feedback) if feedback else None
    if served is not None and len(served):  # empty (and without input columns) until labelled predictions exist
        frames.append(served[["a", "b", "c", "y"]])
    return pd.concat(frames, ignore_index=True)


@mc.step
def split(df: pd.DataFrame) -> dict:
    test = df.sample(frac=0.3, random_state=0)
    return {"train": df.drop(test.index), "test": test}


@mc.step
def train(train: pd.DataFrame, C: float = 1.0):
    if os.environ.get("SLOW_TRAINING"):
        time.sleep(float(os.environ["SLOW_TRAINING"]))
    return LogisticRegression(C=C).fit(train[["a", "b", "c"]], train["y"])


@mc.pipeline
def training(data: str = "data", C: float = 1.0, feedback: str | None = None):
    parts = split(load(data, feedback))
    model = train(parts["train"], C=C)
    return {"model": model, "train": parts["train"], "test": parts["test"]}
'''


def batch(n: int, seed: int, shift: float = 0.0, flip: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"a": rng.normal(shift, 1, n), "b": rng.normal(0, 1, n), "c": rng.normal(shift, 1, n)})
    y = ((df["a"] - shift) + 0.5 * df["b"] + rng.normal(0, 0.5, n) > 0).astype(int)
    df["y"] = 1 - y if flip else y
    return df


def write_project(root: Path, policy: str = "thresholds: {roc_auc: '>= 0.7'}\nimprovement: {metric: roc_auc, min_delta: -0.05}\n",
                  extra: str = "") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pipelines").mkdir(exist_ok=True)
    (root / "pipelines" / "training.py").write_text(PIPELINE)
    (root / "data").mkdir(exist_ok=True)
    (root / "policy.yaml").write_text(policy)
    (root / "modelcycle.yaml").write_text(textwrap.dedent("""\
        name: churn
        pipeline: pipelines/training.py:training
        data: {source: data/}
        model: {name: churn, target: y, policy: policy.yaml}
        serve: {model: churn@champion}
        monitor: {window: 1h, drift: {share: 0.5}, performance: {metric: roc_auc, min: 0.75}}
        triggers:
          - on: new_data
          - on: drift
        """) + extra)
    return root


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = write_project(tmp_path / "project")
    batch(600, 0).to_parquet(root / "data" / "batch-000.parquet")
    return root
