"""The pipelines' step cache.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "step_cache",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("pipeline", sa.String(250), nullable=False),
        sa.Column("step", sa.String(250), nullable=False),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("output", sa.Text, nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
    )
    op.create_index("ix_step_cache_pipeline_step_created_at", "step_cache", ["pipeline", "step", "created_at"])


def downgrade() -> None:
    op.drop_table("step_cache")
