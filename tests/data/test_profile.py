"""Profiles: correct statistics, merging equals profiling the union, safe round trips, every input."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelcycle.data import Profile, profile
from modelcycle.data.profile import EXACT_LIMIT_TEXT
from modelcycle.errors import InvalidInputError


def frame(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "x": rng.normal(10, 2, n),
        "k": rng.integers(0, 5, n),
        "flag": rng.random(n) < 0.3,
        "city": pd.Categorical(rng.choice(["paris", "oslo", "lima"], n)),
        "note": [f"id-{i}" for i in range(n)],
        "when": pd.date_range("2026-01-01", periods=n, freq="min"),
    })
    df.loc[rng.random(n) < 0.1, "x"] = np.nan
    return df


def test_statistics_match_pandas() -> None:
    df = frame(20_000)
    p = profile(df)
    x = p.columns["x"]
    assert p.rows == 20_000
    assert x.kind == "numeric" and x.count == df["x"].count() and x.missing == df["x"].isna().sum()
    assert x.mean == pytest.approx(df["x"].mean()) and x.std == pytest.approx(df["x"].std())
    assert (x.min, x.max) == (df["x"].min(), df["x"].max())
    assert x.quantiles([0.5])[0] == pytest.approx(df["x"].median(), abs=0.1)
    assert x.distinct == pytest.approx(df["x"].nunique(), rel=0.15)
    k = p.columns["k"]
    assert k.kind == "integer" and k.distinct == 5
    assert dict(k.frequent_values()) == df["k"].value_counts().to_dict()
    assert p.columns["flag"].kind == "boolean" and dict(p.columns["flag"].frequent_values())[True] == df["flag"].sum()
    city = p.columns["city"]
    assert city.kind == "categorical" and dict(city.frequent_values()) == df["city"].value_counts().to_dict()
    assert p.columns["note"].kind == "text" and p.columns["note"].exact is None
    assert p.columns["note"].distinct == pytest.approx(20_000, rel=0.15)
    assert p.columns["when"].kind == "datetime"


@given(st.integers(min_value=1, max_value=1999), st.integers(min_value=0, max_value=3))
def test_merging_partitions_equals_profiling_the_whole(cut: int, seed: int) -> None:
    df = frame(2000, seed)
    whole = profile(df)
    merged = profile(df.iloc[:cut]).merge(profile(df.iloc[cut:]))
    assert merged.rows == whole.rows
    for name, w in whole.columns.items():
        m = merged.columns[name]
        assert (m.count, m.missing, m.infinite) == (w.count, w.missing, w.infinite), name
        assert m.kind == w.kind
        if not math.isnan(w.mean):
            assert m.mean == pytest.approx(w.mean) and m.std == pytest.approx(w.std)
            assert (m.min, m.max) == (w.min, w.max)
        if w.exact is not None:
            assert m.exact == w.exact
        assert m.distinct == pytest.approx(w.distinct, rel=0.2)


def test_merge_all_and_round_trips() -> None:
    parts = [profile(frame(500, s)) for s in range(4)]
    total = Profile.merge_all(parts)
    assert total.rows == 2000
    again = Profile.from_bytes(total.to_bytes())
    assert again.summary() == total.summary()
    assert Profile.from_dict(total.to_dict()).columns["x"].quantiles([0.1, 0.9]) == total.columns["x"].quantiles([0.1, 0.9])
    assert len(total.to_bytes()) < 40_000, "a profile is small"
    with pytest.raises(InvalidInputError, match="not a modelcycle profile"):
        Profile.from_bytes(b"\x80\x04pickle")
    with pytest.raises(InvalidInputError, match="at least one"):
        Profile.merge_all([])


def test_many_distinct_text_values_switch_to_a_sketch_that_still_finds_the_frequent_ones() -> None:
    values = [f"v{i}" for i in range(EXACT_LIMIT_TEXT * 3)] + ["hot"] * 5000
    a = profile(pd.DataFrame({"s": values[: len(values) // 2]}))
    b = profile(pd.DataFrame({"s": values[len(values) // 2:]}))
    merged = a.merge(b)
    col = merged.columns["s"]
    assert col.exact is None and col.kind == "text"
    value, estimate = col.frequent_values(1)[0]
    assert value == "hot" and estimate == pytest.approx(5000, rel=0.01), "a sketch estimate, within its error"


def test_files_are_read_in_batches(tmp_path: Path) -> None:
    df = frame(5000)
    df.to_parquet(tmp_path / "d.parquet", row_group_size=1000)
    df.drop(columns=["when"]).to_csv(tmp_path / "d.csv", index=False)
    whole = profile(df)
    from_parquet = profile(tmp_path / "d.parquet", batch_rows=700)
    assert from_parquet.rows == 5000
    assert from_parquet.columns["x"].mean == pytest.approx(whole.columns["x"].mean)
    assert from_parquet.columns["city"].exact == whole.columns["city"].exact
    from_csv = profile(str(tmp_path / "d.csv"), batch_rows=999)
    assert from_csv.rows == 5000 and from_csv.columns["k"].exact == whole.columns["k"].exact
    import pyarrow as pa

    assert profile(pa.Table.from_pandas(df)).columns["x"].count == whole.columns["x"].count


def test_polars_frames_are_profiled() -> None:
    pl = pytest.importorskip("polars")
    df = frame(3000).drop(columns=["city", "when"])
    p = profile(pl.from_pandas(df))
    whole = profile(df)
    assert p.rows == 3000
    assert p.columns["x"].mean == pytest.approx(whole.columns["x"].mean)
    assert p.columns["k"].exact == whole.columns["k"].exact


def test_awkward_frames_profile_cleanly() -> None:
    empty = profile(pd.DataFrame({"a": pd.Series([], dtype=float)}))
    assert empty.rows == 0 and empty.columns["a"].count == 0
    nulls = profile(pd.DataFrame({"n": [None, None, None]}))
    assert nulls.columns["n"].missing == 3 and nulls.columns["n"].count == 0
    mixed = profile(pd.DataFrame({"m": [1, "a", 2.5, None]}))
    assert mixed.columns["m"].mixed_types and mixed.columns["m"].count == 3
    infs = profile(pd.DataFrame({"v": [1.0, np.inf, -np.inf, 3.0]})).columns["v"]
    assert infs.infinite == 2 and infs.mean == 2.0 and (infs.min, infs.max) == (1.0, 3.0)
    numbered = profile(pd.DataFrame({0: [1, 2], 1: ["a", "b"]}))
    assert list(numbered.columns) == ["0", "1"]


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (pd.DataFrame([[1, 2]], columns=["a", "a"]), "duplicate column names: a"),
        ([1, 2, 3], "cannot profile a list"),
        ("/nonexistent/file.parquet", "is not a file"),
    ],
)
def test_bad_input_is_named(data, words: str) -> None:
    with pytest.raises(InvalidInputError, match=words):
        profile(data)


def test_unreadable_files_are_named(tmp_path: Path) -> None:
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(InvalidInputError, match=re.escape("bad.parquet is not a readable Parquet file")):
        profile(tmp_path / "bad.parquet")
    (tmp_path / "data.xlsx").write_text("x")
    with pytest.raises(InvalidInputError, match=re.escape("read .csv, .tsv and .parquet")):
        profile(tmp_path / "data.xlsx")


def test_columns_of_different_types_do_not_merge() -> None:
    with pytest.raises(InvalidInputError, match="cast it to one type"):
        profile(pd.DataFrame({"a": [1.0]})).merge(profile(pd.DataFrame({"a": ["x"]})))


def test_parquet_memory_stays_at_a_batch_not_the_file(tmp_path: Path) -> None:
    """Arrow memory while reading a 16-row-group file stays at a few row groups, not the whole file."""
    import pyarrow as pa

    from modelcycle.data.profile import iter_batches

    rng = np.random.default_rng(1)
    rows = 100_000
    group = pd.DataFrame({f"c{i}": rng.normal(size=rows) for i in range(8)})  # ~6.4 MB per row group
    path = tmp_path / "big.parquet"
    import pyarrow.parquet as pq

    with pq.ParquetWriter(path, pa.Table.from_pandas(group, preserve_index=False).schema) as writer:
        for _ in range(16):
            writer.write_table(pa.Table.from_pandas(group, preserve_index=False), row_group_size=rows)
    start = pa.total_allocated_bytes()
    held = 0
    seen = 0
    for batch in iter_batches(path, batch_rows=rows):
        seen += len(batch)
        held = max(held, pa.total_allocated_bytes() - start)
    assert seen == 16 * rows
    whole = 16 * rows * 8 * 8  # the decoded file: ~100 MB
    assert held < whole / 2, f"arrow held {held / 2**20:.0f} MB while reading a {whole / 2**20:.0f} MB file"


@pytest.mark.parametrize("values", [
    np.arange(6000),                                  # small whole numbers: float bit patterns full of zeros
    np.arange(6000) * 1024.0,
    np.round(np.random.default_rng(0).normal(size=6000), 3),
])
def test_distinct_estimates_hold_for_regular_numbers(values: np.ndarray) -> None:
    col = profile(pd.DataFrame({"v": values})).columns["v"]
    true = len(np.unique(values))
    assert col.distinct == pytest.approx(true, rel=0.15), f"estimated {col.distinct} distinct values, there are {true}"
