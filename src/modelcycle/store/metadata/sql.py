"""The metadata store on SQLAlchemy Core: SQLite (default) or PostgreSQL."""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
import numbers
import os
import random
import re
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import and_, bindparam, create_engine, event, exists, false, func, not_, or_, select, text, true, update
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, IntegrityError, OperationalError, SQLAlchemyError

from modelcycle._deps import require
from modelcycle._text import check_text
from modelcycle.entities import ArtifactInfo, DatasetInput, Experiment, Metric, Run, RunContext, RunStatus
from modelcycle.errors import (
    ConfigurationError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    StoreBusyError,
    StoreError,
    StoreRefusedError,
)
from modelcycle.store.metadata import query as q
from modelcycle.store.metadata import schema as s
from modelcycle.store.metadata.base import NewRun, RunPage, WriteBatch
from modelcycle.store.metadata.migrate import ensure_schema
from modelcycle.store.metadata.operations import OperationsTables
from modelcycle.store.metadata.pipelines import PipelineTables
from modelcycle.store.metadata.registry import RegistryTables
from modelcycle.store.metadata.users import UsersTables

__all__ = ["SqlMetadataStore"]

T = TypeVar("T")
_MANY_ROWS = 1000  # rows per multi-row statement (PostgreSQL allows 65,535 parameters)

# Every open store, so that fork waits until no thread is inside a statement: SQLite's own mutexes would be
# copied held into the child, which would then hang on its first statement.
_STORES: weakref.WeakSet[Any] = weakref.WeakSet()


# PostgreSQL: the latest-metrics rows of this statement are in runs.latest already (see migration 0009's triggers)
_LATEST_WRITTEN = "SET LOCAL modelcycle.latest_written = {}"


class _Statements:
    """Where a store's threads run statements: reads at once, each on its own connection (one user's long search
    holds up no one else's), writes one at a time (SQLite takes one writer anyway: waiting here costs less than its
    busy retries). ``acquire``/``release`` hold every statement of the store: fork takes them, so that a child never
    inherits a connection in the middle of one. Statements never wait for a fork that is waiting: one nested in another
    cannot deadlock."""

    def __init__(self) -> None:
        self._turn = threading.Condition(threading.Lock())
        self._inside = 0
        self._held = False
        self.writing = threading.RLock()

    @contextlib.contextmanager
    def statement(self) -> Iterator[None]:
        with self._turn:
            while self._held:
                self._turn.wait()
            self._inside += 1
        try:
            yield
        finally:
            with self._turn:
                self._inside -= 1
                if not self._inside:
                    self._turn.notify_all()

    def acquire(self) -> None:
        with self._turn:
            while self._inside or self._held:
                self._turn.wait()
            self._held = True

    def release(self) -> None:
        with self._turn:
            if not self._held:
                raise RuntimeError("the store's statements are not held")
            self._held = False
            self._turn.notify_all()


def _fork_before() -> None:
    for store in list(_STORES):
        store._io.acquire()


def _fork_after_in_parent() -> None:
    for store in list(_STORES):
        try:
            store._io.release()
        except RuntimeError:
            pass


def _fork_after_in_child() -> None:
    for store in list(_STORES):
        store._io = _Statements()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_fork_before, after_in_parent=_fork_after_in_parent, after_in_child=_fork_after_in_child)


def _null_to_nan(value: float | None) -> float:
    return math.nan if value is None else value


def _is_busy(exc: BaseException) -> bool:
    text = str(getattr(exc, "orig", exc)).lower()
    if "locked" in text or "busy" in text:
        return True
    code = getattr(getattr(exc, "orig", None), "sqlstate", None)
    return code in {"40001", "40P01"}  # serialization failure, deadlock


