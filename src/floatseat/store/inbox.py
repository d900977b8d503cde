"""The activity inbox: activity that reaches the leader through the database.

Cluster agents' batches and activity reported to a follower land here; the leader's
activity loop takes it like one more feed. `accept_batch` records an agent's batch and its
sequence number in one transaction, so that a batch sent twice is counted once; `take` and
`done` let the leader consume the rows by id after the engine committed them (a crash in
between hands them over again: activity is idempotent, the latest time wins).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from floatseat.service.errors import LedgerDatabaseError
from floatseat.service.ports import InboxItem, TakenItem
from floatseat.store.schema import activity_inbox, agent_batches

_CHUNK = 500


@dataclass(frozen=True)
class BatchReceipt:
    """What became of an agent's batch: `duplicate` when it had been accepted before."""

    agent_id: str
    seq: int
    accepted: int  # items added to the inbox
    duplicate: bool
    last_seq: int  # the highest sequence number accepted from this agent


class AgentNodeMismatch(Exception):
    """A batch from an agent id that already reports another node: two agents share an id."""


@dataclass(frozen=True)
class AgentSeen:
    agent_id: str
    node: str
    last_seq: int
    last_at: int
    log_at: int | None


class Inbox:
    """The inbox on the ledger's database (`SqlLedger.engine`)."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def add(self, items: Sequence[InboxItem], *, source: str, now: int) -> list[int]:
        """Add items for the leader (a follower's forwarded activity); their ids."""
        try:
            with self.engine.begin() as connection:
                return [
                    int(
                        connection.execute(
                            sa.insert(activity_inbox).values(row).returning(activity_inbox.c.id)
                        ).scalar_one()
                    )
                    for row in _rows(items, source, now)
                ]
        except sa.exc.DBAPIError as error:
            raise LedgerDatabaseError(f"the inbox's database failed: {error.orig}") from error

    def pending(self, ids: Iterable[int]) -> bool:
        """Whether any of these items is still waiting for the leader."""
        ids = list(ids)
        if not ids:
            return False
        try:
            with self.engine.connect() as connection:
                found = connection.execute(
                    sa.select(activity_inbox.c.id).where(activity_inbox.c.id.in_(ids)).limit(1)
                ).first()
        except sa.exc.DBAPIError as error:
            raise LedgerDatabaseError(f"the inbox's database failed: {error.orig}") from error
        return found is not None

    def accept_batch(
        self,
        agent_id: str,
        node: str,
        seq: int,
        items: Sequence[InboxItem],
        *,
        now: int,
        log_at: int | None = None,
    ) -> BatchReceipt:
        """Add an agent's batch unless its `seq` was accepted already (then nothing changes).

        Batches are accepted in increasing `seq`; a gap is accepted (an agent reinstalled
        with its state kept, say): the agent never sends a batch it has not spooled.
        `AgentNodeMismatch` if the agent id reports another node: a spool copied to a second
        machine (a cloned VM) makes two agents with one id, and the one behind would have
        its new batches taken for duplicates and dropped."""
        try:
            with self.engine.begin() as connection:
                row = connection.execute(
                    sa.select(agent_batches.c.last_seq, agent_batches.c.node)
                    .where(agent_batches.c.agent_id == agent_id)
                    .with_for_update()
                ).first()
                if row is not None and row.node != node:
                    raise AgentNodeMismatch(
                        f"agent {agent_id} reports node {row.node!r}, and this batch says "
                        f"{node!r}: two agents share one id (a spool directory copied to "
                        "another node, as in a cloned VM). On the node that got the copy, "
                        "stop the agent and delete its spool directory: it starts afresh "
                        "with an id of its own. (A node renamed with --node: give it back "
                        "its old name, or start it with a new spool directory.)"
                    )
                if row is not None and seq <= row.last_seq:
                    return BatchReceipt(agent_id, seq, 0, True, row.last_seq)
                values = {"node": node, "last_seq": seq, "last_at": now, "log_at": log_at}
                if row is None:
                    connection.execute(sa.insert(agent_batches).values(agent_id=agent_id, **values))
                else:
                    connection.execute(
                        sa.update(agent_batches)
                        .where(agent_batches.c.agent_id == agent_id)
                        .values(**values)
                    )
                if items:
                    connection.execute(
                        sa.insert(activity_inbox), _rows(items, f"agent:{agent_id}", now)
                    )
                return BatchReceipt(agent_id, seq, len(items), False, seq)
        except sa.exc.IntegrityError:
            # Two copies of an agent's first batch at once: the other one won.
            return BatchReceipt(agent_id, seq, 0, True, seq)
        except sa.exc.DBAPIError as error:
            raise LedgerDatabaseError(f"the inbox's database failed: {error.orig}") from error

    def take(self, limit: int = 5000) -> list[TakenItem]:
        """The oldest items not done yet, in id order."""
        t = activity_inbox.c
        try:
            with self.engine.connect() as connection:
                rows = connection.execute(
                    sa.select(activity_inbox).order_by(t.id).limit(limit)
                ).all()
        except sa.exc.DBAPIError as error:
            raise LedgerDatabaseError(f"the inbox's database failed: {error.orig}") from error
        return [
            TakenItem(
                r.id,
                InboxItem(r.node, r.username, r.at, bool(r.urgent), bool(r.refused)),
                r.source,
                r.received_at,
            )
            for r in rows
        ]

    def done(self, ids: Iterable[int]) -> None:
        """Forget items the engine has committed."""
        ids = list(ids)
        if not ids:
            return
        try:
            with self.engine.begin() as connection:
                for start in range(0, len(ids), _CHUNK):
                    chunk = ids[start : start + _CHUNK]
                    connection.execute(
                        sa.delete(activity_inbox).where(activity_inbox.c.id.in_(chunk))
                    )
        except sa.exc.DBAPIError as error:
            raise LedgerDatabaseError(f"the inbox's database failed: {error.orig}") from error

    def agent_nodes(self) -> dict[str, int | None]:
        """Nodes that cluster agents report for -> when their logs last grew (the latest
        of the node's agents)."""
        out: dict[str, int | None] = {}
        for agent in self.agents():
            known = out.get(agent.node)
            if agent.log_at is not None and (known is None or agent.log_at > known):
                out[agent.node] = agent.log_at
            else:
                out.setdefault(agent.node, None)
        return out

    def agents(self) -> list[AgentSeen]:
        """Every agent that sent a batch, with when (for the feeds' health and the dashboard)."""
        try:
            with self.engine.connect() as connection:
                rows = connection.execute(
                    sa.select(agent_batches).order_by(agent_batches.c.node)
                ).all()
        except sa.exc.DBAPIError as error:
            raise LedgerDatabaseError(f"the inbox's database failed: {error.orig}") from error
        return [AgentSeen(r.agent_id, r.node, r.last_seq, r.last_at, r.log_at) for r in rows]


def _rows(items: Iterable[InboxItem], source: str, now: int) -> list[dict[str, object]]:
    return [
        {
            "node": i.node,
            "username": i.user,
            "at": i.at,
            "urgent": i.urgent,
            "refused": i.refused,
            "received_at": now,
            "source": source,
        }
        for i in items
    ]
