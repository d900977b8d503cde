"""The seat policy: who holds a floating seat. Pool state + event -> decisions.

Pure: no I/O and no clock; every event carries its own time (whole seconds since the epoch).
`SeatPolicy` owns its state and changes it in place, so that a replay of millions of
requests stays fast; `snapshot()` and `SeatPolicy.restore()` move that state to and from
the ledger. After `record_changes()` it also notes every user whose rows it changes, and
`take_changes()` hands over just those rows: an event then costs the ledger what it
changed, not the size of the pool.

Safety comes first: after every event, seats held <= capacity, so the product's licensed
count (holders + pinned + licensed outside the pool) never exceeds tier - reserve.

Rules, in the words of the issue that specified them:
- Only pool members are ever granted a seat; excluded users are never managed.
- capacity = tier - licensed outside the pool - pinned pool users - reserve.
- Activity of a holder refreshes their last activity. Anyone else joins the waiting line,
  which is served at once: a free seat, else an expired holder's (lazy expiry), else an
  idle holder's (pre-emption, when on). Whoever cannot be served stays queued.
- A holder whose last activity L satisfies now >= L + idle_timeout has expired, as in the
  analyzer's [t, t + T). The sweep revokes expired holders held at least min_hold, warns
  warn_before ahead, drops queue entries older than queue_timeout, then serves the queue.
- Ties break by the earlier grant, then the username.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum


class SettingsError(ValueError):
    """Settings that cannot work together; the message says which and why."""


class Rule(StrEnum):
    """The rule behind a decision, for the audit log."""

    GRANT_FREE_SEAT = "grant-free-seat"
    GRANT_AFTER_EXPIRY = "grant-after-expiry"
    GRANT_AFTER_PREEMPTION = "grant-after-preemption"
    GRANT_FROM_QUEUE = "grant-from-queue"
    GRANT_PIN_ENDED = "grant-pin-ended"
    GRANT_BY_ADMIN = "grant-by-admin"
    REVOKE_IDLE = "revoke-idle"
    REVOKE_LAZY_EXPIRY = "revoke-lazy-expiry"
    REVOKE_PREEMPTED = "revoke-preempted"
    REVOKE_CAPACITY_DROP = "revoke-capacity-drop"
    REVOKE_BY_ADMIN = "revoke-by-admin"
    RELEASE_PINNED = "release-pinned"
    RELEASE_LEFT_POOL = "release-left-pool"
    QUEUE_NO_SEAT = "queue-no-seat"
    DENY_QUEUE_TIMEOUT = "deny-queue-timeout"
    DENY_NO_SEAT_FOR_ADMIN = "deny-no-seat-for-admin"
    WARN_IDLE = "warn-idle"
    IGNORE_NOT_IN_POOL = "ignore-not-in-pool"
    IGNORE_EXCLUDED = "ignore-excluded"
    IGNORE_ADMIN_REQUEST = "ignore-admin-request"


@dataclass(frozen=True)
class Decision:
    user: str
    at: int
    rule: Rule
    reason: str


@dataclass(frozen=True)
class Grant(Decision):
    """Move the user into the licensed group."""


@dataclass(frozen=True)
class Revoke(Decision):
    """Move the user out of the licensed group."""


@dataclass(frozen=True)
class Release(Decision):
    """The user no longer holds a floating seat, but stays where they are (pinned, gone)."""


@dataclass(frozen=True)
class Queued(Decision):
    """The user waits for a seat."""


@dataclass(frozen=True)
class Denied(Decision):
    """The user waited too long and left the queue; tell them."""


@dataclass(frozen=True)
class Warn(Decision):
    """The user's seat goes soon unless they are active; tell them."""


@dataclass(frozen=True)
class Ignored(Decision):
    """Activity of someone floatseat does not manage; audited, nothing else."""


@dataclass(frozen=True)
class PriorityClass:
    """Queue priority for the members of some groups; a higher rank is served first."""

    name: str
    rank: int
    groups: frozenset[str]


@dataclass(frozen=True)
class Pin:
    """A user (or every member of a group) who always holds a seat, until `until` if set."""

    user: str | None = None
    group: str | None = None
    until: int | None = None

    def __post_init__(self) -> None:
        if (self.user is None) == (self.group is None):
            raise SettingsError("a pin names either a user or a group")

    def active(self, now: int) -> bool:
        return self.until is None or now < self.until


