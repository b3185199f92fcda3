"""Pipelines on real stores: the DAG, outputs by type, the cache and its reasons, failures, retries, timeouts, tracking."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import modelcycle as mc
from modelcycle.errors import InvalidInputError, PipelineError
from modelcycle.pipelines import pipeline, register_materializer, step
from modelcycle.tracking.client import Client

CALLS: dict[str, int] = {}
INTERVALS: dict[str, tuple[float, float]] = {}


def called(name: str) -> None:
    CALLS[name] = CALLS.get(name, 0) + 1


@pytest.fixture(autouse=True)
def _reset(client: Client):
    CALLS.clear()
    INTERVALS.clear()
    mc.set_client(client)
    yield
    mc.set_client(None)


@step
def make_frame(n: int, seed: int = 0) -> pd.DataFrame:
    called("make_frame")
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"x": rng.normal(size=n), "y": rng.normal(size=n)})


@step(outputs=("train", "test"))
def split(df: pd.DataFrame, frac: float = 0.75):
    called("split")
    k = int(len(df) * frac)
    return df.iloc[:k], df.iloc[k:]


@step
def fit(train: pd.DataFrame, alpha: float = 1.0):
    called("fit")
    from sklearn.linear_model import Ridge

    mc.log_metric("train_rows", len(train))
    print(f"fitting on {len(train)} rows")
    return Ridge(alpha=alpha).fit(train[["x"]], train["y"])


@step
def score(model, test: pd.DataFrame) -> dict:
    called("score")
    return {"r2": float(model.score(test[["x"]], test["y"])), "rows": len(test)}


@step
def as_array(df: pd.DataFrame) -> np.ndarray:
    called("as_array")
    return df.to_numpy()


@pipeline
def training(n: int = 200, alpha: float = 1.0):
    df = make_frame(n)
    train, test = split(df)
    model = fit(train, alpha=alpha)
    return {"score": score(model, test), "matrix": as_array(test)}


def test_runs_every_step_then_reuses_them(client: Client) -> None:
    first = training.run(n=300, client=client)
    assert first.status == "FINISHED" and CALLS == {"make_frame": 1, "split": 1, "fit": 1, "score": 1, "as_array": 1}
    assert {s.status for s in first.steps.values()} == {"finished"}
    out = first.output
    assert out["score"]["rows"] == 75 and out["matrix"].shape == (75, 2)
    again = training.run(n=300, client=client)
    assert CALLS == {"make_frame": 1, "split": 1, "fit": 1, "score": 1, "as_array": 1}, "nothing ran twice"
    assert all(s.cached for s in again.steps.values())
    assert again.output["score"] == out["score"]
    np.testing.assert_array_equal(again.outputs["as_array"], out["matrix"])
    assert isinstance(again.outputs["fit"].coef_, np.ndarray)


def test_a_changed_parameter_reruns_only_what_depends_on_it(client: Client) -> None:
    training.run(client=client)
    result = training.run(alpha=0.1, client=client)
    status = {n: s.status for n, s in result.steps.items()}
    assert status == {"make_frame": "cached", "split": "cached", "fit": "finished", "score": "finished", "as_array": "cached"}
    assert result.steps["fit"].reason == "parameter 'alpha' changed (1.0 → 0.1)"
    assert result.steps["score"].reason == "input 'model' changed"


def test_every_step_is_a_tracked_child_run(client: Client) -> None:
    result = training.run(n=120, client=client)
    parent = client.get_run(result.run_id)
    assert parent.status.value == "FINISHED" and parent.params == {"n": "120", "alpha": "1.0"}
    assert parent.tags["modelcycle.pipeline"] == "training"
    fit_run = client.get_run(result.steps["fit"].run_id)
    assert fit_run.parent_id == parent.id and fit_run.params == {"alpha": "1.0"}
    assert fit_run.metrics["train_rows"] == 90, "mc.log_metric inside a step logs into the step's run"
    assert fit_run.tags["input.train"] == result.steps["split"].output.items[0].fingerprint
    names = {a.path for a in fit_run.artifacts}
    assert {"step.json", "logs.txt", "outputs/manifest.json", "outputs/model.skops"} <= names
    assert "fitting on 90 rows" in client.read_artifact(fit_run.id, "logs.txt").decode()
    record = json.loads(client.read_artifact(parent.id, "pipeline.json"))
    assert record["steps"]["score"]["upstream"] == ["fit", "split"]


def test_a_failed_step_fails_the_run_keeps_what_finished_and_resumes(client: Client, tmp_path: Path) -> None:
    flag = tmp_path / "broken"
    flag.write_text("yes")

    @step
    def fragile(df: pd.DataFrame, flag_path: str) -> pd.DataFrame:
        called("fragile")
        if Path(flag_path).read_text() == "yes":
            raise ValueError("the upstream system is down")
        return df

    @step
    def after(df: pd.DataFrame) -> int:
        called("after")
        return len(df)

    @pipeline
    def flaky(flag_path: str):
        df = make_frame(50)
        side = as_array(df)
        return after(fragile(df, flag_path)), side

    expected = "step 'fragile' failed: ValueError: the upstream system is down; skipped what depends on it: after"
    with pytest.raises(PipelineError, match=expected) as err:
        flaky.run(flag_path=str(flag), client=client)
    result = err.value.result
    assert result.status == "FAILED"
    assert {n: s.status for n, s in result.steps.items()} == {
        "make_frame": "finished", "as_array": "finished", "fragile": "failed", "after": "skipped"}
    assert client.get_run(result.run_id).status.value == "FAILED"
    assert "ValueError" in (client.get_run(result.steps["fragile"].run_id).error or "")
    flag.write_text("no")
    resumed = flaky.run(flag_path=str(flag), client=client)
    assert {n: s.status for n, s in resumed.steps.items()} == {
        "make_frame": "cached", "as_array": "cached", "fragile": "finished", "after": "finished"}
    assert "input file" not in resumed.steps["fragile"].reason
    assert resumed.output[0] == 50


def test_cache_switches_and_from_step(client: Client) -> None:
    training.run(client=client)
    forced = training.run(client=client, from_step="split")
    assert {n: s.status for n, s in forced.steps.items()} == {
        "make_frame": "cached", "split": "finished", "fit": "finished", "score": "finished", "as_array": "finished"}
    assert forced.steps["fit"].reason == "forced by from_step"
    off = training.run(client=client, cache=False)
    assert all(s.status == "finished" and s.reason == "caching is off for this run" for s in off.steps.values())

    @step(cache=False)
    def clock() -> float:
        return time.time()

    @pipeline
    def timed():
        return clock()

    a, b = timed.run(client=client), timed.run(client=client)
    assert a.output != b.output and b.steps["clock"].reason == "the step has cache=False"


def test_a_changed_source_is_a_cache_miss(client: Client) -> None:
    namespace: dict = {}
    code = "import modelcycle as mc\n@mc.step\ndef value() -> int:\n    return {}\n@mc.pipeline\ndef p():\n    return value()\n"
    exec(compile(code.format(1), "<one>", "exec"), namespace)
    namespace["p"].run(client=client)
    exec(compile(code.format(2), "<two>", "exec"), namespace)
    result = namespace["p"].run(client=client)
    assert result.output == 2 and result.steps["value"].reason == "its source code changed"


def test_outputs_need_a_materializer(client: Client) -> None:
    class Vocabulary:
        def __init__(self, words: list[str]):
            self.words = words

    @step
    def vocab() -> Vocabulary:
        return Vocabulary(["a", "b"])

    @pipeline
    def text():
        return vocab()

    with pytest.raises(PipelineError, match=r"step 'vocab' returned a .*Vocabulary, which modelcycle cannot store; .*register_materializer"):
        text.run(client=client)
    register_materializer(Vocabulary, save=lambda v, folder: (folder / "words.txt").write_text("\n".join(v.words)),
                          load=lambda folder: Vocabulary((folder / "words.txt").read_text().split("\n")))
    assert text.run(client=client).output.words == ["a", "b"]
    assert text.run(client=client).steps["vocab"].cached


def test_retries_and_timeouts(client: Client) -> None:
    attempts = {"n": 0}

    @step(retries=2)
    def unsteady() -> int:
        attempts["n"] += 1
        if attempts["n"] < 3:
            raise ConnectionError("try again")
        return attempts["n"]

    @step(timeout="300ms")
    def slow() -> int:
        time.sleep(3)
        return 1

    @pipeline
    def retried():
        return unsteady()

    @pipeline
    def stuck():
        return slow()

    assert retried.run(client=client).output == 3
    with pytest.raises(PipelineError, match=r"step 'slow' ran longer than its timeout of 0.3 s; raise @mc.step\(timeout=...\)"):
        stuck.run(client=client)


def test_independent_branches_run_at_the_same_time(client: Client) -> None:
    @step(cache=False)
    def nap(name: str) -> str:
        start = time.perf_counter()
        time.sleep(0.4)
        INTERVALS[name] = (start, time.perf_counter())
        return name

    @pipeline
    def naps():
        return [nap("a"), nap("b")]

    assert naps.run(client=client).output == ["a", "b"]
    (a0, a1), (b0, b1) = INTERVALS["a"], INTERVALS["b"]
    assert a0 < b1 and b0 < a1, "the two branches overlapped in time"


def test_bad_definitions_and_parameters_are_named(client: Client) -> None:
    @pipeline
    def unpacked():
        df = make_frame(10)
        a, _b = as_array(df)  # no outputs= declared
        return a

    with pytest.raises(InvalidInputError, match="declare its parts"):
        unpacked.run(client=client)
    with pytest.raises(InvalidInputError, match="has no parameter 'beta'; its parameters: n, alpha"):
        training.run(beta=1, client=client)
    with pytest.raises(InvalidInputError, match="parameter 'n' of pipeline 'training' expects int, got str"):
        training.run(n="many", client=client)
    with pytest.raises(InvalidInputError, match="has no step 'nope'"):
        training.run(from_step="nope", client=client)

    outside = make_frame(5)
    assert isinstance(outside, pd.DataFrame), "outside a pipeline a step is a plain call"

    @pipeline
    def literal_frame():
        return as_array(outside)  # a DataFrame given as a literal is fingerprinted into the cache key

    assert literal_frame.run(client=client).output.shape == (5, 2)
    assert literal_frame.run(client=client).steps["as_array"].cached

    @pipeline
    def odd_literal():
        return as_array(object())

    with pytest.raises(InvalidInputError, match=r"parameter 'df' of step 'as_array' is a builtins\.object"):
        odd_literal.run(client=client)


def test_two_runs_at_once_share_the_cache_safely(client: Client) -> None:
    results = []

    def go() -> None:
        results.append(training.run(n=400, client=client))

    threads = [threading.Thread(target=go) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.status for r in results] == ["FINISHED", "FINISHED"]
    assert results[0].output["score"] == results[1].output["score"]
    third = training.run(n=400, client=client)
    assert all(s.cached for s in third.steps.values())


def test_an_output_from_another_pipeline_is_an_unknown_dependency(client: Client) -> None:
    leaked = []

    @pipeline
    def first():
        out = make_frame(10)
        leaked.append(out)
        return out

    @pipeline
    def second():
        return as_array(leaked[0])

    first.run(client=client)
    with pytest.raises(InvalidInputError, match="step 'as_array' depends on the output of 'make_frame', which is not a step of pipeline 'second'"):
        second.run(client=client)


@step
def count_rows(folder: str) -> int:
    return sum(len(pd.read_csv(f)) for f in sorted(Path(folder).glob("*.csv")))


@pipeline
def folder_pipeline(folder: str):
    return count_rows(folder)


def test_a_data_folder_reruns_its_step_when_a_file_is_added_or_changed(client: Client, tmp_path: Path) -> None:
    data = tmp_path / "incoming"
    data.mkdir()
    pd.DataFrame({"x": range(3)}).to_csv(data / "a.csv", index=False)
    first = folder_pipeline.run(client=client, folder=str(data))
    assert first.output == 3
    assert folder_pipeline.run(client=client, folder=str(data)).steps["count_rows"].cached
    pd.DataFrame({"x": range(4)}).to_csv(data / "b.csv", index=False)  # new data arrives
    added = folder_pipeline.run(client=client, folder=str(data))
    assert not added.steps["count_rows"].cached and added.output == 7
    pd.DataFrame({"x": range(10)}).to_csv(data / "a.csv", index=False)  # a file is rewritten
    assert folder_pipeline.run(client=client, folder=str(data)).output == 14
