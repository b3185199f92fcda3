"""``modelcycle init``: a new project folder with a spec, a pipeline, its tests, a gate and CI/CD that run out of the box."""

from __future__ import annotations

import re
from pathlib import Path

from modelcycle.errors import InvalidInputError

__all__ = ["PROJECT_FILES", "init_project"]

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
_TOKEN = "__PROJECT__"  # replaced by the project's name in every template

SPEC = """\
# The project spec: what `modelcycle agent` trains, gates, serves and watches, and when it retrains.
# Paths are relative to this file. `modelcycle ci` checks the same pipeline, data and gate on every push.
name: __PROJECT__
pipeline: pipelines/training.py:training   # a function that returns {"model", "train", "test"}
data: {source: data/, schema: schema.yaml, feedback: 30d}   # feedback: labelled predictions of the last 30 days
model: {name: __PROJECT__, target: churned, policy: policy.yaml, alias: champion}
serve: {model: __PROJECT__@champion}
monitor:
  # Short windows so you see the loop react within minutes while you try it. In production use
  # windows that hold a few hundred predictions at least (1h or 1d) and agent.interval: 5m.
  window: 2m
  min_rows: 50                                 # windows with fewer predictions are not judged
  drift: {method: auto, share: 0.5}            # drifted when half the columns drift
  performance: {metric: roc_auc, min: 0.70, min_labelled: 30}   # once labels arrive (mc.log_labels)
triggers:
  - on: new_data           # a new or changed file in data/
  - on: drift              # the served model's inputs drifted
  - on: performance        # live roc_auc fell below monitor.performance.min
  - schedule: "0 3 * * 1"  # and every Monday at 03:00
agent:
  interval: 30s            # how often the agent checks the triggers (production: 5m)
  # While a drift or performance alert still fires after a cycle that did not fix it, the agent tries
  # again once this many new labelled predictions arrived, new data came, or the back-off passed.
  retry: {min_new_rows: 200, backoff: 10m, max_backoff: 6h}
params:                    # the pipeline's parameters
  C: 1.0
"""

POLICY = """\
# The gate a new model must pass before it becomes the champion.
# `modelcycle ci` checks it on every push; `modelcycle agent` and `modelcycle ci --promote` before moving the alias.
thresholds:
  roc_auc: ">= 0.70"
improvement:           # against the current champion, on the same test rows
  metric: roc_auc
  over: champion
  min_delta: -0.02     # may be at most 0.02 worse: retraining on new data moves scores a little
latency_ms_per_row: "<= 10"   # the median of 5 timings on 1,000 rows, so a busy moment does not fail it
require_data_validation: true   # the test rows must look like the training rows
"""

SCHEMA = """\
# What the training data must look like. `modelcycle ci` and the pipeline's validate step check it.
# Rewrite it from your own data with: modelcycle data infer-schema data/<file>.parquet -o schema.yaml
columns:
  tenure_months: {type: numeric, required: true, max_missing: 0.0, min: 0, max: 120}
  monthly_charges: {type: numeric, required: true, max_missing: 0.0, min: 0}
  support_calls: {type: integer, required: true, max_missing: 0.0, min: 0}
  churned: {type: integer, required: true, max_missing: 0.0, min: 0, max: 1}
"""

PIPELINE = '''\
"""The training pipeline of __PROJECT__: load → validate → split → train, returning what the controller gates.

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
            frames.append(served[FEATURES + [TARGET]])
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
'''

TESTS = '''\
"""Unit tests of the pipeline's steps: outside a pipeline a step is a plain function call. Run them with `pytest`."""

from __future__ import annotations

import pandas as pd
import pytest

import modelcycle as mc
from pipelines.training import FEATURES, TARGET, generate_data, load, split, train, validate, write_example_data


@pytest.fixture
def frame() -> pd.DataFrame:
    return generate_data(rows=400, seed=1)


def test_load_reads_every_file_of_the_folder(tmp_path, frame):
    frame.iloc[:100].to_parquet(tmp_path / "a.parquet", index=False)
    frame.iloc[100:].to_csv(tmp_path / "b.csv", index=False)
    assert len(load(str(tmp_path))) == len(frame)


def test_load_explains_an_empty_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="no .parquet or .csv files"):
        load(str(tmp_path))


def test_example_data_is_written_once(tmp_path):
    assert write_example_data(tmp_path, rows=50) is not None
    assert write_example_data(tmp_path, rows=50) is None


def test_validate_passes_good_rows_and_names_a_broken_column(frame):
    assert validate(frame) is frame
    with pytest.raises(mc.errors.DataValidationError, match="tenure_months"):
        validate(frame.assign(tenure_months=-1.0))


def test_split_keeps_every_row_once(frame):
    train_rows, test_rows = split(frame, test_size=0.25)
    assert len(test_rows) == 100 and len(train_rows) + len(test_rows) == len(frame)
    assert not set(train_rows.index) & set(test_rows.index)


def test_train_learns_better_than_chance(frame):
    train_rows, test_rows = split(frame)
    model = train(train_rows)
    assert model.score(test_rows[FEATURES], test_rows[TARGET]) > 0.6
'''

