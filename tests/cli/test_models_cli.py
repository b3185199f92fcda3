"""`modelcycle models …` and the module-level API, end to end: log, register, validate, promote, roll back."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

import modelcycle as mc
from modelcycle.cli import app
from modelcycle.settings import Settings

runner = CliRunner()


def frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "region": rng.choice(["north", "south"], n)})
    df["y"] = (df["a"] - 0.5 * df["b"] + 0.5 * rng.normal(size=n) > 0).astype(int)
    return df


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A home with two registered versions of 'churn' (v2 clearly better), test data and a policy."""
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("MODELCYCLE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MODELCYCLE_CAPTURE", "0")
    client = mc.Client(Settings.from_env())
    mc.set_client(client)
    train, test = frame(2000, 0), frame(1000, 1)
    features = ["a", "b"]
    for cols in (["b"], features):  # version 1 sees only b: weaker
        X = train[features].assign(**{c: 0.0 for c in features if c not in cols})
        with mc.start_run(experiment="churn"):
            logged = mc.log_model(LogisticRegression().fit(X, train["y"]), reference_data=train[features])
        mc.register_model(logged.uri, "churn")
    test.to_parquet(tmp_path / "test.parquet")
    policy = {"thresholds": {"roc_auc": ">= 0.6"}, "improvement": {"metric": "roc_auc", "over": "champion"},
              "slices": {"column": "region", "max_regression": 0.05}, "require_data_validation": True}
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump(policy))
    yield {"test": tmp_path / "test.parquet", "policy": tmp_path / "policy.yaml", "tmp": tmp_path, "frame": test}
    mc.set_client(None)


def test_validate_promote_and_roll_back(project) -> None:
    args = ["--data", str(project["test"]), "--policy", str(project["policy"])]
    first = runner.invoke(app, ["models", "validate", "churn", "1", *args, "--promote", "champion"])
    assert first.exit_code == 0, first.output
    assert "no champion yet" in first.output and "churn@champion: — → 1" in first.output
    second = runner.invoke(app, ["models", "validate", "churn", "2", *args, "--promote", "champion", "--html", str(project["tmp"] / "v.html")])
    assert second.exit_code == 0, second.output
    assert "churn@champion: 1 → 2" in second.output
    assert "<svg" in (project["tmp"] / "v.html").read_text()
    # version 1 is now worse than the champion: the gate fails, exit code 1, nothing moves
    again = runner.invoke(app, ["models", "validate", "churn", "1", *args, "--promote", "champion"])
    assert again.exit_code == 1 and "FAIL" in again.output and "was not moved" in again.output
    refused = runner.invoke(app, ["models", "promote", "churn", "1"])
    assert refused.exit_code == 1 and "latest verdict failed" in refused.output
    back = runner.invoke(app, ["models", "rollback", "churn", "--alias", "champion", "--reason", "incident 42"])
    assert back.exit_code == 0 and "2 → 1" in back.output
    history = json.loads(runner.invoke(app, ["models", "history", "churn", "--json"]).output)
    assert [(e["action"], e["from_version"], e["to_version"]) for e in history] == [
        ("promote", None, 1), ("promote", 1, 2), ("rollback", 2, 1)]
    assert history[1]["verdict_id"] and history[2]["reason"] == "incident 42"
    assert mc.load_model("models:/churn@champion").version.version == 1


def test_ls_show_and_history_tables(project) -> None:
    out = runner.invoke(app, ["models", "ls"])
    assert out.exit_code == 0 and "churn" in out.output
    shown = runner.invoke(app, ["models", "show", "churn"])
    assert shown.exit_code == 0 and "2 version(s)" in shown.output
    detail = json.loads(runner.invoke(app, ["models", "show", "churn/2", "--json"]).output)
    assert [c["name"] for c in detail["signature"]["inputs"]] == ["a", "b"] and "scikit-learn" in detail["requirements"]
    forced = runner.invoke(app, ["models", "promote", "churn", "2", "--alias", "staging", "--force"])
    assert forced.exit_code == 0 and "forced" in forced.output
    table = runner.invoke(app, ["models", "history", "churn"])
    assert "staging" in table.output and "forced" in table.output


