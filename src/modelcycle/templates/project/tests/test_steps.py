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
