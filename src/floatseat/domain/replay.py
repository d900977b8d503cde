"""What-if replay: the seat policy over historical requests, on a simulated clock.

It answers the question an admin asks before switching: "with N seats and these settings, how
often would someone have waited, and how long?" The requests of the access logs go through the
same `SeatPolicy` the engine runs, in time order, one `activity(user, at)` per distinct
(user, second), with a `Sweep` every `sweep_interval_s` of simulated time; the replay only
tallies the decisions.

Where the issue is silent, the replay does this:

- Sweeps run at the multiples of `sweep_interval_s` since the epoch (on the minute for 60 s). A
  sweep due at second t runs after the requests of second t: as in the analyzer, a request at t
  makes its user active at t, so a holder whose next request comes exactly `idle_timeout_s`
  after the last one keeps the seat (the analyzer counts one session there).
- A queued user keeps appearing in the logs, because in reality they had a seat. Each of their
  requests is a new activity; the policy keeps at most one open entry per user, so such a user
  waits once until they are served or denied.
- After the last request the clock runs on, sweep after sweep, until the queue is empty: every
  entry ends served or denied (within `queue_timeout_s`). Holders still seated then stay.
- Seats held are the floating holders plus the pinned users: the product's licensed count, as
  nobody is licensed outside the pool here. `max_seats_held` is its maximum after any event.
- A queue entry's figures (the wait, its seconds, its denial) belong to the day it began, so a
  day's row describes the entries that began that day. Grants belong to the day they happen.
- `wait_seconds_total` sums the wait of every entry, served or denied (a denied user waited
  too); `wait_seconds_p95` is the nearest-rank 95th percentile over the served entries only.

Standard library only: the shell reads the logs and hands over (ts, user) pairs sorted by ts,
then user. While the policy holds nobody and nobody waits, sweeps that would do nothing are
skipped, so a gap of weeks in the logs costs nothing.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import chain

from floatseat.domain.policy import (
    Decision,
    Denied,
    DirectoryFigures,
    Grant,
    Pin,
    PolicySettings,
    Queued,
    Revoke,
    Rule,
    SeatPolicy,
    Sweep,
    Warn,
)
from floatseat.domain.sessions import Step

__all__ = ["DayFigures", "ReplayResult", "nearest_rank", "replay"]

DAY_S = 86_400
P95 = 95

# Columns of a day's tally, a plain list so that counting does not allocate.
_GRANTS, _WAITS, _WAIT_S, _DENIED = range(4)


@dataclass(frozen=True, slots=True)
class DayFigures:
    """One calendar day of the replay; `start` is its first second (epoch seconds)."""

    start: int
    grants: int
    waits: int  # queue entries that began this day
    wait_seconds_total: int  # their waits, served or denied
    denied: int  # of them, dropped from the queue


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """What the policy would have done with these requests; see the module's docstring."""

    seats: int  # the tier the policy was given
    capacity: int  # floating seats: tier - licensed outside - pinned - reserve
    max_seats_held: int  # floating holders + pinned users, at most; never above `seats`
    grants: int
    revokes: int  # preemptions included
    preemptions: int
    waits: int  # queue entries
    queued: int  # distinct users who waited at least once
    served: int  # entries that ended with a seat
    denied: int  # entries dropped after queue_timeout_s
    wait_seconds_total: int  # every entry's wait, served or denied
    wait_seconds_p95: int  # nearest rank over served entries; 0 when none
    wait_seconds_max: int  # over served entries; 0 when none
    idle_warnings: int  # Warn decisions: "your seat goes soon"
    daily: tuple[DayFigures, ...]  # every day from the first request's to the last event's
    held: tuple[Step, ...]  # seats held over time as steps; empty unless asked for
    queue: tuple[Step, ...]  # queue length over time as steps; empty unless asked for
    first_at: int | None  # the first request
    last_at: int | None  # the last request
    end_at: int | None  # the last simulated instant: the last request or the last sweep


