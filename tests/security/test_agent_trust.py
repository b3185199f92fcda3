"""The agent loads and saves pickled candidates only when it is started with --trust; the spec cannot grant it."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from modelcycle.automation import Agent, load_spec
from modelcycle.registry import Registry
from modelcycle.tracking.client import Client
from tests.automation.conftest import PIPELINE, batch, write_project

PICKLED = PIPELINE.replace('''@mc.step
def train(train: pd.DataFrame, C: float = 1.0):''', '''class Wrapped(mc.models.PythonModel):
    def __init__(self, model):
        self.model = model

    def predict(self, model_input):
        return self.model.predict(model_input)

    def predict_proba(self, model_input):
        return self.model.predict_proba(model_input)


@mc.step(allow_pickle=True)
def train(train: pd.DataFrame, C: float = 1.0):''').replace(
    '''    return LogisticRegression(C=C).fit(train[["a", "b", "c"]], train["y"])''',
    '''    return Wrapped(LogisticRegression(C=C).fit(train[["a", "b", "c"]], train["y"]))''')


def _project(root: Path) -> Path:
    write_project(root)
    (root / "pipelines" / "training.py").write_text(PICKLED)
    batch(600, 0).to_parquet(root / "data" / "batch-000.parquet")
    return root


def test_a_pickled_candidate_needs_the_agent_to_be_trusted(tmp_path: Path, client: Client) -> None:
    from modelcycle.tracking import fluent

    root = _project(tmp_path / "project")
    try:
        lines: list[str] = []
        [cycle] = Agent(load_spec(root), client=client, say=lines.append).run_once()
        assert cycle.state == "failed" and "allow_pickle=True" in cycle.detail["error"], cycle
        assert not Registry(client).search_model_versions("name = 'churn'")
    finally:
        fluent.set_client(None)


def test_agent_trust_lets_a_pickled_candidate_through_the_loop(tmp_path: Path, client: Client, monkeypatch) -> None:
    from modelcycle.cli import app

    root = _project(tmp_path / "project")
    monkeypatch.setenv("MODELCYCLE_HOME", str(client.settings.home))
    monkeypatch.setenv("MODELCYCLE_CAPTURE", "0")
    monkeypatch.chdir(root)
    result = CliRunner().invoke(app, ["agent", "--once", "--trust"])
    assert result.exit_code == 0, result.output
    reader = Client(client.settings)
    try:
        version = Registry(reader).get_model_version("churn", "champion")
    finally:
        reader.close()
    assert version.version == 1 and version.flavour == "python"
