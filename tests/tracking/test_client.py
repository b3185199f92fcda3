"""The tracking API as a data scientist uses it, on real SQLite files (and PostgreSQL when configured)."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
import textwrap
import threading
import warnings
from pathlib import Path

import pandas as pd
import pytest

import modelcycle as mc
from modelcycle.entities import RunStatus
from modelcycle.errors import (
    ArtifactCorruptedError,
    ConflictError,
    FilterSyntaxError,
    InvalidInputError,
    InvalidKeyError,
    InvalidValueError,
    ModelcycleError,
    ModelcycleWarning,
    NotFoundError,
    UnsafePathError,
)
from modelcycle.settings import Settings
from modelcycle.tracking.client import Client


@pytest.fixture
def default(client: Client):
    """Make ``client`` the default behind ``mc.log_metric`` and friends."""
    mc.set_client(client)
    yield client
    mc.set_client(None)


def test_module_level_api_records_a_run(default: Client) -> None:
    with mc.start_run(experiment="churn", name="rf-1", params={"model": "rf"}, tags={"team": "risk"}) as run:
        mc.log_param("C", 1.0)
        mc.log_params({"depth": 3, "features": "all"})
        mc.log_metric("auc", 0.91)
        mc.log_metrics({"f1": 0.8, "loss": 0.3}, step=3)
        mc.set_tag("stage", "dev")
        mc.set_tags({"owner": "ana"})
    got = mc.get_run(run.id)
    assert got.status is RunStatus.FINISHED
    assert got.name == "rf-1" and got.experiment == "churn"
    assert got.params == {"model": "rf", "C": "1.0", "depth": "3", "features": "all"}
    assert got.metrics == {"auc": 0.91, "f1": 0.8, "loss": 0.3}
    assert got.tags == {"team": "risk", "stage": "dev", "owner": "ana"}
    assert got.end_time is not None and got.duration >= 0


def test_runs_get_friendly_names_when_unnamed(client: Client) -> None:
    with client.start_run() as run:
        pass
    assert run.name and len(run.name.split("-")) == 3
    assert client.get_run(run.id).name == run.name


def test_search_runs_returns_one_row_per_run(any_client: Client) -> None:
    for model, auc in [("rf", 0.9), ("lr", 0.7), ("rf", 0.85)]:
        with any_client.start_run(experiment="churn", params={"model": model}) as run:
            run.log_metric("auc", auc)
    df = any_client.search_runs(experiment="churn", filter="metrics.auc > 0.8 and params.model = 'rf'", order_by=["metrics.auc DESC"])
    assert isinstance(df, pd.DataFrame)
    assert list(df["metrics.auc"]) == [0.9, 0.85]
    assert {"run_id", "experiment", "name", "status", "start_time", "end_time", "params.model"} <= set(df.columns)
    assert str(df["start_time"].dtype).startswith("datetime64")
    with pytest.raises(NotFoundError, match="chrun"):
        any_client.search_runs(experiment="chrun")


def test_search_gives_every_value_back_exactly(any_client: Client) -> None:
    values = {"third": 1 / 3, "tiny": 5e-324, "huge": 1.7976931348623157e308, "inf": math.inf, "ninf": -math.inf,
              "nan": math.nan, "neg": -0.1, "whole": 12345678901234567.0, "pi": math.pi}
    with any_client.start_run(experiment="exact", params={"text": "naïve \"quoted\" \\ {json}"},
                              tags={"unicode": "日本語 ✓"}) as run:
        run.log_metrics(values)
    other = any_client.start_run(experiment="exact")  # a run with no records at all
    other.end()
    found = {r.id: r for r in any_client.search_runs(experiment="exact", output="list")}
    got = found[run.id].metrics
    for key, value in values.items():
        assert (math.isnan(got[key]) if math.isnan(value) else got[key] == value), key
    assert found[run.id].params == {"text": 'naïve "quoted" \\ {json}'} and found[run.id].tags["unicode"] == "日本語 ✓"
    assert found[other.id].metrics == {} and found[other.id].params == {}
    frame = any_client.search_runs(experiment="exact", filter=f"run_id = '{run.id}'")
    assert frame["metrics.third"].iloc[0] == 1 / 3 and frame["params.text"].iloc[0] == 'naïve "quoted" \\ {json}'
    with pytest.raises(InvalidInputError, match="output must be 'frame' or 'list'"):
        any_client.search_runs(output="table")


def test_a_search_frame_holds_what_the_records_hold(any_client: Client) -> None:
    """The DataFrame is built column-wise from the store's page; it must say what the Run records say."""
    from modelcycle.tracking import runs_frame

    with any_client.start_run(experiment="mixed", name="parent", params={"a": "1"}, tags={"team": "x"}) as parent:
        parent.log_metric("auc", 0.5)
        with any_client.start_run(experiment="mixed", parent=parent.id, params={"b": "2"}) as child:
            child.log_metrics({"loss": math.nan, "auc": 0.75})
    failed = any_client.start_run(experiment="mixed", params={"a": "3", "c": "é"})
    failed.end("FAILED")
    running = any_client.start_run(experiment="mixed")  # no end time, no records at all
    for order in (None, ["metrics.auc DESC"], ["params.a ASC"]):
        frame = any_client.search_runs(experiment="mixed", order_by=order)
        records = any_client.search_runs(experiment="mixed", order_by=order, output="list")
        assert len(records) == 4
        expected = runs_frame(records)
        pd.testing.assert_frame_equal(frame, expected)
        pd.testing.assert_frame_equal(frame, _through_arrow(records), check_exact=True)
    by_id = frame.set_index("run_id")
    assert by_id.loc[child.id, "parent_id"] == parent.id and pd.isna(by_id.loc[parent.id, "parent_id"])
    assert by_id.loc[failed.id, "status"] == "FAILED" and by_id.loc[failed.id, "params.c"] == "é"
    assert pd.isna(by_id.loc[running.id, "end_time"]) and by_id.loc[running.id, "status"] == "RUNNING"
    assert math.isnan(by_id.loc[child.id, "metrics.loss"]) and by_id.loc[child.id, "metrics.auc"] == 0.75
    assert pd.isna(by_id.loc[child.id, "params.a"]) and by_id.loc[parent.id, "tags.team"] == "x"
    running.end()
    empty = any_client.search_runs(experiment="mixed", filter="metrics.auc > 2")
    assert len(empty) == 0 and {"run_id", "status", "start_time"} <= set(empty.columns)


