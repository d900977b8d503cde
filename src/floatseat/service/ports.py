"""What the engine needs from the ledger, as plain records and protocols.

The SQL implementation is `floatseat.store.ledger.SqlLedger`; the service layer never
imports SQLAlchemy.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from floatseat.domain.policy import PolicyChanges, PolicySnapshot


class MoveAction(StrEnum):
    GRANT = "grant"  # into the licensed group, out of the unlicensed one
    REVOKE = "revoke"  # the reverse


class MoveState(StrEnum):
    PENDING = "pending"  # not attempted, or known not to have happened
    IN_FLIGHT = "in-flight"  # an attempt began and its outcome is unknown
    DONE = "done"
    SUPERSEDED = "superseded"  # the ledger no longer wants it: nothing to do
    SHADOWED = "shadowed"  # shadow mode: decided and recorded, never applied


class AuditKind(StrEnum):
    # Decisions of the policy (and the service's own move for a new pin).
    GRANT = "grant"
    REVOKE = "revoke"
    RELEASE = "release"
    QUEUED = "queued"
    DENIED = "denied"
    WARN = "warn"
    IGNORED = "ignored"
    # What the outbox did with a move.
    MOVE_APPLIED = "move-applied"
    MOVE_FAILED = "move-failed"
    MOVE_DEFERRED = "move-deferred"
    MOVE_SUPERSEDED = "move-superseded"
    MOVE_SHADOWED = "move-shadowed"  # shadow mode: what would have been done
    # Reconciliation: drift repaired, users placed or followed.
    DRIFT_ADOPTED = "drift-adopted"  # found licensed by hand, kept as a holder
    DRIFT_REVOKED = "drift-revoked"  # found licensed by hand, no seat for them: moved out
    DRIFT_REGRANTED = "drift-regranted"  # a holder found outside the licensed group
    USER_PLACED = "user-placed"  # a new user put in the unlicensed pool group
    USER_DEACTIVATED = "user-deactivated"  # a deactivated holder's seat taken back
    # The service's switches.
    FREEZE = "freeze"
    POLICY_CHANGED = "policy-changed"
    UNFREEZE = "unfreeze"
    FEED_STALLED = "feed-stalled"
    FEED_RECOVERED = "feed-recovered"
    # An admin's action that is no seat decision of its own (pin, unpin, account, token,
    # ...): rule `admin-<action>`, user the one acted on (or "-"), reason "by <admin>: ...".
    ADMIN = "admin"


ADMIN_RULE_PREFIX = "admin-"


def admin_entry(at: int, by: str, action: str, target: str, detail: str) -> AuditEntry:
    """The audit entry of an admin's `action` on `target` ("-" for none)."""
    return AuditEntry(
        at,
        target or "-",
        AuditKind.ADMIN,
        f"{ADMIN_RULE_PREFIX}{action}"[:64],
        f"by {by}: {detail}",
    )


@dataclass(frozen=True)
class Move:
    """One directory move in the outbox."""

    id: int
    user: str
    action: MoveAction
    rule: str
    decided_at: int
    state: MoveState
    attempts: int
    next_try_at: int
    last_error: str | None = None
    finished_at: int | None = None


@dataclass(frozen=True)
class AuditEntry:
    """One line of the audit log: who, when, what, the rule and the reason in words."""

    at: int
    user: str
    kind: AuditKind
    rule: str
    reason: str
    move_id: int | None = None


@dataclass(frozen=True)
class LicenceReport:
    """The licence as the directory last reported it.

    `watermark` is the ledger's move sequence number read just before the directory was
    asked: every grant that finished at or before it is in `licensed`; any later one may
    not be.
    """

    tier: int
    licensed: int
    reported_at: int
    watermark: int


@dataclass(frozen=True)
class LicenceDay:
    """The highest licensed count the product reported on one UTC day, and the tier it
    reported last that day."""

    day: str  # YYYY-MM-DD, UTC
    max_licensed: int
    tier: int


@dataclass(frozen=True)
class Flag:
    """One of the service's persisted switches (an admin's freeze, a stalled feed)."""

    name: str
    reason: str
    set_by: str
    set_at: int


@dataclass(frozen=True)
class PolicyOverride:
    """A policy setting an admin changed while floatseat ran: it wins over the config file's
    value at every start. `value` is JSON (see `floatseat.service.runtime.policy_overrides`)."""

    name: str
    value: object
    set_by: str
    set_at: int


