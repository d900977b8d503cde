"""`SeatEngine`: one event in, one ledger transaction out.

The transaction loads the policy's state, runs `SeatPolicy.handle`, and commits together
the new state, the directory moves the decisions imply (to the outbox) and an audit row
for every decision. If anything fails, nothing of it is committed.
"""

from __future__ import annotations

from dataclasses import dataclass

from floatseat.domain.policy import (
    Decision,
    Denied,
    Event,
    Grant,
    Ignored,
    PolicySettings,
    PolicySnapshot,
    Queued,
    Release,
    Revoke,
    SeatPolicy,
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


@dataclass
class _Loaded:
    """The policy as of the ledger's `version`: reused while nobody else wrote."""

    version: int
    policy: SeatPolicy
    snapshot: PolicySnapshot


class SeatEngine:
    """Decides seat events against the ledger; safe to run in several processes at once."""

    def __init__(self, ledger: Ledger, settings: PolicySettings) -> None:
        self.ledger = ledger
        self.settings = settings
        self._loaded: _Loaded | None = None

    def handle(self, event: Event) -> list[Decision]:
        """Decide `event` and commit the decisions, their moves and their audit rows at once."""
        loaded, self._loaded = self._loaded, None  # on any failure below, forget the copy
        with self.ledger.transaction() as tx:
            version = tx.lock()  # serializes writers: one decision at a time
            if loaded is not None and loaded.version == version:
                policy, before = loaded.policy, loaded.snapshot
            else:
                before = tx.load()
                policy = SeatPolicy.restore(self.settings, before)
            decisions = policy.handle(event)
            after = policy.snapshot()
            new_version = tx.save(before, after)
            tx.append_audit(_queue_moves(tx, decisions, before, after, event.at))
        self._loaded = _Loaded(new_version, policy, after)
        return decisions

    def use_settings(self, settings: PolicySettings) -> None:
        """Decide the next events with `settings` (the policy is rebuilt from the ledger)."""
        self.settings = settings
        self._loaded = None

    def peek(self) -> PolicySnapshot | None:
        """The state this engine committed last, without reading the ledger; None before its
        first event. Stale if another process wrote since: good for hints, not decisions."""
        loaded = self._loaded
        return None if loaded is None else loaded.snapshot

    def state(self) -> PolicySnapshot:
        """The policy's state as committed in the ledger."""
        with self.ledger.transaction() as tx:
            return tx.load()


def _queue_moves(
    tx: LedgerTransaction,
    decisions: list[Decision],
    before: PolicySnapshot,
    after: PolicySnapshot,
    at: int,
) -> list[AuditEntry]:
    """Queue the moves the decisions imply; the audit rows of the decisions and moves."""
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
    held = {h.user for h in before.holders}
    for user in sorted(after.pinned - before.pinned - held):
        move_id = tx.enqueue(user, MoveAction.GRANT, PIN_BEGAN_RULE, at)
        reason = "pinned: holds a fixed seat"
        entries.append(AuditEntry(at, user, AuditKind.GRANT, PIN_BEGAN_RULE, reason, move_id))
    return entries