def _through_arrow(runs: list) -> pd.DataFrame:
    """The frame of ``runs`` as pandas makes it from an Arrow table: the types a search's frame promises."""
    import pyarrow as pa

    text, stamp = pa.large_string(), pa.timestamp("ns", tz="UTC")
    cols = {"run_id": pa.array([r.id for r in runs], text), "experiment": pa.array([r.experiment for r in runs], text),
            "name": pa.array([r.name for r in runs], text), "status": pa.array([r.status.value for r in runs], text),
            "start_time": pa.array([int(r.start_time * 1e9) for r in runs], stamp),
            "end_time": pa.array([None if r.end_time is None else int(r.end_time * 1e9) for r in runs], stamp),
            "parent_id": pa.array([r.parent_id for r in runs], text)}
    for prefix, kind, missing in (("metrics", pa.float64(), math.nan), ("params", text, None), ("tags", text, None)):
        for key in sorted(set().union(*(getattr(r, prefix) for r in runs))):
            cols[f"{prefix}.{key}"] = pa.array([getattr(r, prefix).get(key, missing) for r in runs], kind)
    return pa.table(cols).to_pandas()


def test_a_search_for_records_does_not_import_pandas(settings: Settings) -> None:
    import subprocess
    import sys

    c = Client(settings)
    with c.start_run(experiment="e") as run:
        run.log_metric("auc", 0.9)
    c.close()
    code = ("import sys, modelcycle as mc; runs = mc.search_runs('e', output='list'); "
            "print(len(runs), runs[0].metrics['auc'], 'pandas' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "MODELCYCLE_HOME": str(settings.home),
                         "MODELCYCLE_CAPTURE": "0"}, capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["1", "0.9", "False"], out.stderr