README = """\
# __PROJECT__

A machine-learning project run by modelcycle: a training pipeline,
its data schema and its gate, retrained automatically (MLOps level 1) and checked on every push (level 2).

| file | what it is |
| --- | --- |
| `modelcycle.yaml` | the project spec: pipeline, data, model, gate, serving, monitoring and the triggers that retrain |
| `pipelines/training.py` | the pipeline: load → validate → split → train; returns `{"model", "train", "test"}` |
| `schema.yaml` | what the data must look like |
| `policy.yaml` | what a new model must show before it becomes the champion |
| `tests/test_steps.py` | unit tests of the steps |
| `.github/workflows/modelcycle.yml`, `Jenkinsfile` | CI/CD: tests and `modelcycle ci` on every push; promotion on `main` |

## Run it

```bash
pip install -r requirements.txt
python pipelines/training.py                            # an example dataset in data/ (replace it with yours)
pytest                                                  # the steps' unit tests
modelcycle pipeline run pipelines/training.py:training  # one tracked, cached run of the pipeline
modelcycle ci                                           # the CI checks: data sample, smoke run, gate
modelcycle agent --once                                 # train → gate → promote, once per trigger that fires
modelcycle serve models:/__PROJECT__@champion           # serve the champion; it follows the alias
```

`modelcycle agent` without `--once` keeps watching: new files in `data/`, drift or falling performance of the
served model, and the schedule in `modelcycle.yaml` each start a cycle. `modelcycle agent --status` lists them,
`modelcycle lineage <cycle>` shows what each one did.

## CI/CD

`modelcycle ci` validates the first 2,000 rows of `data/` against `schema.yaml`, runs the pipeline on them,
and checks the model it trains against `policy.yaml` (and the current champion). It writes a JUnit report
(`--junit`) and a Markdown summary (`--summary`), and exits 1 when a check fails. Nothing is registered
unless `--promote` is given: then the model trained on all of `data/` is registered, gated and, if it
passes, promoted — the workflows do that on the `main` branch only.

Runs and models are kept in `./.modelcycle`. On a CI runner that folder disappears after the job: set
`MODELCYCLE_STORE_URI` and `MODELCYCLE_ARTIFACT_URI` (as secrets or credentials) to your shared store so
that a promotion reaches the registry your model server reads. Replace the "data" step of the workflows
with the command that fetches your training data.
"""

WORKFLOW = """\
# CI/CD for __PROJECT__: unit tests and `modelcycle ci` on every push and pull request;
# on the main branch the model that passes is also registered and promoted (--promote).
name: modelcycle

on:
  push:
  pull_request:

env:
  # Where runs and models are kept. Without these, a store in the runner's workspace vanishes after the job:
  # point them at your shared store so that promotion reaches the registry your model server reads.
  MODELCYCLE_STORE_URI: ${{ secrets.MODELCYCLE_STORE_URI }}
  MODELCYCLE_ARTIFACT_URI: ${{ secrets.MODELCYCLE_ARTIFACT_URI }}

jobs:
  modelcycle:
    runs-on: ubuntu-latest
    timeout-minutes: 30
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-python@v5
        with:
          python-version: "3.11"
          cache: pip
      - name: Install
        run: pip install -r requirements.txt
      - name: Unit tests
        run: pytest -q --junitxml=reports/unit.xml
      - name: Data
        # Replace with the command that fetches your training data (a download, `dvc pull`, a query).
        run: python pipelines/training.py
      - name: modelcycle ci
        if: github.ref != 'refs/heads/main' || github.event_name != 'push'
        run: modelcycle ci --junit reports/modelcycle.xml --summary reports/modelcycle.md
      - name: modelcycle ci --promote (main)
        if: github.ref == 'refs/heads/main' && github.event_name == 'push'
        run: modelcycle ci --promote --junit reports/modelcycle.xml --summary reports/modelcycle.md
      - name: Summary
        if: always()
        run: if [ -f reports/modelcycle.md ]; then cat reports/modelcycle.md >> "$GITHUB_STEP_SUMMARY"; fi
      - name: Reports
        if: always()
        uses: actions/upload-artifact@v4
        with:
          name: reports
          path: reports/
          if-no-files-found: ignore
"""

