"""`SeatEngine`: one event in, one ledger transaction out.

The transaction loads the policy's state, runs `SeatPolicy.handle`, and commits together
the new state, the directory moves the decisions imply (to the outbox) and an audit row
for every decision. If anything fails, nothing of it is committed.

Between events the engine keeps the policy while nobody else writes, and writes only the
rows the event changed (`SeatPolicy.take_changes()`): an activity costs the same with ten
users or a hundred thousand.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TypeVar

from floatseat.domain.policy import (
    Decision,
    Denied,
    Event,
    Grant,
    Holder,
    Ignored,
    PolicyChanges,
    PolicySettings,
    PolicySnapshot,
    Queued,
    Release,
    Revoke,
    SeatPolicy,
    Waiter,
    Warn,
)
from floatseat.service.ports import AuditEntry, AuditKind, Ledger, LedgerTransaction, MoveAction

# The policy counts a pinned user as licensed from the moment the pin begins, but leaves a
# pinned user where they are. One who held no seat sits in the unlicensed group, and would
# be refused at login with their activity ignored, so the engine moves them in.
PIN_BEGAN_RULE = "grant-pin-began"

_KINDS: dict[type[Decision], AuditKind] = {
    Grant: AuditKind.GRANT,
    Revoke: AuditKind.REVOKE,
    Release: AuditKind.RELEASE,
    Queued: AuditKind.QUEUED,
    Denied: AuditKind.DENIED,
    Warn: AuditKind.WARN,
    Ignored: AuditKind.IGNORED,
}


_Row = TypeVar("_Row", Holder, Waiter, int)


class _Committed:
    """The policy's state as committed, kept up to date from each event's changes, so that
    `peek()` never walks (or copies) the policy. Its rows are copies the policy never
    changes; a snapshot is built when asked for, once per commit.

    The web side peeks from its own threads without the runtime's lock, so applying and
    building take a lock of their own: a snapshot is wholly before a commit or after it.
    """

    def __init__(self, snapshot: PolicySnapshot) -> None:
        self.figures = snapshot.figures
        self.pins = snapshot.pins
        self.pinned = snapshot.pinned
        self.revokes_paused = snapshot.revokes_paused
        self.holders: dict[str, Holder] = {h.user: h for h in snapshot.holders}
        self.waiters: dict[str, Waiter] = {w.user: w for w in snapshot.waiters}
        self.locked_until: dict[str, int] = dict(snapshot.locked_until)
        self._snapshot: PolicySnapshot | None = snapshot
        self._lock = threading.Lock()

    def apply(self, changes: PolicyChanges) -> None:
        """Apply a committed event's changes (never uncommitted ones: readers see them)."""
        with self._lock:
            self.figures = changes.figures
            self.pins = changes.pins
            self.pinned = changes.pinned
            self.revokes_paused = changes.revokes_paused
            for user, (_, after) in changes.users.items():
                _put(self.holders, user, after.holder)
                _put(self.waiters, user, after.waiter)
                _put(self.locked_until, user, after.locked_until)
            self._snapshot = None

    def snapshot(self) -> PolicySnapshot:
        with self._lock:
            # The same object until the next commit: readers compare it by identity.
            if self._snapshot is None:
                self._snapshot = PolicySnapshot(
                    figures=self.figures,
                    pins=self.pins,
                    holders=tuple(self.holders.values()),
                    waiters=tuple(self.waiters.values()),
                    locked_until=tuple(sorted(self.locked_until.items())),
                    pinned=self.pinned,
                    revokes_paused=self.revokes_paused,
                )
            return self._snapshot


def _put(rows: dict[str, _Row], user: str, row: _Row | None) -> None:
    rows.pop(user, None)  # a changed row moves to the end, as the policy moves it
    if row is not None:
        rows[user] = row


class _Loaded:
    """The policy as of the ledger's `version`: reused while nobody else wrote."""

    def __init__(self, version: int, snapshot: PolicySnapshot, settings: PolicySettings) -> None:
        self.version = version
        self.policy = SeatPolicy.restore(settings, snapshot)
        self.policy.record_changes()
        self.committed = _Committed(snapshot)


