"""Why idle revokes are paused (a freeze, a stalled feed), kept with the policy's state.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ledger_state") as batch:
        batch.add_column(sa.Column("revokes_paused", sa.String(500)))


def downgrade() -> None:
    with op.batch_alter_table("ledger_state") as batch:
        batch.drop_column("revokes_paused")
