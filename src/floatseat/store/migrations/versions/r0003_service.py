"""The service's own state: the daily maximum licensed count, flags, feed positions.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "licence_days",
        sa.Column("day", sa.String(10)),
        sa.Column("max_licensed", sa.Integer, nullable=False),
        sa.Column("tier", sa.Integer, nullable=False),
        sa.Column("max_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("day", name="pk_licence_days"),
    )
    op.create_table(
        "service_flags",
        sa.Column("name", sa.String(64)),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("set_by", sa.String(255), nullable=False),
        sa.Column("set_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_service_flags"),
    )
    op.create_table(
        "feed_positions",
        sa.Column("feed", sa.String(255)),
        sa.Column("positions", sa.JSON, nullable=False),
        sa.Column("saved_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("feed", name="pk_feed_positions"),
    )


def downgrade() -> None:
    for table in ("feed_positions", "service_flags", "licence_days"):
        op.drop_table(table)