class SeatEngine:
    """Decides seat events against the ledger; safe to run in several processes at once."""

    def __init__(self, ledger: Ledger, settings: PolicySettings) -> None:
        self.ledger = ledger
        self.settings = settings
        self._loaded: _Loaded | None = None

    def handle(self, event: Event) -> list[Decision]:
        """Decide `event` and commit the decisions, their moves and their audit rows at once."""
        return self.handle_all([event])[0]

    def handle_all(self, events: Sequence[Event]) -> list[list[Decision]]:
        """Decide `events` in order and commit them in one transaction (all or nothing): the
        decisions of each. One commit for many events is what keeps a burst of activity
        reports cheap; the decisions are those of handling them one by one."""
        if not events:
            return []
        loaded, self._loaded = self._loaded, None  # on any failure below, forget the copy
        with self.ledger.transaction() as tx:
            version = tx.lock()  # serializes writers: one decision at a time
            if loaded is None or loaded.version != version:
                loaded = _Loaded(version, tx.load(), self.settings)
            policy = loaded.policy
            decided: list[list[Decision]] = []
            began: list[tuple[int, str, frozenset[str] | None]] = []
            for index, event in enumerate(events):
                pinned = policy.pinned
                # Who held a floating seat before this event: one event alone reads it from
                # its changes below, for free; in a batch the changes span every event.
                held = frozenset(policy.holders) if len(events) > 1 else None
                decided.append(policy.handle(event))
                began += [(index, user, held) for user in sorted(policy.pinned - pinned)]
            changes = policy.take_changes()
            # Per event: its decisions, then the grants of the pins it began (as one by one).
            began_by: dict[int, list[str]] = {}
            for index, user, held in began:
                if not (user in held if held is not None else _held_before(changes, user)):
                    began_by.setdefault(index, []).append(user)
            new_version = tx.save_changes(changes)
            for index, (event, decisions) in enumerate(zip(events, decided, strict=True)):
                tx.append_audit(_queue_moves(tx, decisions, began_by.get(index, []), event.at))
        loaded.version = new_version
        loaded.committed.apply(changes)
        self._loaded = loaded
        return decided

    def use_settings(self, settings: PolicySettings) -> None:
        """Decide the next events with `settings` (the policy is rebuilt from the ledger)."""
        self.settings = settings
        self._loaded = None

    def peek(self) -> PolicySnapshot | None:
        """The state this engine committed last, without reading the ledger; None before its
        first event. Stale if another process wrote since: good for hints, not decisions."""
        loaded = self._loaded
        return None if loaded is None else loaded.committed.snapshot()

    def state(self) -> PolicySnapshot:
        """The policy's state as committed in the ledger."""
        with self.ledger.transaction() as tx:
            return tx.load()


def _held_before(changes: PolicyChanges, user: str) -> bool:
    rows = changes.users.get(user)
    return rows is not None and rows[0].holder is not None


def _queue_moves(
    tx: LedgerTransaction,
    decisions: list[Decision],
    pins_began: list[str],
    at: int,
) -> list[AuditEntry]:
    """Queue the moves the decisions imply, and a grant for each user whose pin began
    without a floating seat (at the time of the event that pinned them); the audit rows."""
    entries = []
    for decision in decisions:
        move_id = None
        if isinstance(decision, Grant | Revoke):
            action = MoveAction.GRANT if isinstance(decision, Grant) else MoveAction.REVOKE
            move_id = tx.enqueue(decision.user, action, decision.rule.value, decision.at)
        entries.append(
            AuditEntry(
                decision.at,
                decision.user,
                _KINDS[type(decision)],
                decision.rule.value,
                decision.reason,
                move_id,
            )
        )
    for user in pins_began:
        move_id = tx.enqueue(user, MoveAction.GRANT, PIN_BEGAN_RULE, at)
        reason = "pinned: holds a fixed seat"
        entries.append(AuditEntry(at, user, AuditKind.GRANT, PIN_BEGAN_RULE, reason, move_id))
    return entries
