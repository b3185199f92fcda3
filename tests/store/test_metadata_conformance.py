"""Every metadata store backend behaves the same (SQLite always; PostgreSQL when configured)."""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from modelcycle._hashing import hash_json
from modelcycle.entities import DatasetInput, RunContext, RunStatus
from modelcycle.errors import FilterSyntaxError, InvalidInputError, NotFoundError
from modelcycle.store import open_metadata_store
from modelcycle.store.metadata.base import MetadataStore, NewRun, WriteBatch


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres), "server"])
def store_uri(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """SQLite, PostgreSQL, and a modelcycle server over SQLite (a real HTTP server; clients send its token)."""
    if request.param == "server":
        request.getfixturevalue("monkeypatch").setenv("MODELCYCLE_TRACKING_TOKEN", "conformance-token")
        yield request.getfixturevalue("server_uri")
        return
    yield from request.getfixturevalue("_sql_store_uri")(request.param)


@pytest.fixture
def _sql_store_uri(tmp_path):
    from tests.conftest import PG_ADMIN, _pg_database

    def make(kind: str) -> Iterator[str]:
        if kind == "sqlite":
            yield f"sqlite:///{tmp_path / 'store.db'}"
        elif not PG_ADMIN:
            pytest.skip("set MODELCYCLE_TEST_POSTGRES_URI to run the PostgreSQL store tests")
        else:
            yield from _pg_database()

    return make


def _open(uri: str):
    import os

    return open_metadata_store(uri, token=os.environ.get("MODELCYCLE_TRACKING_TOKEN")) if uri.startswith("http") else open_metadata_store(uri)


@pytest.fixture
def store(store_uri: str):
    s = _open(store_uri)
    yield s
    s.close()


def _run(store: MetadataStore, experiment: str = "exp", **kw) -> str:
    exp = store.get_or_create_experiment(experiment)
    run_id = uuid.uuid4().hex
    store.create_run(NewRun(id=run_id, experiment_id=exp.id, name=kw.pop("name", "r"), start_time=kw.pop("start", time.time()), **kw))
    return run_id


def test_is_a_metadata_store(store) -> None:
    assert isinstance(store, MetadataStore)


def test_experiments_are_created_once(store) -> None:
    a = store.get_or_create_experiment("churn")
    b = store.get_or_create_experiment("churn")
    assert a.id == b.id
    assert [e.name for e in store.list_experiments()] == ["churn"]
    with pytest.raises(NotFoundError, match="nope"):
        store.get_experiment("nope")


def test_run_round_trip(store) -> None:
    ctx = RunContext(git_commit="abc", git_branch="main", git_dirty=True, command=("python", "t.py"), cwd="src",
                     python="3.11.7", seed=7, session_id="s" * 32, session_seq=3)
    rid = _run(store, params={"C": "1.0"}, tags={"team": "risk"}, context=ctx)
    run = store.get_run(rid)
    assert run.status is RunStatus.RUNNING
    assert run.params == {"C": "1.0"}
    assert run.tags == {"team": "risk"}
    assert run.context.command == ("python", "t.py")
    assert run.context.git_dirty is True
    assert run.context.seed == 7
    assert run.experiment == "exp"


def test_latest_metric_is_highest_step_then_latest_time(store) -> None:
    rid = _run(store)
    t = time.time()
    store.write(WriteBatch(metrics=[(rid, "loss", 3.0, 5, t), (rid, "loss", 9.0, 2, t + 10)]))
    store.write(WriteBatch(metrics=[(rid, "loss", 1.0, 1, t + 20)]))  # an older step arriving late
    assert store.get_run(rid).metrics["loss"] == 3.0
    store.write(WriteBatch(metrics=[(rid, "loss", 4.0, 5, t + 30)]))  # same step, later
    assert store.get_run(rid).metrics["loss"] == 4.0
    history = store.get_metric_history(rid, "loss")
    assert [(p.step, p.value) for p in history] == [(1, 1.0), (2, 9.0), (5, 3.0), (5, 4.0)]


def test_nan_and_infinities_are_kept(store) -> None:
    rid = _run(store)
    t = time.time()
    store.write(WriteBatch(metrics=[(rid, "a", math.nan, 0, t), (rid, "b", math.inf, 0, t), (rid, "c", -math.inf, 0, t)]))
    m = store.get_run(rid).metrics
    assert math.isnan(m["a"]) and m["b"] == math.inf and m["c"] == -math.inf
    assert math.isnan(store.get_metric_history(rid, "a")[0].value)


def test_batch_applies_params_tags_artifacts_inputs_and_updates(store) -> None:
    rid = _run(store)
    ds = DatasetInput("train", "train", "f" * 64, 10, (("x", "float64"),), "pandas.DataFrame")
    store.write(WriteBatch(
        params=[(rid, "p", "1"), (rid, "p", "1")],
        tags=[(rid, "t", "a"), (rid, "t", "b")],
        artifacts=[(rid, "a.txt", "0" * 64, 3, time.time())],
        inputs=[(rid, ds)],
        updates=[(rid, {"status": "FINISHED", "end_time": time.time()})],
    ))
    run = store.get_run(rid)
    assert run.params == {"p": "1"}
    assert run.tags == {"t": "b"}, "the last tag value wins"
    assert [a.path for a in run.artifacts] == ["a.txt"]
    assert run.inputs == (ds,)
    assert run.status is RunStatus.FINISHED
    assert store.referenced_digests() == {"0" * 64}


def test_artifact_clash_finds_a_name_that_is_both_a_file_and_a_folder(store) -> None:
    """What the tracking client asks before it accepts an artifact name (LIKE and range characters included)."""
    rid, other = _run(store), _run(store)
    names = ["a", "x/b", "p_q%r/s", "deep/er/file.txt", "c!d"]
    store.write(WriteBatch(artifacts=[(rid, n, "0" * 64, 1, 0.0) for n in names] + [(other, "free", "0" * 64, 1, 0.0)]))
    assert store.artifact_clash(rid, ["a/b"]) == ("a", "a/b")
    assert store.artifact_clash(rid, ["x"]) == ("x/b", "x")
    assert store.artifact_clash(rid, ["deep/er"]) == ("deep/er/file.txt", "deep/er")
    assert store.artifact_clash(rid, ["deep/er/file.txt/more"]) == ("deep/er/file.txt", "deep/er/file.txt/more")
    assert store.artifact_clash(rid, ["ok", "a/b"]) == ("a", "a/b")
    assert store.artifact_clash(rid, ["p_q%r"]) == ("p_q%r/s", "p_q%r")
    for fits in (["a"], ["x/c"], ["ab/c"], ["x0"], ["pxqyr"], ["p_q"], ["c"], ["c!d"], ["deep/other"], ["free/x"], []):
        assert store.artifact_clash(rid, fits) is None, fits


def test_stale_heartbeat_marks_run_lost_but_fresh_ones_stay_running(store) -> None:
    old = _run(store, start=time.time() - 500)
    fresh = _run(store)
    store.heartbeat([fresh], time.time())
    assert store.mark_lost(time.time() - 60) == 1
    assert store.get_run(old).status is RunStatus.LOST
    assert store.get_run(old).end_time is not None
    assert store.get_run(fresh).status is RunStatus.RUNNING
    assert store.mark_lost(time.time() - 60) == 0


def test_resolve_run_id_by_prefix(store) -> None:
    rid = _run(store)
    assert store.resolve_run_id(rid[:10]) == rid
    assert store.resolve_run_id(rid.upper()) == rid
    with pytest.raises(NotFoundError):
        store.resolve_run_id("f" * 32 if not rid.startswith("f") else "e" * 32)
    with pytest.raises(NotFoundError):
        store.resolve_run_id("not-hex")


def test_ambiguous_prefix_is_an_error(store) -> None:
    exp = store.get_or_create_experiment("e")
    for suffix in ("1", "2"):
        store.create_run(NewRun(id="ab" * 15 + "0" + suffix, experiment_id=exp.id, name="x", start_time=time.time()))
    with pytest.raises(InvalidInputError, match="ambiguous"):
        store.resolve_run_id("abab")


def test_delete_run_removes_children_and_records(store) -> None:
    parent = _run(store)
    child = _run(store, parent_id=parent)
    store.write(WriteBatch(metrics=[(child, "m", 1.0, 0, time.time())], artifacts=[(child, "x", "1" * 64, 1, 0.0)]))
    assert store.delete_run(parent, dry_run=True) == [parent, child]
    assert store.get_run(child).metrics == {"m": 1.0}, "a dry run deletes nothing"
    assert store.delete_run(parent) == [parent, child]
    for rid in (parent, child):
        with pytest.raises(NotFoundError):
            store.get_run(rid)
    assert store.referenced_digests() == set()


@pytest.fixture
def populated(store):
    t0 = time.time() - 1000
    ids = {}
    rows = [("rf", 0.91, "risk", "a"), ("lr", 0.85, "risk", "b"), ("rf", 0.75, "ops", "c"), ("gbm", math.nan, "ops", "d")]
    for i, (model, auc, team, name) in enumerate(rows):
        rid = _run(store, experiment="churn" if i < 3 else "other", name=name, start=t0 + i,
                   params={"model": model, "C": str(i)}, tags={"team": team})
        store.write(WriteBatch(metrics=[(rid, "auc", auc, 0, t0 + i), (rid, "val loss", 1 - (auc if auc == auc else 0), 0, t0 + i)]))
        ids[name] = rid
    store.write(WriteBatch(updates=[(ids["c"], {"status": "FAILED"})]))
    return store, ids


def _names(runs) -> list[str]:
    return [r.name for r in runs]


@pytest.mark.parametrize(
    ("flt", "order", "expected"),
    [
        (None, None, ["d", "c", "b", "a"]),
        ("metrics.auc > 0.8", ["metrics.auc DESC"], ["a", "b"]),
        ("metrics.auc > 0.8 and params.model = 'rf' and tags.team != 'x'", None, ["a"]),
        (None, ["metrics.auc ASC"], ["c", "b", "a", "d"]),
        (None, ["metrics.auc DESC"], ["a", "b", "c", "d"]),
        ("params.model in ('rf', 'gbm')", ["name"], ["a", "c", "d"]),
        ("params.model not in ('rf')", ["name DESC"], ["d", "b"]),
        ("status = 'failed'", None, ["c"]),
        ("status = 'FAILED' or metrics.auc >= 0.91", ["name"], ["a", "c"]),
        ("not (tags.team = 'risk')", ["name"], ["c", "d"]),
        ("name like 'a%' or name like 'b%'", ["name"], ["a", "b"]),
        ("metrics.`val loss` < 0.1", None, ["a"]),
        ("metrics.missing is null", ["name"], ["a", "b", "c", "d"]),
        ("metrics.auc = nan", None, ["d"]),
        ("experiment = 'other'", None, ["d"]),
        ("params.C = 1", None, ["b"]),
        ("metrics.auc = nan", ["metrics.auc DESC"], ["d"]),
        ("metrics.auc != nan", ["metrics.auc ASC"], ["c", "b", "a"]),
        ("metrics.auc in (0.75, 0.91)", ["metrics.auc DESC"], ["a", "c"]),
        ("metrics.auc < 0.9 and params.model != 'x'", ["metrics.auc DESC", "name"], ["b", "c"]),
    ],
)
def test_search_filters_and_orders(populated, flt, order, expected) -> None:
    store, _ = populated
    assert _names(store.search_runs(filter=flt, order_by=order)) == expected
    assert store.count_runs(filter=flt) == len(expected)  # what a table of every result shows as its size


def test_the_keys_a_filter_can_name_are_listed_per_experiment(populated) -> None:
    store, _ = populated
    assert store.run_keys(["churn"]) == {"params": ["C", "model"], "metrics": ["auc", "val loss"], "tags": ["team"]}
    assert store.run_keys(["no such experiment"]) == {"params": [], "metrics": [], "tags": []}
    run = _run(store, experiment="other", params={"rare": "1"}, start=1.0)  # the oldest run: sampled from that end too
    store.write(WriteBatch(metrics=[(run, "rare_metric", 1.0, 0, 1.0)]))
    for _ in range(3):
        _run(store, experiment="other")
    keys = store.run_keys(["other"], sample=1)  # the newest run (no keys) and the oldest, not run d in between
    assert keys == {"params": ["rare"], "metrics": ["rare_metric"], "tags": []}


def test_a_count_is_of_the_experiments_named_and_refuses_a_bad_filter(populated) -> None:
    store, _ = populated
    assert store.count_runs() == 4 and store.count_runs(["churn"]) == 3 and store.count_runs(["churn", "other"]) == 4
    assert store.count_runs(["churn"], "metrics.auc > 0.8") == 2 and store.count_runs(["no such experiment"]) == 0
    with pytest.raises(InvalidInputError, match=r"metrics\.auc >"):
        store.count_runs(filter="metrics.auc >")


def test_search_restricts_to_experiments_and_limits(populated) -> None:
    store, _ids = populated
    assert _names(store.search_runs(["churn"], order_by=["name"])) == ["a", "b", "c"]
    assert _names(store.search_runs(["churn"], order_by=["name"], limit=2)) == ["a", "b"]
    assert _names(store.search_runs(["churn"], order_by=["name"], limit=2, offset=2)) == ["c"]
    runs = store.search_runs(["churn"], filter="metrics.auc > 0.9")
    assert runs[0].params == {"model": "rf", "C": "0"} and runs[0].metrics["auc"] == 0.91


def test_a_search_sees_an_experiment_another_client_created_after_it(store_uri: str) -> None:
    first, second = _open(store_uri), _open(store_uri)
    try:
        assert first.search_runs(["late"], order_by=["name"]) == []
        assert first.search_runs(["late", "early"]) == []
        _run(second, experiment="late", name="x")
        _run(second, experiment="early", name="y")
        assert _names(first.search_runs(["late"], order_by=["name"])) == ["x"]
        assert _names(first.search_runs(["late", "early"], order_by=["name"])) == ["x", "y"]
    finally:
        first.close()
        second.close()


@pytest.mark.parametrize("flt", ["metrics.auc >", "foo = 1", "metrics.auc > 'x'", "params.a = 1 params.b = 2", "(metrics.a > 1"])
def test_bad_filters_raise_clear_errors(populated, flt) -> None:
    store, _ = populated
    with pytest.raises(FilterSyntaxError, match="position"):
        store.search_runs(filter=flt)


def test_environment_is_stored_once(store) -> None:
    exp = store.get_or_create_experiment("e")
    env = {"python": "3.11", "packages": {"numpy": "2.0"}}
    env_id = hash_json(env)  # an environment is kept under the hash of its contents (a server checks it)
    for _ in range(2):
        store.create_run(NewRun(id=uuid.uuid4().hex, experiment_id=exp.id, name="x", start_time=time.time(),
                                context=RunContext(environment_id=env_id), environment=env))
    assert store.get_environment(env_id) == env


_DOUBLES = {"score": 10.544229225295952, "tenth": 0.1, "one": 1.0, "three": 3.0, "third": 1 / 3, "tiny": 5e-324,
            "smallest_normal": 2.2250738585072014e-308, "largest": 1.7976931348623157e308, "negative_zero": -0.0,
            "big_integer": 1e22, "odd_integer": 123456789012345680.0, "nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def _same(a: dict[str, float], b: dict[str, float]) -> bool:
    return a.keys() == b.keys() and all(x == b[k] or (math.isnan(x) and math.isnan(b[k])) for k, x in a.items())


def _bits(metrics: dict[str, Any]) -> dict[str, Any]:
    """Metrics as their exact bits (a double's sign too: -0.0 is not 0.0 here), other values as they are."""
    import struct

    return {k: struct.pack("<d", v) if isinstance(v, float) else v for k, v in metrics.items()}


def test_search_returns_metrics_at_full_precision(store) -> None:
    """Every double comes back from a search as the same double (as from get_run): with the run's first batch, in a
    later batch, and after a later batch of an older step."""
    t = time.time()
    first = uuid.uuid4().hex
    store.write(WriteBatch(runs=[NewRun(id=first, experiment_id=store.get_or_create_experiment("exp").id, name="first", start_time=t)],
                           metrics=[(first, k, v, 0, t) for k, v in _DOUBLES.items()]))
    later = _run(store)
    store.write(WriteBatch(metrics=[(later, k, 2.5, 0, t) for k in _DOUBLES]))
    store.write(WriteBatch(metrics=[(later, k, v, 1, t) for k, v in _DOUBLES.items()]))
    store.write(WriteBatch(metrics=[(later, k, 7.0, 0, t + 1) for k in _DOUBLES]))  # an older step: not the latest
    found = {r.id: r.metrics for r in store.search_runs(["exp"])}
    for rid in (first, later):
        assert _same(found[rid], _DOUBLES) and _bits(found[rid]) == _bits(store.get_run(rid).metrics)
    assert all(type(v) is float for rid in (first, later) for v in found[rid].values())
    page = store.search_page(["exp"], "metrics.score > 10", ["metrics.largest DESC"])
    assert len(page) == 2 and all(_same(m, _DOUBLES) for m in page.metrics)
    whole = _run(store, "whole")  # whole numbers only (a page of its own), written after the run: still doubles
    store.write(WriteBatch(metrics=[(whole, "one", 1.0, 0, t), (whole, "big", 1e22, 0, t)]))
    metrics, = (r.metrics for r in store.search_runs(["whole"]))
    assert metrics == {"one": 1.0, "big": 1e22} and all(type(v) is float for v in metrics.values())
    engine = getattr(store, "engine", None)
    if engine is not None:  # a SQL store: a page read every run's metrics from runs.latest, none from the table
        import sqlalchemy as sa

        with engine.connect() as conn:
            kept = dict(conn.execute(sa.text("SELECT id, latest FROM runs WHERE id IN (:a, :b, :c)"),
                                     {"a": first, "b": later, "c": whole}).all())
        assert None not in kept.values() and len(kept) == 3, kept


def test_a_search_page_is_one_statement_and_another_writers_row_is_read_from_the_table(tmp_path) -> None:
    """SQLite, where the statements can be traced: a page of runs is one statement (each run carries its latest
    metrics); a run whose metrics another writer changed behind modelcycle's back costs a second one, for it alone."""
    import sqlalchemy as sa

    store = _open(f"sqlite:///{tmp_path / 'trace.db'}")
    try:
        runs = [_run(store) for _ in range(3)]
        store.write(WriteBatch(metrics=[(r, "auc", 0.5 + i / 10, 0, time.time()) for i, r in enumerate(runs)]))
        statements: list[str] = []
        sa.event.listen(store.engine, "connect", lambda dbapi, _record: dbapi.set_trace_callback(statements.append))
        store.engine.dispose()  # pooled connections made again, traced

        def searched(first: float) -> list[str]:
            statements.clear()
            found = {r.id: r.metrics for r in store.search_runs(["exp"], "metrics.auc > 0", ["metrics.auc DESC"])}
            assert found == {r: {"auc": first if i == 0 else 0.5 + i / 10} for i, r in enumerate(runs)}
            return [x for x in statements if x.lstrip().upper().startswith("SELECT")]

        assert len(searched(0.5)) == 1
        with store.engine.begin() as conn:  # another writer: a row runs.latest does not hold
            conn.exec_driver_sql("UPDATE latest_metrics SET value = 0.25 WHERE run_id = ?", (runs[0],))
        selects = searched(0.25)
        assert len(selects) == 2 and "json_each" in selects[1] and runs[0] in selects[1] and runs[1] not in selects[1]
    finally:
        store.close()


def test_a_postgresql_connection_plans_a_search_once(store_uri: str) -> None:
    """PostgreSQL keeps the plan of a search page per connection (it re-planned it at every call otherwise)."""
    if not store_uri.startswith("postgresql"):
        pytest.skip("PostgreSQL's plan cache")
    store = _open(store_uri)
    try:
        rid = _run(store)
        store.write(WriteBatch(metrics=[(rid, "auc", 0.5, 0, time.time())]))
        for _ in range(8):
            store.search_page(["exp"], "metrics.auc > 0", ["metrics.auc DESC"])
        plans = store._read(lambda conn: conn.connection.driver_connection.execute(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement LIKE 'SELECT runs.id%'").fetchall())
        assert plans and sum(custom for _, custom in plans) == 0 and sum(generic for generic, _ in plans) >= 1, plans
    finally:
        store.close()


def test_sqlite_synchronous_level_is_applied(tmp_path) -> None:
    from modelcycle.store.metadata.sql import SqlMetadataStore

    for level, code in (("normal", 1), ("full", 2)):
        s = SqlMetadataStore(f"sqlite:///{tmp_path / level}.db", sqlite_sync=level)
        with s.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == code
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        s.close()


def test_a_stored_window_is_never_replaced_by_a_partial_view(store) -> None:
    """Hosts that have seen fewer of the log's files (a laptop before a replica's spool arrived) summarise
    fewer rows: their summary never overwrites a fuller one; one of as many rows or more replaces it."""
    def window(rows: int, sources: str) -> dict:
        return {"start": 3600.0, "rows": rows, "sources": sources, "profile": None, "summary": {"rows": rows}, "computed_at": 1.0}

    store.window_put("churn", "champion", 3600, [window(366, "both replicas")])
    store.window_put("churn", "champion", 3600, [window(0, "a laptop with no files")])
    store.window_put("churn", "champion", 3600, [window(361, "one replica")])
    assert store.window_get("churn", "champion", 3600, [3600.0])[3600.0]["sources"] == "both replicas"
    store.window_put("churn", "champion", 3600, [window(366, "merged files")])  # the same rows, after compaction
    assert store.window_get("churn", "champion", 3600, [3600.0])[3600.0]["sources"] == "merged files"
    store.window_put("churn", "champion", 3600, [window(400, "a late spool arrived")])
    got = store.window_get("churn", "champion", 3600, [3600.0])[3600.0]
    assert got["rows"] == 400 and got["summary"] == {"rows": 400}
    sketch = bytes(range(256))  # a profile is serialised sketches: any bytes, not text
    store.window_put("churn", "champion", 3600, [{**window(500, "with a profile"), "profile": sketch}])
    assert store.window_get("churn", "champion", 3600, [3600.0])[3600.0]["profile"] == sketch
    for seconds, bad in ((3600, {"start": math.inf}), (3600, {"start": math.nan}), (-60, {}), (0, {}), (3600, {"rows": -1}),
                         (3600, {"computed_at": -1e300})):
        with pytest.raises(InvalidInputError):
            store.window_put("churn", "champion", seconds, [{**window(900, "wrong"), **bad}])
    for bad in ({"raised_at": math.inf}, {"raised_at": 1.0, "window_start": -math.inf}):
        with pytest.raises(InvalidInputError):
            store.alert_raise({"id": "a-wrong", "model": "churn", "rule": "drift", "message": "m", "raised_at": 1.0, **bad})
    assert store.window_get("churn", "champion", 3600, [3600.0])[3600.0]["rows"] == 500 and not store.alert_list(model="churn")


def test_the_histories_of_many_runs_come_in_one_call(store) -> None:
    """What a comparison's chart reads: one metric's points for many runs at once, in step order, NaN kept."""
    a, b, c = _run(store), _run(store), _run(store)
    store.write(WriteBatch(metrics=[(a, "loss", 1.0 / (s + 1), s, 10.0 + s) for s in reversed(range(50))]
                           + [(b, "loss", math.nan, 0, 1.0), (b, "loss", 0.5, 1, 2.0), (c, "auc", 0.9, 0, 1.0)]))
    got = store.metric_histories([a, b, c, "0" * 32], "loss")
    assert set(got) == {a, b}  # a run without the metric has no entry
    assert got[a] == (list(range(50)), [1.0 / (s + 1) for s in range(50)])
    assert got[b][0] == [0, 1] and got[b][1][1] == 0.5 and math.isnan(got[b][1][0])
    with pytest.raises(InvalidInputError, match="1,000"):
        store.metric_histories([a] * 1001, "loss")


def test_windows_are_listed_over_time_for_a_chart(store) -> None:
    """What the UI's production page draws: a model's windows in a time range, oldest first, the newest when cut."""
    def window(start: float, rows: int) -> dict:
        return {"start": start, "rows": rows, "sources": "s", "profile": b"sketch", "summary": {"rows": rows, "drift": {"share": 0.5}},
                "computed_at": 1.0}

    store.window_put("churn", "champion", 60, [window(60.0 * i, i) for i in range(1, 11)])
    store.window_put("churn", "shadow", 60, [window(60.0, 99)])
    store.window_put("fraud", "champion", 60, [window(60.0, 7)])
    listed = store.window_list("churn")
    assert [w["start"] for w in listed] == [60.0 * i for i in range(1, 11)] and listed[0]["summary"]["drift"] == {"share": 0.5}
    assert set(listed[0]) == {"start", "seconds", "rows", "summary", "computed_at"}  # no profile bytes
    assert [w["rows"] for w in store.window_list("churn", start=180.0, end=360.0)] == [3, 4, 5]
    assert [w["rows"] for w in store.window_list("churn", limit=2)] == [9, 10]
    assert [w["rows"] for w in store.window_list("churn", role="shadow")] == [99] and store.window_list("nothing") == []
    with pytest.raises(InvalidInputError, match="limit"):
        store.window_list("churn", limit=0)


def test_a_large_batch_with_repeated_keys_is_stored_whole(store) -> None:
    """Batches go to PostgreSQL as multi-row statements: thousands of rows, a param given twice (the first value
    stays), a tag set twice (the last wins), a metric logged at many steps (the latest is the highest step), NaN."""
    run_id = _run(store)
    other = _run(store)
    metrics = [(run_id, f"m{i % 7}", float(i), i, 1000.0 + i) for i in range(2500)] + [(other, "loss", math.nan, 0, 1.0)]
    store.write(WriteBatch(metrics=metrics, params=[(run_id, "C", "1"), (run_id, "C", "2"), (other, "C", "3")],
                           tags=[(run_id, "team", "a"), (run_id, "team", "b")]))
    run = store.get_run(run_id)
    assert run.params == {"C": "1"} and run.tags["team"] == "b"
    assert run.metrics["m0"] == 2499.0 and run.metrics["m6"] == 2498.0
    assert len(store.get_metric_history(run_id, "m3")) == len(range(3, 2500, 7))
    assert math.isnan(store.get_run(other).metrics["loss"]) and store.get_run(other).params == {"C": "3"}


def test_a_search_page_carries_the_params_and_tags_every_write_left(store) -> None:
    """A page reads each run's params and tags from one record the writes keep: created with the run, a param's
    first value kept, a tag's last value winning, across batches, with quotes, unicode and JSON-looking text."""
    rid = _run(store, params={"C": "1.0", "q": 'say "hi"'}, tags={"team": "risk"})
    bare = _run(store)
    store.write(WriteBatch(params=[(rid, "C", "2.0"), (rid, "kernel", "rbf"), (rid, "kernel", "linear")],
                           tags=[(rid, "team", "fraud"), (rid, "ünï", "{\"a\": [1]}")]))
    store.write(WriteBatch(tags=[(rid, "team", "growth"), (bare, "only", "tag")]))
    pages = {r.id: r for r in store.search_runs()}
    for run_id in (rid, bare):
        run = store.get_run(run_id)
        assert (pages[run_id].params, pages[run_id].tags) == (run.params, run.tags)
    assert pages[rid].params == {"C": "1.0", "q": 'say "hi"', "kernel": "rbf"}
    assert pages[rid].tags == {"team": "growth", "ünï": "{\"a\": [1]}"}
    assert (pages[bare].params, pages[bare].tags) == ({}, {"only": "tag"})


def test_concurrent_writers_to_one_run_lose_no_tag(store_uri: str) -> None:
    """Several clients tag one run at once (each its own connection): every tag is in the search page's record, and the
    latest value of every metric (the highest step) whatever order the writes came in."""
    now = time.time()
    from concurrent.futures import ThreadPoolExecutor

    first = _open(store_uri)
    rid = _run(first)
    stores = [_open(store_uri) for _ in range(4)]

    def tag(i: int) -> None:
        s = stores[i % len(stores)]
        s.write(WriteBatch(tags=[(rid, f"t{i}", str(i))], params=[(rid, f"p{i}", str(i))],
                           metrics=[(rid, f"m{i % 7}", i / 7, i, now), (rid, "shared", i / 3, i, now)]))

    try:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(tag, range(60)))
        page, = first.search_runs()
        last = {i % 7: i for i in range(60)}  # the highest step of each key
        assert page.metrics == first.get_run(rid).metrics == {**{f"m{k}": i / 7 for k, i in last.items()}, "shared": 59 / 3}
        assert page.tags == {f"t{i}": str(i) for i in range(60)}
        assert page.params == {f"p{i}": str(i) for i in range(60)}
    finally:
        for s in (first, *stores):
            s.close()


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_rows_written_by_a_writer_that_keeps_no_record_are_searched(kind: str, _sql_store_uri: Any) -> None:
    """A process of an earlier modelcycle, still running after another one upgraded the store, writes runs, params and
    tags as plain rows (and knows nothing of runs.records): a search page shows them, as get_run does."""
    import sqlalchemy as sa

    made = _sql_store_uri(kind)  # the generator drops its database when it ends: kept until the test has
    uri = next(made)
    store = _open(uri)
    try:
        mine = _run(store, params={"C": "1"}, tags={"team": "a"})
        exp = store.get_experiment("exp").id
        engine = sa.create_engine(uri.replace("postgresql://", "postgresql+psycopg://"))
        old = uuid.uuid4().hex
        upsert = ("INSERT INTO tags (run_id, key, value) VALUES (:r, :k, :v) "
                  "ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value")
        with engine.begin() as conn:  # what 0.1's writer sends: no records column
            conn.execute(sa.text("INSERT INTO runs (id, experiment_id, name, status, start_time) "
                                 "VALUES (:id, :e, 'old', 'RUNNING', :t)"), {"id": old, "e": exp, "t": time.time()})
            conn.execute(sa.text("INSERT INTO params (run_id, key, value) VALUES (:r, 'alpha', '0.1'), (:r, 'q', 'x\"y')"),
                         {"r": old})
            conn.execute(sa.text("INSERT INTO params (run_id, key, value) VALUES (:r, 'C', '2') ON CONFLICT DO NOTHING"),
                         {"r": mine})  # a second value of a param: the first stays
            conn.execute(sa.text("INSERT INTO params (run_id, key, value) VALUES (:r, 'new', '3')"), {"r": mine})
            for r, k, v in ((old, "team", "b"), (mine, "team", "c"), (mine, "ünï", "{}")):
                conn.execute(sa.text(upsert), {"r": r, "k": k, "v": v})
            latest = ("INSERT INTO latest_metrics (run_id, key, value, step, timestamp) VALUES (:r, :k, :v, :s, 0) "
                      "ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value, step = excluded.step "
                      "WHERE excluded.step >= latest_metrics.step")
            for r, k, v, step in ((old, "auc", 0.1, 0), (old, "nan", None, 0), (mine, "auc", 1 / 3, 1), (mine, "auc", 0.5, 0),
                                  (mine, "loss", 2.0, 0)):
                conn.execute(sa.text(latest), {"r": r, "k": k, "v": v, "s": step})
        engine.dispose()
        pages = {r.id: r for r in store.search_runs(["exp"])}
        for run_id in (mine, old):
            run = store.get_run(run_id)
            assert (pages[run_id].params, pages[run_id].tags) == (run.params, run.tags)
            assert _same(pages[run_id].metrics, run.metrics)
        assert pages[mine].metrics == {"auc": 1 / 3, "loss": 2.0} and math.isnan(pages[old].metrics["nan"])
        assert pages[old].params == {"alpha": "0.1", "q": 'x"y'} and pages[old].tags == {"team": "b"}
        assert pages[mine].params == {"C": "1", "new": "3"} and pages[mine].tags == {"team": "c", "ünï": "{}"}
        assert [r.id for r in store.search_runs(["exp"], "params.alpha = '0.1' and tags.team = 'b'")] == [old]
    finally:
        store.close()
        made.close()


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_metrics_another_writer_deletes_moves_renames_or_spoils_are_searched_as_the_table_holds(kind: str,
                                                                                                 _sql_store_uri: Any) -> None:
    """Plain SQL on latest_metrics, as another tool might send it: whatever it does, a search says what get_run says,
    bit for bit, and modelcycle's next writes to those runs are searched right too."""
    import sqlalchemy as sa

    made = _sql_store_uri(kind)
    uri = next(made)
    store = _open(uri)
    engine = sa.create_engine(uri.replace("postgresql://", "postgresql+psycopg://"))

    def sql(statement: str, **values: Any) -> None:
        with engine.begin() as conn:
            conn.execute(sa.text(statement), values)

    def check() -> None:
        pages = {r.id: r.metrics for r in store.search_runs(["exp"])}
        for rid in runs:
            assert _bits(pages[rid]) == _bits(store.get_run(rid).metrics), rid

    try:
        runs = [_run(store) for _ in range(6)]
        store.write(WriteBatch(metrics=[(r, k, v, 0, 1.0) for r in runs for k, v in
                                        (("a", 1.0), ("b", 2.0), ("c", 3.0), ("zero", -0.0))]))
        check()
        sql("DELETE FROM latest_metrics WHERE run_id = :r AND key = 'a'", r=runs[0])
        check()
        store.write(WriteBatch(metrics=[(runs[0], "d", 4.0, 0, 1.0)]))  # after a delete: every key the table holds
        check()
        sql("UPDATE latest_metrics SET key = 'renamed' WHERE run_id = :r AND key = 'b'", r=runs[1])
        sql("UPDATE latest_metrics SET run_id = :to, key = 'moved' WHERE run_id = :r AND key = 'c'", r=runs[2], to=runs[3])
        sql("UPDATE latest_metrics SET value = :v WHERE run_id = :r AND key = 'a'", r=runs[4], v=-0.0)
        check()
        if kind == "postgresql":
            sql("UPDATE latest_metrics SET value = 'NaN' WHERE run_id = :r AND key = 'a'", r=runs[5])
            check()
            assert math.isnan(store.search_runs(["exp"], f"run_id = '{runs[5]}'")[0].metrics["a"])
        else:  # a value that is not a number: the run's metrics are read from the table, writes go on
            sql("UPDATE latest_metrics SET value = 'n/a' WHERE run_id = :r AND key = 'a'", r=runs[5])
            store.write(WriteBatch(metrics=[(runs[5], "e", 5.0, 0, 1.0), (runs[4], "e", 5.0, 0, 1.0)]))
            check()
        store.write(WriteBatch(metrics=[(r, "f", 6.0, 0, 1.0) for r in runs]))
        check()
        sql("TRUNCATE latest_metrics" if kind == "postgresql" else "DELETE FROM latest_metrics")
        check()
        assert all(r.metrics == {} for r in store.search_runs(["exp"]))
        store.write(WriteBatch(metrics=[(runs[0], "g", 7.0, 0, 1.0)]))
        check()
    finally:
        store.close()
        engine.dispose()
        made.close()


def test_runs_made_and_logged_to_in_one_batch_beside_an_earlier_run_are_searched_and_followed_later(store) -> None:
    """A batch that makes runs and logs their metrics (with an earlier run's): each search row says what get_run says,
    and a plain SQL write through the store's own connections afterwards is followed (the shortcut the batch took
    for its new runs is that batch's alone)."""
    earlier = _run(store)
    store.write(WriteBatch(metrics=[(earlier, "a", 1.0, 0, 1.0)]))
    exp = store.get_or_create_experiment("exp")
    made = [uuid.uuid4().hex for _ in range(3)]
    store.write(WriteBatch(runs=[NewRun(id=r, experiment_id=exp.id, name="r", start_time=time.time()) for r in made],
                           metrics=[(r, k, v, st, 1.0) for r in [*made, earlier] for k, v, st in
                                    (("a", 2.0, 1), ("a", 3.0, 2), ("b", float("nan"), 0), ("c", -0.0, 0))]))
    pages = {r.id: r.metrics for r in store.search_runs(["exp"])}
    for rid in [*made, earlier]:
        assert _bits(pages[rid]) == _bits(store.get_run(rid).metrics), rid
        assert pages[rid]["a"] == 3.0 and math.isnan(pages[rid]["b"])
    engine = getattr(store, "engine", None)
    if engine is not None:
        import sqlalchemy as sa

        for rid in [*made, earlier]:
            with engine.begin() as conn:
                conn.execute(sa.text("UPDATE latest_metrics SET value = 9.5 WHERE run_id = :r AND key = 'a'"), {"r": rid})
        pages = {r.id: r.metrics for r in store.search_runs(["exp"])}
        assert all(pages[rid]["a"] == 9.5 for rid in [*made, earlier])


def test_a_trigger_has_one_cycle_however_many_agents_claim_it(store) -> None:
    """Two agents that see one trigger: the second claim is refused, and the store holds the first cycle only."""
    from modelcycle.entities import Cycle, CycleState

    now = time.time()

    def claim(cycle_id: str) -> bool:
        return store.cycle_claim_new(Cycle(id=cycle_id, project="p", trigger="new_data", trigger_key="data:abc",
                                           state=CycleState.TRAINING, owner=cycle_id, lease_until=now + 60,
                                           started_at=now, updated_at=now, model="m"))

    assert claim("a" * 32) is True
    assert claim("b" * 32) is False
    assert [c.id for c in store.cycle_list("p")] == ["a" * 32]


@pytest.mark.postgres
def test_a_row_another_tool_deletes_while_a_writer_adds_a_key_leaves_both_in_the_search(_sql_store_uri: Any) -> None:
    """PostgreSQL: a delete whose rebuild of the run's metrics waits for another writer's transaction (which added a key)
    makes the object from the table as it is once that writer committed, not as it was when the delete began."""
    import threading

    import psycopg

    made = _sql_store_uri("postgresql")
    uri = next(made)
    store = _open(uri)
    raw = uri.replace("postgresql+psycopg://", "postgresql://")
    try:
        rid = _run(store)
        store.write(WriteBatch(metrics=[(rid, "a", 1.0, 0, 1.0), (rid, "b", 2.0, 0, 1.0)]))
        with psycopg.connect(raw) as writer, psycopg.connect(raw) as watcher:
            writer.execute("INSERT INTO latest_metrics (run_id, key, step, timestamp, value) VALUES (%s, 'c', 0, 0, 3.0)", (rid,))
            tool = psycopg.connect(raw, autocommit=True)
            pid = tool.info.backend_pid
            deleting = threading.Thread(target=lambda: tool.execute("DELETE FROM latest_metrics WHERE run_id = %s AND key = 'a'",
                                                                    (rid,)))
            deleting.start()
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:  # until the delete's trigger waits for the writer's lock on the run
                waiting = watcher.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()
                watcher.commit()
                if waiting and waiting[0] == "Lock":
                    break
                time.sleep(0.05)
            else:
                pytest.fail("the delete never waited for the writer's lock")
            writer.commit()
            deleting.join(60)
            tool.close()
        page, = store.search_runs(["exp"])
        assert page.metrics == store.get_run(rid).metrics == {"b": 2.0, "c": 3.0}
    finally:
        store.close()
        made.close()


def test_a_run_with_thousands_of_metrics_is_searched_and_logged_to(store) -> None:
    """Past 64 KiB of text a run's metrics object is no longer kept (its metrics are read from the table): every write
    stays cheap and a search still says what get_run says."""
    rid = _run(store)
    t = time.time()
    store.write(WriteBatch(metrics=[(rid, f"class_{i:05d}_recall", i / 7, 0, t) for i in range(3000)]))
    for step in range(1, 4):
        store.write(WriteBatch(metrics=[(rid, "class_00001_recall", step / 3, step, t)]))
    page, = store.search_runs(["exp"])
    assert page.metrics == store.get_run(rid).metrics and len(page.metrics) == 3000
    assert page.metrics["class_00001_recall"] == 1.0
    engine = getattr(store, "engine", None)
    if engine is not None:
        import sqlalchemy as sa

        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT latest FROM runs WHERE id = :r"), {"r": rid}).scalar() == ""


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_a_long_read_holds_up_no_other_threads_reads_or_writes(kind: str, _sql_store_uri: Any) -> None:
    """A server's threads share one store: while one statement reads for seconds (a heavy search), another thread's
    search and write are answered."""
    from concurrent.futures import ThreadPoolExecutor

    from modelcycle.store.metadata.sql import _budget

    made = _sql_store_uri(kind)
    store = _open(next(made))
    slow = ("SELECT pg_sleep(8)" if kind == "postgresql" else  # SQLite: counting until its budget stops it, 8 s
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000000000) SELECT count(*) FROM c")

    def read_long(conn: Any) -> Any:
        raw = conn.connection.driver_connection
        with _budget(kind, raw, 8.0):
            return raw.execute(slow).fetchone()

    try:
        rid = _run(store, params={"C": "1"})
        with ThreadPoolExecutor(1) as pool:
            long = pool.submit(store._read, read_long)
            deadline = time.monotonic() + 60
            while not store._io._inside and time.monotonic() < deadline:  # the long one has started
                time.sleep(0.01)
            assert [r.id for r in store.search_runs(["exp"], "params.C = '1'")] == [rid]
            other = _run(store)
            assert {r.id for r in store.search_runs(["exp"])} == {rid, other}
            assert not long.done()  # both answered while the long read still runs
    finally:
        store.close()
        made.close()


def test_connections_the_server_closed_are_replaced_without_an_error(store_uri: str) -> None:
    """PostgreSQL ends the store's pooled connections (a restart, an idle timeout, an administrator): the next read
    and the next write succeed on new connections, at once and after the pool's idle check."""
    if not store_uri.startswith("postgresql"):
        pytest.skip("a PostgreSQL server closing its connections")
    import sqlalchemy as sa

    store = _open(store_uri)
    admin = sa.create_engine(store_uri.replace("postgresql://", "postgresql+psycopg://"))
    try:
        rid = _run(store)
        for i, first in enumerate(("read", "write", "read", "write")):
            store.search_runs()  # connections in the pool, recently used

            with admin.connect() as conn:
                killed = conn.exec_driver_sql(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()").scalar()
            assert killed >= 1
            deadline = time.monotonic() + 30
            with admin.connect() as conn:  # the server has let them go
                while conn.exec_driver_sql("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                           "AND pid <> pg_backend_pid()").scalar() and time.monotonic() < deadline:
                    time.sleep(0.05)
            if first == "write":
                store.write(WriteBatch(tags=[(rid, "after", f"{first} {i}")]))
            assert [r.id for r in store.search_runs()] == [rid]
            store.write(WriteBatch(tags=[(rid, "after", f"{first} {i}")]))
            assert store.get_run(rid).tags == {"after": f"{first} {i}"}
    finally:
        store.close()
        admin.dispose()


def test_a_refused_write_is_one_store_error_and_the_store_goes_on(store) -> None:
    """A batch the database refuses (params of a run that does not exist) is one StoreError naming the store, nothing
    of it is kept, and the next batch is written (on PostgreSQL the batch went as one pipeline)."""
    from modelcycle.errors import StoreError

    rid = _run(store)
    with pytest.raises(StoreError, match=r"write to .* failed"):
        store.write(WriteBatch(params=[(rid, "kept", "no"), ("f" * 32, "C", "1")], tags=[(rid, "t", "no")]))
    assert (store.get_run(rid).params, store.get_run(rid).tags) == ({}, {})
    store.write(WriteBatch(params=[(rid, "C", "1")]))
    assert store.search_runs()[0].params == {"C": "1"}


def test_a_new_postgresql_store_filled_at_once_is_searched_with_statistics(store_uri: str) -> None:
    """Before autovacuum has analysed a new store's tables, PostgreSQL would plan a search over thousands of runs as
    if they were a handful (a hash join of every run): the first search gathers the statistics of tables that never
    had them, and the plan walks the metric's index."""
    if not store_uri.startswith("postgresql"):
        pytest.skip("PostgreSQL's planner statistics")
    import sqlalchemy as sa

    store = _open(store_uri)
    admin = sa.create_engine(store_uri.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with admin.begin() as conn:
            for table in ("runs", "params", "tags", "latest_metrics", "experiments"):
                conn.exec_driver_sql(f"ALTER TABLE {table} SET (autovacuum_enabled = false)")
        exp = store.get_or_create_experiment("exp")
        assert store.search_runs(["exp"]) == []  # empty: nothing to learn yet
        now = time.time()
        runs = [NewRun(id=uuid.uuid4().hex, experiment_id=exp.id, name=f"r{i}", start_time=now + i, params={"i": str(i)})
                for i in range(3000)]
        for start in range(0, len(runs), 500):
            chunk = runs[start:start + 500]
            store.write(WriteBatch(runs=chunk, metrics=[(r.id, "m0", i / 3000, 0, now) for i, r in enumerate(chunk, start)]))
        page = store.search_runs(["exp"], "metrics.m0 > 0.5", ["metrics.m0 DESC"], limit=10)
        assert [r.metrics["m0"] for r in page] == [(2999 - i) / 3000 for i in range(10)]
        with admin.connect() as conn:
            analysed = conn.exec_driver_sql(
                "SELECT relname FROM pg_stat_user_tables WHERE last_analyze IS NOT NULL "
                "AND relname IN ('runs', 'latest_metrics')").scalars().all()
            assert sorted(analysed) == ["latest_metrics", "runs"]
            sql, args = store._searches[(("exp",), "metrics.m0 > 0.5", ("metrics.m0 DESC",), 10, 0)]  # as the driver got it
            plan = "\n".join(conn.exec_driver_sql("EXPLAIN " + sql, args).scalars())
        assert "ix_latest_metrics_key_value" in plan and "Hash Join" not in plan, plan
    finally:
        store.close()
        admin.dispose()


def test_a_search_past_its_time_budget_is_stopped_with_one_message(tmp_path) -> None:
    """What a server sets (SEARCH_SECONDS): a filter that scans the store again and again is stopped, the store then
    answers the next search as before. SQLite's progress handler here; PostgreSQL's statement_timeout likewise."""
    import uuid

    from modelcycle.store.metadata.sql import SqlMetadataStore

    store = SqlMetadataStore(f"sqlite:///{tmp_path / 'budget.db'}", search_timeout=0.005)
    try:
        exp = store.get_or_create_experiment("wide").id
        runs = [NewRun(id=uuid.uuid4().hex, experiment_id=exp, name=f"r{i}", start_time=float(i),
                       params={f"p{j}": str(i % 7) for j in range(10)}) for i in range(6000)]
        store.write(WriteBatch(runs=runs))
        wide = " or ".join(f"params.p{j % 10} = 'x{j}'" for j in range(50))
        for call in (lambda: store.search_page(filter=wide), lambda: store.count_runs(filter=wide)):
            with pytest.raises(InvalidInputError, match=r"took longer than 0.005 s and was stopped: narrow its filter"):
                call()
        store.search_timeout = 60.0
        assert store.count_runs(filter="params.p0 = '3'") == len([i for i in range(6000) if i % 7 == 3])
        assert len(store.search_page(filter=wide).rows) == 0
    finally:
        store.close()


def test_a_verdict_must_have_a_verdicts_shape_and_a_bad_row_never_stops_the_others(store) -> None:
    run = _run(store)
    store.create_model_version("churn", run_id=run, source="s", artifact_path="model", hash="h" * 64, flavour="sklearn",
                               created_at=1.0, created_by="me", description=None, tags={})
    for bad in ({"rows": "x"}, {"rules": "abc"}, {"rules": [1, 2]}, {"policy": []}, {"baseline_version": 1.5}, {"rows": True}):
        with pytest.raises(InvalidInputError, match="a verdict's"):
            store.save_verdict(f"v-{len(str(bad))}", "churn", 1, False, 1.0, None, bad)
    with pytest.raises(InvalidInputError, match="created_at"):
        store.save_verdict("v-time", "churn", 1, True, 1e300, None, {})
    store.save_verdict("v-good", "churn", 1, True, 2.0, None, {"rows": 10, "rules": [{"rule": "min", "passed": True}]})
    (verdict,) = store.list_verdicts("churn")
    assert verdict.rows == 10 and verdict.rules[0]["rule"] == "min"


def test_a_verdict_row_edited_by_hand_is_read_as_far_as_it_goes(tmp_path) -> None:
    from sqlalchemy import text

    from modelcycle.store.metadata.sql import SqlMetadataStore

    store = SqlMetadataStore(f"sqlite:///{tmp_path / 'v.db'}")
    try:
        run = _run(store)
        store.create_model_version("churn", run_id=run, source="s", artifact_path="model", hash="h" * 64, flavour="sklearn",
                                   created_at=1.0, created_by="me", description=None, tags={})
        store.save_verdict("v-good", "churn", 1, True, 2.0, None, {"rows": 3})
        with store.engine.begin() as conn:
            for i, data in enumerate(('{"rows": "x", "rules": "abc"}', "not json", "[1, 2]")):
                conn.execute(text("INSERT INTO verdicts (id, name, version, passed, created_at, run_id, data) "
                                  "VALUES (:id, 'churn', 1, 0, :t, NULL, :d)"), {"id": f"v-bad-{i}", "t": 3.0 + i, "d": data})
        verdicts = store.list_verdicts("churn")
        assert [v.rows for v in verdicts] == [3, 0, 0, 0] and all(v.rules == () for v in verdicts)
    finally:
        store.close()


def test_params_are_text_compared_and_sorted_as_text(store) -> None:
    """As the README says (and as MLflow does): "10" sorts before "9", and `params.n < 5` compares text."""
    for n in ("9", "10", "100"):
        _run(store, experiment="text", name=f"n{n}", params={"n": n})
    assert [r.name for r in store.search_runs(["text"], order_by=["params.n ASC"])] == ["n10", "n100", "n9"]
    assert sorted(r.name for r in store.search_runs(["text"], filter="params.n < '5'")) == ["n10", "n100"]
    assert [r.name for r in store.search_runs(["text"], filter="params.n = 10")] == ["n10"], "= with a number: its text"
    _run(store, experiment="text", name="c", params={"C": "1.0"})  # as a param logged as 1.0 is kept
    for flt, found in (("params.C = '1.0'", ["c"]), ("params.C = 1.0", ["c"]), ("params.C = 1", [])):
        assert [r.name for r in store.search_runs(["text"], filter=flt)] == found, flt
    for flt in ("params.n < 5", "tags.n >= 10", "name > 3"):  # a bare number would be compared as text: refused, saying so
        with pytest.raises(FilterSyntaxError, match=r"is text.*would compare text.*quote it"):
            store.search_runs(["text"], filter=flt)


def test_pages_of_a_metric_order_join_up_whatever_their_size(store) -> None:
    """Ordered by a metric some runs lack (or hold as NaN), pages of any size and offset are slices of the whole order."""
    values = [0.5, None, 0.9, math.nan, 0.1, None, 0.7, 0.3, math.nan]
    for i, v in enumerate(values):
        rid = _run(store, experiment="pages", name=f"r{i}", start=1000.0 + i)
        if v is not None:
            store.write(WriteBatch(metrics=[(rid, "m", v, 0, 1.0)]))
    for order in (["metrics.m DESC"], ["metrics.m ASC"], ["metrics.m DESC", "name"]):
        whole = [r.name for r in store.search_runs(["pages"], order_by=order, limit=None)]
        assert len(whole) == len(values)
        for size in (2, 4):
            for offset in (0, 1, 3, 5, 7, 9):
                assert [r.name for r in store.search_runs(["pages"], order_by=order, limit=size, offset=offset)] == \
                    whole[offset:offset + size], (order, size, offset)
    assert [r.name for r in store.search_runs(["pages"], order_by=["metrics.m DESC"], limit=None)][:4] == ["r2", "r6", "r0", "r7"]