def test_metric_steps_count_up_and_history_keeps_every_point(any_client: Client) -> None:
    with any_client.start_run() as run:
        for v in (0.9, 0.5, 0.2):
            run.log_metric("loss", v)
        run.log_metric("loss", 0.1, step=10)
    hist = any_client.get_metric_history(run.id, "loss")
    assert list(hist["step"]) == [0, 1, 2, 10]
    assert list(hist["value"]) == [0.9, 0.5, 0.2, 0.1]
    assert str(hist["timestamp"].dtype).startswith("datetime64")
    assert any_client.get_run(run.id).metrics["loss"] == 0.1
    with pytest.raises(NotFoundError, match="no metric 'acc'"):
        any_client.get_metric_history(run.id, "acc")


def test_nan_and_inf_metrics_come_back_as_such(any_client: Client) -> None:
    with any_client.start_run() as run:
        run.log_metric("nan", float("nan"))
        run.log_metric("inf", float("inf"))
        run.log_metric("ninf", float("-inf"))
    m = any_client.get_run(run.id).metrics
    assert math.isnan(m["nan"]) and m["inf"] == math.inf and m["ninf"] == -math.inf


def test_numpy_and_int_values_are_accepted(client: Client) -> None:
    import numpy as np

    with client.start_run() as run:
        run.log_metric("a", np.float32(0.5))
        run.log_metric("b", 3)
        run.log_metric("c", np.int64(7), step=np.int64(2))
    assert client.get_run(run.id).metrics == {"a": 0.5, "b": 3.0, "c": 7.0}


@pytest.mark.parametrize(
    ("call", "error", "words"),
    [
        (lambda r: r.log_metric("auc", "high"), InvalidValueError, "metric 'auc'"),
        (lambda r: r.log_metric("auc", None), InvalidValueError, "metric 'auc'"),
        (lambda r: r.log_metric("auc", [1, 2]), InvalidValueError, "metric 'auc'"),
        (lambda r: r.log_metric("auc", 10**400), InvalidValueError, "too large"),
        (lambda r: r.log_metric("a;b", 1.0), InvalidKeyError, "';' at position 1"),
        (lambda r: r.log_metric("", 1.0), InvalidKeyError, "empty"),
        (lambda r: r.log_metric("x" * 300, 1.0), InvalidKeyError, "limit is 250"),
        (lambda r: r.log_metric("auc", 1.0, step=1.5), InvalidValueError, "step"),
        (lambda r: r.log_metric("auc", 1.0, step=2**63), InvalidValueError, "out of range"),
        (lambda r: r.log_metric("auc", 1.0, step=-(2**63) - 1), InvalidValueError, "out of range"),
        (lambda r: r.log_metric("auc", 1.0, step=math.inf), InvalidValueError, "must be an integer"),
        (lambda r: r.log_metric("auc", 1.0, timestamp=math.nan), InvalidInputError, "not a time in seconds"),
        (lambda r: r.log_metric("auc", 1.0, timestamp=10**400), InvalidInputError, "timestamp must be seconds"),
        (lambda r: r.log_metric("auc", 1.0, timestamp=1.7e12), InvalidInputError, "looks like milliseconds"),
        (lambda r: r.log_metrics({"auc": 1.0}, timestamp=math.inf), InvalidInputError, "not a time in seconds"),
        (lambda r: r.log_param("notes", "x" * 7000), InvalidValueError, "param 'notes'"),
        (lambda r: r.log_param("sql$", 1), InvalidKeyError, "'$'"),
        (lambda r: r.set_tag("t\n", "v"), InvalidKeyError, "tag key"),
        (lambda r: r.log_params({"ok": 1, "bad key!": 2}), InvalidKeyError, "'!'"),
        (lambda r: r.log_metrics({"ok": 1, "bad": "x"}), InvalidValueError, "metric 'bad'"),
    ],
)
def test_bad_input_gets_one_clear_error_and_loses_nothing(client: Client, call, error, words) -> None:
    with client.start_run() as run:
        run.log_metric("kept", 1.0)
        run.log_param("kept", "yes")
        with pytest.raises(error, match=re.escape(words)):
            call(run)
        run.log_metric("after", 2.0)
    got = client.get_run(run.id)
    assert got.metrics == {"kept": 1.0, "after": 2.0}, "nothing logged before or after the bad call is lost"
    assert got.params == {"kept": "yes"}
    assert isinstance(error("x"), ModelcycleError)


