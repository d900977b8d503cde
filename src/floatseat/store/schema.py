"""The ledger's tables (SQLAlchemy Core, one MetaData). Migrations create them; see migrations/.

Times are whole seconds since the epoch, as in the domain. Usernames are stored as the
policy sees them.
"""

from __future__ import annotations

import sqlalchemy as sa

from floatseat.logs.pattern import MAX_USERNAME_LENGTH

# Big integers for ids and times, but SQLite only auto-increments a column typed INTEGER.
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Seconds = sa.BigInteger
Username = sa.String(MAX_USERNAME_LENGTH)

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# One row: the figures and pins of the policy, the counters, and the last licence report.
# Every writer locks it first, which serializes writers on PostgreSQL.
ledger_state = sa.Table(
    "ledger_state",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("version", sa.BigInteger, nullable=False),  # +1 per committed event
    sa.Column("tier", sa.Integer, nullable=False),
    sa.Column("licensed_outside", sa.Integer, nullable=False),
    sa.Column("pins", sa.JSON, nullable=False),  # [{"user", "group", "until"}]
    sa.Column("move_seq", sa.BigInteger, nullable=False),  # orders claims, ends, reports
    sa.Column("licence_tier", sa.Integer),
    sa.Column("licence_licensed", sa.Integer),
    sa.Column("licence_reported_at", Seconds),
    sa.Column("licence_watermark", sa.BigInteger),  # move_seq when that report was read
    sa.Column("revokes_paused", sa.String(500)),  # why idle revokes are paused, or NULL
    sa.CheckConstraint("id = 1", name="single_row"),
)

# The directory's users as the policy last saw them: the pool, the excluded, their groups.
directory_users = sa.Table(
    "directory_users",
    metadata,
    sa.Column("username", Username, primary_key=True),
    sa.Column("in_pool", sa.Boolean, nullable=False),
    sa.Column("excluded", sa.Boolean, nullable=False),
    sa.Column("groups", sa.JSON, nullable=False),  # sorted list of group names
)

holders = sa.Table(
    "holders",
    metadata,
    sa.Column("username", Username, primary_key=True),
    sa.Column("granted_at", Seconds, nullable=False),
    sa.Column("last_activity", Seconds, nullable=False),
    sa.Column("warned", sa.Boolean, nullable=False),
)

waiters = sa.Table(
    "waiters",
    metadata,
    sa.Column("username", Username, primary_key=True),
    sa.Column("queued_at", Seconds, nullable=False),
    sa.Column("rank", sa.Integer, nullable=False),
)

revoke_locks = sa.Table(
    "revoke_locks",
    metadata,
    sa.Column("username", Username, primary_key=True),
    sa.Column("until", Seconds, nullable=False),
)

pinned_users = sa.Table(
    "pinned_users",
    metadata,
    sa.Column("username", Username, primary_key=True),
)

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("username", Username, nullable=False),
    sa.Column("action", sa.String(16), nullable=False),  # grant | revoke
    sa.Column("rule", sa.String(64), nullable=False),
    sa.Column("decided_at", Seconds, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),  # pending | in-flight | done | superseded
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_try_at", Seconds, nullable=False),
    sa.Column("adds_seat", sa.Boolean, nullable=False),  # this attempt adds to the licence
    sa.Column("lease_until", Seconds),  # an attempt is under way until then
    sa.Column("finished_seq", sa.BigInteger),
    sa.Column("finished_at", Seconds),
    sa.Column("last_error", sa.Text),
    sa.Index(None, "state", "next_try_at"),
    sa.Index(None, "username"),
)

# Append-only: the migration adds triggers that refuse UPDATE and DELETE.
audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("at", Seconds, nullable=False),
    sa.Column("username", Username, nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("rule", sa.String(64), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("move_id", Id, sa.ForeignKey("outbox.id")),
    sa.Index(None, "username", "at"),
)

# The highest licensed count the product reported on each UTC day, with the tier then:
# evidence for renewals. Every licence read raises the day's maximum.
licence_days = sa.Table(
    "licence_days",
    metadata,
    sa.Column("day", sa.String(10), primary_key=True),  # YYYY-MM-DD, UTC
    sa.Column("max_licensed", sa.Integer, nullable=False),
    sa.Column("tier", sa.Integer, nullable=False),
    sa.Column("max_at", Seconds, nullable=False),  # when the maximum was first read
)

# The service's switches that outlive a restart: an admin's freeze, a stalled feed.
# Each is one reason to pause idle revokes; the policy gets them combined.
service_flags = sa.Table(
    "service_flags",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("reason", sa.String(500), nullable=False),
    sa.Column("set_by", Username, nullable=False),
    sa.Column("set_at", Seconds, nullable=False),
)

# Where each log follower stopped, saved after the engine committed what it read.
feed_positions = sa.Table(
    "feed_positions",
    metadata,
    sa.Column("feed", sa.String(255), primary_key=True),  # node + kind
    sa.Column("positions", sa.JSON, nullable=False),  # LogFollower.positions()
    sa.Column("saved_at", Seconds, nullable=False),
)

# The admin's policy changes made while floatseat runs (the dashboard, PUT /api/v1/policy):
# one row per setting that differs from the config file's, as JSON. Applied over the config
# file's values at every start.
policy_overrides = sa.Table(
    "policy_overrides",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),  # a PolicySettings field
    sa.Column("value", sa.JSON, nullable=False),
    sa.Column("set_by", Username, nullable=False),
    sa.Column("set_at", Seconds, nullable=False),
)

# High availability (docs/operations.md): one row naming the leader. The epoch rises by one
# at every takeover; the leader checks it before every directory call (fencing), so that a
# deposed leader's late call is refused before it is made.
leadership = sa.Table(
    "leadership",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("epoch", sa.BigInteger, nullable=False),
    sa.Column("leader", sa.String(255)),  # the instance's name, NULL before the first
    sa.Column("since", Seconds),
    sa.Column("heartbeat_at", Seconds),
    sa.CheckConstraint("id = 1", name="single_row"),
)

# Activity that did not come from this process's own log followers: cluster agents'
# batches and activity reported to a follower. The leader takes it in id order and deletes
# what the engine committed (by id: ids may commit out of order, so no cursor).
activity_inbox = sa.Table(
    "activity_inbox",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("node", sa.String(255), nullable=False),
    sa.Column("username", Username, nullable=False),
    sa.Column("at", Seconds, nullable=False),
    sa.Column("urgent", sa.Boolean, nullable=False),  # a refused login or a seat path
    sa.Column("refused", sa.Boolean, nullable=False),  # a refused login
    sa.Column("received_at", Seconds, nullable=False),
    sa.Column("source", sa.String(255), nullable=False),  # "agent:<id>", "api:<instance>"
)

# The last batch accepted from each cluster agent: a batch sent again (the agent did not
# hear the answer) is acknowledged and not counted twice.
agent_batches = sa.Table(
    "agent_batches",
    metadata,
    sa.Column("agent_id", sa.String(64), primary_key=True),
    sa.Column("node", sa.String(255), nullable=False),
    sa.Column("last_seq", sa.BigInteger, nullable=False),
    sa.Column("last_at", Seconds, nullable=False),  # when it was accepted
    sa.Column("log_at", Seconds),  # when the agent's logs last grew, as the agent saw it
)
