"""`Runtime`: what a running `floatseat serve` offers the web side, in one object.

The web app gets a `Runtime` from `create_app(runtime)` and calls exactly these:

- `runtime.status() -> RuntimeStatus`: the figures for `/api/v1/status`, the dashboard
  and `/metrics` (capacity and seats_held count floating seats only).
- `runtime.submit(event) -> list[Decision]`: decide one policy event now (an `Activity`
  from `POST /api/v1/activity`, `AdminGrant`, `AdminRevoke`, `PinsChanged`, ...). Thread-safe:
  one decision at a time. Moves it queues are applied by the service's directory worker,
  which is woken at once.
- `runtime.freeze(by, reason)` / `runtime.unfreeze(by)`: the admin's freeze (break-glass):
  no idle revokes until unfrozen; audited; survives a restart. A feed stall pauses revokes
  too, as a separate reason: unfreezing does not resume while a feed is stalled.
- `runtime.update_policy(settings, by)`: decide with new `PolicySettings` from now on
  (audited; not kept across a restart, where the config file rules).
- `runtime.reconcile_now() -> ReconcileReport`: run a reconciliation now (reads the
  directory; may take seconds) and return what it found and repaired.
- `runtime.ledger` (`SqlLedger`: `audit_log`, `moves`, `licence_days(since)`, `flags()`),
  `runtime.engine.state()` (holders, waiters, pins), `runtime.settings`, `runtime.shadow`,
  `runtime.clock()` (seconds since the epoch), `runtime.product`.

Everything else in `floatseat.service` is the loop's business.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from floatseat.domain.feeds import FeedHealth, Stall
from floatseat.domain.policy import (
    Decision,
    Event,
    Grant,
    PolicySettings,
    PolicySnapshot,
    Revoke,
    RevokesPaused,
    SeatPolicy,
    Sweep,
)
from floatseat.service.engine import SeatEngine
from floatseat.service.ports import AuditEntry, AuditKind, Flag

if TYPE_CHECKING:
    from floatseat.service.reconcile import ReconcileReport
    from floatseat.store.ledger import SqlLedger

__all__ = ["FREEZE_FLAG", "STALL_FLAG", "FeedStall", "Runtime", "RuntimeStatus", "paused_reason"]

FREEZE_FLAG = "freeze"
STALL_FLAG = "feed-stall"
SERVICE_USER = "floatseat"  # the audit's "user" for what the service does on its own


@dataclass(frozen=True)
class FeedStall:
    """A node whose activity feed is stalled, and why (in words for the admin)."""

    node: str
    reason: str
    quiet_s: int


@dataclass(frozen=True)
class RuntimeStatus:
    """The service's figures now. Seats count floating seats only."""

    now: int
    product: str
    capacity: int  # floating seats: tier - licensed outside - pinned - reserve
    seats_held: int  # floating holders
    queue_length: int
    tier: int  # as the policy last saw it (reconciliation)
    licensed: int | None  # the product's licensed count, as last reported
    licence_reported_at: int | None
    licensed_outside: int
    pinned: int
    revokes_paused: str | None  # why idle revokes are paused (freeze, stall), or None
    shadow: bool
    frozen: bool
    frozen_by: str | None
    frozen_reason: str | None
    stalled_feeds: tuple[FeedStall, ...]
    outbox_backlog: int  # moves not applied yet
    oldest_pending_move_at: int | None
    directory_errors_in_a_row: int
    last_directory_error: str | None
    last_reconciliation_at: int | None
    drift_repairs: int  # since the service started
    malformed_lines: int  # since the service started
    feed_lag_s: dict[str, int]  # by node: seconds since its logs last grew

    # The names the web side reads too.
    @property
    def directory_errors(self) -> int:
        return self.directory_errors_in_a_row

    @property
    def last_reconciliation(self) -> int | None:
        return self.last_reconciliation_at


@dataclass
class Counters:
    """What the loop and the directory worker report to the runtime as they go."""

    directory_errors_in_a_row: int = 0
    last_directory_error: str | None = None
    last_reconciliation_at: int | None = None
    drift_repairs: int = 0
    malformed_lines: int = 0
    stalls: tuple[Stall, ...] = ()


