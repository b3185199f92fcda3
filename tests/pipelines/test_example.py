"""The example pipeline runs end to end with the ready-made steps, and its second run comes from the cache."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

import modelcycle as mc
from modelcycle.errors import DataValidationError, InvalidInputError, PipelineError
from modelcycle.tracking.client import Client

pytest.importorskip("optuna")
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "churn" / "pipeline.py"


def load_example():
    spec = importlib.util.spec_from_file_location("churn_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_churn_example_end_to_end(client: Client, tmp_path: Path) -> None:
    example = load_example()
    data = example.ensure_data(tmp_path / "customers.parquet")
    mc.set_client(client)
    try:
        first = example.churn_training.run(data=data, n_trials=3, model="logreg", client=client)
        second = example.churn_training.run(data=data, n_trials=3, model="logreg", client=client)
    finally:
        mc.set_client(None)
    out = first.output
    assert out["metrics"]["roc_auc"] > 0.75
    assert out["decision"] == {**out["decision"], "version": 1, "passed": True, "promoted_to": "champion"}
    assert set(first.outputs["select_columns"]) == {"contract", "tenure_months", "monthly_charges", "support_calls"}
    tune_run = first.steps["tune_and_train"].run_id
    trials = client.search_runs(filter=f"parent_id = '{tune_run}'", as_frame=False, limit=None)
    assert sorted(t.name for t in trials) == ["trial-0", "trial-1", "trial-2"], "each trial is a child run of the step's run"
    assert client.get_run(tune_run).params["best.family"] == "logreg"
    assert [s.status for s in second.steps.values()] == ["cached"] * 6 + ["finished"]
    assert second.output["decision"]["version"] == 2
    assert client.get_run(second.steps["validate_and_register"].run_id).status.value == "FINISHED"


def test_a_file_breaking_its_schema_stops_the_pipeline(client: Client, tmp_path: Path) -> None:
    example = load_example()
    frame = example.generate(500)
    frame.loc[:50, "contract"] = "lifetime"  # a category the schema does not know, far beyond its tolerance
    frame.to_parquet(tmp_path / "bad.parquet", index=False)
    with pytest.raises(PipelineError, match="step 'validate_table' failed: DataValidationError") as err:
        example.churn_training.run(data=str(tmp_path / "bad.parquet"), n_trials=2, client=client)
    assert err.value.result.steps["split_table"].status == "skipped"
    assert issubclass(DataValidationError, mc.ModelcycleError)


def test_split_table_checks_its_arguments() -> None:
    import pandas as pd

    from modelcycle.pipelines.steps import split_table

    df = pd.DataFrame({"t": range(10), "y": [0, 1] * 5})
    train, test = split_table(df, "y", method="time", time_column="t", test_size=0.3)
    assert train["t"].max() < test["t"].min() and len(test) == 3
    with pytest.raises(InvalidInputError, match="no target column 'label'"):
        split_table(df, "label")
    with pytest.raises(InvalidInputError, match="time_column"):
        split_table(df, "y", method="time")
