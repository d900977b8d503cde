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
- `runtime.update_policy(settings, by) -> AuditEntry`: decide with new `PolicySettings`
  from now on; audited (one entry, kind `policy-changed`, rule `admin-policy`, which it
  returns). The settings that differ from the config file's are kept in the ledger
  (`policy_overrides`) and win over the config file at the next start.
- `runtime.reconcile_now() -> ReconcileReport`: run a reconciliation now (reads the
  directory; may take seconds) and return what it found and repaired.
- `runtime.ledger` (`SqlLedger`: `audit_log`, `moves`, `licence_days(since)`, `flags()`),
  `runtime.engine.state()` (holders, waiters, pins), `runtime.settings`, `runtime.shadow`,
  `runtime.clock()` (seconds since the epoch), `runtime.product`.

Everything else in `floatseat.service` is the loop's business.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from floatseat.domain.feeds import FeedHealth, Stall
from floatseat.domain.policy import (
    Activity,
    Decision,
    Event,
    Grant,
    PolicySettings,
    PolicySnapshot,
    PriorityClass,
    Revoke,
    RevokesPaused,
    SeatPolicy,
    SettingsError,
    Sweep,
)
from floatseat.service.engine import SeatEngine
from floatseat.service.ports import (
    ADMIN_RULE_PREFIX,
    ActivityInbox,
    AuditEntry,
    AuditKind,
    Flag,
    InboxItem,
    Leadership,
    PolicyOverride,
    SoloLeadership,
)

if TYPE_CHECKING:
    from floatseat.service.reconcile import ReconcileReport
    from floatseat.store.ledger import SqlLedger

__all__ = [
    "FREEZE_FLAG",
    "STALL_FLAG",
    "FeedStall",
    "Runtime",
    "RuntimeStatus",
    "paused_reason",
    "policy_overrides",
    "with_overrides",
]

log = logging.getLogger(__name__)

FREEZE_FLAG = "freeze"
STALL_FLAG = "feed-stall"
SERVICE_USER = "floatseat"  # the audit's "user" for what the service does on its own
POLICY_RULE = ADMIN_RULE_PREFIX + "policy"


# -- the admin's policy overrides ----------------------------------------------------------


def _to_json(value: object) -> object:
    if isinstance(value, tuple):  # priority classes
        return [
            {"name": c.name, "rank": c.rank, "groups": sorted(c.groups)}
            for c in value
            if isinstance(c, PriorityClass)
        ]
    if isinstance(value, Mapping):
        return dict(sorted(value.items()))
    return value


def _from_json(name: str, value: Any) -> object:
    if name == "priority_classes":
        return tuple(
            PriorityClass(c["name"], int(c["rank"]), frozenset(c["groups"])) for c in value
        )
    if name in ("group_caps", "group_reservations"):
        return {str(k): int(v) for k, v in value.items()}
    return value


def policy_overrides(base: PolicySettings, settings: PolicySettings) -> dict[str, object]:
    """The settings of `settings` that differ from `base` (the config file's), as JSON."""
    return {
        f.name: _to_json(getattr(settings, f.name))
        for f in dataclasses.fields(settings)
        if _to_json(getattr(settings, f.name)) != _to_json(getattr(base, f.name))
    }


