"""The seat ledger: policy state, outbox of directory moves, append-only audit log.

Revision ID: 0001
Revises:
Create Date: 2025-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Username = sa.String(255)


def upgrade() -> None:
    state = op.create_table(
        "ledger_state",
        sa.Column("id", sa.Integer, autoincrement=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("tier", sa.Integer, nullable=False),
        sa.Column("licensed_outside", sa.Integer, nullable=False),
        sa.Column("pins", sa.JSON, nullable=False),
        sa.Column("move_seq", sa.BigInteger, nullable=False),
        sa.Column("licence_tier", sa.Integer),
        sa.Column("licence_licensed", sa.Integer),
        sa.Column("licence_reported_at", sa.BigInteger),
        sa.Column("licence_watermark", sa.BigInteger),
        sa.PrimaryKeyConstraint("id", name="pk_ledger_state"),
        sa.CheckConstraint("id = 1", name="ck_ledger_state_single_row"),
    )
    # Tier 0 until the directory first reports: nobody gets a seat before then.
    op.bulk_insert(
        state,
        [{"id": 1, "version": 0, "tier": 0, "licensed_outside": 0, "pins": [], "move_seq": 0}],
    )
    op.create_table(
        "directory_users",
        sa.Column("username", Username),
        sa.Column("in_pool", sa.Boolean, nullable=False),
        sa.Column("excluded", sa.Boolean, nullable=False),
        sa.Column("groups", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("username", name="pk_directory_users"),
    )
    op.create_table(
        "holders",
        sa.Column("username", Username),
        sa.Column("granted_at", sa.BigInteger, nullable=False),
        sa.Column("last_activity", sa.BigInteger, nullable=False),
        sa.Column("warned", sa.Boolean, nullable=False),
        sa.PrimaryKeyConstraint("username", name="pk_holders"),
    )
    op.create_table(
        "waiters",
        sa.Column("username", Username),
        sa.Column("queued_at", sa.BigInteger, nullable=False),
        sa.Column("rank", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("username", name="pk_waiters"),
    )
    op.create_table(
        "revoke_locks",
        sa.Column("username", Username),
        sa.Column("until", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("username", name="pk_revoke_locks"),
    )
    op.create_table(
        "pinned_users",
        sa.Column("username", Username),
        sa.PrimaryKeyConstraint("username", name="pk_pinned_users"),
    )
    op.create_table(
        "outbox",
        sa.Column("id", Id, autoincrement=True),
        sa.Column("username", Username, nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("rule", sa.String(64), nullable=False),
        sa.Column("decided_at", sa.BigInteger, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_try_at", sa.BigInteger, nullable=False),
        sa.Column("adds_seat", sa.Boolean, nullable=False),
        sa.Column("lease_until", sa.BigInteger),
        sa.Column("finished_seq", sa.BigInteger),
        sa.Column("finished_at", sa.BigInteger),
        sa.Column("last_error", sa.Text),
        sa.PrimaryKeyConstraint("id", name="pk_outbox"),
    )
    op.create_index("ix_outbox_state_next_try_at", "outbox", ["state", "next_try_at"])
    op.create_index("ix_outbox_username", "outbox", ["username"])
    op.create_table(
        "audit_log",
        sa.Column("id", Id, autoincrement=True),
        sa.Column("at", sa.BigInteger, nullable=False),
        sa.Column("username", Username, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("rule", sa.String(64), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("move_id", Id),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
        sa.ForeignKeyConstraint(["move_id"], ["outbox.id"], name="fk_audit_log_move_id_outbox"),
    )
    op.create_index("ix_audit_log_username_at", "audit_log", ["username", "at"])
    _make_audit_append_only()


def _make_audit_append_only() -> None:
    """The database itself refuses to change or delete an audit row."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION floatseat_audit_append_only() RETURNS trigger AS $$ "
            "BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$ LANGUAGE plpgsql"
        )
        op.execute(
            "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
            "FOR EACH ROW EXECUTE FUNCTION floatseat_audit_append_only()"
        )
    else:
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_log_no_{verb.lower()} BEFORE {verb} ON audit_log "
                "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER audit_log_append_only ON audit_log")
        op.execute("DROP FUNCTION floatseat_audit_append_only()")
    for table in (
        "audit_log",
        "outbox",
        "pinned_users",
        "revoke_locks",
        "waiters",
        "holders",
        "directory_users",
        "ledger_state",
    ):
        op.drop_table(table)