@pytest.mark.parametrize(("arguments", "words"), [
    ({"filter": ["metrics.auc > 1"]}, "a filter is text"),
    ({"filter": "metrics.auc > 1 and name = '\ud800'"}, "not text"),
    ({"filter": "name = 'a\x00'"}, "NUL"),
    ({"order_by": [["metrics.auc"]]}, "order_by takes text"),
    ({"limit": 10**30}, "limit must be a whole number"),
    ({"limit": "5"}, "limit must be a whole number"),
    ({"limit": 2.5}, "limit must be a whole number"),
    ({"limit": -1}, "limit must be a whole number"),
])
def test_a_search_with_arguments_of_the_wrong_kind_says_which(client: Client, arguments: dict, words: str) -> None:
    with client.start_run(experiment="e"):
        pass
    with pytest.raises(InvalidInputError, match=re.escape(words)):
        client.search_runs("e", **arguments)
    import numpy as np

    assert len(client.search_runs("e", limit=np.int64(5), output="list")) == 1, "a numpy integer is a number of runs"


def test_bad_filters_name_the_problem(client: Client) -> None:
    with pytest.raises(FilterSyntaxError, match="unknown field 'metric_auc'"):
        client.search_runs(filter="metric_auc > 1")
    with pytest.raises(FilterSyntaxError, match="position 13"):
        client.search_runs(filter="metrics.auc >")


def test_params_cannot_change_but_may_repeat(client: Client) -> None:
    with client.start_run() as run:
        run.log_param("C", 1.0)
        run.log_param("C", 1.0)
        with pytest.raises(ConflictError, match=re.escape("already '1.0'")):
            run.log_param("C", 2.0)
    assert client.get_run(run.id).params == {"C": "1.0"}


def test_nested_runs_get_the_active_run_as_parent(client: Client) -> None:
    with client.start_run(name="sweep") as parent:
        for c in (0.1, 1.0):
            with client.start_run(params={"C": c}) as child:
                child.log_metric("auc", c)
        assert client.active_run() is parent
    children = client.search_runs(filter=f"parent_id = '{parent.id}'", as_frame=False)
    assert len(children) == 2
    assert client.active_run() is None


def test_a_child_run_is_filed_in_its_parents_experiment(default: Client) -> None:
    with mc.start_run(experiment="auto") as parent:
        with mc.start_run(name="child") as child, mc.start_run(name="grandchild") as grandchild:
            pass
        with mc.start_run(name="elsewhere", experiment="other") as named:
            pass
    assert child.experiment == grandchild.experiment == "auto"
    assert mc.get_run(child.id).experiment == mc.get_run(grandchild.id).experiment == "auto"
    assert mc.get_run(child.id).parent_id == parent.id and mc.get_run(grandchild.id).parent_id == child.id
    assert mc.get_run(named.id).experiment == "other" and mc.get_run(named.id).parent_id == parent.id
    assert set(mc.search_runs(experiment="auto")["name"]) == {"grandchild", "child", parent.name}


def test_a_child_of_a_parent_given_by_id_is_filed_in_the_parents_experiment(client: Client) -> None:
    with client.start_run(experiment="auto") as parent:
        pass
    with client.start_run(name="later", parent=parent.id[:8]) as child:
        pass
    got = client.get_run(child.id)
    assert got.experiment == "auto" and got.parent_id == parent.id