class SqlMetadataStore(RegistryTables, PipelineTables, OperationsTables, UsersTables):
    """Runs, experiments, params, metrics, tags, artifacts and datasets in a SQL database.

    SQLite runs in WAL mode; every write transaction starts with ``BEGIN IMMEDIATE`` and is
    retried while other writers hold the lock, up to ``busy_timeout`` seconds.

    Args:
        uri: ``sqlite:///path/to/modelcycle.db`` or ``postgresql+psycopg://user@host/db``.
        busy_timeout: seconds a write may wait for other writers.
        sqlite_sync: "normal" (a commit survives a process crash) or "full" (also a power cut).

    Example:
        >>> import tempfile, os
        >>> store = SqlMetadataStore("sqlite:///" + os.path.join(tempfile.mkdtemp(), "m.db"))
        >>> store.get_or_create_experiment("churn").name
        'churn'
    """

    def __init__(self, uri: str, busy_timeout: float = 60.0, sqlite_sync: str = "normal", search_timeout: float | None = None):
        if uri.startswith(("postgresql://", "postgres://")):
            uri = "postgresql+psycopg://" + uri.split("://", 1)[1]
        try:
            url = make_url(uri)
        except SQLAlchemyError:
            raise ConfigurationError(f"{uri!r} is not a database URL; use sqlite:///path/modelcycle.db") from None
        self.uri = uri
        self.display_uri = url.render_as_string(hide_password=True)
        self.dialect = url.get_backend_name()
        self.busy_timeout = busy_timeout
        self.search_timeout = search_timeout  # seconds a search or a count may take before it is stopped (a server's)
        if sqlite_sync not in ("normal", "full"):
            raise ConfigurationError(f"sqlite_sync must be 'normal' or 'full', not {sqlite_sync!r}")
        self.sqlite_sync = sqlite_sync
        self._experiment_ids: dict[str, Experiment] = {}
        self._lock = threading.Lock()
        self._io = _Statements()  # every statement runs inside it; fork holds it: a child never inherits SQLite mid-call
        _STORES.add(self)
        if self.dialect == "sqlite":
            self.engine = self._sqlite_engine(url)
            from sqlalchemy.dialects.sqlite import insert
        elif self.dialect == "postgresql":
            if url.get_driver_name() == "psycopg":
                require("psycopg", "a PostgreSQL store")  # MissingDependencyError naming modelcycle[postgres]
            try:
                self.engine = create_engine(url, pool_size=5, max_overflow=10)
            except ImportError:  # another driver named in the URL (postgresql+psycopg2://…)
                raise ConfigurationError(
                    f"PostgreSQL through {url.get_driver_name()} needs that driver installed; "
                    "or use postgresql+psycopg:// with pip install 'modelcycle[postgres]'"
                ) from None
            from sqlalchemy.dialects.postgresql import insert

            _ping_when_idle(self.engine)
            _generic_plans(self.engine)
            # a write pipeline the server ended is reported as this store's one error; psycopg's own line about
            # leaving the pipeline would only repeat it on stderr, with the connection's details
            logging.getLogger("psycopg").addFilter(_QUIET_PIPELINE)
        else:
            raise ConfigurationError(f"unsupported database {self.dialect!r}; use sqlite or postgresql")
        self._insert = insert
        mark = "?" if self.engine.dialect.paramstyle == "qmark" else "%s"
        self._metrics_sql = (
            f"INSERT INTO metrics (run_id, key, step, timestamp, value) VALUES ({', '.join([mark] * 5)})"
        )
        self._writer = self.engine.execution_options(modelcycle_write=True)
        # PostgreSQL reads in autocommit: under READ COMMITTED each statement has its own snapshot anyway, and without
        # a transaction no BEGIN is sent nor a ROLLBACK, which would drop the connection's prepared statements
        self._reader = self.engine.execution_options(isolation_level="AUTOCOMMIT") if self.dialect == "postgresql" else self.engine
        self._multi: dict[tuple[Any, ...], Any] = {}  # multi-row statements by (statement, rows), or False
        self._searches: dict[tuple[Any, ...], tuple[str, Any]] = {}  # compiled searches, for dashboards that repeat them
        self._statistics_checked = 0.0 if self.dialect == "postgresql" else math.inf  # see _gather_statistics
        self._prepare_writes()
        try:
            ensure_schema(self.engine)
        except SQLAlchemyError as e:
            raise StoreError(f"cannot open the metadata store {self.display_uri}: {_reason(e)}") from None
        except Exception as e:  # alembic: a database newer than this modelcycle
            if type(e).__name__ in ("CommandError", "ResolutionError"):
                raise StoreError(
                    f"the metadata store {self.display_uri} was written by a newer modelcycle ({e}); "
                    "upgrade modelcycle to use it"
                ) from None
            raise

    # --- connection handling ----------------------------------------------------------
    def _sqlite_engine(self, url: Any) -> Engine:
        database = url.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        # reads run at once, each on a connection of its own: a server's threads may all be reading
        pool = {"pool_size": 8, "max_overflow": 32, "pool_timeout": self.busy_timeout} if database and database != ":memory:" else {}
        engine = create_engine(
            url,
            connect_args={"timeout": self.busy_timeout, "check_same_thread": False},
            **pool,
        )
        busy_ms = int(self.busy_timeout * 1000)

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA synchronous={self.sqlite_sync.upper()}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA case_sensitive_like=ON")
            cur.execute("PRAGMA cache_size=-65536")  # 64 MiB page cache, and reads through mmap
            cur.execute("PRAGMA mmap_size=268435456")
            cur.execute(f"PRAGMA busy_timeout={busy_ms}")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            # BEGIN IMMEDIATE takes the write lock up front: a deferred transaction that reads
            # first and writes later can fail with "database is locked" despite busy_timeout.
            write = conn.get_execution_options().get("modelcycle_write")
            conn.connection.driver_connection.execute("BEGIN IMMEDIATE" if write else "BEGIN")  # type: ignore[union-attr]

        return engine

    def _write(self, fn: Callable[[Connection], T]) -> T:
        deadline = time.monotonic() + self.busy_timeout
        delay = 0.005
        reconnected = False
        while True:
            committing = False
            try:
                with self._io.statement(), self._io.writing, self._writer.begin() as conn:
                    result = fn(conn)
                    committing = True
                return result
            except (OperationalError, DBAPIError) as e:
                if e.connection_invalidated and not committing and not reconnected:
                    reconnected = True  # the server closed a pooled connection before anything was committed
                    continue
                if isinstance(e, IntegrityError):
                    raise StoreRefusedError(f"write to {self.display_uri} failed: {_reason(e)}") from None
                if not _is_busy(e):
                    raise StoreError(f"write to {self.display_uri} failed: {_reason(e)}") from None
                if time.monotonic() > deadline:
                    raise StoreBusyError(
                        f"{self.display_uri} stayed locked by other writers for {self.busy_timeout:g}s; "
                        "raise MODELCYCLE_BUSY_TIMEOUT or use PostgreSQL for many concurrent writers"
                    ) from None
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 0.25)
            except SQLAlchemyError as e:  # the pool could not get a working connection
                raise StoreError(f"write to {self.display_uri} failed: {_reason(e)}") from None

    def _read(self, fn: Callable[[Connection], T]) -> T:
        driver_error = self.engine.dialect.loaded_dbapi.Error  # searches talk to the driver directly
        for attempt in (1, 2):
            try:
                with self._io.statement(), self._reader.connect() as conn:
                    try:
                        return fn(conn)
                    except driver_error as e:
                        raise self._driver_failure(conn, e) from None
            except SQLAlchemyError as e:  # a statement failed, or the pool could not give a working connection
                if attempt == 1 and getattr(e, "connection_invalidated", False):  # the server closed it: once more
                    continue
                raise StoreError(f"read from {self.display_uri} failed: {_reason(e)}") from None
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.engine.dispose()

    # --- experiments ------------------------------------------------------------------
    def get_or_create_experiment(self, name: str) -> Experiment:
        cached = self._experiment_ids.get(name)
        if cached is not None:
            return cached

        def create(conn: Connection) -> None:
            stmt = self._insert(s.experiments).values(name=name, created_at=time.time())
            conn.execute(stmt.on_conflict_do_nothing(index_elements=["name"]))

        try:
            return self.get_experiment(name)
        except NotFoundError:
            self._write(create)
            return self.get_experiment(name)

    def get_experiment(self, name: str) -> Experiment:
        cached = self._experiment_ids.get(name)
        if cached is not None:
            return cached
        row = self._read(
            lambda c: c.execute(select(s.experiments).where(s.experiments.c.name == name)).first()
        )
        if row is None:
            raise NotFoundError(f"experiment {name!r} does not exist; `modelcycle experiments ls` lists them")
        exp = Experiment(id=row.id, name=row.name, created_at=row.created_at)
        self._experiment_ids[name] = exp
        return exp

    def list_experiments(self, counts: bool = True) -> list[Experiment]:
        """Every experiment by name; with ``counts``, each with its number of runs (a scan of the runs: a page that
        only lists the names asks without)."""
        e, r = s.experiments, s.runs
        if not counts:
            rows = self._read(lambda c: c.execute(select(e.c.id, e.c.name, e.c.created_at).order_by(e.c.name)).all())
            return [Experiment(id=x.id, name=x.name, created_at=x.created_at) for x in rows]
        stmt = (
            select(e.c.id, e.c.name, e.c.created_at, func.count(r.c.id).label("n"))
            .select_from(e.outerjoin(r, r.c.experiment_id == e.c.id))
            .group_by(e.c.id, e.c.name, e.c.created_at)
            .order_by(e.c.name)
        )
        rows = self._read(lambda c: c.execute(stmt).all())
        return [Experiment(id=x.id, name=x.name, created_at=x.created_at, run_count=x.n) for x in rows]

    # --- writes -----------------------------------------------------------------------
    def _prepare_writes(self) -> None:
        """Build every write statement once, so each execution is a compiled-cache hit."""
        ins = self._insert
        self._w_env = ins(s.environments).on_conflict_do_nothing(index_elements=["id"])
        self._w_run = s.runs.insert()
        self._w_metric = s.metrics.insert()
        self._w_param = ins(s.params).on_conflict_do_nothing(index_elements=["run_id", "key"])
        tag = ins(s.tags)
        self._w_tag = tag.on_conflict_do_update(index_elements=["run_id", "key"], set_={"value": tag.excluded.value})
        latest = ins(s.latest_metrics)
        ex, lm = latest.excluded, s.latest_metrics.c
        self._w_latest = latest.on_conflict_do_update(
            index_elements=["run_id", "key"],
            set_={"step": ex.step, "timestamp": ex.timestamp, "value": ex.value},
            where=or_(ex.step > lm.step, and_(ex.step == lm.step, ex.timestamp >= lm.timestamp)),
        )
        art = ins(s.artifacts)
        self._w_artifact = art.on_conflict_do_update(
            index_elements=["run_id", "path"],
            set_={"digest": art.excluded.digest, "size": art.excluded.size, "created_at": art.excluded.created_at},
        )
        self._w_dataset = ins(s.datasets).on_conflict_do_nothing(index_elements=["fingerprint"])
        ri = ins(s.run_inputs)
        self._w_input = ri.on_conflict_do_update(index_elements=["run_id", "name", "role"], set_={"fingerprint": ri.excluded.fingerprint})
        self._w_update = update(s.runs).where(s.runs.c.id == bindparam("run_id_"))

    def create_run(self, run: NewRun) -> None:
        self.write(WriteBatch(runs=[run]))

    def _many(self, conn: Connection, stmt: Any, rows: list[dict[str, Any]]) -> None:
        """``stmt`` for each of ``rows``. On PostgreSQL as multi-row statements (``VALUES (…), (…), …``): one
        execution on the server for a run's params instead of one per row; SQLite executes many rows cheaply."""
        if self.dialect == "sqlite":
            conn.execute(stmt, rows)
            return
        columns = tuple(rows[0])
        if any(tuple(row) != columns for row in rows):
            conn.execute(stmt, rows)
            return
        for start in range(0, len(rows), _MANY_ROWS):
            chunk = rows[start:start + _MANY_ROWS]
            shape = self._multi_sql(stmt, columns, len(chunk))
            if shape is None:
                conn.execute(stmt, chunk)
                continue
            sql, names = shape
            conn.exec_driver_sql(sql, tuple(row[n] for row in chunk for n in names))

    def _multi_sql(self, stmt: Any, columns: tuple[str, ...], n: int) -> tuple[str, list[str]] | None:
        key = (id(stmt), columns, n)
        found = self._multi.get(key)
        if found is None:
            text = str(stmt.compile(self.engine, column_keys=list(columns)))
            item = r"%\(\w+\)s(?:::[A-Z ]+(?:\(\d+\))?)?"  # a bind, with the cast the dialect adds
            m = re.search(rf"VALUES \(({item}(?:, {item})*)\)", text)
            rest = text[m.end():] if m else ""
            if m is None or "%(" in rest or "%(" in text[:m.start()]:
                self._multi[key] = False
                return None
            names = re.findall(r"%\((\w+)\)s", m.group(1))
            one = "(" + re.sub(r"%\(\w+\)s", "%s", m.group(1)) + ")"
            found = self._multi[key] = (f"{text[:m.start()]}VALUES {', '.join([one] * n)}{rest}", names)
        return found or None

    def _create_runs(self, conn: Connection, runs: list[NewRun], records: dict[str, tuple[dict[str, str], dict[str, str]]],
                     latest: Mapping[tuple[str, str], tuple[str, str, float, int, float]]) -> None:
        envs = {r.context.environment_id: r for r in runs if r.environment is not None and r.context.environment_id}
        if envs:
            self._many(conn, self._w_env, [{"id": i, "data": json.dumps(r.environment, sort_keys=True), "created_at": r.start_time}
                                           for i, r in envs.items()])
        rows = [_run_row(r) for r in runs]
        for row, r in zip(rows, runs, strict=True):  # with what the batch logs for it too: no merge afterwards
            params, tags = records.get(r.id, ({}, {}))
            row["records"] = json.dumps([{**params, **r.params}, {**r.tags, **tags}])
        new: dict[str, dict[str, float]] = {r.id: {} for r in runs}  # and the latest metrics: the triggers find them there
        for (run_id, key), m in latest.items():
            if run_id in new:
                new[run_id][key] = m[2]
        for row in rows:
            row["latest"] = _latest_text(new[row["id"]], self.dialect)
        self._many(conn, self._w_run, rows)
        params = [{"run_id": r.id, "key": k, "value": v} for r in runs for k, v in r.params.items()]
        if params:
            self._many(conn, self._w_param, params)
        tags = {(r.id, k): {"run_id": r.id, "key": k, "value": v} for r in runs for k, v in r.tags.items()}
        if tags:
            self._many(conn, self._w_tag, list(tags.values()))

    def write(self, batch: WriteBatch) -> None:
        if not batch:
            return
        self._write(lambda conn: self._apply_batch(conn, batch))

    def _apply_batch(self, conn: Connection, b: WriteBatch) -> None:
        """A batch's statements; on PostgreSQL sent in one pipeline (one round trip to the server, not one per
        statement), their errors raised as the driver's when the pipeline ends."""
        if self.dialect != "postgresql":
            self._apply(conn, b)
            return
        try:
            with conn.connection.driver_connection.pipeline():  # type: ignore[union-attr]
                self._apply(conn, b)
        except self.engine.dialect.loaded_dbapi.Error as e:
            raise self._driver_failure(conn, e) from None

    def _driver_failure(self, conn: Connection, e: Exception) -> DBAPIError:
        """An error the driver raised itself (a search's statements, a write pipeline) as SQLAlchemy would have
        wrapped it; a lost connection is invalidated with the rest of the pool (the server restarted, or ended
        them), so that the caller's one retry gets a new one."""
        lost = self.engine.dialect.is_disconnect(e, conn.connection.dbapi_connection, None)
        if lost:
            conn.invalidate()
            self.engine.dispose(close=False)
        return DBAPIError.instance(None, None, e, self.engine.dialect.loaded_dbapi.Error,
                                   connection_invalidated=lost, dialect=self.engine.dialect)

    def _apply(self, conn: Connection, b: WriteBatch) -> None:
        records = _records_of(b) if b.params or b.tags else {}
        latest: dict[tuple[str, str], tuple[str, str, float, int, float]] = {}  # the batch's last value of each metric
        for m in b.metrics:
            key = (m[0], m[1])
            cur = latest.get(key)
            if cur is None or (m[3], m[4]) >= (cur[3], cur[4]):
                latest[key] = m
        if b.runs:
            self._create_runs(conn, b.runs, records, latest)
            if self._statistics_checked < math.inf:
                self._statistics_checked = 0.0  # the next search checks again: these runs are something to learn from
            for r in b.runs:
                records.pop(r.id, None)
        if latest and self.dialect == "sqlite":
            self._keep_latest(conn, latest, {r.id for r in b.runs})
        if b.metrics:
            # The hot path of logging: plain tuples straight to the driver, no per-row dicts.
            if self.dialect == "sqlite":
                conn.exec_driver_sql(
                    self._metrics_sql,
                    [(r, k, st, ts, None if v != v else v) for r, k, v, st, ts in b.metrics],
                )
            else:
                self._many(conn, self._w_metric, [{"run_id": r, "key": k, "step": st, "timestamp": ts, "value": None if v != v else v}
                                                  for r, k, v, st, ts in b.metrics])
            rows = [{"run_id": r, "key": k, "value": None if v != v else v, "step": st, "timestamp": ts}
                    for (r, k), (_, _, v, st, ts) in sorted(latest.items())]  # two writers of a run lock its rows in one order
            if self.dialect == "postgresql" and b.runs:
                # The runs made in this batch hold these values in runs.latest already (no other writer sees them yet):
                # PostgreSQL's triggers (migration 0009) are told so for this statement and skip the merge.
                created = {r.id for r in b.runs}
                fresh = [row for row in rows if row["run_id"] in created]
                rows = [row for row in rows if row["run_id"] not in created]
                if fresh:
                    conn.exec_driver_sql(_LATEST_WRITTEN.format("on"))
                    self._many(conn, self._w_latest, fresh)
                    conn.exec_driver_sql(_LATEST_WRITTEN.format("off"))
            if rows:
                self._many(conn, self._w_latest, rows)
        if records and self.dialect == "sqlite":
            # The runs made earlier: their records merged in place, one statement per run, before the rows, so that the
            # database's triggers (migration 0008, which keep the records of any writer) find them there and do nothing.
            # On PostgreSQL those triggers merge a statement's rows into each run's record under the run's row lock
            # (after the rows' own locks, as any writer takes them: no deadlock), so concurrent writers lose nothing.
            conn.exec_driver_sql(_MERGE_RECORDS,
                                 [(json.dumps(p), json.dumps(t), r) for r, (p, t) in sorted(records.items())])
        if b.params:
            self._many(conn, self._w_param, [{"run_id": r, "key": k, "value": v} for r, k, v in b.params])
        if b.tags:
            last = {(r, k): v for r, k, v in b.tags}  # the last value of a key wins
            self._many(conn, self._w_tag, [{"run_id": r, "key": k, "value": v} for (r, k), v in last.items()])
        if b.artifacts:
            rows = {(r, p): {"run_id": r, "path": p, "digest": d, "size": n, "created_at": t} for r, p, d, n, t in b.artifacts}
            self._many(conn, self._w_artifact, list(rows.values()))
        if b.inputs:
            now = time.time()
            datasets = {d.fingerprint: {"fingerprint": d.fingerprint, "rows": d.rows, "source": d.source, "created_at": now,
                                        "columns": json.dumps([list(c) for c in d.columns])} for _, d in b.inputs}
            self._many(conn, self._w_dataset, list(datasets.values()))
            inputs = {(r, d.name, d.role): {"run_id": r, "name": d.name, "role": d.role, "fingerprint": d.fingerprint}
                      for r, d in b.inputs}  # one statement may not update a row twice: the last one wins
            self._many(conn, self._w_input, list(inputs.values()))
        for run_id, values in b.updates:
            conn.execute(self._w_update, {"run_id_": run_id, **_run_update(values)})

    def _keep_latest(self, conn: Connection, latest: Mapping[tuple[str, str], tuple[str, str, float, int, float]],
                     created: set[str]) -> None:
        """SQLite: runs.latest of the runs the batch gives metrics to (made before it), merged by the rule of the rows'
        upsert and written before the rows, so that the triggers (migration 0009) find the rows' values there and leave
        it (SQLite's JSON cannot write a double exactly; Python can). What is read is bounded: the object (at most
        64 KiB), the rows of the batch's keys, and a run's rows only when its object is unknown and it has at most
        2,000 keys; an object grown past 64 KiB is given up ('': its metrics are read from the table)."""
        runs = sorted({run_id for run_id, _ in latest} - created)
        if not runs:
            return
        objects: dict[str, Any] = dict(conn.exec_driver_sql(_OBJECTS, (json.dumps(runs),)).all())
        kept = [r for r in runs if objects.get(r) != ""]
        if not kept:
            return
        merged: dict[str, dict[str, Any]] = {}
        for r in kept:
            try:
                found = json.loads(objects[r], parse_int=float) if objects.get(r) else None
            except ValueError:  # not JSON: made again from the table
                found = None
            if isinstance(found, dict):
                merged[r] = found
        unknown = [r for r in kept if r not in merged]
        if unknown:
            counts = dict(conn.exec_driver_sql(_COUNTS, (json.dumps(unknown),)).all())
            small = [r for r in unknown if counts.get(r, 0) <= _REBUILT]
            for r in small:
                merged[r] = {}
            for r, k, v in conn.exec_driver_sql(_ROWS, (json.dumps(small),)) if small else ():
                merged[r][k] = v
            given_up = [("", r) for r in unknown if r not in merged]
            if given_up:
                conn.exec_driver_sql("UPDATE runs SET latest = ? WHERE id = ?", given_up)
        pairs = [[r, k] for r, k in latest if r in merged]
        current = {(r, k): (st, ts) for r, k, st, ts in conn.exec_driver_sql(_PAIRS, (json.dumps(pairs),))}
        for (r, k), m in latest.items():
            if r in merged:
                cur = current.get((r, k))
                if cur is None or (m[3], m[4]) >= cur:  # what the upsert keeps
                    merged[r][k] = m[2]
        updates = []
        for r, metrics in merged.items():
            text = _latest_text(metrics, "sqlite")
            updates.append((None if text is None else text if len(text) <= _LARGEST else "", r))
        conn.exec_driver_sql("UPDATE runs SET latest = ? WHERE id = ?", updates)

    def heartbeat(self, run_ids: Iterable[str], now: float) -> None:
        ids = list(run_ids)
        if not ids:
            return
        r = s.runs.c
        stmt = update(s.runs).where(r.id.in_(ids), r.status == RunStatus.RUNNING.value).values(heartbeat_at=now)
        self._write(lambda conn: conn.execute(stmt))

    def mark_lost(self, older_than: float) -> int:
        r = s.runs.c
        stale = and_(r.status == RunStatus.RUNNING.value, r.heartbeat_at < older_than)
        if self._read(lambda c: c.execute(select(r.id).where(stale).limit(1)).first()) is None:
            return 0
        stmt = update(s.runs).where(stale).values(status=RunStatus.LOST.value, end_time=r.heartbeat_at)
        return self._write(lambda conn: conn.execute(stmt).rowcount)

    def delete_run(self, run_id: str, dry_run: bool = False) -> list[str]:
        run_id = self.resolve_run_id(run_id)

        def tx(conn: Connection) -> list[str]:
            ids, frontier = [run_id], [run_id]
            while frontier:
                frontier = list(conn.execute(select(s.runs.c.id).where(s.runs.c.parent_id.in_(frontier))).scalars())
                ids.extend(frontier)
            mv = s.model_versions
            registered = conn.execute(select(mv.c.name, mv.c.version).where(mv.c.run_id.in_(ids)).order_by(mv.c.name, mv.c.version)).all()
            if registered:
                names = ", ".join(f"{r.name}/{r.version}" for r in registered)
                raise ConflictError(f"run {run_id} made registered model versions ({names}); their packages live in the run, "
                                    "so the run cannot be deleted while they are registered")
            if dry_run:
                return ids
            for table in (s.metrics, s.latest_metrics, s.params, s.tags, s.artifacts, s.run_inputs, s.step_cache):
                conn.execute(table.delete().where(table.c.run_id.in_(ids)))
            conn.execute(s.runs.delete().where(s.runs.c.id.in_(ids)))
            return ids

        return self._read(tx) if dry_run else self._write(tx)

    # --- reads ------------------------------------------------------------------------
    def resolve_run_id(self, prefix: str) -> str:
        prefix = (prefix or "").strip().lower()
        if not prefix or not all(ch in "0123456789abcdef" for ch in prefix):
            raise NotFoundError(f"{prefix!r} is not a run id; run ids are hexadecimal, see `modelcycle runs ls`")
        r = s.runs.c
        if len(prefix) == 32:
            found = self._read(lambda c: c.execute(select(r.id).where(r.id == prefix)).scalar())
            if found:
                return found
            raise NotFoundError(f"run {prefix} does not exist")
        ids = self._read(lambda c: list(c.execute(select(r.id).where(r.id.like(prefix + "%")).limit(2)).scalars()))
        if not ids:
            raise NotFoundError(f"no run id starts with {prefix!r}")
        if len(ids) > 1:
            raise InvalidInputError(f"run id prefix {prefix!r} is ambiguous; give more characters")
        return ids[0]

    def get_run(self, run_id: str) -> Run:
        r, e = s.runs, s.experiments

        def read(conn: Connection) -> Run:
            row = conn.execute(
                select(r, e.c.name.label("experiment_name")).join(e, e.c.id == r.c.experiment_id).where(r.c.id == run_id)
            ).first()
            if row is None:
                raise NotFoundError(f"run {run_id} does not exist; `modelcycle runs ls` lists runs")
            params = dict(conn.execute(select(s.params.c.key, s.params.c.value).where(s.params.c.run_id == run_id)).all())
            tags = dict(conn.execute(select(s.tags.c.key, s.tags.c.value).where(s.tags.c.run_id == run_id)).all())
            lm = s.latest_metrics.c
            metrics = {k: _null_to_nan(v) for k, v in conn.execute(select(lm.key, lm.value).where(lm.run_id == run_id)).all()}
            a = s.artifacts.c
            arts = tuple(
                ArtifactInfo(x.path, x.digest, x.size, x.created_at)
                for x in conn.execute(select(a.path, a.digest, a.size, a.created_at).where(a.run_id == run_id).order_by(a.path))
            )
            ri, ds = s.run_inputs.c, s.datasets.c
            inputs = tuple(
                DatasetInput(x.name, x.role, x.fingerprint, x.rows, tuple(tuple(c) for c in json.loads(x.columns)), x.source)
                for x in conn.execute(
                    select(ri.name, ri.role, ri.fingerprint, ds.rows, ds.columns, ds.source)
                    .join(s.datasets, ds.fingerprint == ri.fingerprint)
                    .where(ri.run_id == run_id)
                    .order_by(ri.role, ri.name)
                )
            )
            return _run_from_row(row, params, metrics, tags, arts, inputs)

        return self._read(read)

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        m = s.metrics.c
        stmt = select(m.step, m.timestamp, m.value).where(m.run_id == run_id, m.key == key).order_by(m.step, m.timestamp, m.id)
        rows = self._read(lambda c: c.execute(stmt).all())
        return [Metric(key, _null_to_nan(v), st, ts) for st, ts, v in rows]

    def metric_histories(self, run_ids: list[str], key: str) -> dict[str, tuple[list[int], list[float]]]:
        """One metric's points for each of up to 1,000 runs, as ``(steps, values)`` in step order (points logged at one
        step in the order they were written): a comparison's chart in one call; a run without the metric has no entry."""
        if len(run_ids) > 1000:
            raise InvalidInputError(f"at most 1,000 runs at once, got {len(run_ids):,}")
        m = s.metrics.c
        out: dict[str, tuple[list[int], list[float]]] = {}
        for i in range(0, len(run_ids), 500):
            chunk = list(dict.fromkeys(run_ids[i:i + 500]))
            stmt = select(m.run_id, m.step, m.value).where(m.run_id.in_(chunk), m.key == key).order_by(m.run_id, m.step, m.id)
            compiled = stmt.compile(self.engine, compile_kwargs={"render_postcompile": True})
            args = tuple(compiled.params[n] for n in compiled.positiontup) if compiled.positional else compiled.params  # type: ignore[union-attr]

            def fetch(conn: Connection, sql: str = str(compiled), args: Any = args) -> list[Any]:  # the driver's tuples
                cur = conn.connection.driver_connection.cursor()
                try:
                    cur.execute(sql, args)
                    return cur.fetchall()
                finally:
                    cur.close()

            nan = math.nan
            for run_id, step, value in self._read(fetch):
                steps, values = out.setdefault(run_id, ([], []))
                steps.append(step)
                values.append(nan if value is None else value)
        return out

    def metric_keys(self, run_id: str) -> list[str]:
        lm = s.latest_metrics.c
        return self._read(lambda c: list(c.execute(select(lm.key).where(lm.run_id == run_id).order_by(lm.key)).scalars()))

    def get_environment(self, environment_id: str) -> dict[str, Any]:
        env = s.environments.c
        data = self._read(lambda c: c.execute(select(env.data).where(env.id == environment_id)).scalar())
        if data is None:
            raise NotFoundError(f"environment {environment_id} is not recorded")
        return json.loads(data)

    def referenced_digests(self) -> set[str]:
        return set(self._read(lambda c: list(c.execute(select(s.artifacts.c.digest).distinct()).scalars())))

    def artifact_clash(self, run_id: str, names: Iterable[str]) -> tuple[str, str] | None:
        """A stored artifact of ``run_id`` that cannot share a folder with one of ``names``, as ``(stored, new)``:
        a stored file named like a folder of a new name (``a`` for ``a/b``), or a stored name inside a folder
        that a new name would be a file of (``a/b`` for ``a``). None when every name fits.

        It runs on every artifact logged, so it is one plain statement on the ``(run_id, path)`` primary
        key: the exact paths of the new names' folders, and the range of paths under each new name.
        """
        new = sorted(set(names))
        if not new:
            return None
        parents: dict[str, str] = {}
        for name in new:
            parts = name.split("/")
            for i in range(1, len(parts)):
                parents.setdefault("/".join(parts[:i]), name)
        mark = "?" if self.engine.dialect.paramstyle == "qmark" else "%s"
        if self.dialect == "sqlite":  # binary collation: exactly the paths that start with "name/", on the index
            under, bounds = f"(path >= {mark} AND path < {mark})", lambda n: [n + "/", n + "0"]
        else:  # PostgreSQL collations do not order '/' bytewise: a LIKE on the run's own rows
            under, bounds = f"path LIKE {mark} ESCAPE '!'", lambda n: [re.sub(r"([!%_])", r"!\1", n) + "/%"]
        listed = list(parents)

        def read(conn: Connection) -> tuple[str, str] | None:
            for i in range(0, max(len(listed), len(new)), 100):
                some_parents, some_names = listed[i:i + 100], new[i:i + 100]
                terms = [f"path IN ({', '.join([mark] * len(some_parents))})"] if some_parents else []
                terms += [under] * len(some_names)
                if not terms:
                    continue
                sql = f"SELECT path FROM artifacts WHERE run_id = {mark} AND ({' OR '.join(terms)}) LIMIT 1"
                hit = conn.exec_driver_sql(sql, (run_id, *some_parents, *(b for n in some_names for b in bounds(n)))).scalar()
                if hit is not None:
                    return (hit, parents[hit]) if hit in parents else (hit, next(n for n in new if hit.startswith(n + "/")))
            return None

        return self._read(read)

    def search_runs(
        self,
        experiments: list[str] | None = None,
        filter: str | None = None,
        order_by: list[str] | None = None,
        limit: int | None = 100,
        offset: int = 0,
    ) -> list[Run]:
        return self.search_page(experiments, filter, order_by, limit, offset).runs()

    def search_page(
        self,
        experiments: list[str] | None = None,
        filter: str | None = None,
        order_by: list[str] | None = None,
        limit: int | None = 100,
        offset: int = 0,
    ) -> RunPage:
        """A page of runs in one statement: the rows with their params and tags, and their latest metrics, as JSON
        (a run whose metrics object is not kept has them read from the table, a second statement for those runs)."""
        _check_search(filter, order_by, limit, offset)
        parts = _split_on_metric(filter, tuple(order_by or ()))
        if parts is not None:  # ordered by a metric some runs lack: those with it by the index, then the others
            return self._in_two_parts(experiments, order_by, limit, offset, *parts)
        return self._page(experiments, filter, order_by, limit, offset)

    def _page(self, experiments: list[str] | None, filter: str | None, order_by: list[str] | None, limit: int | None,
              offset: int) -> RunPage:
        if self._statistics_checked < time.monotonic():
            self._gather_statistics()
        key = (tuple(experiments or ()), filter, tuple(order_by or ()), limit, offset)
        cached = self._searches.get(key)
        if cached is None:
            # Experiments are named by id (an experiment's id never changes): the planner then estimates the
            # runs from their own statistics, even where the few-row experiments table was never analysed.
            ids = self._ids_of(experiments)
            if ids == []:
                return _page([], [])
            stmt = self._search_statement(ids, filter, order_by, limit, offset)
            compiled = stmt.compile(self.engine, compile_kwargs={"render_postcompile": True})
            params = compiled.params
            args = tuple(params[n] for n in compiled.positiontup) if compiled.positional else params  # type: ignore[union-attr]
            cached = (str(compiled), args)
            if ids is None or len(ids) == len(set(experiments or ())):  # an experiment made later changes the statement
                if len(self._searches) >= 256:
                    self._searches.pop(next(iter(self._searches)))
                self._searches[key] = cached
        sql, args = cached

        return self._read(lambda conn: _page_of(self.dialect, conn.connection.driver_connection, sql, args, self.search_timeout,
                                                conn.connection.info))

    def _in_two_parts(self, experiments: list[str] | None, order_by: list[str] | None, limit: int | None, offset: int,
                      having: str, lacking: str) -> RunPage:
        """A page of runs ordered by a metric, NULL (missing or NaN) last, as two searches: the runs that have the metric,
        in the order its (key, value) index gives without sorting them all, then the runs that lack it."""
        first = self._page(experiments, having, order_by, limit, offset)
        if limit is not None and len(first) == limit:
            return first
        before = offset + len(first) if len(first) or offset == 0 else self.count_runs(experiments, having)
        rest = self._page(experiments, lacking, order_by, None if limit is None else limit - len(first), max(0, offset - before))
        return RunPage([*first.rows, *rest.rows], [*first.params, *rest.params], [*first.metrics, *rest.metrics],
                       [*first.tags, *rest.tags])

    def count_runs(self, experiments: list[str] | None = None, filter: str | None = None) -> int:
        """How many runs ``search_runs`` finds without a limit (what a table of every result needs first)."""
        if self._statistics_checked < time.monotonic():
            self._gather_statistics()
        key = ("count", tuple(experiments or ()), filter)
        cached = self._searches.get(key)
        if cached is None:
            ids = self._ids_of(experiments)
            if ids == []:
                return 0
            found = (self._search_statement(ids, filter, None, None, 0, counting=True).order_by(None).limit(None).offset(None)
                     .with_only_columns(s.runs.c.id))
            compiled = select(func.count()).select_from(found.subquery()).compile(
                self.engine, compile_kwargs={"render_postcompile": True})
            params = compiled.params
            cached = (str(compiled), tuple(params[n] for n in compiled.positiontup) if compiled.positional else params)  # type: ignore[union-attr]
            if ids is None or len(ids) == len(set(experiments or ())):  # an experiment made later changes the statement
                if len(self._searches) >= 256:
                    self._searches.pop(next(iter(self._searches)))
                self._searches[key] = cached
        sql, args = cached

        def count(conn: Connection) -> int:
            raw = conn.connection.driver_connection
            with _budget(self.dialect, raw, self.search_timeout):
                cur = raw.cursor()
                try:
                    return int(cur.execute(sql, args).fetchone()[0])
                finally:
                    cur.close()

        return self._read(count)

    def run_keys(self, experiments: list[str] | None = None, sample: int = 1000) -> dict[str, list[str]]:
        """The param, metric and tag keys of the newest and the oldest ``sample`` runs of these experiments (all when
        None): what a filter box completes and a table offers as columns, at a cost that does not grow with the store."""
        if not 1 <= sample <= 10_000:
            raise InvalidInputError(f"sample must be between 1 and 10,000, got {sample}")
        ids = self._ids_of(experiments)
        if ids == []:
            return {"params": [], "metrics": [], "tags": []}
        r = s.runs.c
        where = r.experiment_id.in_(ids) if ids is not None else true()
        newest = select(r.id, r.records).where(where).order_by(r.start_time.desc()).limit(sample)
        oldest = select(r.id, r.records).where(where).order_by(r.start_time.asc()).limit(sample)

        def read(conn: Connection) -> dict[str, list[str]]:
            rows = {row.id: row.records for stmt in (newest, oldest) for row in conn.execute(stmt)}
            params: set[str] = set()
            tags: set[str] = set()
            for records in rows.values():
                p, t = json.loads(records) if records else ({}, {})
                params.update(p)
                tags.update(t)
            lm = s.latest_metrics.c
            metrics: set[str] = set()
            run_ids = list(rows)
            for i in range(0, len(run_ids), 500):
                metrics.update(conn.execute(select(lm.key).where(lm.run_id.in_(run_ids[i:i + 500])).distinct()).scalars())
            return {"params": sorted(params)[:1000], "metrics": sorted(metrics)[:1000], "tags": sorted(tags)[:1000]}

        return self._read(read)

    def _ids_of(self, experiments: list[str] | None) -> list[int] | None:
        """The ids of the named experiments that exist (None: no names, all experiments)."""
        if not experiments:
            return None
        ids = []
        for name in dict.fromkeys(experiments):
            try:
                ids.append(self.get_experiment(name).id)
            except NotFoundError:
                pass
        return ids

    def _gather_statistics(self) -> None:
        """PostgreSQL plans a search from the tables' statistics, which autovacuum gathers only after a while (a
        minute or more): a new store filled with thousands of runs at once is searched as if it held a handful,
        hash-joining every run (30-40 ms at 10,000 runs instead of 2-3). Tables with rows that were never analysed
        are analysed here, once; later growth is autovacuum's. Checked at the first search, then, while the tables are
        empty, after this store wrote runs or a minute later."""
        tables = ("runs", "latest_metrics", "params", "tags", "experiments")
        check = text(
            "SELECT count(*) FILTER (WHERE coalesce(last_analyze, last_autoanalyze) IS NULL), count(*) "
            "FROM pg_stat_user_tables WHERE schemaname = current_schema() AND relname = ANY(:tables)"
        )

        def gather(conn: Connection) -> bool:
            never, known = conn.execute(check, {"tables": list(tables)}).one()
            if known and not never:
                return True
            if conn.execute(select(s.runs.c.id).limit(1)).first() is None:
                return False  # nothing to learn from yet
            conn.exec_driver_sql(f"ANALYZE {', '.join(tables)}")
            return True

        try:
            done = self._read(gather)
        except StoreError:  # not the tables' owner: autovacuum will do it
            done = True
        self._statistics_checked = math.inf if done else time.monotonic() + 60

    def _search_statement(
        self, experiments: list[int] | None, filter: str | None, order_by: list[str] | None, limit: int | None, offset: int,
        counting: bool = False,
    ) -> Any:
        node = q.parse_filter(filter)
        keys = q.parse_order_by(order_by)
        r, e = s.runs, s.experiments
        # a count needs the experiments only when the filter names one (the runs' own index then counts them)
        source = r if counting and not _names_experiment(node) else r.join(e, e.c.id == r.c.experiment_id)
        conditions = []
        if experiments:
            conditions.append(r.c.experiment_id.in_(list(experiments)))
        conjuncts = list(node.items) if isinstance(node, q.BoolOp) and node.op == "and" else ([node] if node else [])
        order_cols = []
        inner_joined = False
        for i, key in enumerate(keys):
            f = key.field
            if f.kind == "attribute":
                col = e.c.name if f.key == "experiment" else r.c[f.key]
            else:
                table = {"metric": s.latest_metrics, "param": s.params, "tag": s.tags}[f.kind].alias(f"o{i}")
                col = table.c.value
                # A conjunct comparing the first order metric implies it exists: join it inner and
                # filter on the joined value, so the (key, value) index drives filter and sort.
                inner = None
                if i == 0 and f.kind == "metric":
                    for c in conjuncts:
                        if isinstance(c, q.Comparison) and c.field.kind == "metric" and c.field.key == f.key \
                                and c.op in (q.COMPARE_OPS | {"in"}):
                            inner = c
                            break
                on = and_(table.c.run_id == r.c.id, table.c.key == f.key)
                if inner is not None:
                    conjuncts.remove(inner)
                    inner_joined = True
                    source = source.join(table, on)
                    conditions.append(_value_condition(col, inner))
                    if not _value_condition_keeps_null(inner):
                        # no NULL can reach the order: plain ASC/DESC, which the (key, value) index gives either way
                        order_cols.append(col.desc() if key.descending else col.asc())
                        continue
                else:
                    source = source.outerjoin(table, on)
            order_cols.append((col.desc() if key.descending else col.asc()).nulls_last())
        if not inner_joined:
            # the first metric a conjunct compares is joined too (one row per run and key, so a join is the EXISTS it
            # would be): the (key, value) index then finds the few runs a narrow condition keeps, instead of a probe
            # per run of the experiment
            for c in conjuncts:
                if isinstance(c, q.Comparison) and c.field.kind == "metric" and c.op in (q.COMPARE_OPS | {"in"}) \
                        and not _value_condition_keeps_null(c):
                    joined = s.latest_metrics.alias("f0")
                    source = source.join(joined, and_(joined.c.run_id == r.c.id, joined.c.key == c.field.key))
                    conditions.append(_value_condition(joined.c.value, c))
                    conjuncts.remove(c)
                    break
        conditions.extend(self._compile(c) for c in conjuncts)
        order_cols.extend([r.c.start_time.desc(), r.c.id])
        stmt = (
            select(*_SUMMARY, e.c.name.label("experiment_name"), r.c.records, r.c.latest)
            .select_from(source)
            .where(and_(true(), *conditions))
            .order_by(*order_cols)
            .offset(offset)
        )
        if limit is not None:
            stmt = stmt.limit(limit)
        return stmt

    def _compile(self, node: Any) -> Any:
        return compile_filter(node, self._compile_comparison)

    def _compile_comparison(self, node: q.Comparison) -> Any:
        f = node.field
        if f.kind == "attribute":
            col = s.experiments.c.name if f.key == "experiment" else s.runs.c[f.key]
            if f.key == "status":
                node = _upper_status(node)
            return _value_condition(col, node)
        table = {"metric": s.latest_metrics, "param": s.params, "tag": s.tags}[f.kind]
        present = exists().where(table.c.run_id == s.runs.c.id, table.c.key == f.key)
        if node.op == "is null":
            return not_(present)
        if node.op == "is not null":
            return present
        return present.where(_value_condition(table.c.value, node))


