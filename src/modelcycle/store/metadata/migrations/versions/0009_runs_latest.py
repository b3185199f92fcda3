"""Runs: their latest metrics as one JSON object beside the latest_metrics table, so that a search page is one
statement (on PostgreSQL one round trip to the server, not two; on SQLite no row per metric).

``runs.latest`` holds ``{key: value}`` with every double written as the shortest text that reads back as the same
double, NaN as null; NULL means "not known: read the table" and '' means "too large to keep (more than 64 KiB of
text): read the table". On PostgreSQL the database keeps the object itself: triggers merge what any writer upserts
and make it again from the table when rows are deleted, moved or renamed. SQLite's JSON writes a double with 15
digits, which does not always give the same double back: there modelcycle writes the object itself, before the rows,
and triggers set it to NULL when a row is written, moved or deleted that the object does not hold (a process of an
earlier version, or any other client of the table); modelcycle's next write to the run makes it again.

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

LARGEST = 65_536  # characters of an object kept; a larger one is '' (its run's metrics are read from the table)
REBUILT = 2_000  # keys of a run whose object is made again from the table; a run with more gets ''

# PostgreSQL. A value as the object holds it: NaN (NULL, or a NaN another writer stored) null, -0 a string (numeric has
# no negative zero), ±infinity a string (as to_jsonb writes them); the callers set extra_float_digits > 0 (the
# shortest text that reads back as the same double).
_PG_VALUE = """CREATE FUNCTION modelcycle_latest_value(v float8) RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN v IS NULL OR v = 'NaN'::float8 THEN 'null'::jsonb
                WHEN v = 0 AND v::text = '-0' THEN '"-0"'::jsonb
                ELSE to_jsonb(v) END
$$"""
_PG_OBJECT = f"""CREATE FUNCTION modelcycle_latest_object(run text) RETURNS text LANGUAGE sql VOLATILE AS $$
    SELECT CASE
        WHEN (SELECT count(*) FROM (SELECT 1 FROM latest_metrics WHERE run_id = run LIMIT {REBUILT + 1}) AS n) > {REBUILT}
            THEN ''
        ELSE (SELECT CASE WHEN length(t) > {LARGEST} THEN '' ELSE t END
              FROM (SELECT coalesce(jsonb_object_agg(key, modelcycle_latest_value(value)), '{{}}'::jsonb)::text AS t
                    FROM latest_metrics WHERE run_id = run) AS made)
    END