def test_exception_ends_run_failed_with_traceback(client: Client) -> None:
    with pytest.raises(ZeroDivisionError), client.start_run() as run:
        run.log_metric("before", 1.0)
        1 / 0  # noqa: B018
    got = client.get_run(run.id)
    assert got.status is RunStatus.FAILED
    assert "ZeroDivisionError" in got.error and "Traceback" in got.error
    assert got.metrics == {"before": 1.0}


def test_ctrl_c_ends_run_killed(client: Client) -> None:
    with pytest.raises(KeyboardInterrupt), client.start_run() as run:
        raise KeyboardInterrupt
    assert client.get_run(run.id).status is RunStatus.KILLED


def test_logging_outside_a_run_starts_one_and_says_so_once(default: Client) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mc.log_metric("a", 1.0)
        mc.log_metric("a", 2.0)
        mc.log_param("p", 1)
    notes = [w for w in caught if issubclass(w.category, ModelcycleWarning)]
    assert len(notes) == 1 and "started one" in str(notes[0].message)
    run = mc.active_run()
    assert run is not None
    mc.end_run()
    got = mc.get_run(run.id)
    assert got.status is RunStatus.FINISHED and got.metrics == {"a": 2.0} and got.params == {"p": "1"}


def test_a_run_started_after_logging_outside_one_is_not_its_child(default: Client) -> None:
    with pytest.warns(ModelcycleWarning, match="started one"):
        mc.log_metric("loss", 0.5)
    implicit = mc.active_run()
    assert implicit is not None
    with mc.start_run(experiment="churn", name="mine") as run:
        mc.log_metric("auc", 0.9)
        assert mc.active_run() is run
    assert mc.active_run() is None
    got = mc.get_run(run.id)
    assert got.parent_id is None and got.experiment == "churn" and got.metrics == {"auc": 0.9}
    earlier = mc.get_run(implicit.id)
    assert earlier.status is RunStatus.FINISHED and earlier.metrics == {"loss": 0.5}
    assert earlier.experiment == "Default"