@dataclass(frozen=True)
class PolicySettings:
    """Every knob of the policy, validated. Durations are in seconds."""

    idle_timeout_s: int = 1800
    min_hold_s: int = 300
    preempt: bool = True
    preempt_after_s: int = 900
    warn_before_s: int = 60
    queue_timeout_s: int = 1800
    sweep_interval_s: int = 60
    reserve: int = 3
    lock_after_revoke_s: int = 0  # 0: off
    queue_aging_s: int = 300  # a waiter gains one rank per this many seconds; 0: no aging
    priority_classes: tuple[PriorityClass, ...] = ()
    group_caps: Mapping[str, int] = field(default_factory=dict)  # MAX: group -> seats
    group_reservations: Mapping[str, int] = field(default_factory=dict)  # RESERVE
    # Idle revokes one sweep may make; 0: no cap. A glitch that makes everyone look idle
    # then costs a few seats per sweep, not the whole pool. Lazy expiry for a waiting user
    # and capacity drops are not capped: one is a swap, the other keeps the licence.
    max_revokes_per_sweep: int = 0

    def __post_init__(self) -> None:
        problems = []
        for name in (
            "idle_timeout_s",
            "min_hold_s",
            "preempt_after_s",
            "warn_before_s",
            "queue_timeout_s",
            "sweep_interval_s",
            "reserve",
            "lock_after_revoke_s",
            "queue_aging_s",
            "max_revokes_per_sweep",
        ):
            if getattr(self, name) < 0:
                problems.append(f"{name} must not be negative")
        if self.idle_timeout_s <= 0:
            problems.append("idle_timeout_s must be positive")
        if self.sweep_interval_s <= 0:
            problems.append("sweep_interval_s must be positive")
        if self.min_hold_s > self.idle_timeout_s:
            problems.append(
                "min_hold_s must not exceed idle_timeout_s, or an expired holder could not be "
                "revoked and people would wait while seats sit idle"
            )
        for group, seats in {**self.group_caps, **self.group_reservations}.items():
            if seats < 0:
                problems.append(f"the cap or reservation of group {group!r} is negative")
        if problems:
            raise SettingsError("; ".join(problems))


@dataclass(frozen=True)
class DirectoryFigures:
    """What the directory reports: the licence, the pool and who is licensed outside it."""

    tier: int
    licensed_outside: int = 0  # administrators, individual grants, other licensed groups
    pool: frozenset[str] = frozenset()  # members of IUM_Enabled and IUM_Disabled
    groups: Mapping[str, frozenset[str]] = field(default_factory=dict)  # user -> groups
    excluded: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Activity:
    user: str
    at: int


@dataclass(frozen=True)
class Sweep:
    at: int


@dataclass(frozen=True)
class RevokesPaused:
    """Stop (with a reason) or resume (reason None) every revoke that judges idleness.

    While paused, nobody loses a seat for being idle: no idle revokes, no lazy expiry, no
    pre-emption, no idle warnings. A queued user gets only a seat that is free. A capacity
    drop still revokes, because the licence comes first. The service pauses while an
    activity feed is stalled (everyone would look idle) and while an admin freezes.
    """

    at: int
    reason: str | None


@dataclass(frozen=True)
class AdminGrant:
    """An admin gives `user` a seat by hand (break-glass): a free seat, or one the rules
    may take back (an expired or, with pre-emption, an idle holder). Never above capacity:
    with no seat to be had it is denied, and the admin may revoke someone first."""

    at: int
    user: str
    by: str
    reason: str


@dataclass(frozen=True)
class AdminRevoke:
    """An admin takes `user`'s floating seat back by hand."""

    at: int
    user: str
    by: str
    reason: str


@dataclass(frozen=True)
class DirectoryChanged:
    at: int
    figures: DirectoryFigures


@dataclass(frozen=True)
class PinsChanged:
    at: int
    pins: tuple[Pin, ...]


Event = Activity | Sweep | DirectoryChanged | PinsChanged | RevokesPaused | AdminGrant | AdminRevoke


@dataclass
class Holder:
    user: str
    granted_at: int
    last_activity: int
    warned: bool = False


@dataclass
class Waiter:
    user: str
    queued_at: int
    rank: int


