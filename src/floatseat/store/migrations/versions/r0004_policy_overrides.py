"""The admin's policy overrides; the web side's admin actions join the one audit log.

`policy_overrides` keeps the policy settings an admin changed while floatseat ran, so that
they survive a restart. The web side used to keep its admin actions (pins, policy, accounts,
tokens) in its own table, `web_admin_audit`; they now go to the append-only `audit_log` as
kind `admin`, rule `admin-<action>`, and the rows already there are copied over in order.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

LEGACY = "web_admin_audit"


def upgrade() -> None:
    op.create_table(
        "policy_overrides",
        sa.Column("name", sa.String(64)),
        sa.Column("value", sa.JSON, nullable=False),
        sa.Column("set_by", sa.String(255), nullable=False),
        sa.Column("set_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_policy_overrides"),
    )
    bind = op.get_bind()
    if not sa.inspect(bind).has_table(LEGACY):
        return
    legacy = sa.table(
        LEGACY,
        sa.column("id", sa.Integer),
        sa.column("at", sa.BigInteger),
        sa.column("actor", sa.String),
        sa.column("action", sa.String),
        sa.column("target", sa.String),
        sa.column("detail", sa.Text),
    )
    audit = sa.table(
        "audit_log",
        sa.column("at", sa.BigInteger),
        sa.column("username", sa.String),
        sa.column("kind", sa.String),
        sa.column("rule", sa.String),
        sa.column("reason", sa.Text),
    )
    rows = bind.execute(sa.select(legacy).order_by(legacy.c.at, legacy.c.id)).all()
    if rows:
        bind.execute(
            sa.insert(audit),
            [
                {
                    "at": r.at,
                    "username": r.target,
                    "kind": "admin",
                    "rule": f"admin-{r.action}"[:64],
                    "reason": f"by {r.actor}: {r.detail}",
                }
                for r in rows
            ],
        )
    op.drop_table(LEGACY)


def downgrade() -> None:
    op.drop_table("policy_overrides")
