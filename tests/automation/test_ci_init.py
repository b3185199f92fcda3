"""``modelcycle init`` and ``modelcycle ci`` on a real scaffolded project, a real SQLite store and real pipeline runs."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from typer.testing import CliRunner

from modelcycle.automation.ci import run_ci
from modelcycle.automation.scaffold import PROJECT_FILES, init_project
from modelcycle.cli import app
from modelcycle.errors import InvalidInputError
from modelcycle.registry import Registry
from modelcycle.tracking import fluent
from modelcycle.tracking.client import Client

from .conftest import PIPELINE, batch, write_project

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
GATE = ["gate: threshold roc_auc", "gate: improvement roc_auc over champion", "gate: latency_ms_per_row", "gate: data validation"]
CHECKS = ["data validation", "pipeline smoke run", *GATE]
runner = CliRunner()


def _module(path: Path):
    spec = importlib.util.spec_from_file_location(f"scaffolded_{abs(hash(str(path)))}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def scaffold(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project as `modelcycle init churn` writes it, with the example data its pipeline generates."""
    root = tmp_path_factory.mktemp("scaffold") / "churn"
    init_project("churn", root)
    written = _module(root / "pipelines" / "training.py").write_example_data(root / "data")
    assert written is not None and written.parent == root / "data"
    return root


@pytest.fixture
def project(scaffold: Path, tmp_path: Path) -> Path:
    """A copy of the scaffolded project for one test to change."""
    return Path(shutil.copytree(scaffold, tmp_path / "churn"))


@pytest.fixture(autouse=True)
def _default_client():
    yield
    fluent.set_client(None)  # ci makes its client the default one; the next test starts afresh


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("MODELCYCLE_HOME", str(home))
    monkeypatch.setenv("MODELCYCLE_CAPTURE", "0")
    monkeypatch.setenv("COLUMNS", "200")
    return home


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "MODELCYCLE_"))}
    return {**env, "MODELCYCLE_CAPTURE": "0", **extra}


def test_init_writes_a_project_whose_ci_passes_with_junit_and_summary(project: Path, client: Client, tmp_path: Path) -> None:
    for rel in PROJECT_FILES:
        assert (project / rel).is_file(), rel
    workflow = (project / ".github" / "workflows" / "modelcycle.yml").read_text()
    assert "modelcycle ci --junit" in workflow and "--promote" in workflow and "refs/heads/main" in workflow
    assert "branch 'main'" in (project / "Jenkinsfile").read_text()

    lines: list[str] = []
    report = run_ci(project, client, junit=tmp_path / "out" / "junit.xml", summary=tmp_path / "out" / "summary.md", say=lines.append)
    assert report.passed, [c.to_dict() for c in report.failures]
    assert [c.name for c in report.checks] == CHECKS and len(lines) == len(CHECKS)
    assert report.sample_rows == 2000 and not report.sample_complete  # the example data has 3,000 rows
    assert "the first 2,000 rows" in report.check("pipeline smoke run").message
    assert "no champion yet" in report.check("gate: improvement roc_auc over champion").message

    suite = ET.parse(tmp_path / "out" / "junit.xml").getroot().find("testsuite")
    assert suite.get("tests") == str(len(CHECKS)) and suite.get("failures") == "0"
    assert [case.get("name") for case in suite.iter("testcase")] == CHECKS
    assert not list(suite.iter("failure"))
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "modelcycle ci: churn — ✅ passed" in summary and "| check | result | details | time |" in summary
    assert all(f"| {name} | ✅ passed |" in summary for name in CHECKS)
    assert Registry(client).list_models() == [], "ci registers nothing without promote=True"


def test_promote_trains_on_all_the_data_registers_and_moves_the_alias(project: Path, client: Client) -> None:
    report = run_ci(project, client, sample_rows=500, promote=True)
    assert report.passed, [c.to_dict() for c in report.failures]
    assert [c.name for c in report.checks][-3:] == ["training on all the data", "registration", "promotion"]
    assert report.promoted is not None and report.promoted["version"] == 1
    registry = Registry(client)
    assert registry.get_model_version("churn", "champion").version == 1
    assert registry.verdicts("churn", 1)[-1].passed

    again = run_ci(project, client, sample_rows=500)  # the next change is gated against that champion
    assert "(champion)" in again.check("gate: improvement roc_auc over champion").message
    assert registry.get_model_version("churn", "latest").version == 1


def test_the_cli_exits_0_on_a_pass_and_1_on_a_schema_breaking_sample(project: Path, cli_env: Path, tmp_path: Path) -> None:
    passed = runner.invoke(app, ["ci", "--spec", str(project), "--sample-rows", "600", "--json"])
    assert passed.exit_code == 0, passed.output
    data = json.loads(passed.output)
    assert data["passed"] is True and [c["name"] for c in data["checks"]] == CHECKS and data["sample"]["rows"] == 600

    import pandas as pd

    frame = pd.read_parquet(project / "data" / "customers-000.parquet")
    frame.loc[frame.index[:40], "support_calls"] = -3  # a sign error in an export: schema.yaml says min 0
    frame.to_parquet(project / "data" / "customers-000.parquet", index=False)
    junit, summary = tmp_path / "broken.xml", tmp_path / "broken.md"
    failed = runner.invoke(app, ["ci", "--spec", str(project / "modelcycle.yaml"), "--junit", str(junit), "--summary", str(summary)])
    assert failed.exit_code == 1, failed.output
    assert "support_calls" in failed.output and "failed" in failed.output
    cases = {case.get("name"): case for case in ET.parse(junit).getroot().iter("testcase")}
    failure = cases["data validation"].find("failure")
    assert failure is not None and "support_calls: range" in failure.get("message") and "-3" in failure.text
    assert cases["pipeline smoke run"].find("failure") is not None  # the pipeline's own validate step stops it too
    assert cases["gate"].find("skipped") is not None
    assert "| data validation | ❌ failed |" in summary.read_text()