@dataclass(frozen=True)
class PolicySnapshot:
    """Everything `SeatPolicy` knows, as plain values, for the ledger."""

    figures: DirectoryFigures
    pins: tuple[Pin, ...]
    holders: tuple[Holder, ...]
    waiters: tuple[Waiter, ...]
    locked_until: tuple[tuple[str, int], ...]
    pinned: frozenset[str]
    revokes_paused: str | None = None


@dataclass(frozen=True)
class UserRows:
    """One user's part of the policy's state: a seat, a place in the line, a lock."""

    holder: Holder | None = None
    waiter: Waiter | None = None
    locked_until: int | None = None


@dataclass(frozen=True)
class PolicyChanges:
    """What `SeatPolicy` changed since it began recording or last handed its changes over.

    `users` holds the rows before and after of every user whose rows differ; everyone else
    is as before. The pool-wide values come in pairs, before and after.
    """

    users: Mapping[str, tuple[UserRows, UserRows]]
    figures_before: DirectoryFigures
    figures: DirectoryFigures
    pins_before: tuple[Pin, ...]
    pins: tuple[Pin, ...]
    pinned_before: frozenset[str]
    pinned: frozenset[str]
    revokes_paused_before: str | None
    revokes_paused: str | None


_PoolWide = tuple[DirectoryFigures, tuple[Pin, ...], frozenset[str], str | None]