def with_overrides(
    base: PolicySettings, overrides: Mapping[str, PolicyOverride]
) -> tuple[PolicySettings, list[str]]:
    """`base` (the config file's policy) with the admin's overrides applied, and what was
    done in words (for the log). Overrides that no longer fit (an unknown setting, a value
    that does not validate against the file's other values) are left out, with a note."""
    names = {f.name for f in dataclasses.fields(base)}
    values: dict[str, object] = {}
    notes = []
    for name, override in sorted(overrides.items()):
        if name not in names:
            notes.append(f"ignored the override of unknown setting {name!r}")
            continue
        try:
            values[name] = _from_json(name, override.value)
        except (TypeError, ValueError, KeyError, AttributeError) as error:
            notes.append(f"ignored the override of {name}: {error}")
            continue
        file_value = _to_json(getattr(base, name))
        if file_value != override.value:
            notes.append(
                f"{name} = {override.value!r} (set by {override.set_by} on the dashboard) "
                f"wins over the config's {file_value!r}"
            )
    try:
        return dataclasses.replace(base, **values), notes  # type: ignore[arg-type]
    except (SettingsError, TypeError) as error:
        notes.append(f"ignored every policy override, they no longer fit the config: {error}")
        return base, notes


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
    # High availability: "solo" (SQLite), "leader", "leader-taking-over" or "follower".
    role: str = "solo"
    instance: str = "solo"
    leader: str | None = None  # the leading instance, as the ledger names it
    epoch: int | None = None

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
    # The config file's policy, before the admin's overrides; None: `policy_settings`.
    base_policy: PolicySettings | None = None
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
    leadership: Leadership = field(default_factory=SoloLeadership)
    # Where activity goes while this instance follows (None: decided here, as solo).
    inbox: ActivityInbox | None = None
    forward_wait_s: float = 2.0
    _lock: threading.RLock = field(default_factory=threading.RLock, init=False, repr=False)
    # The policy's state as `status()` last loaded it, with the ledger's version then.
    _status_state: tuple[int, PolicySnapshot] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.base_policy is None:
            self.base_policy = self.policy_settings

    def now(self) -> int:
        return int(self.clock())

    # -- reading ---------------------------------------------------------------------------

    def state(self) -> PolicySnapshot:
        """The policy's state: this process's last commit, else the ledger's."""
        with self._lock:
            return self.engine.peek() or self.engine.state()

    def status(self) -> RuntimeStatus:
        """The service's figures, read in one ledger transaction.

        The policy's state is loaded again only when the ledger's version moved since the
        last call (every commit of the policy's state bumps it, whichever process wrote):
        loading it reads every directory user, which would dominate `/api/v1/status`.
        """
        now = self.now()
        with self._lock, self.ledger.transaction() as tx:
            version = tx.version()
            known = self._status_state
            if known is not None and known[0] == version:
                snapshot = known[1]
            else:
                snapshot = tx.load()
                self._status_state = (version, snapshot)
            licence = tx.licence_report()
            flags = tx.flags()
            backlog, oldest = tx.backlog(now)
        policy = SeatPolicy.restore(self.policy_settings, snapshot)
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
            feed_lag_s=self.feed_lag() if self.leadership.leading else {},
            **self._role(),
        )

    def _role(self) -> dict[str, Any]:
        leadership = self.leadership
        info = leadership.info()
        if info is None:
            return {"role": "solo", "instance": leadership.instance}
        if not leadership.leading:
            role = "follower"
        else:
            role = "leader" if leadership.acting() else "leader-taking-over"
        return {
            "role": role,
            "instance": leadership.instance,
            "leader": info.leader,
            "epoch": info.epoch,
        }

    # -- acting ----------------------------------------------------------------------------

    @property
    def follows(self) -> bool:
        """Another instance leads: activity goes to it through the inbox."""
        return self.inbox is not None and not self.leadership.leading

    def forward(self, activity: Activity) -> bool:
        """Leave `activity` for the leader; whether it took it within `forward_wait_s`.

        Committed before this returns, so the activity is never lost: a leader that dies
        before taking it leaves it to the next."""
        assert self.inbox is not None
        # Urgent: a report to the API is as pressing as a refused login (never coalesced).
        item = InboxItem("api", activity.user, activity.at, urgent=True)
        ids = self.inbox.add([item], source=f"api:{self.leadership.instance}", now=self.now())
        deadline = time.monotonic() + self.forward_wait_s
        while self.inbox.pending(ids):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)
        return True

    def submit(self, event: Event) -> list[Decision]:
        """Decide `event` in the ledger (one transaction); wake the directory worker if it
        queued a move. On a follower, activity is forwarded to the leader instead (see
        `forward`) and no decision is returned."""
        if isinstance(event, Activity) and self.follows:
            self.forward(event)
            return []
        with self._lock:
            decisions = self.engine.handle(event)
        if any(isinstance(d, Grant | Revoke) for d in decisions):
            self.wake_directory()
        self.on_decisions(decisions)
        return decisions

    def submit_all(self, events: Sequence[Event]) -> list[Decision]:
        """Decide several events in order, in one ledger transaction; the directory worker is
        woken once."""
        return [d for each in self.submit_each(events) for d in each]

    def submit_each(self, events: Sequence[Event]) -> list[list[Decision]]:
        """`submit_all`, with the decisions of each event apart (for the activity API, which
        decides the reports that queued up together and answers each)."""
        with self._lock:
            decided = self.engine.handle_all(events)
        out = [d for each in decided for d in each]
        if any(isinstance(d, Grant | Revoke) for d in out):
            self.wake_directory()
        self.on_decisions(out)
        return decided

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

    def update_policy(self, settings: PolicySettings, by: str) -> AuditEntry:
        """Decide from now on with `settings` (already validated); audited, and kept across a
        restart: every setting that differs from the config file's (`base_policy`) is saved
        as an override, which wins over the config file at the next start. Returns the one
        audit entry it wrote."""
        now = self.now()
        with self._lock:
            before = self.policy_settings
            base = self.base_policy or before  # set in __post_init__
            changed = [
                f"{f.name}: {_to_json(getattr(before, f.name))!r} -> "
                f"{_to_json(getattr(settings, f.name))!r}"
                for f in dataclasses.fields(before)
                if _to_json(getattr(before, f.name)) != _to_json(getattr(settings, f.name))
            ]
            kept = self.ledger.policy_overrides()
            overrides = [
                # An untouched override keeps who set it and when.
                kept[name]
                if name in kept and kept[name].value == value
                else PolicyOverride(name, value, by, now)
                for name, value in sorted(policy_overrides(base, settings).items())
            ]
            entry = AuditEntry(
                now,
                "-",
                AuditKind.POLICY_CHANGED,
                POLICY_RULE,
                f"by {by}: " + (", ".join(changed) or "no change"),
            )
            with self.ledger.transaction() as tx:
                tx.lock()
                tx.set_policy_overrides(overrides)
                tx.append_audit([entry])
            self.engine.use_settings(settings)
            self.policy_settings = settings
        self.submit(Sweep(now))  # apply it: a shorter timeout may free seats now
        return entry

    def refresh_policy(self) -> bool:
        """Adopt the policy overrides another instance saved (an admin's change on another
        instance's dashboard); whether the settings changed."""
        base = self.base_policy or self.policy_settings
        settings, _notes = with_overrides(base, self.ledger.policy_overrides())
        with self._lock:
            if settings == self.policy_settings:
                return False
            self.engine.use_settings(settings)
            self.policy_settings = settings
        log.info("policy: adopted the overrides saved by another instance")
        return True

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