$$"""
# the rows a statement wrote (a transition table: an upsert's inserted rows, then its updated ones; a row its WHERE
# kept is in neither) merged into each run's object under the run's row lock, after the rows' own locks
_PG_MERGE = f"""UPDATE runs SET latest = CASE
            WHEN runs.latest IS NULL THEN modelcycle_latest_object(runs.id)
            ELSE (SELECT CASE WHEN length(t) > {LARGEST} THEN '' ELSE t END
                  FROM (SELECT (runs.latest::jsonb || written.kv)::text AS t) AS merged) END
        FROM (SELECT run_id, jsonb_object_agg(key, modelcycle_latest_value(value)) AS kv FROM written GROUP BY run_id) AS written
        WHERE runs.id = written.run_id
          AND CASE WHEN runs.latest IS NULL THEN true WHEN runs.latest = '' THEN false
                   ELSE NOT runs.latest::jsonb @> written.kv END;"""
# a writer that made the runs of a statement's rows in its own transaction, with these values in runs.latest, says so
# for that statement (SET LOCAL modelcycle.latest_written = on): nothing to merge
_WRITTEN = "IF current_setting('modelcycle.latest_written', true) = 'on' THEN RETURN NULL; END IF;"
_PG = [
    _PG_VALUE,
    _PG_OBJECT,
    f"""CREATE FUNCTION modelcycle_latest_inserted() RETURNS trigger LANGUAGE plpgsql SET extra_float_digits = 3 AS $$
    BEGIN
        {_WRITTEN}
        {_PG_MERGE}
        RETURN NULL;
    END $$""",
    # rows moved to another run or renamed: the runs they left are made again from the table
    f"""CREATE FUNCTION modelcycle_latest_updated() RETURNS trigger LANGUAGE plpgsql SET extra_float_digits = 3 AS $$
    BEGIN
        {_WRITTEN}
        UPDATE runs SET latest = modelcycle_latest_object(runs.id)
        WHERE runs.id IN (SELECT o.run_id FROM gone AS o
                          WHERE NOT EXISTS (SELECT 1 FROM written AS n WHERE n.run_id = o.run_id AND n.key = o.key));
        {_PG_MERGE}
        RETURN NULL;
    END $$""",
    """CREATE FUNCTION modelcycle_latest_deleted() RETURNS trigger LANGUAGE plpgsql SET extra_float_digits = 3 AS $$
    BEGIN
        UPDATE runs SET latest = modelcycle_latest_object(runs.id) WHERE runs.id IN (SELECT run_id FROM gone);
        RETURN NULL;
    END $$""",
    """CREATE FUNCTION modelcycle_latest_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE runs SET latest = '{}' WHERE latest IS DISTINCT FROM '{}';
        RETURN NULL;
    END $$""",
    """CREATE TRIGGER runs_latest_insert AFTER INSERT ON latest_metrics REFERENCING NEW TABLE AS written
    FOR EACH STATEMENT EXECUTE FUNCTION modelcycle_latest_inserted()""",
    """CREATE TRIGGER runs_latest_update AFTER UPDATE ON latest_metrics REFERENCING OLD TABLE AS gone NEW TABLE AS written
    FOR EACH STATEMENT EXECUTE FUNCTION modelcycle_latest_updated()""",
    """CREATE TRIGGER runs_latest_delete AFTER DELETE ON latest_metrics REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION modelcycle_latest_deleted()""",
    """CREATE TRIGGER runs_latest_truncate AFTER TRUNCATE ON latest_metrics
    FOR EACH STATEMENT EXECUTE FUNCTION modelcycle_latest_truncated()""",
    "SET LOCAL extra_float_digits = 3",
    "UPDATE runs SET latest = modelcycle_latest_object(id)",
]
_PG_FUNCTIONS = ("modelcycle_latest_inserted()", "modelcycle_latest_updated()", "modelcycle_latest_deleted()",
                 "modelcycle_latest_truncated()", "modelcycle_latest_object(text)", "modelcycle_latest_value(float8)")

# SQLite: a row an object does not hold (the same key with the same value; NULL IS NULL for NaN) sets it to NULL; so do
# a row moved or renamed (for the run it left too) and a row deleted. NULL and '' are left as they are.
_KEPT = "latest IS NOT NULL AND latest != ''"
_HOLDS = (f"EXISTS (SELECT 1 FROM runs WHERE id = NEW.run_id AND {_KEPT} AND NOT EXISTS "
          "(SELECT 1 FROM json_each(runs.latest) AS j WHERE j.key = NEW.key AND j.value IS NEW.value))")
_SQLITE = [
    f"""CREATE TRIGGER runs_latest_insert AFTER INSERT ON latest_metrics WHEN {_HOLDS}
    BEGIN
        UPDATE runs SET latest = NULL WHERE id = NEW.run_id;
    END""",
    f"""CREATE TRIGGER runs_latest_update AFTER UPDATE ON latest_metrics
    WHEN OLD.run_id IS NOT NEW.run_id OR OLD.key IS NOT NEW.key OR {_HOLDS}
    BEGIN
        UPDATE runs SET latest = NULL WHERE id IN (OLD.run_id, NEW.run_id) AND {_KEPT};
    END""",
    f"""CREATE TRIGGER runs_latest_delete AFTER DELETE ON latest_metrics
    BEGIN
        UPDATE runs SET latest = NULL WHERE id = OLD.run_id AND {_KEPT};
    END""",
]


def _text(metrics: dict[str, object]) -> str | None:
    """As modelcycle writes runs.latest on SQLite (``sql._latest_text``): NaN null, ±infinity ±1e999, -0 as 0 (as
    SQLite stores it); None when a value is not a number (the run's metrics are then read from the table)."""
    def number(v: object) -> str:
        if v is None or v != v:
            return "null"
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            raise TypeError
        v = float(v)
        return repr(v + 0.0) if abs(v) != math.inf else ("1e999" if v > 0 else "-1e999")

    try:
        text = "{" + ",".join(f"{json.dumps(k)}:{number(v)}" for k, v in metrics.items()) + "}"
    except TypeError:
        return None
    return text if len(text) <= LARGEST else ""


def upgrade() -> None:
    op.add_column("runs", sa.Column("latest", sa.Text, nullable=True))
    if op.get_context().dialect.name == "postgresql":
        for statement in _PG:
            op.execute(statement)
        return
    bind = op.get_bind()
    objects: dict[str, dict[str, object]] = {}
    for run_id, key, value in bind.exec_driver_sql("SELECT run_id, key, value FROM latest_metrics"):
        objects.setdefault(run_id, {})[key] = value
    if objects:
        bind.exec_driver_sql("UPDATE runs SET latest = ? WHERE id = ?", [(_text(m), r) for r, m in objects.items()])
    bind.exec_driver_sql("UPDATE runs SET latest = '{}' WHERE id NOT IN (SELECT run_id FROM latest_metrics)")
    for statement in _SQLITE:
        op.execute(statement)


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        for trigger in ("runs_latest_insert", "runs_latest_update", "runs_latest_delete", "runs_latest_truncate"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger} ON latest_metrics")
        for function in _PG_FUNCTIONS:
            op.execute(f"DROP FUNCTION IF EXISTS {function}")
    else:
        for trigger in ("runs_latest_insert", "runs_latest_update", "runs_latest_delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("latest")