@pytest.mark.parametrize("args,words", [
    (["models", "show", "nope"], "no registered model named 'nope'"),
    (["models", "show", "churn/9"], "has no version 9"),
    (["models", "promote", "churn", "9", "--force"], "has no version 9"),
    (["models", "promote", "churn", "1", "--alias", "bad alias!", "--force"], "not a valid alias"),
    (["models", "rollback", "churn"], "no earlier version"),
])
def test_mistakes_are_one_line_and_change_nothing(project, args: list[str], words: str) -> None:
    out = runner.invoke(app, args)
    assert out.exit_code == 1 and words in out.output and "Traceback" not in out.output
    assert mc.model_history("churn") == []


def test_models_are_named_as_models_show_names_them(project) -> None:
    """NAME@ALIAS and NAME/VERSION work in predict, models show and models validate, as models:/ URIs do."""
    import pandas as pd

    mc.set_alias("churn", "challenger", 2)
    out = project["tmp"] / "scored.parquet"
    scored = runner.invoke(app, ["predict", "churn@challenger", str(project["test"]), "-o", str(out)])
    assert scored.exit_code == 0, scored.output
    expected = mc.load_model("models:/churn/2").predict(project["frame"][["a", "b"]])
    assert pd.read_parquet(out)["prediction"].tolist() == expected.tolist()
    for spec in ("churn@challenger", "churn/2", "models:/churn@challenger"):
        shown = runner.invoke(app, ["models", "show", spec, "--json"])
        assert shown.exit_code == 0 and json.loads(shown.output)["version"] == 2, (spec, shown.output)
    args = ["--data", str(project["test"]), "--policy", str(project["policy"]), "--json"]
    verdict = runner.invoke(app, ["models", "validate", "churn@challenger", *args])
    assert verdict.exit_code == 0, verdict.output
    from modelcycle.registry.fluent import get_registry

    assert get_registry().verdicts("churn", 2)[-1].id == json.loads(verdict.output)["id"]
    wrong = runner.invoke(app, ["models", "validate", "churn", *args])
    assert wrong.exit_code == 1 and "give churn/VERSION or churn@ALIAS" in wrong.output, wrong.output


def test_a_missing_label_column_names_target(project) -> None:
    """Data whose label is not called y: the message says to pass --target, before anything is evaluated or stored."""
    renamed = project["tmp"] / "renamed.parquet"
    project["frame"].rename(columns={"y": "churned"}).to_parquet(renamed)
    args = ["models", "validate", "churn", "2", "--data", str(renamed), "--policy", str(project["policy"])]
    out = runner.invoke(app, args)
    assert out.exit_code == 1 and "no label column 'y'" in out.output and "--target COLUMN" in out.output, out.output
    assert "churned" in out.output, "the columns it has are listed"
    wrong = runner.invoke(app, [*args, "--target", "label"])
    assert wrong.exit_code == 1 and "no label column 'label' (which --target names)" in wrong.output, wrong.output
    from modelcycle.registry.fluent import get_registry

    assert get_registry().verdicts("churn", 2) == [], "nothing was stored"
    assert runner.invoke(app, [*args, "--target", "churned"]).exit_code == 0


def test_evaluate_inside_a_run_logs_metrics_and_report(project) -> None:
    test = project["frame"]
    with mc.start_run(experiment="eval") as run:
        ev = mc.evaluate("models:/churn/2", test, slices=["region"], baseline="models:/churn/1")
    stored = mc.get_run(run.id)
    assert stored.metrics["roc_auc"] == pytest.approx(ev.metrics["roc_auc"])
    assert stored.metrics["baseline.roc_auc"] == pytest.approx(ev.baseline.metrics["roc_auc"])
    assert {"evaluation/evaluation.json", "evaluation/report.html"} <= {a.path for a in stored.artifacts}


def test_validate_model_stores_the_verdict_with_evidence(project) -> None:
    verdict = mc.validate_model("models:/churn/2", project["frame"], mc.Policy.load(project["policy"]))
    assert verdict.passed
    stored = mc.get_model_version("churn", 2)
    from modelcycle.registry.fluent import get_registry

    saved = get_registry().verdicts("churn", 2)
    assert saved[-1].id == verdict.id and saved[-1].rules[0]["candidate"] > 0.6
    assert stored.version == 2
    event = mc.promote("churn", 2)  # the stored verdict decides
    assert event.verdict_id == verdict.id and not event.forced