def test_a_run_started_implicitly_ends_with_the_process_and_keeps_its_metrics(tmp_path: Path) -> None:
    home = tmp_path / "home"
    code = textwrap.dedent("""
        import modelcycle as mc
        for step, loss in enumerate([0.9, 0.5, 0.25]):
            mc.log_metric("loss", loss, step=step)
        print(mc.active_run().id)
    """)
    env = {**os.environ, "MODELCYCLE_HOME": str(home), "MODELCYCLE_CAPTURE": "0"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    client = Client(Settings.for_home(home, capture=False))
    try:
        got = client.get_run(done.stdout.strip())
        assert got.status is RunStatus.FINISHED and got.metrics == {"loss": 0.25}
        assert list(client.get_metric_history(got.id, "loss")["value"]) == [0.9, 0.5, 0.25]
    finally:
        client.close()


def test_logging_to_an_ended_run_is_an_error(client: Client) -> None:
    with client.start_run() as run:
        pass
    with pytest.raises(ModelcycleError, match="has ended"):
        run.log_metric("late", 1.0)


def test_other_threads_log_to_the_active_run(client: Client) -> None:
    with client.start_run() as run:
        threads = [threading.Thread(target=lambda i=i: [client.log_metric(f"t{i}", float(k)) for k in range(1000)]) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    got = client.get_run(run.id)
    assert got.metrics == {f"t{i}": 999.0 for i in range(4)}
    assert len(client.get_metric_history(run.id, "t0")) == 1000


def test_run_ids_can_be_abbreviated(client: Client) -> None:
    with client.start_run() as run:
        pass
    assert client.get_run(run.id[:8]).id == run.id


def test_artifacts_of_every_kind(client: Client, tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = tmp_path / "plots"
    folder.mkdir()
    (folder / "a.txt").write_text("A")
    (folder / "sub").mkdir()
    (folder / "sub" / "b.txt").write_text("B")
    single = tmp_path / "notes.md"
    single.write_text("# notes")
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    with client.start_run() as run:
        run.log_artifact(single)
        run.log_artifact(folder, "figures")
        run.log_text("hello", "text/hello.txt")
        run.log_dict({"a": 1, "nested": {"b": [1, 2]}}, "config.json")
        run.log_dict({"a": 1}, "config.yaml")
        run.log_table(pd.DataFrame({"y": [1, 0], "p": [0.9, 0.2]}), "preds")
        run.log_table(pd.DataFrame({"y": [1]}), "preds.csv")
        run.log_figure(fig, "roc.png")
    got = client.get_run(run.id)
    names = {a.path for a in got.artifacts}
    assert names == {"notes.md", "figures/a.txt", "figures/sub/b.txt", "text/hello.txt", "config.json", "config.yaml",
                     "preds.parquet", "preds.csv", "roc.png"}
    assert client.read_artifact(run.id, "text/hello.txt") == b"hello"
    assert b'"nested"' in client.read_artifact(run.id, "config.json")
    assert client.read_artifact(run.id, "roc.png").startswith(b"\x89PNG")
    out = client.download_artifacts(run.id, "figures", tmp_path / "dl")
    assert (out / "sub" / "b.txt").read_text() == "B"
    table = pd.read_parquet(client.download_artifacts(run.id, "preds.parquet", tmp_path / "dl2"))
    assert list(table["p"]) == [0.9, 0.2]


@pytest.mark.parametrize("name", ["../evil.txt", "/abs/path.txt", "a/../../b", "nul\x00byte", "..\\evil.txt", "C:\\evil.txt",
                                  "esc\x1b[31m.txt", "two\nlines.txt", "back\rto-start.txt", "bell\x07.txt", "del\x7f.txt"])
def test_unsafe_artifact_names_are_refused_and_nothing_is_written(client: Client, tmp_path: Path, name: str) -> None:
    with client.start_run() as run, pytest.raises(UnsafePathError):
        run.log_text("x", name)
    assert client.get_run(run.id).artifacts == ()
    assert not (tmp_path / "evil.txt").exists()
    assert not (tmp_path.parent / "evil.txt").exists()


@pytest.mark.parametrize(("first", "second"), [("a", "a/b"), ("a/b", "a"), ("a", "a/b/c"), ("a/b/c", "a"), ("x/a", "x/a/b")])
def test_a_name_cannot_be_both_a_file_and_a_folder(any_client: Client, first: str, second: str) -> None:
    """'a' and 'a/b' cannot both be written to disk, so the second is refused when it is logged, naming both."""
    with any_client.start_run() as run:
        run.log_text("first", first)
        with pytest.raises(InvalidInputError) as refused:
            run.log_text("second", second)
        assert repr(first) in str(refused.value) and repr(second) in str(refused.value), refused.value
        assert "choose another name" in str(refused.value)
        run.log_text("again", first)  # the same name again replaces it
        run.log_text("other", "c")  # a refused name reserves nothing
    assert {a.path for a in any_client.get_run(run.id).artifacts} == {first, "c"}
    assert any_client.read_artifact(run.id, first) == b"again"


def test_every_way_of_logging_is_checked(client: Client, tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    folder = tmp_path / "folder"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "x.txt").write_text("x")
    single = tmp_path / "single.txt"
    single.write_text("s")
    model = LogisticRegression().fit(pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0]}), [0, 0, 1, 1])
    with client.start_run() as run:
        run.log_text("t", "text")
        run.log_text("t", "pkg/sub")
        run.log_text("t", "model")
        attempts = [
            lambda: run.log_artifact(single, "text/single.txt"),
            lambda: run.log_artifact(folder, "pkg"),  # pkg/sub/x.txt needs the folder pkg/sub
            lambda: run.log_bytes(b"b", "text/bytes"),
            lambda: run.log_dict({"a": 1}, "text/d.json"),
            lambda: run.log_model(model, "model"),  # model/model.skops, model/manifest.json …
            lambda: run.log_text("t", "pkg"),
        ]
        for attempt in attempts:
            with pytest.raises(InvalidInputError, match="already has an artifact"):
                attempt()
        logged = run.log_model(model, "m")
        with pytest.raises(InvalidInputError, match=re.escape("'m/manifest.json'")):
            run.log_text("t", "m/manifest.json/x")
    paths = {a.path for a in client.get_run(run.id).artifacts}
    assert {p for p in paths if not p.startswith("m/")} == {"text", "pkg/sub", "model"}, "nothing refused was stored"
    assert "m/manifest.json" in paths and logged.uri.endswith("/m")
    assert mc.models.load_package(client.download_artifacts(run.id, "m")) is not None