class LedgerTransaction(Protocol):
    """One ledger transaction: it commits when its block ends normally, else rolls back."""

    # -- the policy's state ----------------------------------------------------------------
    def lock(self) -> int:
        """Take the writers' lock (held until the transaction ends); the state's version."""
        ...

    def load(self) -> PolicySnapshot: ...

    def save_changes(self, changes: PolicyChanges) -> int:
        """Write the rows the policy says it changed since it was loaded; the new version."""
        ...

    def enqueue(self, user: str, action: MoveAction, rule: str, at: int) -> int:
        """Add a pending move, due at once; its id."""
        ...

    def append_audit(self, entries: Iterable[AuditEntry]) -> None: ...

    # -- the outbox ------------------------------------------------------------------------
    def due_moves(self, now: int, limit: int) -> list[Move]:
        """Unfinished moves due at `now`: revokes first, each kind oldest first."""
        ...

    def move(self, move_id: int) -> Move: ...

    def seat_wanted(self, user: str) -> bool | None:
        """True if `user` holds a seat or is pinned, False if not, None if not managed."""
        ...

    def other_move_in_flight(self, user: str, move_id: int, now: int) -> bool:
        """Whether another move of `user` is being applied (its lease runs past `now`)."""
        ...

    def claim(self, move_id: int, *, lease_until: int, adds_seat: bool) -> None:
        """Mark an attempt as begun (in flight), before the directory is called."""
        ...

    def finish(self, move_id: int, now: int) -> None: ...

    def retry_later(self, move_id: int, *, next_try_at: int, error: str, attempt: bool) -> None:
        """Keep the move for later, noting why; `attempt` counts a failed attempt."""
        ...

    def supersede(self, move_id: int, now: int) -> None: ...

    def shadow(self, move_id: int, now: int) -> None:
        """Shadow mode: recorded as decided, never applied."""
        ...

    def move_seq(self) -> int: ...

    def licence_report(self) -> LicenceReport | None: ...

    def record_licence(self, report: LicenceReport) -> None:
        """Keep `report` unless a newer one (by watermark) is already stored; either way,
        raise the maximum licensed count of the report's UTC day."""
        ...

    def seats_in_flight(self, watermark: int, except_move: int) -> int:
        """Grants that add a seat and may be missing from a report taken at `watermark`."""
        ...

    def licence_days(self, since: str | None = None) -> list[LicenceDay]:
        """The daily maximum licensed count, oldest day first; from `since` (YYYY-MM-DD)."""
        ...

    # -- reading ---------------------------------------------------------------------------
    def moves(self) -> list[Move]: ...

    def audit_log(self) -> list[AuditEntry]: ...


class Ledger(Protocol):
    """The durable seat ledger."""

    def transaction(self) -> AbstractContextManager[LedgerTransaction]: ...


# -- high availability ----------------------------------------------------------------------


@dataclass(frozen=True)
class LeaderInfo:
    """Who leads under which epoch (the `leadership` row); leader None: nobody yet."""

    epoch: int
    leader: str | None
    since: int | None
    heartbeat_at: int | None


class Leadership(Protocol):
    """This instance's part in leader election (store/leadership.py on PostgreSQL)."""

    instance: str
    takeover_grace_s: float

    @property
    def leading(self) -> bool: ...

    @property
    def epoch(self) -> int | None:
        """The epoch this instance leads under; None while it follows."""
        ...

    def acting(self) -> bool:
        """Leading and past the takeover grace: may call the directory."""
        ...

    def begin_term(self) -> int:
        """Begin the directory term of the current epoch (raises `Deposed` unless acting);
        its epoch. Calls pass the fence only in that term: begin it once the work of an
        earlier term is over."""
        ...

    def campaign(self) -> bool:
        """Renew the leadership or try to take it; whether this instance leads now."""
        ...

    def check(self) -> None:
        """Raise `Deposed` unless this instance leads now and acts in the term of its current
        epoch (the fence before a directory call)."""
        ...

    def release_in_flight(self) -> int:
        """After a takeover's grace: retry at once the moves a previous leader left in flight."""
        ...

    def info(self) -> LeaderInfo | None: ...

    def resign(self, *, calls_over: bool = True) -> None:
        """Give up the leadership; `calls_over`: no directory call can still be under way."""
        ...


class SoloLeadership:
    """One instance on its own (the SQLite ledger): always the leader, nothing to check."""

    instance = "solo"
    takeover_grace_s = 0.0
    epoch = 0

    @property
    def leading(self) -> bool:
        return True

    def acting(self) -> bool:
        return True

    def begin_term(self) -> int:
        return 0

    def campaign(self) -> bool:
        return True

    def check(self) -> None:
        return None

    def release_in_flight(self) -> int:
        return 0

    def info(self) -> LeaderInfo | None:
        return None

    def resign(self, *, calls_over: bool = True) -> None:
        return None


class ActivityInbox(Protocol):
    """Activity for the leader that did not come from its own log followers: agents'
    batches, and activity reported to a follower (store/inbox.py)."""

    def add(self, items: Sequence[InboxItem], *, source: str, now: int) -> list[int]: ...

    def pending(self, ids: Iterable[int]) -> bool:
        """Whether any of these items is still waiting for the leader."""
        ...

    def take(self, limit: int = 5000) -> list[TakenItem]:
        """The oldest items, in id order (the leader's)."""
        ...

    def done(self, ids: Iterable[int]) -> None:
        """Forget items whose activity the engine committed (the leader's)."""
        ...

    def agent_nodes(self) -> dict[str, int | None]:
        """Nodes that cluster agents report for -> when their logs last grew."""
        ...


@dataclass(frozen=True)
class InboxItem:
    """One sighting of a user, as a follower of some node's logs saw it."""

    node: str
    user: str
    at: int
    urgent: bool = False
    refused: bool = False


@dataclass(frozen=True)
class TakenItem:
    id: int
    item: InboxItem
    source: str
    received_at: int
