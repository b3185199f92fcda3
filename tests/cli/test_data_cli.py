"""`modelcycle data …` on real files, through the runner."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from modelcycle.cli import app

runner = CliRunner()


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    monkeypatch.setenv("COLUMNS", "200")
    rng = np.random.default_rng(0)
    n = 3000
    ref = pd.DataFrame({"amount": rng.gamma(2, 10, n), "country": rng.choice(["fr", "de", "es"], n)})
    cur = pd.DataFrame({"amount": rng.gamma(2, 10, n) * 2, "country": rng.choice(["fr", "de", "es", "it"], n)})
    paths = {"ref": tmp_path / "ref.parquet", "cur": tmp_path / "cur.csv", "schema": tmp_path / "schema.yaml"}
    ref.to_parquet(paths["ref"])
    cur.to_csv(paths["cur"], index=False)
    return paths


def test_profile_table_and_json(files: dict[str, Path]) -> None:
    out = runner.invoke(app, ["data", "profile", str(files["ref"])])
    assert out.exit_code == 0, out.output
    assert "3,000 rows" in out.output and "amount" in out.output and "categorical" in out.output
    data = json.loads(runner.invoke(app, ["data", "profile", str(files["ref"]), "--json"]).output)
    assert data["rows"] == 3000 and data["columns"]["country"]["distinct"] == 3


def test_a_datetime_column_is_profiled_in_dates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    when = pd.Series(pd.date_range("2024-01-01", "2024-12-30", periods=365)).where(lambda s: s.index % 9 != 5)
    pd.DataFrame({"when": when, "x": np.arange(365.0)}).to_parquet(tmp_path / "dates.parquet")
    out = runner.invoke(app, ["data", "profile", str(tmp_path / "dates.parquet")])
    assert out.exit_code == 0, out.output
    row = next(line for line in out.output.splitlines() if "when" in line)
    assert "2024-01-01" in row and "2024-12-30" in row and "e+18" not in row, row


def test_infer_schema_then_validate(files: dict[str, Path]) -> None:
    out = runner.invoke(app, ["data", "infer-schema", str(files["ref"]), "-o", str(files["schema"])])
    assert out.exit_code == 0, out.output
    assert "country" in files["schema"].read_text()
    ok = runner.invoke(app, ["data", "validate", str(files["ref"]), "--schema", str(files["schema"])])
    assert ok.exit_code == 0 and "no anomaly" in ok.output
    bad = runner.invoke(app, ["data", "validate", str(files["cur"]), "--schema", str(files["schema"])])
    assert bad.exit_code == 1
    assert "unseen_categories" in bad.output and "'it'" in bad.output
    report = json.loads(runner.invoke(app, ["data", "validate", str(files["cur"]), "-s", str(files["schema"]), "--json"]).output)
    assert report["passed"] is False and report["anomalies"][0]["column"] == "country"


def test_compare_reports_drift(files: dict[str, Path]) -> None:
    out = runner.invoke(app, ["data", "compare", str(files["ref"]), str(files["cur"])])
    assert out.exit_code == 1, out.output  # both columns drifted: the dataset has drifted
    assert "drifted" in out.output and "unseen: it" in out.output
    data = json.loads(runner.invoke(app, ["data", "compare", str(files["ref"]), str(files["cur"]), "--json"]).output)
    assert data["drifted_columns"] == ["amount", "country"]


def test_compare_names_type_changes_and_missing_columns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    rng = np.random.default_rng(0)
    ref = pd.DataFrame({"age": rng.integers(18, 90, 2000), "plan": rng.choice(["a", "b"], 2000),
                        "income": rng.normal(50, 10, 2000)})
    cur = ref.head(500).assign(age=["unknown", "40.0", "70.0", "33", "41"] * 100).drop(columns=["income"])
    ref.to_csv(tmp_path / "ref.csv", index=False)
    cur.to_csv(tmp_path / "cur.csv", index=False)
    args = ["data", "compare", str(tmp_path / "ref.csv"), str(tmp_path / "cur.csv")]
    out = runner.invoke(app, [*args, "--html", str(tmp_path / "drift.html")])
    assert out.exit_code == 1, "a missing column fails the comparison"
    rows = {line.split()[1]: line for line in out.output.splitlines() if line.startswith("│") and len(line.split()) > 2}
    assert "type changed" in rows["age"] and "integer → text" in rows["age"] and "unseen" not in rows["age"]
    assert "missing" in rows["income"], "a missing column is a row of the table"
    page = (tmp_path / "drift.html").read_text()
    assert "type changed" in page and "<td>income</td>" in page
    data = json.loads(runner.invoke(app, [*args, "--json"]).output)
    assert data["type_changes"] == {"age": "integer → text"} and data["missing_columns"] == ["income"]
    assert data["columns"]["age"]["status"] == "type changed" and data["columns"]["age"]["unseen"] == []


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["data", "profile", "missing.parquet"], "is not a file"),
        (["data", "validate", "x.csv", "--schema", "nope.yaml"], "does not exist"),
        (["data", "compare", "a.csv", "b.csv", "--method", "magic"], "is not a file"),
    ],
)
def test_errors_are_one_line(args: list[str], words: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    out = runner.invoke(app, args)
    assert out.exit_code == 1
    lines = [line for line in out.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and words in lines[0], out.output


def test_a_file_that_is_not_data(tmp_path: Path) -> None:
    bad = tmp_path / "notes.parquet"
    bad.write_text("hello")
    out = runner.invoke(app, ["data", "profile", str(bad)])
    assert out.exit_code == 1 and "not a readable Parquet file" in out.output