def nearest_rank(values: Sequence[int], percent: int) -> int:
    """The nearest-rank percentile: the smallest value with `percent` % of values at or below.

    0 for no values. Integer arithmetic, so that 95 % of 20 values is exactly the 19th.
    """
    if not values:
        return 0
    if not 0 < percent <= 100:
        raise ValueError("percent must be in (0, 100]")
    rank = -(-percent * len(values) // 100)  # ceil(percent / 100 * n), 1-based
    return sorted(values)[rank - 1]


def replay(
    requests: Iterable[tuple[int, str]],
    settings: PolicySettings,
    figures: DirectoryFigures,
    pins: Iterable[Pin] = (),
    *,
    day_starts: Sequence[int] | None = None,
    timeline: bool = False,
) -> ReplayResult:
    """Replay `requests`, (ts, user) sorted by ts then user, through a fresh `SeatPolicy`.

    `day_starts` are the first seconds of the calendar days the replay spans, increasing (local
    midnights of the report's time zone); an instant belongs to the last start at or before it.
    None means UTC days. With `timeline`, the result carries the seats held and the queue
    length over time.
    """
    policy = SeatPolicy(settings, figures, pins)
    tally = _Tally(policy, _Calendar(day_starts), timeline)
    interval = settings.sweep_interval_s
    # A pin that ends while nothing happens must still end on time, so no sweep is skipped then.
    skip_idle_sweeps = all(pin.until is None for pin in policy.pins)

    iterator = iter(requests)
    first = next(iterator, None)
    if first is None:
        return tally.result(None, None, None)
    first_at = first[0]
    next_sweep = -(-first_at // interval) * interval
    take = tally.take
    handle = policy.handle
    activity = policy.activity
    ts = first_at
    # The hot loop: one bound-method call per request, nothing allocated here.
    for ts, user in chain((first,), iterator):
        if ts > next_sweep:
            while next_sweep < ts:
                if skip_idle_sweeps and not policy.holders and not policy.waiters:
                    next_sweep = -(-ts // interval) * interval
                    break
                decisions = handle(Sweep(next_sweep))
                if decisions:
                    take(decisions)
                next_sweep += interval
        decisions = activity(user, ts)
        if decisions:
            take(decisions)
    last_at = end_at = ts

    # The clock runs on until every queue entry has ended, served or denied.
    while policy.waiters:
        end_at = next_sweep
        decisions = handle(Sweep(next_sweep))
        if decisions:
            take(decisions)
        next_sweep += interval
    return tally.result(first_at, last_at, end_at)


class _Calendar:
    """The day an instant belongs to, as the first second of that day."""

    def __init__(self, starts: Sequence[int] | None) -> None:
        self.starts = None if starts is None else list(starts)
        if self.starts is not None and not self.starts:
            raise ValueError("day_starts must hold at least one day")

    def day_of(self, at: int) -> int:
        if self.starts is None:
            return at - at % DAY_S
        return self.starts[max(0, bisect_right(self.starts, at) - 1)]

    def span(self, first: int, last: int) -> list[int]:
        """Every day from `first`'s to `last`'s, in order."""
        if self.starts is None:
            return list(range(self.day_of(first), self.day_of(last) + 1, DAY_S))
        low = max(0, bisect_right(self.starts, first) - 1)
        high = max(0, bisect_right(self.starts, last) - 1)
        return self.starts[low : high + 1]


class _Tally:
    """Counts the policy's decisions as they come; only decisions reach it, not requests."""

    def __init__(self, policy: SeatPolicy, calendar: _Calendar, timeline: bool) -> None:
        self.policy = policy
        self.calendar = calendar
        self.timeline = timeline
        self.grants = self.revokes = self.preemptions = 0
        self.waits = self.denied = self.idle_warnings = 0
        self.max_held = 0
        self.denied_seconds = 0
        self.served_waits: list[int] = []
        self.queued_users: set[str] = set()
        self.open: dict[str, tuple[int, int]] = {}  # user -> (queued at, day of queueing)
        self.days: dict[int, list[int]] = {}
        self.held: list[Step] = []
        self.queue: list[Step] = []
        self.last_decision_at = 0

    def day(self, at: int) -> list[int]:
        start = self.calendar.day_of(at)
        row = self.days.get(start)
        if row is None:
            row = self.days[start] = [0, 0, 0, 0]
        return row

    def take(self, decisions: list[Decision]) -> None:
        days = self.days
        for decision in decisions:
            kind = type(decision)
            if kind is Grant:
                self.grants += 1
                self.day(decision.at)[_GRANTS] += 1
                entry = self.open.pop(decision.user, None)
                if entry is not None:
                    wait = decision.at - entry[0]
                    self.served_waits.append(wait)
                    days[entry[1]][_WAIT_S] += wait
            elif kind is Revoke:
                self.revokes += 1
                if decision.rule is Rule.REVOKE_PREEMPTED:
                    self.preemptions += 1
            elif kind is Queued:
                self.waits += 1
                start = self.calendar.day_of(decision.at)
                self.day(start)[_WAITS] += 1
                self.open[decision.user] = (decision.at, start)
                self.queued_users.add(decision.user)
            elif kind is Denied:
                entry = self.open.pop(decision.user, None)
                if entry is not None:
                    wait = decision.at - entry[0]
                    self.denied += 1
                    self.denied_seconds += wait
                    row = days[entry[1]]
                    row[_DENIED] += 1
                    row[_WAIT_S] += wait
            elif kind is Warn:
                self.idle_warnings += 1
        at = self.last_decision_at = decisions[-1].at
        policy = self.policy
        held = len(policy.holders) + len(policy.pinned)
        if held > self.max_held:
            self.max_held = held
        if self.timeline:
            _step(self.held, at, held)
            _step(self.queue, at, len(policy.waiters))

    def result(self, first_at: int | None, last_at: int | None, end_at: int | None) -> ReplayResult:
        policy = self.policy
        served = self.served_waits
        daily: list[DayFigures] = []
        if first_at is not None and last_at is not None:
            last = max(last_at, self.last_decision_at)
            for start in self.calendar.span(first_at, last):
                row = self.days.get(start, [0, 0, 0, 0])
                daily.append(DayFigures(start, *row))
        return ReplayResult(
            seats=policy.figures.tier,
            capacity=policy.capacity(),
            max_seats_held=max(self.max_held, len(policy.pinned)),
            grants=self.grants,
            revokes=self.revokes,
            preemptions=self.preemptions,
            waits=self.waits,
            queued=len(self.queued_users),
            served=len(served),
            denied=self.denied,
            wait_seconds_total=sum(served) + self.denied_seconds,
            wait_seconds_p95=nearest_rank(served, P95),
            wait_seconds_max=max(served, default=0),
            idle_warnings=self.idle_warnings,
            daily=tuple(daily),
            held=tuple(self.held),
            queue=tuple(self.queue),
            first_at=first_at,
            last_at=last_at,
            end_at=end_at,
        )


def _step(steps: list[Step], at: int, level: int) -> None:
    """Append a step when the level changes; within one second only the last level stands."""
    if steps and steps[-1].at == at:
        steps[-1] = Step(at, level)
        if len(steps) > 1 and steps[-2].level == level:
            steps.pop()
    elif (steps[-1].level if steps else 0) != level:
        steps.append(Step(at, level))