def paused_reason(flags: dict[str, Flag]) -> str | None:
    """The policy's pause reason from the service's flags: each reason, named; None if none."""
    parts = []
    if FREEZE_FLAG in flags:
        flag = flags[FREEZE_FLAG]
        parts.append(f"frozen by {flag.set_by}: {flag.reason}")
    if STALL_FLAG in flags:
        parts.append(flags[STALL_FLAG].reason)
    return "; ".join(parts) or None


@dataclass
class Runtime:
    """The engine, the ledger and the service's state, shared by the loop and the web app."""

    ledger: SqlLedger
    engine: SeatEngine
    policy_settings: PolicySettings
    product: str = "confluence"
    shadow: bool = False
    clock: Callable[[], float] = time.time
    health: FeedHealth = field(default_factory=FeedHealth)
    settings: object | None = None  # the ServeSettings it was built from, when it was
    counters: Counters = field(default_factory=Counters)
    # Set by the service: wakes the directory worker; runs a reconciliation.
    wake_directory: Callable[[], None] = lambda: None
    # Set by the notifier: sees every decision after its commit; must not block or raise.
    on_decisions: Callable[[Sequence[Decision]], None] = lambda _decisions: None
    reconciler: Callable[[], ReconcileReport] | None = None
    feed_lag: Callable[[], dict[str, int]] = dict
    _lock: threading.RLock = field(default_factory=threading.RLock, init=False, repr=False)

    def now(self) -> int:
        return int(self.clock())

    # -- reading ---------------------------------------------------------------------------

    def state(self) -> PolicySnapshot:
        """The policy's state: this process's last commit, else the ledger's."""
        with self._lock:
            return self.engine.peek() or self.engine.state()

    def status(self) -> RuntimeStatus:
        now = self.now()
        with self._lock:
            snapshot = self.engine.state()
        policy = SeatPolicy.restore(self.policy_settings, snapshot)
        with self.ledger.transaction() as tx:
            licence = tx.licence_report()
            flags = tx.flags()
            backlog, oldest = tx.backlog(now)
        freeze = flags.get(FREEZE_FLAG)
        counters = self.counters
        return RuntimeStatus(
            now=now,
            product=self.product,
            capacity=policy.capacity(),
            seats_held=len(snapshot.holders),
            queue_length=len(snapshot.waiters),
            tier=snapshot.figures.tier,
            licensed=None if licence is None else licence.licensed,
            licence_reported_at=None if licence is None else licence.reported_at,
            licensed_outside=snapshot.figures.licensed_outside,
            pinned=len(snapshot.pinned),
            revokes_paused=snapshot.revokes_paused,
            shadow=self.shadow,
            frozen=freeze is not None,
            frozen_by=None if freeze is None else freeze.set_by,
            frozen_reason=None if freeze is None else freeze.reason,
            stalled_feeds=tuple(FeedStall(s.node, s.reason, s.quiet_s) for s in counters.stalls),
            outbox_backlog=backlog,
            oldest_pending_move_at=oldest,
            directory_errors_in_a_row=counters.directory_errors_in_a_row,
            last_directory_error=counters.last_directory_error,
            last_reconciliation_at=counters.last_reconciliation_at,
            drift_repairs=counters.drift_repairs,
            malformed_lines=counters.malformed_lines,
            feed_lag_s=self.feed_lag(),
        )

    # -- acting ----------------------------------------------------------------------------

    def submit(self, event: Event) -> list[Decision]:
        """Decide `event` in the ledger (one transaction); wake the directory worker if it
        queued a move."""
        with self._lock:
            decisions = self.engine.handle(event)
        if any(isinstance(d, Grant | Revoke) for d in decisions):
            self.wake_directory()
        self.on_decisions(decisions)
        return decisions

    def submit_all(self, events: Sequence[Event]) -> list[Decision]:
        """Decide several events in order; the directory worker is woken once."""
        out: list[Decision] = []
        with self._lock:
            for event in events:
                out.extend(self.engine.handle(event))
        if any(isinstance(d, Grant | Revoke) for d in out):
            self.wake_directory()
        self.on_decisions(out)
        return out

    def freeze(self, by: str, reason: str) -> None:
        """Pause every idle revoke until `unfreeze` (break-glass); audited, kept on restart.

        Grants go on: a free seat is still given, never above capacity."""
        reason = reason.strip() or "no reason given"
        now = self.now()
        with self._lock:
            with self.ledger.transaction() as tx:
                tx.lock()
                tx.set_flag(Flag(FREEZE_FLAG, reason, by, now))
                entry = AuditEntry(now, by, AuditKind.FREEZE, "freeze", f"revokes paused: {reason}")
                tx.append_audit([entry])
            self.apply_flags(now)

    def unfreeze(self, by: str) -> bool:
        """End the admin's freeze; False if there was none. A stalled feed keeps revokes
        paused on its own account."""
        now = self.now()
        with self._lock:
            with self.ledger.transaction() as tx:
                tx.lock()
                was = tx.clear_flag(FREEZE_FLAG)
                if was:
                    entry = AuditEntry(now, by, AuditKind.UNFREEZE, "unfreeze", "revokes resumed")
                    tx.append_audit([entry])
            self.apply_flags(now)
        return was

    def update_policy(self, settings: PolicySettings, by: str) -> None:
        """Decide from now on with `settings` (already validated); audited. Not kept across
        a restart: the config file rules then."""
        now = self.now()
        with self._lock:
            before = self.policy_settings
            self.engine.use_settings(settings)
            self.policy_settings = settings
            changed = [
                f"{name} {getattr(before, name)} -> {getattr(settings, name)}"
                for name in before.__dataclass_fields__
                if getattr(before, name) != getattr(settings, name)
            ]
            reason = "; ".join(changed) or "no change"
            with self.ledger.transaction() as tx:
                tx.append_audit([AuditEntry(now, by, AuditKind.POLICY_CHANGED, "policy", reason)])
        self.submit(Sweep(now))  # apply it: a shorter timeout may free seats now

    def frozen(self) -> bool:
        return FREEZE_FLAG in self.ledger.flags()

    def set_stalls(self, stalls: Sequence[Stall], now: int) -> None:
        """The feeds stalled now (from `FeedHealth.stalls`): pause revokes while any is,
        resume when none is; the start and end of each node's stall is audited."""
        self.counters.stalls = tuple(stalls)
        nodes = sorted(s.node for s in stalls)
        with self._lock:
            current = self.ledger.flags().get(STALL_FLAG)
            was = set() if current is None else set(_nodes_of(current.reason))
            if set(nodes) != was:
                self._record_stalls(stalls, was, now)
            self.apply_flags(now)

    def _record_stalls(self, stalls: Sequence[Stall], was: set[str], now: int) -> None:
        nodes = sorted(s.node for s in stalls)
        entries = [
            AuditEntry(
                now,
                SERVICE_USER,
                AuditKind.FEED_STALLED,
                STALL_FLAG,
                f"feed of {s.node} stalled: {s.reason}; idle revokes paused",
            )
            for s in stalls
            if s.node not in was
        ]
        entries += [
            AuditEntry(
                now,
                SERVICE_USER,
                AuditKind.FEED_RECOVERED,
                STALL_FLAG,
                f"feed of {node} is alive again",
            )
            for node in sorted(was - set(nodes))
        ]
        with self.ledger.transaction() as tx:
            tx.lock()
            if nodes:
                reason = "stalled feeds: " + ", ".join(nodes)
                tx.set_flag(Flag(STALL_FLAG, reason, SERVICE_USER, now))
            else:
                tx.clear_flag(STALL_FLAG)
            tx.append_audit(entries)

    def apply_flags(self, now: int) -> None:
        """Bring the policy's pause in line with the flags (after a change, or at start)."""
        with self._lock:
            flags = self.ledger.flags()
            if not self._paused_as_flagged(flags):
                self.submit(RevokesPaused(now, paused_reason(flags)))

    def _paused_as_flagged(self, flags: dict[str, Flag]) -> bool:
        return self.state().revokes_paused == paused_reason(flags)

    def reconcile_now(self) -> ReconcileReport:
        """Reconcile with the directory now; what was found and repaired."""
        if self.reconciler is None:
            raise RuntimeError("this runtime has no directory to reconcile with")
        return self.reconciler()


def _nodes_of(reason: str) -> list[str]:
    _, _, names = reason.partition(": ")
    return [n for n in names.split(", ") if n]
