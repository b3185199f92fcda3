"""Bring a database to the newest schema, safely when several processes start at once."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from modelcycle.store.metadata.schema import HEAD_REVISION

__all__ = ["current_revision", "ensure_schema", "upgrade"]

MIGRATIONS = Path(__file__).with_name("migrations")
_PG_LOCK_KEY = 0x6D6F64656C  # "model": one advisory lock for every modelcycle migration


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None for an empty database."""
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except SQLAlchemyError:
        return None


@contextlib.contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_LOCK_KEY})
            conn.commit()
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_LOCK_KEY})
                conn.commit()
        return
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        yield
        return
    import fcntl

    fd = os.open(f"{database}.migrate-lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Run Alembic migrations up to ``revision`` on ``engine``."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def ensure_schema(engine: Engine) -> None:
    """Migrate the database to the newest schema unless it is there already.

    The common case costs one query and never imports Alembic. Otherwise the migration runs
    under a lock (a file lock for SQLite, an advisory lock for PostgreSQL), and the revision
    is read again inside it, so processes starting together migrate exactly once.
    """
    if current_revision(engine) == HEAD_REVISION:
        return
    with _migration_lock(engine):
        if current_revision(engine) != HEAD_REVISION:
            upgrade(engine)
