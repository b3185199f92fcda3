"""Migrations: the schema code and the Alembic history agree, and concurrent first starts are safe."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

from sqlalchemy import create_engine, inspect

from modelcycle.store.metadata import schema
from modelcycle.store.metadata.migrate import MIGRATIONS, current_revision, upgrade


def test_head_revision_constant_matches_alembic_history() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(cfg).get_current_head() == schema.HEAD_REVISION


def test_migrated_database_matches_the_table_definitions(store_uri: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    engine = create_engine(store_uri.replace("postgresql://", "postgresql+psycopg://"))
    try:
        upgrade(engine)
        assert current_revision(engine) == schema.HEAD_REVISION
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), schema.metadata)
        assert diff == [], f"schema.py and the migrations disagree: {diff}"
    finally:
        engine.dispose()


def test_many_processes_opening_a_new_database_at_once_migrate_it_once(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'fresh.db'}"
    code = (
        "import sys; from modelcycle.store import open_metadata_store as o; "
        "s = o(sys.argv[1]); s.get_or_create_experiment('e'); print('ok')"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code, uri], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(6)]
    results = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, err
        assert out.strip() == "ok"
    engine = create_engine(uri)
    assert current_revision(engine) == schema.HEAD_REVISION
    assert set(inspect(engine).get_table_names()) >= {"runs", "metrics", "latest_metrics", "alembic_version"}
    engine.dispose()


def test_runs_of_an_older_database_keep_their_params_and_tags_in_searches(store_uri: str) -> None:
    """A store made before runs carried their records (revision 0005) is searched with its params, tags and metrics."""
    from modelcycle.store import open_metadata_store

    metrics = {"third": 1 / 3, "one": 1.0, "tiny": 5e-324, "big": 1e22, "inf": math.inf, "-inf": -math.inf, "nan": math.nan}
    sqlite = store_uri.startswith("sqlite")

    engine = create_engine(store_uri.replace("postgresql://", "postgresql+psycopg://"))
    try:
        upgrade(engine, "0005")
        with engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO experiments (id, name, created_at) VALUES (1, 'old', 1.0)")
            for rid in ("a" * 32, "b" * 32):
                conn.exec_driver_sql(
                    "INSERT INTO runs (id, experiment_id, name, status, start_time) VALUES "
                    f"('{rid}', 1, 'r', 'FINISHED', 1.0)")
            conn.exec_driver_sql(f"INSERT INTO params (run_id, key, value) VALUES ('{'a' * 32}', 'C', '0.5')")
            conn.exec_driver_sql(f"INSERT INTO tags (run_id, key, value) VALUES ('{'a' * 32}', 'team', 'risk')")
            for key, value in metrics.items():
                conn.exec_driver_sql("INSERT INTO latest_metrics (run_id, key, step, timestamp, value) VALUES "
                                     f"('{'a' * 32}', %s, 0, 1.0, %s)".replace("%s", "?" if sqlite else "%s"),
                                     (key, None if value != value else value))
    finally:
        engine.dispose()
    store = open_metadata_store(store_uri)
    try:
        runs = {r.id: r for r in store.search_runs(["old"])}
        assert (runs["a" * 32].params, runs["a" * 32].tags) == ({"C": "0.5"}, {"team": "risk"})
        assert (runs["b" * 32].params, runs["b" * 32].tags, runs["b" * 32].metrics) == ({}, {}, {})
        found = runs["a" * 32].metrics  # every double as it was, from the object the upgrade made of the table
        assert math.isnan(found.pop("nan")) and found == {k: v for k, v in metrics.items() if k != "nan"}
        with store.engine.connect() as conn:
            assert None not in conn.exec_driver_sql("SELECT latest FROM runs").scalars().all()
    finally:
        store.close()


def test_a_database_of_a_newer_modelcycle_is_refused_with_what_to_do(tmp_path: Path) -> None:
    import pytest
    from sqlalchemy import text

    from modelcycle.errors import StoreError
    from modelcycle.store import open_metadata_store

    uri = f"sqlite:///{tmp_path / 'store.db'}"
    open_metadata_store(uri).close()
    engine = create_engine(uri)
    with engine.begin() as conn:  # as a later release would leave it
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    with pytest.raises(StoreError, match=r"was written by a newer modelcycle .*upgrade modelcycle to use it"):
        open_metadata_store(uri)
