"""The team server's users, their tokens (as digests) and their roles per experiment or registered model.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

KEY = 250


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("name", sa.String(KEY), primary_key=True),
        sa.Column("admin", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("created_by", sa.String(KEY)),
    )
    op.create_table(
        "user_tokens",
        sa.Column("digest", sa.String(64), primary_key=True),
        sa.Column("user", sa.String(KEY), sa.ForeignKey("users.name", ondelete="CASCADE"), nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("revoked_at", sa.Double),
    )
    op.create_index("ix_user_tokens_user", "user_tokens", ["user"])
    op.create_table(
        "grants",
        sa.Column("user", sa.String(KEY), sa.ForeignKey("users.name", ondelete="CASCADE"), primary_key=True),
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("name", sa.String(KEY), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("grants")
    op.drop_table("user_tokens")
    op.drop_table("users")