def test_names_logged_by_another_process_are_checked_too(any_client: Client) -> None:
    with any_client.start_run() as run:
        run.log_text("x", "shared")
        any_client.flush()
        other = Client(any_client.settings)  # another process: it knows the names only from the store
        try:
            with pytest.raises(InvalidInputError, match="'shared'; 'shared/y' would need a folder"):
                other.log_text("y", "shared/y", run_id=run.id)
            other.log_text("z", "fine/z", run_id=run.id)
            other.flush()
        finally:
            other.close()
        with pytest.raises(InvalidInputError, match="'fine/z' in a folder named 'fine'"):
            run.log_text("w", "fine")


def test_download_skips_a_file_named_like_a_folder_from_before_the_check(client: Client, tmp_path: Path) -> None:
    import time

    with client.start_run() as run:
        run.log_text("file", "a")
        run.log_text("ok", "ok.txt")
        digest, size = client.artifact_store.put_bytes(b"inside")
        client.buffer.artifacts.append((run.id, "a/b", digest, size, time.time()))  # as stores written before the check hold
    with pytest.raises(ConflictError, match=r"1 artifact\(s\) not downloaded: 'a' \(the artifact 'a/b' needs a folder"):
        client.download_artifacts(run.id, dst=tmp_path / "out")
    assert (tmp_path / "out" / "a" / "b").read_bytes() == b"inside"
    assert (tmp_path / "out" / "ok.txt").read_bytes() == b"ok"


def test_corrupted_artifact_fails_on_read(client: Client) -> None:
    with client.start_run() as run:
        run.log_text("precious", "model.txt")
    art = client.get_run(run.id).artifacts[0]
    blob = Path(client.settings.artifact_uri) / art.digest[:2] / art.digest
    blob.write_bytes(b"tampered")
    with pytest.raises(ArtifactCorruptedError, match="corrupted"):
        client.read_artifact(run.id, "model.txt")


def test_datasets_are_fingerprinted(client: Client, tmp_path: Path) -> None:
    df = pd.DataFrame({"x": [1.0, 2.0, 3.0], "c": ["a", "b", "a"]})
    parquet = tmp_path / "train.parquet"
    df.to_parquet(parquet)
    csv = tmp_path / "train.csv"
    df.to_csv(csv, index=False)
    with client.start_run() as run:
        fp1 = run.log_dataset(df, name="train", role="train")
        fp2 = run.log_dataset(parquet, name="train-file", role="train")
        run.log_dataset(csv, name="train-csv", role="train")
    with client.start_run() as other:
        assert other.log_dataset(df.copy(), name="again") == fp1, "equal data, equal fingerprint"
        assert other.log_dataset(df.assign(x=[1.0, 2.0, 3.5]), name="changed") != fp1
    stored = client.get_profile(run.id, "train", "train")
    assert stored.rows == 3 and stored.columns["x"].mean == 2.0 and dict(stored.columns["c"].frequent_values()) == {"a": 2, "b": 1}
    assert client.get_profile(run.id, "train-file", "train").columns["x"].max == 3.0
    inputs = {d.name: d for d in client.get_run(run.id).inputs}
    assert inputs["train"].rows == 3 and inputs["train"].columns == (("x", "float64"), ("c", str(df["c"].dtype)))
    assert inputs["train-file"].rows == 3 and inputs["train-file"].fingerprint == fp2
    assert inputs["train-csv"].rows == 3 and [c for c, _ in inputs["train-csv"].columns] == ["x", "c"]
    with client.start_run() as third, pytest.raises(ModelcycleError, match="not a file"):
        third.log_dataset(tmp_path / "missing.csv")