_NO_CONTEXT = RunContext()
_STATUS = {status.value: status for status in RunStatus}


def compile_filter(node: Any, leaf: Callable[[q.Comparison], Any]) -> Any:
    """A parsed filter as a SQL condition: ``and``/``or``/``not`` here, each comparison by ``leaf``."""
    if isinstance(node, q.BoolOp):
        parts = [compile_filter(x, leaf) for x in node.items]
        return and_(*parts) if node.op == "and" else or_(*parts)
    if isinstance(node, q.Not):
        return not_(compile_filter(node.item, leaf))
    return leaf(node)


def _upper_status(node: q.Comparison) -> q.Comparison:
    v = node.value
    if isinstance(v, str) and "like" not in node.op:
        v = v.upper()
    elif isinstance(v, tuple):
        v = tuple(x.upper() for x in v)
    return q.Comparison(node.field, node.op, v)


def _value_condition_keeps_null(node: q.Comparison) -> bool:
    """Whether the condition ``_value_condition`` builds for ``node`` can hold for a NULL value."""
    return node.op == "is null" or (node.op == "=" and isinstance(node.value, float) and math.isnan(node.value))


def _value_condition(col: Any, node: q.Comparison) -> Any:
    op, v = node.op, node.value
    if op == "is null":
        return col.is_(None)
    if op == "is not null":
        return col.is_not(None)
    if isinstance(v, float) and math.isnan(v):  # NaN is stored as NULL
        return col.is_(None) if op == "=" else col.is_not(None)
    if op == "in":
        return col.in_(list(v))
    if op == "not in":
        return col.not_in(list(v))
    if op == "like":
        return col.like(v)
    if op == "not like":
        return col.not_like(v)
    if op == "ilike":
        return col.ilike(v)
    if op == "not ilike":
        return col.not_ilike(v)
    return {
        "=": col == v, "!=": col != v, "<": col < v, "<=": col <= v, ">": col > v, ">=": col >= v,
    }.get(op, false())