def test_a_pipeline_breaking_the_contract_fails_and_a_missing_schema_is_skipped(tmp_path: Path, client: Client) -> None:
    root = write_project(tmp_path / "bare")  # the agent's test project: no schema
    batch(300, 0).to_parquet(root / "data" / "batch-000.parquet")
    source = PIPELINE.replace('return {"model": model, "train": parts["train"], "test": parts["test"]}', "return model")
    (root / "pipelines" / "training.py").write_text(source)
    report = run_ci(root, client, junit=tmp_path / "junit.xml")
    assert not report.passed and [c.status for c in report.checks] == ["skipped", "failed", "skipped"]
    assert "no data.schema" in report.check("data validation").message and report.sample_complete
    assert "must return {'model'" in report.check("pipeline smoke run").message and "LogisticRegression" in report.check(
        "pipeline smoke run").message
    cases = {case.get("name"): case for case in ET.parse(tmp_path / "junit.xml").getroot().iter("testcase")}
    assert cases["data validation"].find("skipped") is not None and cases["gate"].find("skipped") is not None


def test_init_refuses_a_bad_name_and_a_folder_with_files(tmp_path: Path, cli_env: Path) -> None:
    for bad in ("my project", "1churn", "churn/../x", ""):
        with pytest.raises(InvalidInputError, match="not a valid project name"):
            init_project(bad, tmp_path / "x")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    with pytest.raises(InvalidInputError, match=r"is not empty \(notes.txt\).*--path"):
        init_project("churn", tmp_path / "taken")
    assert (tmp_path / "taken" / "notes.txt").read_text() == "mine" and len(list((tmp_path / "taken").iterdir())) == 1

    (tmp_path / "clone" / ".git").mkdir(parents=True)  # a fresh clone: only .git, so it counts as empty
    assert len(init_project("churn", tmp_path / "clone")) == len(PROJECT_FILES)

    out = runner.invoke(app, ["init", "bad name", "--path", str(tmp_path / "y")])
    assert out.exit_code == 1 and "not a valid project name" in out.output and not (tmp_path / "y").exists()
    out = runner.invoke(app, ["init", "fraud-v2", "--path", str(tmp_path / "fraud")])
    assert out.exit_code == 0, out.output
    assert "fraud-v2@champion" in out.output and "name: fraud-v2" in (tmp_path / "fraud" / "modelcycle.yaml").read_text()
    out = runner.invoke(app, ["init", "fraud-v2", "--path", str(tmp_path / "fraud")])
    assert out.exit_code == 1 and "is not empty" in out.output


def test_the_scaffolded_unit_tests_pass_with_pytest(scaffold: Path, tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly"], cwd=scaffold,
                          env=_clean_env(MODELCYCLE_HOME=str(tmp_path / "home")), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "6 passed" in done.stdout


def test_the_level0_example_tracks_and_registers(tmp_path: Path) -> None:
    home = tmp_path / "home"
    done = subprocess.run([sys.executable, str(EXAMPLES / "level0" / "train.py")], cwd=tmp_path, env=_clean_env(MODELCYCLE_HOME=str(home)),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "registered churn-level0 version 1" in done.stdout
    from modelcycle.settings import Settings

    client = Client(Settings.for_home(home, capture=False))
    try:
        assert len(client.search_runs("churn-level0")) == 3
        assert Registry(client).get_model_version("churn-level0", 1).version == 1
    finally:
        client.close()


def test_the_level1_and_level2_examples_are_what_init_writes(tmp_path: Path) -> None:
    fresh = tmp_path / "churn"
    init_project("churn", fresh)
    ci_files = {".github/workflows/modelcycle.yml", "Jenkinsfile"}
    for level, files in (("level1", set(PROJECT_FILES) - ci_files), ("level2", set(PROJECT_FILES))):
        folder = EXAMPLES / level
        present = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
        assert present == files, (level, present ^ files)
        for rel in files - {"README.md"}:  # each example explains its own level
            assert (folder / rel).read_text() == (fresh / rel).read_text(), f"examples/{level}/{rel} differs from what init writes"
        assert "data/" in (folder / ".gitignore").read_text().split()
    assert "data/" in (EXAMPLES / "level0" / ".gitignore").read_text().split()


def test_the_scaffolded_pipeline_keeps_when_each_served_row_was_predicted(scaffold: Path, tmp_path: Path) -> None:
    """The feedback the agent hands over keeps ``predicted_at``: the gate of a retraining an alert started judges the
    test rows predicted after the change, and the model is trained on the features alone."""
    import pandas as pd

    module = _module(scaffold / "pipelines" / "training.py")
    data = pd.read_parquet(next((scaffold / "data").glob("*.parquet")))
    served = data.head(40).assign(predicted_at=pd.Timestamp("2026-12-01", tz="UTC"), request_id="r", version=1)
    served.to_parquet(tmp_path / "feedback.parquet")
    frame = module.load(str(scaffold / "data"), str(tmp_path / "feedback.parquet"))
    assert frame["predicted_at"].notna().sum() == 40 and len(frame) == len(data) + 40
    assert "request_id" not in frame and "version" not in frame
    train, _ = module.split(frame)
    model = module.train(train)
    assert list(model.feature_names_in_) == module.FEATURES