def test_seed_everything_seeds_and_records(default: Client) -> None:
    import random

    import numpy as np

    with mc.start_run() as run:
        assert mc.seed_everything(123) == 123
        a = (random.random(), np.random.rand())
    mc.seed_everything(123)
    assert (random.random(), np.random.rand()) == a
    with mc.start_run() as later:
        pass
    assert mc.get_run(run.id).context.seed == 123
    assert mc.get_run(later.id).context.seed == 123
    with pytest.raises(InvalidValueError):
        mc.seed_everything(-1)


def test_gc_removes_only_unreferenced_blobs(client: Client) -> None:
    with client.start_run() as keep:
        keep.log_text("shared", "a.txt")
    with client.start_run() as drop:
        drop.log_text("shared", "a.txt")  # same bytes: one blob for both runs
        drop.log_text("only mine", "b.txt")
    client.delete_run(drop.id)
    assert client.gc(dry_run=True, grace_seconds=0).removed == 1
    report = client.gc(grace_seconds=0)
    assert report.removed == 1 and report.kept == 1
    assert client.read_artifact(keep.id, "a.txt") == b"shared"
    assert client.gc(grace_seconds=0).removed == 0


def test_data_validation_inside_a_run_is_logged(client: Client) -> None:
    from modelcycle.data import infer_schema, validate

    df = pd.DataFrame({"age": [30, 41, 25]})
    schema = infer_schema(df)
    with client.start_run() as run:
        validate(df.assign(age=[30, -1, 25]), schema)
    got = client.get_run(run.id)
    assert got.metrics["validation.errors"] == 1.0 and got.tags["validation.passed"] == "false"
    assert b'"range"' in client.read_artifact(run.id, "validation/report-1.json")
    validate(df, schema)  # outside a run: nothing is logged, nothing fails


def test_text_that_cannot_be_stored_is_refused_when_logged_and_later_runs_are_kept(client: Client) -> None:
    bad = os.fsdecode(b"data_\xff.csv")  # a file name in another encoding
    with client.start_run(name="bad") as run:
        with pytest.raises(InvalidValueError, match="not text"):
            run.log_param("file", bad)
        with pytest.raises(InvalidValueError, match="not text"):
            run.set_tag("file", bad)
    with pytest.raises(InvalidValueError, match="run's name"):
        client.start_run(name=bad)
    with client.start_run(name="after") as after:
        after.log_metric("auc", 0.91)
    client.flush()
    assert client.get_run(after.id).metrics["auc"] == 0.91 and client.get_run(run.id).status.value == "FINISHED"


def test_a_nul_character_is_refused_when_logged_and_the_next_flushes_are_kept(any_client: Client) -> None:
    """PostgreSQL cannot store NUL in text: refused at the call, never left in the buffer to fail every later flush."""
    with any_client.start_run(name="nul") as run:
        with pytest.raises(InvalidValueError, match="NUL character"):
            run.log_param("p", "a\x00b")
        with pytest.raises(InvalidValueError, match="NUL character"):
            run.set_tag("t", "\x00")
        run.log_param("ok", "fine")
    with pytest.raises(InvalidValueError, match="NUL character"):
        any_client.start_run(name="x\x00y")
    with any_client.start_run(name="after") as after:
        after.log_metric("auc", 0.91)
    any_client.flush()
    assert any_client.get_run(run.id).params == {"ok": "fine"}
    assert any_client.get_run(after.id).metrics["auc"] == 0.91
