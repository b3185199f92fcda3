"""modelcycle.yaml: what a valid spec gives, and every mistake named with its line and the fix."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from modelcycle.automation import SpecError, load_spec
from modelcycle.automation.cron import Cron

from .conftest import write_project


def test_a_valid_spec_is_read_with_absolute_paths(project: Path) -> None:
    spec = load_spec(project)
    assert spec.name == "churn" and spec.model == "churn" and spec.target == "y"
    assert spec.pipeline == f"{project / 'pipelines' / 'training.py'}:training"
    assert spec.data_source == project / "data" and spec.policy == project / "policy.yaml"
    assert [t.kind for t in spec.triggers] == ["new_data", "drift"]
    assert spec.serve_model == "churn@champion" and spec.window == "1h" and spec.drift_share == 0.5
    rules = spec.alert_rules()
    assert rules.performance_metric == "roc_auc" and rules.performance_min == 0.75


BASE = """name: churn
pipeline: pipelines/training.py:training
data: {source: data/}
model: {name: churn, target: y, policy: policy.yaml}
"""


@pytest.mark.parametrize(("text", "line", "words"), [
    ("name: churn\n  bad: [indent\n", 2, "not valid YAML"),
    (BASE + "modle: {name: x}\n", 5, "unknown key 'modle'"),
    (BASE + "monitor:\n  window: 1h\n  performance: {metric: auc_roc, min: 0.7}\n", 7, "unknown metric 'auc_roc'"),
    (BASE + "monitor:\n  performance: {metric: roc_auc}\n", 6, "min: 0.75"),
    (BASE.replace("pipelines/training.py", "pipelines/missing.py"), 2, "pipelines/missing.py does not exist"),
    (BASE.replace("training.py:training", "training.py"), 2, "must name a file and a function"),
    (BASE + "triggers:\n  - on: drfit\n", 6, "unknown trigger on: 'drfit'"),
    (BASE + "triggers:\n  - schedule: \"0 25 * * *\"\n", 6, "outside 0-23 in the hour field"),
    (BASE + "triggers:\n  - on: performance\n", 6, "needs monitor: {performance"),
    (BASE + "monitor: {drift: {share: 3}}\n", 5, "between 0 and 1, not 3"),
    (BASE + "monitor: {window: soon}\n", 5, "write it like 1h"),
    (BASE + "monitor: {alerts: {webhook: ftp://x}}\n", 5, "http://"),
    ("pipeline: pipelines/training.py:training\n", 1, "needs a name"),
    (BASE.replace("target: y, ", "") + "triggers:\n  - on: new_data\n", 4, "model: {target"),
    (BASE + "monitor:\n  performance: {metric: rmse, min: 0.3}\n", 6, "lower rmse is better, so the alert needs max:"),
    (BASE + "monitor:\n  performance: {metric: roc_auc, max: 0.3}\n", 6, "needs min:"),
    (BASE + "monitor: {window: 10s}\ntriggers:\n  - on: drift\n", 5, "make agent.interval at most the window"),
    (BASE + "monitor: {window: 10s}\ntriggers:\n  - on: drift\nagent: {interval: 1m}\n", 8, "judged every 60 s"),
    (BASE + "agent: {retry: {min_new_rows: 0}}\n", 5, "at least 1, not 0"),
    (BASE + "agent: {retry: {backoff: 1h, max_backoff: 10m}}\n", 5, "must be at least backoff"),
    (BASE + "agent: {retry: {every: 1h}}\n", 5, "min_new_rows"),
    (BASE.replace("data: {source: data/}", "data: {source: data/, feedback: soon}"), 3, "data.feedback: window 'soon' is not a duration"),
    (BASE.replace("data: {source: data/}", "data: {source: data/, feedback: 1.0e+300}"), 3, "data.feedback must be at most 3660d"),
    (BASE + "monitor: {drift: {share: 0}}\n", 5, "must be above 0"),
    (BASE + "monitor: {min_rows: .inf}\n", 5, "must be a finite number, not inf"),
    (BASE + "monitor:\n  performance: {metric: roc_auc, min: .nan}\n", 6, "must be a finite number, not nan"),
    (BASE + "agent: {retry: {backoff: 1.0e+300}}\n", 5, "agent.retry.backoff must be at most 30d"),
    (BASE + "monitor: {window: 99999999999d}\n", 5, "monitor.window must be at most 366d"),
    (BASE.replace("data: {source: data/}", "data: {source: predictions}").replace("target: y", "target: version"), 4,
     "is the name of a column the labelled predictions already have"),
    (BASE.replace("data: {source: data/}", "data: {source: predictions, feedback: false}"), 3, "cannot be off"),
    (BASE + "monitor:\n  performance: {metric: rmse}\n", 6, "max: <the worst acceptable rmse>"),
    (BASE + "monitor:\n  performance: {metric: roc_auc, min: 1.7}\n", 6, "must be between 0 and 1, not 1.7"),
    (BASE + "monitor:\n  performance: {metric: rmse, max: -5}\n", 6, "must be at least 0, not -5"),
    (BASE + "monitor:\n  performance: {metric: roc_auc, min: 0.7, min_labelled: -3}\n", 6, "must be at least 1, not -3"),
])
def test_mistakes_name_the_line_and_the_fix(tmp_path: Path, text: str, line: int, words: str) -> None:
    root = write_project(tmp_path / "p")
    (root / "modelcycle.yaml").write_text(text)
    with pytest.raises(SpecError) as e:
        load_spec(root)
    message = str(e.value)
    assert f"line {line}:" in message and words in message, message
    assert str(root / "modelcycle.yaml") in message


def test_a_missing_spec_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="modelcycle init"):
        load_spec(tmp_path)


def test_the_cli_reports_a_bad_spec_in_one_line(tmp_path: Path, monkeypatch) -> None:
    from typer.testing import CliRunner

    from modelcycle.cli import app

    root = write_project(tmp_path / "p")
    (root / "modelcycle.yaml").write_text(BASE + "triggers:\n  - on: drfit\n")
    monkeypatch.setenv("MODELCYCLE_HOME", str(tmp_path / "home"))
    result = CliRunner().invoke(app, ["agent", "--once", "--spec", str(root)])
    assert result.exit_code == 1 and "line 6" in result.output and "drfit" in result.output and "Traceback" not in result.output
    from modelcycle.settings import Settings
    from modelcycle.tracking.client import Client

    client = Client(Settings.for_home(tmp_path / "home", capture=False))
    try:
        assert client.store.cycle_list("churn") == []
    finally:
        client.close()


@pytest.mark.parametrize(("expr", "at", "fires"), [
    ("0 3 * * *", datetime(2026, 11, 27, 3, 0, tzinfo=UTC), True),
    ("0 3 * * *", datetime(2026, 11, 27, 4, 0, tzinfo=UTC), False),
    ("*/15 * * * *", datetime(2026, 11, 27, 4, 45, tzinfo=UTC), True),
    ("*/15 * * * *", datetime(2026, 11, 27, 4, 46, tzinfo=UTC), False),
    ("0 9 * * mon-fri", datetime(2026, 11, 27, 9, 0, tzinfo=UTC), True),  # a Friday
    ("0 9 * * mon-fri", datetime(2026, 11, 28, 9, 0, tzinfo=UTC), False),  # a Saturday
    ("0 0 1 * *", datetime(2026, 12, 1, 0, 0, tzinfo=UTC), True),
])
def test_cron_schedules(expr: str, at: datetime, fires: bool) -> None:
    assert Cron(expr).matches(at) is fires


def test_cron_latest_tick_in_a_span() -> None:
    start = datetime(2026, 11, 27, 2, 0, tzinfo=UTC).timestamp()
    end = datetime(2026, 11, 27, 5, 0, tzinfo=UTC).timestamp()
    assert Cron("0 3 * * *").latest(start, end) == datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
    assert Cron("0 6 * * *").latest(start, end) is None


def test_the_label_column_may_come_from_the_policy(tmp_path: Path) -> None:
    root = write_project(tmp_path / "p", policy="target: y\nthresholds: {roc_auc: '>= 0.7'}\n")
    text = (root / "modelcycle.yaml").read_text().replace("model: {name: churn, target: y, policy: policy.yaml}",
                                                          "model: {name: churn, policy: policy.yaml}")
    (root / "modelcycle.yaml").write_text(text)
    assert load_spec(root).target == "y"


def test_retry_and_feedback_are_read(tmp_path: Path) -> None:
    root = write_project(tmp_path / "p")
    (root / "modelcycle.yaml").write_text(BASE.replace("data: {source: data/}", "data: {source: data/, feedback: 2d}")
                                          + "agent: {interval: 30s, retry: {min_new_rows: 50, backoff: 1m, max_backoff: 5m}}\n")
    spec = load_spec(root)
    assert spec.feedback == 2 * 86400 and not spec.feedback_only and spec.data_source == root / "data"
    assert (spec.retry.min_new_rows, spec.retry.backoff, spec.retry.max_backoff) == (50, 60, 300)
    assert [spec.retry.wait(n) for n in (1, 2, 3, 4)] == [60, 120, 240, 300], "the back-off doubles up to its cap"
    (root / "modelcycle.yaml").write_text(BASE.replace("data: {source: data/}", "data: {source: predictions}"))
    spec = load_spec(root)
    assert spec.feedback_only and spec.data_source is None and spec.feedback == 30 * 86400
    assert load_spec(write_project(tmp_path / "q")).retry.min_new_rows == 200, "a default retry without agent.retry"


@pytest.mark.parametrize(("target", "metric", "words"), [
    ("price", "roc_auc", "roc_auc measures a classifier, but 'price'"),
    ("kind", "rmse", "rmse measures a regression, but 'kind'"),
])
def test_a_metric_that_does_not_fit_the_target_is_refused_before_anything_runs(tmp_path: Path, target: str, metric: str,
                                                                                words: str) -> None:
    import pandas as pd

    root = write_project(tmp_path / "p", policy=f"thresholds: {{{metric}: '>= 0.1'}}\n")
    pd.DataFrame({"a": [1.0, 2.0, 3.0], "price": [10.5, 11.25, 9.75], "kind": ["x", "y", "x"]}).to_parquet(root / "data" / "d.parquet")
    (root / "modelcycle.yaml").write_text(BASE.replace("target: y", f"target: {target}"))
    with pytest.raises(SpecError) as e:
        load_spec(root)
    assert "line 4:" in str(e.value) and words in str(e.value), str(e.value)
    (root / "policy.yaml").write_text("thresholds: {r2: '>= 0.1'}\n" if metric == "roc_auc" else "thresholds: {accuracy: '>= 0.1'}\n")
    assert load_spec(root).target == target, "a fitting metric is accepted"


def test_whole_number_targets_may_be_counts_or_classes(tmp_path: Path) -> None:
    import pandas as pd

    root = write_project(tmp_path / "p", policy="thresholds: {rmse: '<= 3'}\n")
    pd.DataFrame({"a": [1.0, 2.0], "y": [0, 3]}).to_parquet(root / "data" / "d.parquet")
    assert load_spec(root).target == "y"


def test_a_target_with_many_whole_numbers_is_a_regression_target(tmp_path: Path) -> None:
    import numpy as np
    import pandas as pd

    root = write_project(tmp_path / "p", policy="thresholds: {roc_auc: '>= 0.7'}\n")
    pd.DataFrame({"a": np.arange(300.0), "y": np.arange(300) % 186 + 25.0}).to_parquet(root / "data" / "d.parquet")
    with pytest.raises(SpecError, match="holds more than 100 distinct numbers"):
        load_spec(root)


def test_a_target_missing_from_the_data_is_named_before_anything_runs(tmp_path: Path) -> None:
    import pandas as pd

    root = write_project(tmp_path / "p")
    pd.DataFrame({"a": [1.0], "churned": [1]}).to_parquet(root / "data" / "d.parquet")
    with pytest.raises(SpecError) as e:
        load_spec(root)
    assert "line 4:" in str(e.value) and "the target 'y' is not a column of" in str(e.value) and "a, churned" in str(e.value)


def test_a_window_in_plain_seconds_is_a_window(tmp_path: Path) -> None:
    root = write_project(tmp_path / "p")
    (root / "modelcycle.yaml").write_text(BASE + "monitor: {window: 120}\n")
    spec = load_spec(root)
    from modelcycle.monitoring import parse_window

    assert spec.window == "120s" and parse_window(spec.window) == 120