class SeatPolicy:
    """The policy's state and its rules. `handle(event)` returns the decisions it took."""

    def __init__(
        self,
        settings: PolicySettings,
        figures: DirectoryFigures,
        pins: Iterable[Pin] = (),
    ) -> None:
        self.settings = settings
        self.figures = figures
        self.pins = tuple(pins)
        # Holders ordered by last activity, oldest first: the longest idle are at the front.
        self.holders: dict[str, Holder] = {}
        # Waiters in the order they queued.
        self.waiters: dict[str, Waiter] = {}
        self.locked_until: dict[str, int] = {}
        self.pinned: frozenset[str] = frozenset()
        # Why idle revokes are paused (a freeze, a stalled feed), or None.
        self.revokes_paused: str | None = None
        self._pin_entries = self._resolve_pins()
        # While recording: the rows, as they were, of every user changed since the last
        # `take_changes()`, and the pool-wide values then. None: not recording (a replay).
        self._undo: dict[str, UserRows] | None = None
        self._base: _PoolWide | None = None

    # -- reading -------------------------------------------------------------------------

    def pinned_at(self, now: int) -> frozenset[str]:
        """Pool members pinned at `now`."""
        return frozenset(u for u, until in self._pin_entries if until is None or now < until)

    def capacity(self) -> int:
        """Floating seats: tier - licensed outside - pinned - reserve (never below 0)."""
        figures = self.figures
        seats = figures.tier - figures.licensed_outside - len(self.pinned) - self.settings.reserve
        return max(0, seats)

    def free_seats(self) -> int:
        return self.capacity() - len(self.holders)

    def licensed_count(self) -> int:
        """What the product would count: floating holders, pinned users, outside users."""
        return len(self.holders) + len(self.pinned) + self.figures.licensed_outside

    # -- events --------------------------------------------------------------------------

    def activity(self, user: str, at: int) -> list[Decision]:
        """`handle(Activity(user, at))` without building the event: the replay's hot path."""
        holder = self.holders.get(user)
        if holder is not None:
            self._refresh(holder, at)
            return []
        out: list[Decision] = []
        self._activity(user, at, out)
        return out

    def handle(self, event: Event) -> list[Decision]:
        out: list[Decision] = []
        if isinstance(event, Activity):
            self._activity(event.user, event.at, out)
        elif isinstance(event, Sweep):
            self._sweep(event.at, out)
        elif isinstance(event, AdminGrant):
            self._admin_grant(event, out)
        elif isinstance(event, AdminRevoke):
            self._admin_revoke(event, out)
        elif isinstance(event, RevokesPaused):
            self.revokes_paused = event.reason
            self._settle(event.at, out)
            self._serve_queue(event.at, out)
        else:
            if isinstance(event, DirectoryChanged):
                self.figures = event.figures
            else:
                self.pins = event.pins
            self._pin_entries = self._resolve_pins()
            self._drop_unmanaged(event.at, out)
            self._settle(event.at, out)
            self._serve_queue(event.at, out)
        return out

    def _activity(self, user: str, now: int, out: list[Decision]) -> None:
        holder = self.holders.get(user)
        if holder is not None:
            self._refresh(holder, now)
            return
        if user in self.pinned:
            return
        if user in self.figures.excluded:
            out.append(Ignored(user, now, Rule.IGNORE_EXCLUDED, "excluded from floating"))
            return
        if user not in self.figures.pool:
            out.append(
                Ignored(user, now, Rule.IGNORE_NOT_IN_POOL, "not a member of the pool groups")
            )
            return
        self._settle(now, out)
        if user in self.pinned:  # a pin that began with this instant
            return
        waiter = self.waiters.get(user)
        if waiter is None:
            last = next(reversed(self.waiters.values()), None)
            self._touch(user)
            self.waiters[user] = Waiter(user, now, self._rank(user))
            if last is not None and (last.queued_at, last.user) > (now, user):
                # An event that came late: keep the line in the order people queued.
                ordered = sorted(self.waiters.values(), key=lambda w: (w.queued_at, w.user))
                self.waiters = {w.user: w for w in ordered}
        self._serve_queue(now, out, arriving=user)
        if user not in self.holders and waiter is None:
            out.append(
                Queued(user, now, Rule.QUEUE_NO_SEAT, f"all {self.capacity()} seats are in use")
            )

    def _admin_grant(self, event: AdminGrant, out: list[Decision]) -> None:
        user, now = event.user, event.at
        said = f"by {event.by}: {event.reason}"
        refusal = self._admin_refusal(user)
        if refusal is None and user in self.holders:
            refusal = "already holds a seat"
        if refusal is not None:
            out.append(Ignored(user, now, Rule.IGNORE_ADMIN_REQUEST, f"{refusal} ({said})"))
            return
        self._settle(now, out)
        rule = self._make_room(user, now, out) if self._room_possible(now) else None
        if rule is None:
            reason = f"all {self.capacity()} seats are in use and none can be freed ({said})"
            out.append(Denied(user, now, Rule.DENY_NO_SEAT_FOR_ADMIN, reason))
            return
        self._touch(user)
        self.waiters.pop(user, None)
        self._grant(user, now, Rule.GRANT_BY_ADMIN, out)
        out[-1] = replace(out[-1], reason=f"{out[-1].reason} ({said})")

    def _admin_revoke(self, event: AdminRevoke, out: list[Decision]) -> None:
        user, now = event.user, event.at
        said = f"by {event.by}: {event.reason}"
        holder = self.holders.get(user)
        refusal = self._admin_refusal(user)
        if refusal is None and holder is None:
            refusal = "holds no floating seat"
        if refusal is not None or holder is None:
            out.append(Ignored(user, now, Rule.IGNORE_ADMIN_REQUEST, f"{refusal} ({said})"))
            return
        self._revoke(holder, now, Rule.REVOKE_BY_ADMIN, out)
        out[-1] = replace(out[-1], reason=said)
        self._serve_queue(now, out)

    def _admin_refusal(self, user: str) -> str | None:
        if user in self.figures.excluded:
            return "excluded from floating"
        if user not in self.figures.pool:
            return "not a member of the pool groups"
        if user in self.pinned:
            return "pinned: unpin first"
        return None

    def _sweep(self, now: int, out: list[Decision]) -> None:
        self._settle(now, out)
        settings = self.settings
        if self.revokes_paused is not None:
            self._serve_queue(now, out)
            return
        timeout = settings.idle_timeout_s
        expired: list[Holder] = []
        for holder in self.holders.values():
            if holder.last_activity + timeout > now:
                break  # ordered by last activity: nobody after this one has expired
            if now - holder.granted_at >= settings.min_hold_s:
                expired.append(holder)
        cap = settings.max_revokes_per_sweep
        if cap and len(expired) > cap:
            # Equally idle holders sit in the order they came; a policy restored from the
            # ledger has them by `_idle_key`. The cap picks by that key, so both pick the same.
            expired = sorted(expired, key=_idle_key)[:cap]
        for holder in expired:
            self._revoke(holder, now, Rule.REVOKE_IDLE, out, idle=True)
        if settings.warn_before_s:
            for holder in self.holders.values():
                expires = holder.last_activity + timeout
                if expires - settings.warn_before_s > now:
                    break
                if not holder.warned:
                    self._touch(holder.user)
                    holder.warned = True
                    left = expires - now
                    out.append(
                        Warn(holder.user, now, Rule.WARN_IDLE, f"idle; the seat goes in {left} s")
                    )
        self._serve_queue(now, out)

    # -- the rules -----------------------------------------------------------------------

    def _settle(self, now: int, out: list[Decision]) -> None:
        """Pins, queue timeouts and capacity, brought up to `now`."""
        if self._pin_entries or self.pinned:
            self._apply_pins(now, out)
        timeout = self.settings.queue_timeout_s
        while self.waiters:
            waiter = next(iter(self.waiters.values()))
            if now - waiter.queued_at <= timeout:
                break  # in the order they queued: the rest waited less
            self._touch(waiter.user)
            del self.waiters[waiter.user]
            waited = now - waiter.queued_at
            out.append(
                Denied(waiter.user, now, Rule.DENY_QUEUE_TIMEOUT, f"waited {waited} s for a seat")
            )
        excess = len(self.holders) - self.capacity()
        if excess > 0:
            for holder in self._longest_idle()[:excess]:
                self._revoke(holder, now, Rule.REVOKE_CAPACITY_DROP, out)

    def _apply_pins(self, now: int, out: list[Decision]) -> None:
        pinned = self.pinned_at(now)
        # A pinned user who left the pool is no longer floatseat's to move.
        ended = sorted(u for u in self.pinned - pinned if self._managed(u))
        began = sorted(pinned - self.pinned)
        self.pinned = pinned
        for user in ended:
            # A pin ended: the user keeps the seat they sit in, as a floating holder.
            self._touch(user)
            self.holders[user] = Holder(user, now, now)
            out.append(Grant(user, now, Rule.GRANT_PIN_ENDED, "the pin ended; now floating"))
        if ended:
            self._reorder()
        for user in began:
            self._touch(user)
            if self.holders.pop(user, None) is not None:
                out.append(Release(user, now, Rule.RELEASE_PINNED, "pinned: holds a fixed seat"))
            self.waiters.pop(user, None)

    def _drop_unmanaged(self, now: int, out: list[Decision]) -> None:
        for user in [u for u in self.holders if not self._managed(u)]:
            self._touch(user)
            del self.holders[user]
            out.append(Release(user, now, Rule.RELEASE_LEFT_POOL, "left the pool or excluded"))
        for user in [u for u in self.waiters if not self._managed(u)]:
            self._touch(user)
            del self.waiters[user]

    def _serve_queue(self, now: int, out: list[Decision], arriving: str | None = None) -> None:
        """Grant seats to waiters in service order while seats can be had."""
        if not self.waiters or not self._room_possible(now):
            return
        # One order for the whole pass: granting at `now` does not reorder the others.
        for waiter in self._service_order(now):
            if not self._room_possible(now):
                return
            rule = self._make_room(waiter.user, now, out)
            if rule is None:
                continue  # a group limit holds this one back; the next may fit
            self._touch(waiter.user)
            del self.waiters[waiter.user]
            if waiter.user != arriving:
                rule = Rule.GRANT_FROM_QUEUE
            self._grant(waiter.user, now, rule, out)

    def _room_possible(self, now: int) -> bool:
        """Whether any rule could give someone a seat now (a cheap test before the line)."""
        if self.free_seats() > 0:
            return True
        if self.revokes_paused is not None:
            return False
        if self._expired_holder(now) is not None:
            return True
        return self.settings.preempt and self._preemptable_holder(now) is not None

    def _make_room(self, user: str, now: int, out: list[Decision]) -> Rule | None:
        """Free a seat for `user` if the rules allow; the rule that gave it, or None.

        Group limits are judged on the holders as they would be after the grant: a seat
        taken back from someone else no longer counts for that person's groups.
        """
        free = self.free_seats()
        if free > 0 and self._within_group_limits(user, free_after=free - 1):
            return Rule.GRANT_FREE_SEAT
        if self.revokes_paused is not None:
            return None
        candidate = self._expired_holder(now)
        revoke_rule, grant_rule = Rule.REVOKE_LAZY_EXPIRY, Rule.GRANT_AFTER_EXPIRY
        if candidate is None:
            if not self.settings.preempt or self.locked_until.get(user, 0) > now:
                return None  # a user locked after a revoke only takes a seat that is free
            candidate = self._preemptable_holder(now)
            revoke_rule, grant_rule = Rule.REVOKE_PREEMPTED, Rule.GRANT_AFTER_PREEMPTION
        if candidate is None:
            return None
        if not self._within_group_limits(user, free_after=free, leaving=candidate.user):
            return None
        if revoke_rule is Rule.REVOKE_PREEMPTED:
            self._revoke(candidate, now, revoke_rule, out, preempted_by=user)
        else:
            self._revoke(candidate, now, revoke_rule, out, idle=True)
        return grant_rule

    def _expired_holder(self, now: int) -> Holder | None:
        settings = self.settings
        return self._first_idle(
            stop=lambda h: h.last_activity + settings.idle_timeout_s > now,
            eligible=lambda h: now - h.granted_at >= settings.min_hold_s,
        )

    def _preemptable_holder(self, now: int) -> Holder | None:
        settings = self.settings
        return self._first_idle(
            stop=lambda h: now - h.last_activity < settings.preempt_after_s,
            eligible=lambda h: now - h.granted_at >= settings.min_hold_s,
        )

    def _first_idle(
        self, stop: Callable[[Holder], bool], eligible: Callable[[Holder], bool]
    ) -> Holder | None:
        """The longest-idle eligible holder before `stop`; ties by earlier grant, username."""
        best: Holder | None = None
        for holder in self.holders.values():
            if best is not None and holder.last_activity != best.last_activity:
                break
            if stop(holder):
                break
            if eligible(holder) and (best is None or _idle_key(holder) < _idle_key(best)):
                best = holder
        return best

    def _within_group_limits(self, user: str, free_after: int, leaving: str | None = None) -> bool:
        """Group caps (MAX) and reservations (RESERVE) allow `user` a seat.

        `free_after` is the free seats once the grant is made; `leaving` a holder whose seat
        the grant takes, who then no longer counts for their groups.
        """
        settings = self.settings
        if not settings.group_caps and not settings.group_reservations:
            return True
        groups = self.figures.groups.get(user, frozenset())
        for group, cap in settings.group_caps.items():
            if group in groups and self._holders_in(group, leaving) >= cap:
                return False
        unfilled_for_others = sum(
            max(0, seats - self._holders_in(group, leaving))
            for group, seats in settings.group_reservations.items()
            if group not in groups
        )
        return free_after >= unfilled_for_others

    def _holders_in(self, group: str, leaving: str | None = None) -> int:
        groups = self.figures.groups
        return sum(1 for u in self.holders if u != leaving and group in groups.get(u, frozenset()))

    # -- state changes -------------------------------------------------------------------

    def _grant(self, user: str, now: int, rule: Rule, out: list[Decision]) -> None:
        last = next(reversed(self.holders.values()), None)
        self._touch(user)
        self.holders[user] = Holder(user, now, now)
        if last is not None and last.last_activity > now:
            self._reorder()
        self.locked_until.pop(user, None)
        out.append(Grant(user, now, rule, f"seat {len(self.holders)} of {self.capacity()}"))

    def _revoke(
        self,
        holder: Holder,
        now: int,
        rule: Rule,
        out: list[Decision],
        *,
        idle: bool = False,
        preempted_by: str | None = None,
    ) -> None:
        self._touch(holder.user)
        del self.holders[holder.user]
        idle_for = now - holder.last_activity
        if preempted_by is not None:
            reason = f"idle for {idle_for} s; the seat went to {preempted_by}"
        elif rule is Rule.REVOKE_CAPACITY_DROP:
            reason = f"capacity fell to {self.capacity()}; idle for {idle_for} s"
        else:
            reason = f"idle for {idle_for} s"
        if (idle or preempted_by) and self.settings.lock_after_revoke_s:
            self.locked_until[holder.user] = now + self.settings.lock_after_revoke_s
        out.append(Revoke(holder.user, now, rule, reason))

    def _refresh(self, holder: Holder, now: int) -> None:
        if now <= holder.last_activity:
            return
        undo = self._undo  # `_touch`, inlined: the replay's hot path
        if undo is not None and holder.user not in undo:
            undo[holder.user] = self._rows(holder.user)
        holder.last_activity = now
        holder.warned = False
        # Keep the order by last activity: move to the back (events come roughly in order).
        del self.holders[holder.user]
        last = next(reversed(self.holders.values()), None)
        self.holders[holder.user] = holder
        if last is not None and last.last_activity > now:
            self._reorder()

    def _reorder(self) -> None:
        self.holders = {h.user: h for h in sorted(self.holders.values(), key=_idle_key)}

    def _longest_idle(self) -> list[Holder]:
        """Holders, longest idle first; ties by the earlier grant, then the username."""
        return sorted(self.holders.values(), key=_idle_key)

    def _service_order(self, now: int) -> list[Waiter]:
        aging = self.settings.queue_aging_s

        def key(waiter: Waiter) -> tuple[int, int, str]:
            rank = waiter.rank + ((now - waiter.queued_at) // aging if aging else 0)
            return (-rank, waiter.queued_at, waiter.user)

        return sorted(self.waiters.values(), key=key)

    def _rank(self, user: str) -> int:
        groups = self.figures.groups.get(user, frozenset())
        ranks = [c.rank for c in self.settings.priority_classes if c.groups & groups]
        return max(ranks, default=0)

    def _managed(self, user: str) -> bool:
        return user in self.figures.pool and user not in self.figures.excluded

    def _resolve_pins(self) -> list[tuple[str, int | None]]:
        """(user, until) for every pinned pool member; group pins resolved to members."""
        entries: list[tuple[str, int | None]] = []
        for pin in self.pins:
            if pin.user is not None:
                members: Iterable[str] = (pin.user,)
            else:
                groups = self.figures.groups
                members = (u for u, gs in groups.items() if pin.group in gs)
            entries.extend((u, pin.until) for u in members if self._managed(u))
        return entries

    # -- persistence ---------------------------------------------------------------------

    def snapshot(self) -> PolicySnapshot:
        return PolicySnapshot(
            figures=self.figures,
            pins=self.pins,
            holders=tuple(replace(h) for h in self.holders.values()),
            waiters=tuple(replace(w) for w in self.waiters.values()),
            locked_until=tuple(sorted(self.locked_until.items())),
            pinned=self.pinned,
            revokes_paused=self.revokes_paused,
        )

    @classmethod
    def restore(cls, settings: PolicySettings, snapshot: PolicySnapshot) -> SeatPolicy:
        policy = cls(settings, snapshot.figures, snapshot.pins)
        policy.holders = {h.user: replace(h) for h in sorted(snapshot.holders, key=_idle_key)}
        waiters = sorted(snapshot.waiters, key=lambda w: (w.queued_at, w.user))
        policy.waiters = {w.user: replace(w) for w in waiters}
        policy.locked_until = dict(snapshot.locked_until)
        policy.pinned = snapshot.pinned
        policy.revokes_paused = snapshot.revokes_paused
        return policy

    def record_changes(self) -> None:
        """From now on note what changes, for `take_changes()`."""
        self._undo = {}
        self._base = self._pool_wide()

    def take_changes(self) -> PolicyChanges:
        """What changed since `record_changes()` or the last call; recording goes on."""
        undo, base = self._undo, self._base
        if undo is None or base is None:
            raise RuntimeError("take_changes() before record_changes()")
        users: dict[str, tuple[UserRows, UserRows]] = {}
        for user, before in undo.items():
            after = self._rows(user)
            if after != before:
                users[user] = (before, after)
        self.record_changes()
        figures, pins, pinned, revokes_paused = base
        return PolicyChanges(
            users=users,
            figures_before=figures,
            figures=self.figures,
            pins_before=pins,
            pins=self.pins,
            pinned_before=pinned,
            pinned=self.pinned,
            revokes_paused_before=revokes_paused,
            revokes_paused=self.revokes_paused,
        )

    def _touch(self, user: str) -> None:
        """Call before changing `user`'s rows: while recording, keeps them as they were."""
        undo = self._undo
        if undo is not None and user not in undo:
            undo[user] = self._rows(user)

    def _rows(self, user: str) -> UserRows:
        """Copies of `user`'s rows: the policy changes its holders in place."""
        holder = self.holders.get(user)
        waiter = self.waiters.get(user)
        return UserRows(
            None
            if holder is None
            else Holder(holder.user, holder.granted_at, holder.last_activity, holder.warned),
            None if waiter is None else Waiter(waiter.user, waiter.queued_at, waiter.rank),
            self.locked_until.get(user),
        )

    def _pool_wide(self) -> _PoolWide:
        return (self.figures, self.pins, self.pinned, self.revokes_paused)


def _idle_key(holder: Holder) -> tuple[int, int, str]:
    return (holder.last_activity, holder.granted_at, holder.user)
