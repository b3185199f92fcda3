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
    labels = next(Path(model_dir(tmp_path, "labels", "churn")).glob("date=*"))  # the day by the labels' own clock
    pq.write_table(pa.table({"request_id": pa.array([], pa.string()), "label": pa.array([], pa.int64()),
                             "time": pa.array([], pa.timestamp("ns", "UTC"))}), labels / "part-9999999999999999999-compact0.parquet")
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


def test_links_in_the_log_folder_are_never_followed(tmp_path: Path) -> None:
    _log(tmp_path, ["inside"])
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    (outside / f"date={DAY}").mkdir(parents=True)
    pq.write_table(pa.table({"request_id": ["secret"], "time": pa.array([time.time_ns()], pa.timestamp("ns", "UTC"))}),
                   outside / f"date={DAY}" / f"part-{time.time_ns()}-x_1.parquet")
    folder = Path(model_dir(tmp_path, "predictions", "churn"))
    (folder / f"date={DAY}" / f"part-{time.time_ns()}-link_1.parquet").symlink_to(
        next((outside / f"date={DAY}").glob("*.parquet")))
    (folder / "date=2026-01-02").symlink_to(outside / f"date={DAY}", target_is_directory=True)
    assert list(read_log(tmp_path, "churn", start="2020-01-01", end="2100-01-01")["request_id"]) == ["inside"]
    with pytest.raises(InvalidInputError, match="not in the prediction log"):
        append_labels(tmp_path, "churn", ["secret"], [1])


@pytest.mark.parametrize("case", ["wide fixed-size values", "many constant columns"])
def test_fixed_width_columns_are_bounded_by_the_footer_before_a_page_is_read(tmp_path: Path, case: str) -> None:
    """Constant columns cost a few bytes in the file and 8 (or more) bytes a row once read: the rows the footer
    promises times the width of the columns must fit the bound, or the file is refused unread."""
    import resource

    import numpy as np

    if case == "wide fixed-size values":
        rows = 20_000
        extra = {"blob": pa.array([b"x" * 4096] * rows, pa.binary(4096))}  # 80 MB once read, from a ~20 KB file
    else:
        rows = 200_000
        zeros = pa.array(np.zeros(rows, dtype=np.int64))
        extra = {f"c{i}": zeros for i in range(400)}  # 640 MB once read, from a ~0.6 MB file
    noise = pa.array(np.random.default_rng(0).integers(0, 256, rows, dtype=np.uint8))  # a byte a row no codec shrinks
    table = pa.table({"request_id": pa.array(["r"] * rows), "time": pa.array([time.time_ns()] * rows, pa.timestamp("ns", "UTC")),
                      "noise": noise, **extra})
    folder = Path(model_dir(tmp_path, "predictions", "churn")) / f"date={DAY}"
    folder.mkdir(parents=True)
    pq.write_table(table, folder / f"part-{time.time_ns()}-bomb_1.parquet", compression="zstd")
    assert next(folder.glob("*bomb_1.parquet")).stat().st_size < 1_000_000
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(InvalidInputError, match=r"take [0-9,]+ bytes once read"):
        read_log(tmp_path, "churn")
    assert (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024 < 100


@pytest.mark.parametrize(("case", "words"), [
    ("version as text", "column 'version' is of type string"),
    ("label rows as text", "column 'row' is of type string"),
])
def test_a_file_of_the_wrong_shape_is_refused_by_name(tmp_path: Path, case: str, words: str) -> None:
    _log(tmp_path, ["a"])
    if case == "version as text":
        folder = Path(model_dir(tmp_path, "predictions", "churn")) / f"date={DAY}"
        pq.write_table(pa.table({"request_id": ["b"], "time": pa.array([time.time_ns()], pa.timestamp("ns", "UTC")), "version": ["x"]}),
                       folder / f"part-{time.time_ns()}-evil_3.parquet")
        reader = lambda: read_log(tmp_path, "churn")  # noqa: E731
    else:
        folder = Path(model_dir(tmp_path, "labels", "churn")) / f"date={DAY}"
        folder.mkdir(parents=True)
        pq.write_table(pa.table({"request_id": ["a"], "label": [1], "row": ["x"]}), folder / f"part-{time.time_ns()}-evil_4.parquet")
        reader = lambda: read_labels(tmp_path, "churn")  # noqa: E731
    with pytest.raises(InvalidInputError, match=words):
        reader()


def test_a_row_without_a_time_is_no_prediction_and_huge_numbers_are_refused(tmp_path: Path) -> None:
    _log(tmp_path, ["a"])
    folder = Path(model_dir(tmp_path, "predictions", "churn")) / f"date={DAY}"
    pq.write_table(pa.table({"request_id": ["timeless"], "time": pa.array([None], pa.timestamp("ns", "UTC"))}),
                   folder / f"part-{time.time_ns()}-odd_5.parquet")
    with pytest.raises(InvalidInputError, match="not in the prediction log"):
        append_labels(tmp_path, "churn", ["timeless"], [1])
    with pytest.raises(InvalidInputError, match="row numbers"):
        append_labels(tmp_path, "churn", ["a"], [1], rows=[2**70])
    with pytest.raises(InvalidInputError, match="below 2\\*\\*53"):
        append_labels(tmp_path, "churn", ["a"], [2**70])


def test_a_log_of_several_outputs_per_row_reads_back(tmp_path: Path) -> None:
    """2-D predictions are logged as one list per row: the readers accept lists of plain values."""
    frame = pd.DataFrame({"request_id": ["m1", "m2"], "row": 0, "time": pd.Timestamp.now(tz="UTC"), "model": "churn", "version": 1,
                          "role": "champion", "latency_ms": 1.0, "input.a": 1.0, "prediction": [[0.1, 0.9], [0.7, 0.3]]})
    write_atomic(frame, f"{model_dir(tmp_path, 'predictions', 'churn')}/date={DAY}", root=tmp_path, writer="replica")
    assert len(read_log(tmp_path, "churn")) == 2
    assert append_labels(tmp_path, "churn", ["m1"], [1]) == 1