JENKINSFILE = """\
// CI/CD for __PROJECT__: unit tests and `modelcycle ci` on every branch; on main the model that passes
// is also registered and promoted (--promote). Use it in a multibranch pipeline (for `branch 'main'`).
pipeline {
    agent any
    options { timeout(time: 30, unit: 'MINUTES') }
    environment {
        // Where runs and models are kept. A store in the workspace vanishes with it: point these at your
        // shared store so that promotion reaches the registry your model server reads, e.g.
        // MODELCYCLE_STORE_URI = credentials('modelcycle-store-uri')
        // MODELCYCLE_ARTIFACT_URI = credentials('modelcycle-artifact-uri')
        MODELCYCLE_HOME = "${WORKSPACE}/.modelcycle"
    }
    stages {
        stage('Install') {
            steps {
                sh 'python3 -m venv .venv && .venv/bin/pip install -q -r requirements.txt'
            }
        }
        stage('Unit tests') {
            steps {
                sh '.venv/bin/pytest -q --junitxml=reports/unit.xml'
            }
        }
        stage('Data') {
            steps {
                // Replace with the command that fetches your training data (a download, `dvc pull`, a query).
                sh '.venv/bin/python pipelines/training.py'
            }
        }
        stage('modelcycle ci') {
            when { not { branch 'main' } }
            steps {
                sh '.venv/bin/modelcycle ci --junit reports/modelcycle.xml --summary reports/modelcycle.md'
            }
        }
        stage('modelcycle ci --promote (main)') {
            when { branch 'main' }
            steps {
                sh '.venv/bin/modelcycle ci --promote --junit reports/modelcycle.xml --summary reports/modelcycle.md'
            }
        }
    }
    post {
        always {
            junit allowEmptyResults: true, testResults: 'reports/*.xml'
            archiveArtifacts artifacts: 'reports/*', allowEmptyArchive: true
        }
    }
}
"""

REQUIREMENTS = """\
modelcycle[sklearn,serve]
pytest>=8
"""

PYPROJECT = """\
# Settings of the tools this project uses: `pytest` runs tests/ with the project folder on the import path.
[tool.pytest.ini_options]
testpaths = ["tests"]
pythonpath = ["."]
"""

GITIGNORE = """\
.modelcycle/
data/
reports/
__pycache__/
.pytest_cache/
.venv/
"""

# relative path → template; the order is the order of the listing `modelcycle init` prints
PROJECT_FILES: dict[str, str] = {
    "modelcycle.yaml": SPEC,
    "pipelines/training.py": PIPELINE,
    "schema.yaml": SCHEMA,
    "policy.yaml": POLICY,
    "tests/test_steps.py": TESTS,
    "README.md": README,
    "requirements.txt": REQUIREMENTS,
    "pyproject.toml": PYPROJECT,
    ".gitignore": GITIGNORE,
    ".github/workflows/modelcycle.yml": WORKFLOW,
    "Jenkinsfile": JENKINSFILE,
}


def init_project(name: str, folder: str | Path | None = None) -> list[Path]:
    """Write a new project: spec, pipeline, schema, policy, unit tests, README and CI/CD for GitHub Actions and Jenkins.

    The project runs as written: ``python pipelines/training.py`` writes an example dataset into
    ``data/``, after which ``pytest``, ``modelcycle ci`` and ``modelcycle agent --once`` all pass.

    Args:
        name: the project's name, also its model's name: letters, digits, ``-`` and ``_``, starting with a letter.
        folder: where to write it (default: ``./<name>``); it must not exist yet or be empty (a ``.git`` folder is allowed).

    Returns:
        The files written, in the order of ``PROJECT_FILES``.

    Raises:
        InvalidInputError: a bad name, or a folder that already holds files.

    Example:
        >>> import tempfile, pathlib
        >>> files = init_project("churn", pathlib.Path(tempfile.mkdtemp()) / "churn")
        >>> [f.name for f in files][:3]
        ['modelcycle.yaml', 'training.py', 'schema.yaml']
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidInputError(
            f"{name!r} is not a valid project name: use letters, digits, '-' and '_', starting with a letter "
            "(at most 64 characters), e.g. churn or fraud-v2")
    root = Path(folder) if folder is not None else Path.cwd() / name
    if root.exists():
        if not root.is_dir():
            raise InvalidInputError(f"{root} is a file; choose another folder with --path, or remove the file")
        present = sorted(p.name for p in root.iterdir() if p.name != ".git")
        if present:
            shown = ", ".join(present[:5]) + (f" and {len(present) - 5} more" if len(present) > 5 else "")
            raise InvalidInputError(
                f"{root} is not empty ({shown}); modelcycle init writes a new project only into a new or empty folder: "
                "choose another one with --path")
    root.mkdir(parents=True, exist_ok=True)
    written = []
    for rel, template in PROJECT_FILES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template.replace(_TOKEN, name), encoding="utf-8")
        written.append(path)
    (root / "data").mkdir(exist_ok=True)
    return written
