"""The model registry: registered models, versions and their tags, aliases, the alias audit log, verdicts.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

ID = 32
KEY = 250


def _event_id() -> sa.types.TypeEngine:
    return sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "registered_models",
        sa.Column("name", sa.String(KEY), primary_key=True),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("description", sa.Text),
    )
    op.create_table(
        "model_versions",
        sa.Column("name", sa.String(KEY), sa.ForeignKey("registered_models.name", ondelete="CASCADE"), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("run_id", sa.String(ID), nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("artifact_path", sa.String(1024), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("flavour", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("created_by", sa.String(KEY)),
        sa.Column("description", sa.Text),
    )
    op.create_index("ix_model_versions_run_id", "model_versions", ["run_id"])
    op.create_index("ix_model_versions_hash", "model_versions", ["hash"])
    op.create_table(
        "model_version_tags",
        sa.Column("name", sa.String(KEY), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("key", sa.String(KEY), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "model_aliases",
        sa.Column("name", sa.String(KEY), sa.ForeignKey("registered_models.name", ondelete="CASCADE"), primary_key=True),
        sa.Column("alias", sa.String(KEY), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "alias_events",
        sa.Column("id", _event_id(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(KEY), nullable=False),
        sa.Column("alias", sa.String(KEY), nullable=False),
        sa.Column("from_version", sa.Integer),
        sa.Column("to_version", sa.Integer),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(KEY), nullable=False),
        sa.Column("at", sa.Double, nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("verdict_id", sa.String(ID)),
        sa.Column("forced", sa.Boolean, nullable=False),
    )
    op.create_index("ix_alias_events_name_alias_id", "alias_events", ["name", "alias", "id"])
    op.create_table(
        "verdicts",
        sa.Column("id", sa.String(ID), primary_key=True),
        sa.Column("name", sa.String(KEY), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("passed", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("run_id", sa.String(ID)),
        sa.Column("data", sa.Text, nullable=False),
    )
    op.create_index("ix_verdicts_name_version", "verdicts", ["name", "version"])


def downgrade() -> None:
    for table in ("verdicts", "alias_events", "model_aliases", "model_version_tags", "model_versions", "registered_models"):
        op.drop_table(table)
