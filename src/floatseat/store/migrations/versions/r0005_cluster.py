"""Cluster: leader election with a fencing epoch, the activity inbox, agents' batches.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "leadership",
        sa.Column("id", sa.Integer, autoincrement=False),
        sa.Column("epoch", sa.BigInteger, nullable=False),
        sa.Column("leader", sa.String(255)),
        sa.Column("since", sa.BigInteger),
        sa.Column("heartbeat_at", sa.BigInteger),
        sa.PrimaryKeyConstraint("id", name="pk_leadership"),
        sa.CheckConstraint("id = 1", name="ck_leadership_single_row"),
    )
    op.execute("INSERT INTO leadership (id, epoch) VALUES (1, 0)")
    op.create_table(
        "activity_inbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True),
        sa.Column("node", sa.String(255), nullable=False),
        sa.Column("username", sa.String(255), nullable=False),
        sa.Column("at", sa.BigInteger, nullable=False),
        sa.Column("urgent", sa.Boolean, nullable=False),
        sa.Column("refused", sa.Boolean, nullable=False),
        sa.Column("received_at", sa.BigInteger, nullable=False),
        sa.Column("source", sa.String(255), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_activity_inbox"),
    )
    op.create_table(
        "agent_batches",
        sa.Column("agent_id", sa.String(64)),
        sa.Column("node", sa.String(255), nullable=False),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
        sa.Column("last_at", sa.BigInteger, nullable=False),
        sa.Column("log_at", sa.BigInteger),
        sa.PrimaryKeyConstraint("agent_id", name="pk_agent_batches"),
    )


def downgrade() -> None:
    op.drop_table("agent_batches")
    op.drop_table("activity_inbox")
    op.drop_table("leadership")
