"""Runs: their params and tags as one JSON array beside the tables, read by search pages.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("records", sa.Text, nullable=True))
    if op.get_context().dialect.name == "postgresql":
        op.execute(
            "UPDATE runs SET records = jsonb_build_array("
            "coalesce((SELECT jsonb_object_agg(key, value) FROM params WHERE run_id = runs.id), '{}'::jsonb), "
            "coalesce((SELECT jsonb_object_agg(key, value) FROM tags WHERE run_id = runs.id), '{}'::jsonb))::text"
        )
    else:
        op.execute(
            "UPDATE runs SET records = json_array("
            "(SELECT json_group_object(key, value) FROM params WHERE run_id = runs.id), "
            "(SELECT json_group_object(key, value) FROM tags WHERE run_id = runs.id))"
        )


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:  # SQLite drops a column by copying the table
        batch.drop_column("records")
