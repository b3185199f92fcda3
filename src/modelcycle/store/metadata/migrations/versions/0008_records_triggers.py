"""Runs' records kept by the database itself: whatever writes a param or a tag (a process of an earlier modelcycle
still running while another one upgraded the store, or any other client of the tables), the run's record follows.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# SQLite: one trigger per written row, which does nothing when the record holds the row already (what modelcycle's own
# writes leave: the record is written with the run, or merged before the rows).
_SQLITE_OTHER = {0: "json_patch(coalesce(json_extract(records, '$[1]'), '{}'), '{}')",
                 1: "json_patch(coalesce(json_extract(records, '$[0]'), '{}'), '{}')"}
_SQLITE = [
    # a param's first value stays: a row is inserted only for a key the run did not have
    f"""CREATE TRIGGER runs_records_param AFTER INSERT ON params
    WHEN NOT EXISTS (SELECT 1 FROM runs, json_each(runs.records, '$[0]') AS j WHERE runs.id = NEW.run_id AND j.key = NEW.key)
    BEGIN
        UPDATE runs SET records = json_array(
            json_patch(coalesce(json_extract(records, '$[0]'), '{{}}'), json_object(NEW.key, NEW.value)), {_SQLITE_OTHER[0]})
        WHERE id = NEW.run_id;
    END""",
] + [
    # a tag's last value wins: inserted, or updated in place
    f"""CREATE TRIGGER runs_records_tag_{event.lower()} AFTER {event} ON tags
    WHEN NOT EXISTS (SELECT 1 FROM runs, json_each(runs.records, '$[1]') AS j
                     WHERE runs.id = NEW.run_id AND j.key = NEW.key AND j.value IS NEW.value)
    BEGIN
        UPDATE runs SET records = json_array({_SQLITE_OTHER[1]},
            json_patch(coalesce(json_extract(records, '$[1]'), '{{}}'), json_object(NEW.key, NEW.value)))
        WHERE id = NEW.run_id;
    END"""
    for event in ("INSERT", "UPDATE")
]

# PostgreSQL: one trigger per statement over the rows it wrote (a transition table), merged into each run's record under
# the run's row lock, as modelcycle's own merge does.
_PG = [
    """CREATE FUNCTION modelcycle_params_into_records() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE runs SET records = jsonb_build_array(
            written.kv || coalesce(runs.records::jsonb -> 0, '{}'::jsonb),
            coalesce(runs.records::jsonb -> 1, '{}'::jsonb))::text
        FROM (SELECT run_id, jsonb_object_agg(key, value) AS kv FROM written GROUP BY run_id) AS written
        WHERE runs.id = written.run_id AND NOT coalesce(runs.records::jsonb -> 0, '{}'::jsonb) @> written.kv;
        RETURN NULL;
    END $$""",
    """CREATE FUNCTION modelcycle_tags_into_records() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE runs SET records = jsonb_build_array(
            coalesce(runs.records::jsonb -> 0, '{}'::jsonb),
            coalesce(runs.records::jsonb -> 1, '{}'::jsonb) || written.kv)::text
        FROM (SELECT run_id, jsonb_object_agg(key, value) AS kv FROM written GROUP BY run_id) AS written
        WHERE runs.id = written.run_id AND NOT coalesce(runs.records::jsonb -> 1, '{}'::jsonb) @> written.kv;
        RETURN NULL;
    END $$""",
    """CREATE TRIGGER runs_records_param AFTER INSERT ON params REFERENCING NEW TABLE AS written
    FOR EACH STATEMENT EXECUTE FUNCTION modelcycle_params_into_records()""",
    """CREATE TRIGGER runs_records_tag_insert AFTER INSERT ON tags REFERENCING NEW TABLE AS written
    FOR EACH STATEMENT EXECUTE FUNCTION modelcycle_tags_into_records()""",
    """CREATE TRIGGER runs_records_tag_update AFTER UPDATE ON tags REFERENCING NEW TABLE AS written
    FOR EACH STATEMENT EXECUTE FUNCTION modelcycle_tags_into_records()""",
]

# Records left behind by writers that did not keep them (before these triggers) are made again from the tables.
_REBUILD = {
    "postgresql": "UPDATE runs SET records = jsonb_build_array("
                  "coalesce((SELECT jsonb_object_agg(key, value) FROM params WHERE run_id = runs.id), '{}'::jsonb), "
                  "coalesce((SELECT jsonb_object_agg(key, value) FROM tags WHERE run_id = runs.id), '{}'::jsonb))::text",
    "sqlite": "UPDATE runs SET records = json_array("
              "(SELECT json_group_object(key, value) FROM params WHERE run_id = runs.id), "
              "(SELECT json_group_object(key, value) FROM tags WHERE run_id = runs.id))",
}


def upgrade() -> None:
    dialect = op.get_context().dialect.name
    for statement in _PG if dialect == "postgresql" else _SQLITE:
        op.execute(statement)
    op.execute(_REBUILD["postgresql" if dialect == "postgresql" else "sqlite"])


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        for trigger, table in (("runs_records_param", "params"), ("runs_records_tag_insert", "tags"),
                               ("runs_records_tag_update", "tags")):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger} ON {table}")
        op.execute("DROP FUNCTION IF EXISTS modelcycle_params_into_records()")
        op.execute("DROP FUNCTION IF EXISTS modelcycle_tags_into_records()")
    else:
        for trigger in ("runs_records_param", "runs_records_tag_insert", "runs_records_tag_update"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