def _run_row(run: NewRun) -> dict[str, Any]:
    ctx = run.context
    return {
        "id": run.id,
        "experiment_id": run.experiment_id,
        "name": run.name,
        "status": RunStatus.RUNNING.value,
        "start_time": run.start_time,
        "end_time": None,
        "heartbeat_at": run.start_time,
        "parent_id": run.parent_id,
        "error": None,
        "reproduces": run.reproduces,
        "git_commit": ctx.git_commit,
        "git_branch": ctx.git_branch,
        "git_dirty": ctx.git_dirty,
        "git_root": ctx.git_root,
        "command": json.dumps(list(ctx.command)) if ctx.command else None,
        "cwd": ctx.cwd,
        "python": ctx.python,
        "platform": ctx.platform,
        "environment_id": ctx.environment_id,
        "seed": ctx.seed,
        "session_id": ctx.session_id,
        "session_seq": ctx.session_seq,
    }


class _QuietPipeline(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("error ignored terminating <psycopg.Pipeline")


_QUIET_PIPELINE = _QuietPipeline()
_IDLE_PING = 1.0  # seconds a pooled PostgreSQL connection may idle before it is checked on its next use


def _generic_plans(engine: Engine) -> None:
    """PostgreSQL plans a prepared statement again at each execution while it thinks the values may deserve another
    plan: for a search page that planning cost more than running it (0.6 ms of 1.5). modelcycle's statements are
    searches and lookups by keys whose plans do not depend on the values (an index is chosen from the statement's shape
    and the tables' statistics), so each connection keeps the plan it made once."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi: Any, _record: Any) -> None:
        dbapi.execute("SET plan_cache_mode = force_generic_plan")
        dbapi.commit()


def _ping_when_idle(engine: Engine) -> None:
    """Check a pooled connection that has idled a while before it is used (a server restarted meanwhile): a dead one
    is replaced. Connections in steady use are not pinged, which would cost a round trip per call; if the server
    drops one of those, the read or the uncommitted write is retried once on a new connection (``_read``, ``_write``)."""

    @event.listens_for(engine, "connect")
    def _connect(_dbapi: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()  # a new connection was just checked by connecting

    @event.listens_for(engine, "checkin")
    def _checkin(_dbapi: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi: Any, record: Any, _proxy: Any) -> None:
        if time.monotonic() - record.info.get("idle_since", 0.0) < _IDLE_PING:
            return
        try:
            engine.dialect.do_ping(dbapi)
            dbapi.rollback()  # out of the transaction the ping began
        except Exception:
            raise DisconnectionError() from None  # the pool retries with a fresh connection


def _check_search(filter: Any, order_by: Any, limit: Any, offset: Any) -> None:
    """The arguments of a search as it takes them, or one clear message saying which is not."""
    if filter is not None:
        if not isinstance(filter, str):
            raise InvalidInputError(f"a filter is text such as \"metrics.auc > 0.8\", not {type(filter).__name__}")
        check_text(filter, "the filter")
    if not isinstance(order_by, list | tuple | type(None)) or not all(isinstance(o, str) for o in order_by or ()):
        raise InvalidInputError(f"order_by takes text such as \"metrics.auc DESC\" (or a list of them), not {order_by!r:.80}")
    for o in order_by or ():
        check_text(o, "order_by")
    for name, value in (("limit", limit), ("offset", offset)):
        if value is None and name == "limit":
            continue
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 0 <= value <= _MOST_RUNS:
            raise InvalidInputError(f"{name} must be a whole number of runs from 0 to {_MOST_RUNS:,}"
                                    f"{' (or None for every run)' if name == 'limit' else ''}, not {value!r:.40}")


_MOST_RUNS = 2**31 - 1


def _records_of(b: WriteBatch) -> dict[str, tuple[dict[str, str], dict[str, str]]]:
    """The params and tags a batch logs, by run, as the tables take them: a param's first value stays, a tag's last
    value wins."""
    out: dict[str, tuple[dict[str, str], dict[str, str]]] = {}
    for r, k, v in b.params:
        out.setdefault(r, ({}, {}))[0].setdefault(k, v)
    for r, k, v in b.tags:
        out.setdefault(r, ({}, {}))[1][k] = v
    return out


# a batch's params (new ones only: the first value stays) and tags (the last value wins) merged into runs.records
_MERGE_RECORDS = ("UPDATE runs SET records = json_array("
                  "json_patch(?1, coalesce(json_extract(records, '$[0]'), '{}')), "
                  "json_patch(coalesce(json_extract(records, '$[1]'), '{}'), ?2)) WHERE id = ?3")

# the columns search results carry; get_run returns everything
_SUMMARY = [s.runs.c[name] for name in (
    "id", "experiment_id", "name", "status", "start_time", "end_time", "heartbeat_at", "parent_id", "reproduces",
)]


# The latest metrics of a page's runs whose runs.latest is empty (a page reads the others' with their rows). The ids go
# in as one value (a JSON array, an array), so the statement's text never changes; each row names its run by its place
# in the list (an integer, not the run's 32-character id: building those strings for every row cost more than the
# statement itself).
_METRICS = {
    "sqlite": """SELECT j.key, m."key", m.value FROM json_each(?1) AS j JOIN latest_metrics AS m ON m.run_id = j.value""",
    # a join the planner cannot turn into a hash join over the whole table: a few index lookups, whatever its size
    "postgresql": 'SELECT j.i - 1, m."key", m.value FROM unnest(%s::text[]) WITH ORDINALITY AS j(id, i) '
                  'CROSS JOIN LATERAL (SELECT "key", value FROM latest_metrics WHERE run_id = j.id OFFSET 0) AS m',
}
# SQLite's runs.latest: the objects of some runs, the rows of (run, key) pairs, a run's rows and their count
_OBJECTS = "SELECT id, latest FROM runs WHERE id IN (SELECT value FROM json_each(?))"
_PAIRS = ("SELECT m.run_id, m.key, m.step, m.timestamp FROM json_each(?) AS j JOIN latest_metrics AS m "
          "ON m.run_id = json_extract(j.value, '$[0]') AND m.key = json_extract(j.value, '$[1]')")
_COUNTS = "SELECT run_id, count(*) FROM latest_metrics WHERE run_id IN (SELECT value FROM json_each(?)) GROUP BY run_id"
_ROWS = "SELECT run_id, key, value FROM latest_metrics WHERE run_id IN (SELECT value FROM json_each(?))"
_LARGEST, _REBUILT = 65_536, 2_000  # as migration 0009: the largest object kept (characters), the most keys made again


_UPDATABLE = frozenset({"status", "end_time", "error", "seed"})  # what a batch may change of a run once it exists
_STATUSES = frozenset(st.value for st in RunStatus)


def _run_update(values: dict[str, Any]) -> dict[str, Any]:
    """A batch's update of a run, checked: a run's experiment, id, times of start or record are never rewritten."""
    other = set(values) - _UPDATABLE
    if other or not values:
        raise InvalidInputError(f"a run update may set {', '.join(sorted(_UPDATABLE))}, not {', '.join(sorted(other)) or 'nothing'}")
    if "status" in values and values["status"] not in _STATUSES:
        raise InvalidInputError(f"{values['status']!r} is not a run status; one of {', '.join(sorted(_STATUSES))}")
    return values


def _names_experiment(node: Any) -> bool:
    if isinstance(node, q.BoolOp):
        return any(_names_experiment(x) for x in node.items)
    if isinstance(node, q.Not):
        return _names_experiment(node.item)
    return isinstance(node, q.Comparison) and node.field.kind == "attribute" and node.field.key == "experiment"


@functools.lru_cache(maxsize=256)  # asked on every search: parsed once per filter and order, as the statements are cached
def _split_on_metric(filter: str | None, order_by: tuple[str, ...]) -> tuple[str, str] | None:
    """For a search ordered first by a metric that no conjunct of the filter compares: the filters of the runs that have
    a value for it and of those that do not (the two parts of its order); None when the order is not of that kind."""
    keys = q.parse_order_by(order_by)
    if not keys or keys[0].field.kind != "metric" or "`" in keys[0].field.key:
        return None
    metric = keys[0].field.key
    node = q.parse_filter(filter)
    conjuncts = list(node.items) if isinstance(node, q.BoolOp) and node.op == "and" else ([node] if node else [])
    if any(isinstance(c, q.Comparison) and c.field.kind == "metric" and c.field.key == metric for c in conjuncts):
        return None  # the search joins that metric already
    if node is not None and q._comparisons(node)[0] > q.MAX_COMPARISONS - 2:
        return None
    name = f"metrics.`{metric}`"
    within = f"({filter}) and " if node is not None else ""
    return f"{within}{name} != nan", f"{within}({name} is null or {name} = nan)"


@contextlib.contextmanager
def _budget(dialect: str, raw: Any, seconds: float | None) -> Iterator[None]:
    """Statements on ``raw`` inside this block are stopped after ``seconds`` (None: never), with an error that says so:
    a filter that would scan the whole store many times cannot hold a server's store for everyone else."""
    if seconds is None:
        yield
        return
    try:
        if dialect == "sqlite":
            deadline = time.monotonic() + seconds
            raw.set_progress_handler(lambda: int(time.monotonic() > deadline), 20_000)
            try:
                yield
            finally:
                raw.set_progress_handler(None, 0)
        else:
            raw.execute(f"SET statement_timeout = {int(seconds * 1000)}")
            try:
                yield
            finally:
                raw.execute("SET statement_timeout = 0")
    except Exception as e:
        text = str(e).lower()
        if "interrupted" in text or "statement timeout" in text or "canceling statement" in text:
            raise InvalidInputError(f"the search took longer than {seconds:g} s and was stopped: narrow its filter (fewer "
                                    "conditions, or name the experiments)") from None
        raise


def _page_of(dialect: str, raw: Any, sql: str, args: Any, seconds: float | None = None,
             info: dict[str, Any] | None = None) -> RunPage:
    """A search through the driver directly (plain tuples, on PostgreSQL a prepared statement read in binary, by a
    cursor kept with the pooled connection in its ``info``): one statement, whose rows carry their latest metrics
    (``runs.latest``); the table is read only for the runs whose object is empty (migration 0009 says when)."""
    sqlite = dialect == "sqlite"
    own = sqlite or info is None  # a cursor of this call alone, closed at its end
    if own:
        cur = raw.cursor() if sqlite else raw.cursor(binary=True)
    else:
        kept = info.get("modelcycle_search_cursor")
        if kept is None or kept[0] is not raw or kept[1].closed:
            kept = info["modelcycle_search_cursor"] = (raw, raw.cursor(binary=True))
        cur = kept[1]
    try:
        with _budget(dialect, raw, seconds):
            rows = (cur.execute(sql, args) if sqlite else cur.execute(sql, args, prepare=True)).fetchall()
        metrics = _latest_of(rows)
        unknown = [i for i, row in enumerate(rows) if not row[11]]
        if unknown:
            ids = [rows[i][0] for i in unknown]
            found = cur.execute(_METRICS[dialect], (json.dumps(ids),) if sqlite else (ids,)).fetchall()
            nan = math.nan
            for i, key, value in found:
                metrics[unknown[i]][key] = nan if value is None else value
    finally:
        if own:
            cur.close()
    return _page(rows, metrics)


def _latest_text(metrics: Mapping[str, Any], dialect: str) -> str | None:
    """A run's latest metrics as runs.latest holds them (migration 0009 writes the same): each double the shortest text
    that reads back as it (Python's and SQLite's readers both give the same double), NaN null. On SQLite ±infinity is
    ±1e999 (JSON has no word for it; both read 1e999 as infinity) and -0 is 0 (as SQLite stores it); on PostgreSQL
    both are strings, as its triggers write them (numeric has no infinity nor negative zero). None when a value is
    not a number (another writer's): the run's metrics are then read from the table."""
    sqlite = dialect == "sqlite"

    def number(v: Any) -> str:
        if v is None or v != v:
            return "null"
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            raise TypeError
        v = float(v)
        if abs(v) == math.inf:
            return ("1e999" if v > 0 else "-1e999") if sqlite else ('"Infinity"' if v > 0 else '"-Infinity"')
        if v == 0:
            return "0.0" if sqlite or math.copysign(1.0, v) > 0 else '"-0"'
        return repr(v)

    try:
        return "{" + ",".join(f"{json.dumps(k)}:{number(v)}" for k, v in metrics.items()) + "}"
    except TypeError:
        return None


def _latest_of(rows: Any) -> list[dict[str, float]]:
    """The rows' latest metrics from their ``runs.latest`` objects, decoded in one call ({} where there is none: NULL
    or ''): NaN is null there, ±infinity ±1e999 or a string, -0 a string, 1.0 may be written 1."""
    metrics: list[dict[str, Any]] = json.loads("[" + ",".join(row[11] or "{}" for row in rows) + "]", parse_int=float)
    nan = math.nan
    for d in metrics:
        for k, v in d.items():
            if v.__class__ is not float:
                d[k] = nan if v is None else float(v)
    return metrics


def _page(rows: Any, metrics: list[dict[str, float]]) -> RunPage:
    # [params, tags] per run, decoded in one call (a hundred calls cost more than the parsing)
    records = json.loads("[" + ",".join(row[10] or "[{}, {}]" for row in rows) + "]")
    return RunPage([row[:10] for row in rows], [p for p, _ in records], metrics, [t for _, t in records])  # PAGE_FIELDS


def _run_summary(row: Any, params: dict[str, str], metrics: dict[str, float], tags: dict[str, str]) -> Run:
    return Run(
        id=row.id,
        experiment_id=row.experiment_id,
        experiment=row.experiment_name,
        name=row.name,
        status=_STATUS[row.status],
        start_time=row.start_time,
        end_time=row.end_time,
        params=params,
        metrics=metrics,
        tags=tags,
        parent_id=row.parent_id,
        reproduces=row.reproduces,
        heartbeat_at=row.heartbeat_at,
        context=_NO_CONTEXT,
    )


def _run_from_row(
    row: Any,
    params: dict[str, str],
    metrics: dict[str, float],
    tags: dict[str, str],
    artifacts: tuple[ArtifactInfo, ...] = (),
    inputs: tuple[DatasetInput, ...] = (),
) -> Run:
    context = RunContext(
        git_commit=row.git_commit,
        git_branch=row.git_branch,
        git_dirty=row.git_dirty,
        git_root=row.git_root,
        command=tuple(json.loads(row.command)) if row.command else (),
        cwd=row.cwd,
        python=row.python,
        platform=row.platform,
        environment_id=row.environment_id,
        seed=row.seed,
        session_id=row.session_id,
        session_seq=row.session_seq,
    )
    summary = _run_summary(row, params, metrics, tags)  # type: ignore[arg-type]
    return replace(summary, artifacts=artifacts, inputs=inputs, error=row.error, context=context)


def _reason(e: BaseException) -> str:
    orig = getattr(e, "orig", None)
    text = str(orig if orig is not None else e).strip().splitlines()
    return text[0] if text else type(e).__name__
