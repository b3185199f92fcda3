"""Files planted in the shared log by someone with write access to the store: each is refused by name, ignored,
or read as harmless; none stops the other readers with a stack trace or reaches back years."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from modelcycle.errors import InvalidInputError
from modelcycle.settings import redact
from modelcycle.store.predictions import append_labels, list_files, model_dir, read_labels, read_log, write_atomic

DAY = time.strftime("%Y-%m-%d", time.gmtime())


def _log(root: Path, ids: list[str]) -> str:
    frame = pd.DataFrame({"request_id": ids, "row": 0, "time": pd.Timestamp.now(tz="UTC"), "model": "churn", "version": 1,
                          "role": "champion", "latency_ms": 1.0, "input.a": 1.0, "prediction": 1})
    return write_atomic(frame, f"{model_dir(root, 'predictions', 'churn')}/date={DAY}", root=root, writer="replica")


def test_folders_that_are_not_dates_are_never_read(tmp_path: Path) -> None:
    _log(tmp_path, ["a", "b"])
    for odd in ("date=zzz", "date=%2e%2e", "date=2026-13"):
        folder = Path(model_dir(tmp_path, "predictions", "churn")) / odd
        folder.mkdir()
        pq.write_table(pa.table({"request_id": ["x"], "time": pa.array([0], pa.timestamp("ns", "UTC"))}),
                       folder / f"part-{time.time_ns()}-evil_1.parquet")
    assert len(read_log(tmp_path, "churn", start="2026-01-01", end="2100-01-01")) == 2


def test_a_file_without_the_logs_columns_is_refused_by_name(tmp_path: Path) -> None:
    _log(tmp_path, ["a"])
    folder = Path(model_dir(tmp_path, "predictions", "churn")) / f"date={DAY}"
    pq.write_table(pa.table({"request_id": ["x"], "time": ["yesterday"]}), folder / f"part-{time.time_ns()}-evil_2.parquet")
    with pytest.raises(InvalidInputError, match=r"is not a file modelcycle wrote .*move it out of the log folder"):
        read_log(tmp_path, "churn")
    with pytest.raises(InvalidInputError, match="is not a file modelcycle wrote"):
        append_labels(tmp_path, "churn", ["a"], [1])


def test_a_merged_name_neither_hides_labels_nor_reaches_back_to_1970(tmp_path: Path) -> None:
    _log(tmp_path, ["a", "b"])
    append_labels(tmp_path, "churn", ["a", "b"], [1, 0])
    labels = Path(model_dir(tmp_path, "labels", "churn")) / f"date={DAY}"
    pq.write_table(pa.table({"request_id": pa.array([], pa.string()), "label": pa.array([], pa.int64())}),
                   labels / "part-9999999999999999999-compact0.parquet")
    assert sorted(read_labels(tmp_path, "churn")["request_id"]) == ["a", "b"]
    logs = Path(model_dir(tmp_path, "predictions", "churn")) / f"date={DAY}"
    empty = pa.table({"request_id": pa.array([], pa.string()), "time": pa.array([], pa.timestamp("ns", "UTC"))})
    pq.write_table(empty, logs / "part-9999999999999999999-compact0_other.parquet")
    earliest = min(f.first_ns for f in list_files(tmp_path, "predictions", "churn")) / 1e9
    assert earliest > time.time() - 3 * 86_400


def test_a_label_file_without_rows_labels_first_rows(tmp_path: Path) -> None:
    _log(tmp_path, ["a"])
    folder = tmp_path / "labels" / "unassigned" / f"date={DAY}"
    folder.mkdir(parents=True)
    pq.write_table(pa.table({"request_id": ["a"], "label": [1]}), folder / f"part-{time.time_ns()}-evil_3.parquet")
    labels = read_labels(tmp_path, "churn")
    assert labels["row"].tolist() == [0] and labels["label"].tolist() == [1]


@pytest.mark.parametrize("uri", [
    "postgresql+psycopg://ds@db.internal:5432/mc?password=s3cret-pw",
    "postgresql+psycopg://ds:pa/s3cret-pw@db.internal:5432/mc",
    "postgresql+psycopg://ds:s3cret-pw@db.internal/mc?sslmode=require&sslpassword=s3cret-pw",
])
def test_passwords_in_every_form_are_hidden(uri: str) -> None:
    assert "s3cret-pw" not in redact(uri) and "db.internal" in redact(uri)


def test_a_label_looks_no_further_back_than_the_day_that_holds_its_prediction(tmp_path: Path) -> None:
    """Request ids are looked for newest day first, and older days are not even listed once every id is found:
    a damaged file in last month's folder neither slows nor blocks today's labels."""
    _log(tmp_path, ["today"])
    old = Path(model_dir(tmp_path, "predictions", "churn")) / "date=2020-01-01"
    old.mkdir()
    (old / "part-1577836800000000000-evil_1.parquet").write_bytes(b"not parquet")
    assert append_labels(tmp_path, "churn", ["today"], [1]) == 1
    with pytest.raises(InvalidInputError, match=r"evil_1\.parquet is not a readable Parquet file"):
        append_labels(tmp_path, "churn", ["from-2020"], [1])
