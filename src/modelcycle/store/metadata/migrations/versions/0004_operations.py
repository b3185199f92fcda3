"""Monitoring windows, alerts and continuous-training cycles.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "monitor_windows",
        sa.Column("model", sa.String(250), primary_key=True),
        sa.Column("role", sa.String(16), primary_key=True),
        sa.Column("seconds", sa.Integer, primary_key=True),
        sa.Column("start", sa.Double, primary_key=True),
        sa.Column("rows", sa.BigInteger, nullable=False),
        sa.Column("sources", sa.String(64), nullable=False),
        sa.Column("profile", sa.LargeBinary),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("computed_at", sa.Double, nullable=False),
    )
    op.create_table(
        "alerts",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("model", sa.String(250), nullable=False),
        sa.Column("rule", sa.String(250), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("window_start", sa.Double),
        sa.Column("raised_at", sa.Double, nullable=False),
        sa.Column("resolved_at", sa.Double),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("details", sa.Text, nullable=False),
    )
    op.create_index("ix_alerts_model_rule_state", "alerts", ["model", "rule", "state"])
    op.create_table(
        "cycles",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("project", sa.String(250), nullable=False),
        sa.Column("trigger", sa.String(250), nullable=False),
        sa.Column("trigger_key", sa.String(250), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("owner", sa.String(250)),
        sa.Column("lease_until", sa.Double),
        sa.Column("started_at", sa.Double, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
        sa.Column("finished_at", sa.Double),
        sa.Column("alert_id", sa.String(32)),
        sa.Column("run_id", sa.String(32)),
        sa.Column("model", sa.String(250)),
        sa.Column("version", sa.Integer),
        sa.Column("verdict_id", sa.String(32)),
        sa.Column("alias_event_id", sa.BigInteger),
        sa.Column("detail", sa.Text, nullable=False),
    )
    op.create_index("ix_cycles_project_trigger_key", "cycles", ["project", "trigger_key"], unique=True)
    op.create_index("ix_cycles_project_started_at", "cycles", ["project", "started_at"])


def downgrade() -> None:
    op.drop_table("cycles")
    op.drop_table("alerts")
    op.drop_table("monitor_windows")
