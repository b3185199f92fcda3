"""Runs: their latest metrics as one JSON object beside the latest_metrics table, so that a search page is one
statement (on PostgreSQL one round trip to the server, not two; on SQLite no row per metric).

Every double is written as the shortest text that reads back as the same double. On PostgreSQL the database keeps the
object itself (a trigger merges what any writer upserts). SQLite's JSON writes a double with 15 digits, which does not
always give the same double back: there modelcycle writes the object itself, before the rows, and a trigger empties it
(NULL: "read the table") when a row is written that the object does not hold, by a process of an earlier version or
any other client of the table. A search reads the table for the runs whose object is empty.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

import json
import math

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# PostgreSQL: one trigger per statement over the rows it wrote (a transition table: an upsert's inserted rows, then its
# updated ones; a row its WHERE kept is in neither), merged into each run's object under the run's row lock, after the
# rows' own locks, as the params' and tags' triggers do. A double is written as the shortest text that reads back as
# the same double (extra_float_digits > 0), NaN (stored as NULL) as null, ±infinity as a string.
_PG = [
    """CREATE FUNCTION modelcycle_latest_into_runs() RETURNS trigger LANGUAGE plpgsql SET extra_float_digits = 3 AS $$
    BEGIN
        UPDATE runs SET latest = (coalesce(runs.latest::jsonb, '{}'::jsonb) || written.kv)::text
        FROM (SELECT run_id, jsonb_object_agg(key, value) AS kv FROM written GROUP BY run_id) AS written
        WHERE runs.id = written.run_id AND NOT coalesce(runs.latest::jsonb, '{}'::jsonb) @> written.kv;
        RETURN NULL;
    END $$""",
    """CREATE FUNCTION modelcycle_latest_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE runs SET latest = NULL WHERE id IN (SELECT run_id FROM gone) AND latest IS NOT NULL;
        RETURN NULL;
    END $$""",
    """CREATE TRIGGER runs_latest_insert AFTER INSERT ON latest_metrics REFERENCING NEW TABLE AS written
    FOR EACH STATEMENT EXECUTE FUNCTION modelcycle_latest_into_runs()""",
    """CREATE TRIGGER runs_latest_update AFTER UPDATE ON latest_metrics REFERENCING NEW TABLE AS written
    FOR EACH STATEMENT EXECUTE FUNCTION modelcycle_latest_into_runs()""",
    """CREATE TRIGGER runs_latest_delete AFTER DELETE ON latest_metrics REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION modelcycle_latest_deleted()""",
    "SET LOCAL extra_float_digits = 3",
    "UPDATE runs SET latest = coalesce((SELECT jsonb_object_agg(key, value) FROM latest_metrics WHERE run_id = runs.id), "
    "'{}'::jsonb)::text",
]

# SQLite: a row the object does not hold (the same key with the same value: NULL IS NULL for NaN) empties the object.
_HOLDS = ("EXISTS (SELECT 1 FROM runs, json_each(runs.latest) AS j "
          "WHERE runs.id = NEW.run_id AND j.key = NEW.key AND j.value IS NEW.value)")
_SQLITE = [
    *(f"""CREATE TRIGGER runs_latest_{event.lower()} AFTER {event} ON latest_metrics
    WHEN NOT {_HOLDS}
    BEGIN
        UPDATE runs SET latest = NULL WHERE id = NEW.run_id AND latest IS NOT NULL;
    END""" for event in ("INSERT", "UPDATE")),
    """CREATE TRIGGER runs_latest_delete AFTER DELETE ON latest_metrics
    BEGIN
        UPDATE runs SET latest = NULL WHERE id = OLD.run_id AND latest IS NOT NULL;
    END""",
]


def _text(metrics: dict[str, float | None]) -> str:
    """As modelcycle writes runs.latest (``sql._latest_text``): NaN null, ±infinity ±1e999."""
    def number(v: float | None) -> str:
        if v is None or v != v:
            return "null"
        return repr(float(v)) if abs(v) != math.inf else ("1e999" if v > 0 else "-1e999")

    return "{" + ",".join(f"{json.dumps(k)}:{number(v)}" for k, v in metrics.items()) + "}"


def upgrade() -> None:
    op.add_column("runs", sa.Column("latest", sa.Text, nullable=True))
    if op.get_context().dialect.name == "postgresql":
        for statement in _PG:
            op.execute(statement)
        return
    bind = op.get_bind()
    objects: dict[str, dict[str, float | None]] = {}
    for run_id, key, value in bind.exec_driver_sql("SELECT run_id, key, value FROM latest_metrics"):
        objects.setdefault(run_id, {})[key] = value
    if objects:
        bind.exec_driver_sql("UPDATE runs SET latest = ? WHERE id = ?", [(_text(m), r) for r, m in objects.items()])
    bind.exec_driver_sql("UPDATE runs SET latest = '{}' WHERE latest IS NULL")
    for statement in _SQLITE:
        op.execute(statement)


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        for trigger in ("runs_latest_insert", "runs_latest_update", "runs_latest_delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger} ON latest_metrics")
        op.execute("DROP FUNCTION IF EXISTS modelcycle_latest_into_runs()")
        op.execute("DROP FUNCTION IF EXISTS modelcycle_latest_deleted()")
    else:
        for trigger in ("runs_latest_insert", "runs_latest_update", "runs_latest_delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("latest")
