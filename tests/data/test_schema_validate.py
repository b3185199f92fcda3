"""Schemas inferred from data, kept as YAML, and data validated against them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modelcycle.data import Schema, infer_schema, validate
from modelcycle.errors import DataValidationError, InvalidInputError


def good(n: int = 1000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "age": rng.integers(18, 90, n),
        "income": rng.normal(50_000, 10_000, n),
        "region": rng.choice(["north", "south", "east"], n),
        "active": rng.random(n) < 0.5,
        "signup": pd.date_range("2025-01-01", periods=n, freq="h"),
    })
    df.loc[: n // 50, "income"] = np.nan
    return df


def test_inferred_schema_accepts_the_data_it_came_from_and_round_trips(tmp_path: Path) -> None:
    df = good()
    schema = infer_schema(df)
    assert schema.columns["age"].type == "integer" and schema.columns["age"].min == 0 and schema.columns["age"].max is None
    assert schema.columns["region"].categories == ["east", "north", "south"]
    assert schema.columns["income"].nullable and not schema.columns["age"].nullable
    path = tmp_path / "schema.yaml"
    schema.save(path)
    text = path.read_text()
    assert "# age:" in text and "missing" in text, "a comment per column says what was observed"
    loaded = Schema.load(path)
    assert loaded.columns.keys() == schema.columns.keys()
    assert loaded.columns["region"].categories == schema.columns["region"].categories
    assert validate(df, loaded).passed
    assert validate(good(seed=1), loaded).passed


def test_each_kind_of_broken_data_is_named_with_evidence() -> None:
    schema = infer_schema(good())
    bad = good(seed=2)
    bad["age"] = bad["age"].astype(object)
    bad.loc[0, "age"] = "forty"
    bad.loc[1, "age"] = -4  # ages were never negative
    bad.loc[:300, "income"] = np.nan
    bad.loc[400, "income"] = np.inf
    bad.loc[:200, "region"] = "west"
    bad = bad.drop(columns=["active"]).assign(extra=1)
    report = validate(bad, schema)
    found = {(a.column, a.check): a for a in report.anomalies}
    assert found[("age", "type")].examples == ("forty",) and found[("age", "type")].severity == "error"
    assert found[("age", "range")].examples == (-4,)
    assert found[("income", "missing_values")].rows == 301
    assert found[("income", "infinite")].rows == 1
    unseen = found[("region", "unseen_categories")]
    assert unseen.severity == "error" and unseen.rows == 201 and unseen.examples[0] == "west"
    assert found[("active", "missing_column")].severity == "error"
    assert found[("extra", "unexpected_column")].severity == "warning"
    assert not report.passed
    with pytest.raises(DataValidationError, match="data broke its schema") as info:
        report.raise_for_errors()
    assert info.value.report is report
    assert report.to_dict()["errors"] == len(report.errors)


def test_a_few_unseen_categories_are_a_warning_within_tolerance() -> None:
    schema = infer_schema(good())
    df = good(seed=3)
    df.loc[0, "region"] = "west"  # 0.1% < 1% tolerated
    report = validate(df, schema)
    assert report.passed and [a.check for a in report.warnings] == ["unseen_categories"]


def test_empty_data_and_files(tmp_path: Path) -> None:
    schema = infer_schema(good())
    report = validate(good().iloc[:0], schema)
    assert [a.check for a in report.errors] == ["empty"]
    good().to_parquet(tmp_path / "d.parquet")
    assert validate(tmp_path / "d.parquet", schema, batch_rows=128).passed


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("columns: [", "line"),
        ("rows: 3", "'columns:' section"),
        ("columns:\n  a: {type: number}", "type 'number'"),
        ("columns:\n  a: {type: numeric, max_missing: 3}", "max_missing must be a share"),
        ("columns:\n  a: {type: numeric, minimum: 3}", "unknown key(s) minimum"),
    ],
)
def test_bad_schema_files_say_what_is_wrong(text: str, words: str) -> None:
    import re

    with pytest.raises(InvalidInputError, match=re.escape(words)):
        Schema.from_yaml(text)


def test_missing_schema_file_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="infer-schema"):
        Schema.load(tmp_path / "nope.yaml")
