"""Experiments, runs, params, tags, metrics, artifacts, datasets and environments.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ID = 32
KEY = 250


def _run_id() -> sa.Column:
    return sa.Column("run_id", sa.String(ID), sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)


def upgrade() -> None:
    op.create_table(
        "experiments",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(KEY), nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.UniqueConstraint("name", name="uq_experiments_name"),
    )
    op.create_table(
        "environments",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.String(ID), primary_key=True),
        sa.Column("experiment_id", sa.Integer, sa.ForeignKey("experiments.id"), nullable=False),
        sa.Column("name", sa.String(KEY)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("start_time", sa.Double, nullable=False),
        sa.Column("end_time", sa.Double),
        sa.Column("heartbeat_at", sa.Double),
        sa.Column("parent_id", sa.String(ID)),
        sa.Column("error", sa.Text),
        sa.Column("reproduces", sa.String(ID)),
        sa.Column("git_commit", sa.String(64)),
        sa.Column("git_branch", sa.String(KEY)),
        sa.Column("git_dirty", sa.Boolean),
        sa.Column("git_root", sa.Text),
        sa.Column("command", sa.Text),
        sa.Column("cwd", sa.Text),
        sa.Column("python", sa.String(64)),
        sa.Column("platform", sa.String(KEY)),
        sa.Column("environment_id", sa.String(64), sa.ForeignKey("environments.id")),
        sa.Column("seed", sa.BigInteger),
        sa.Column("session_id", sa.String(ID)),
        sa.Column("session_seq", sa.Integer),
    )
    op.create_index("ix_runs_experiment_id_start_time", "runs", ["experiment_id", "start_time"])
    op.create_index("ix_runs_status_heartbeat_at", "runs", ["status", "heartbeat_at"])
    op.create_index("ix_runs_parent_id", "runs", ["parent_id"])
    for name in ("params", "tags"):
        op.create_table(
            name,
            _run_id(),
            sa.Column("key", sa.String(KEY), primary_key=True),
            sa.Column("value", sa.Text, nullable=False),
            sqlite_with_rowid=False,
        )
    op.create_table(
        "metrics",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(ID), sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("key", sa.String(KEY), nullable=False),
        sa.Column("step", sa.BigInteger, nullable=False),
        sa.Column("timestamp", sa.Double, nullable=False),
        sa.Column("value", sa.Double),
    )
    op.create_index("ix_metrics_run_id_key_step", "metrics", ["run_id", "key", "step"])
    op.create_table(
        "latest_metrics",
        _run_id(),
        sa.Column("key", sa.String(KEY), primary_key=True),
        sa.Column("step", sa.BigInteger, nullable=False),
        sa.Column("timestamp", sa.Double, nullable=False),
        sa.Column("value", sa.Double),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_latest_metrics_key_value", "latest_metrics", ["key", "value"])
    op.create_table(
        "artifacts",
        _run_id(),
        sa.Column("path", sa.String(1024), primary_key=True),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_artifacts_digest", "artifacts", ["digest"])
    op.create_table(
        "datasets",
        sa.Column("fingerprint", sa.String(64), primary_key=True),
        sa.Column("rows", sa.BigInteger),
        sa.Column("columns", sa.Text, nullable=False),
        sa.Column("source", sa.Text),
        sa.Column("created_at", sa.Double, nullable=False),
    )
    op.create_table(
        "run_inputs",
        _run_id(),
        sa.Column("name", sa.String(KEY), primary_key=True),
        sa.Column("role", sa.String(64), primary_key=True),
        sa.Column("fingerprint", sa.String(64), sa.ForeignKey("datasets.fingerprint"), nullable=False),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    for name in (
        "run_inputs", "datasets", "artifacts", "latest_metrics", "metrics",
        "tags", "params", "runs", "environments", "experiments",
    ):
        op.drop_table(name)
