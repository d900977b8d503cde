"""The what-if replay use case (`floatseat simulate`): read the logs once, replay many times.

The logs are read by the analyzer's own reader (`read_requests`), so that the replay sees exactly
the requests the analyzer counts. The counted (user, second) pairs are put in replay order once,
as two plain lists, and each seat count replays them through `floatseat.domain.replay`.

The tier a seat count needs: `--seats N` is the tier the policy is given, and the engine takes
the pinned users and the reserve out of it (capacity = N - pinned - reserve), so N already
holds them. Headroom does not apply either: the analyzer adds it to a peak because a peak says
nothing about waiting, while the replay measures the waiting and `--max-wait-p95` is the
tolerance. Users licensed outside the pool (administrators, other licensed groups) are the one
thing on top: leave them out of the replay with `--exclude-user` and count them with `--fixed`,
which the tier adds to the seats, as `floatseat analyze --fixed` does.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl

from floatseat.analysis.analyze import ordered_pairs, peak_of, sessions_frame, steps_frame
from floatseat.analysis.pipeline import Requests
from floatseat.analysis.report import FileSummary
from floatseat.domain.licence import DEFAULT_TIERS, smallest_tier
from floatseat.domain.policy import DirectoryFigures, Pin, PolicySettings
from floatseat.domain.replay import ReplayResult, replay

__all__ = [
    "DEFAULT_MAX_WAIT_P95_S",
    "SimulationInput",
    "SimulationOptions",
    "SimulationReport",
    "acceptable",
    "format_wait",
    "parse_seat_range",
    "prepare_input",
    "simulate",
    "simulation_json_text",
    "simulation_to_json",
]

DEFAULT_MAX_WAIT_P95_S = 60


@dataclass(frozen=True)
class SimulationInput:
    """The counted requests in replay order (by second, then user), read once, replayed often."""

    times: list[int]  # UTC seconds, non-decreasing
    users: list[str]  # canonical usernames; one str object per user, so lookups stay cheap
    pool: frozenset[str]  # every user in the logs
    peak: int  # the analyzer's peak at the same idle timeout
    peak_at: int | None
    idle_timeout_s: int
    lines: int = 0
    malformed_lines: int = 0
    files: list[FileSummary] = field(default_factory=list)
    malformed_examples: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return len(self.times)


@dataclass(frozen=True)
class SimulationOptions:
    settings: PolicySettings
    pins: tuple[str, ...] = ()  # canonical usernames, pinned for the whole replay
    tz: str = "UTC"
    max_wait_p95_s: int = DEFAULT_MAX_WAIT_P95_S
    tiers: tuple[int, ...] = DEFAULT_TIERS
    fixed_seats: int = 0  # licensed outside the pool: on top of the seats for the tier


@dataclass(frozen=True)
class SimulationReport:
    """One replay (`sweep` false) or a range of seat counts with a recommendation."""

    data: SimulationInput
    options: SimulationOptions
    runs: list[ReplayResult]
    sweep: bool
    day_dates: dict[int, date]  # the first second of each day -> its date in options.tz
    recommended_seats: int | None = None  # the smallest `acceptable` count
    recommended_tier: int | None = None
    warnings: list[str] = field(default_factory=list)

    def run_date(self, day_start: int) -> date:
        found = self.day_dates.get(day_start)
        if found is not None:
            return found
        return datetime.fromtimestamp(day_start, ZoneInfo(self.options.tz)).date()


def format_wait(seconds: int) -> str:
    """A wait for people: `45 s`, `2 min 10 s`, `3 h 05 min`, `41 h 20 min`."""
    if seconds < 60:
        return f"{seconds} s"
    minutes, rest = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min" + (f" {rest} s" if rest else "")
    hours, minutes = divmod(minutes, 60)
    return f"{hours:,} h {minutes:02d} min"


def parse_seat_range(text: str) -> list[int]:
    """'100:200:10' (or '100:200', step 1) -> the seat counts from 100 to 200 inclusive."""
    parts = text.split(":")
    try:
        if len(parts) not in (2, 3):
            raise ValueError
        numbers = [int(part.strip()) for part in parts]
    except ValueError:
        raise ValueError(
            f"{text!r}: write the seat range as FIRST:LAST:STEP, e.g. 100:200:10"
        ) from None
    first, last, step = numbers if len(numbers) == 3 else (*numbers, 1)
    if first < 1 or last < first:
        raise ValueError(f"{text!r}: the range needs 1 <= FIRST <= LAST")
    if step < 1:
        raise ValueError(f"{text!r}: the step must be 1 or more")
    return list(range(first, last + 1, step))


def prepare_input(found: Requests, idle_timeout_s: int) -> SimulationInput:
    """The analyzer's pairs as replay input, and the analyzer's peak at `idle_timeout_s`."""
    pairs = found.pairs
    peak, peak_at = peak_of(steps_frame(sessions_frame(ordered_pairs(pairs), idle_timeout_s)))
    names = pairs["user"].unique().sort()
    # An Enum's codes follow its sorted categories, so sorting by code sorts by username; and
    # mapping codes back through one list gives one str object per user instead of one per row.
    ordered = pairs.select("ts", code=pl.col("user").cast(pl.Enum(names)).to_physical()).sort(
        "ts", "code"
    )
    by_code = names.to_list()
    users = [by_code[code] for code in ordered["code"].to_list()]
    return SimulationInput(
        times=ordered["ts"].to_list(),
        users=users,
        pool=frozenset(by_code),
        peak=peak,
        peak_at=peak_at,
        idle_timeout_s=idle_timeout_s,
        lines=sum(f.lines for f in found.files),
        malformed_lines=sum(f.malformed_lines for f in found.files),
        files=found.files,
        malformed_examples=found.malformed_examples,
        warnings=found.warnings,
    )


def simulate(
    data: SimulationInput,
    seat_counts: Sequence[int],
    options: SimulationOptions,
    *,
    sweep: bool | None = None,
    advance: Callable[[int], None] = lambda seats: None,
) -> SimulationReport:
    """Replay `data` once per seat count; a sweep also recommends seats and a tier.

    The recommendation is the smallest `acceptable` count: its 95th percentile wait is at most
    `options.max_wait_p95_s` (at most, so that a limit of 0 means "nobody waits") and nobody
    was denied.

    `advance(seats)` is called after each replay, for a progress bar. The timeline (seats held
    and queue length over time) is kept only for a single replay, which charts it.
    """
    sweep = len(seat_counts) != 1 if sweep is None else sweep
    if data.idle_timeout_s != options.settings.idle_timeout_s:
        raise ValueError("the input was prepared for another idle timeout")
    zone = ZoneInfo(options.tz)
    day_dates = _day_starts(data, options.settings, zone)
    starts = list(day_dates)
    pool = data.pool | frozenset(options.pins)
    pins = tuple(Pin(user=user) for user in options.pins)
    warnings: list[str] = []
    runs: list[ReplayResult] = []
    for seats in seat_counts:
        if len(pins) + options.settings.reserve > seats:
            raise ValueError(
                f"{seats} seats cannot hold {len(pins)} pinned users and a reserve of "
                f"{options.settings.reserve}"
            )
        figures = DirectoryFigures(tier=seats, licensed_outside=0, pool=pool)
        runs.append(
            replay(
                zip(data.times, data.users, strict=True),
                options.settings,
                figures,
                pins,
                day_starts=starts or None,
                timeline=not sweep,
            )
        )
        advance(seats)

    recommended_seats = recommended_tier = None
    if sweep:
        fitting = [r.seats for r in runs if acceptable(r, options.max_wait_p95_s)]
        if fitting:
            recommended_seats = min(fitting)
            recommended_tier = smallest_tier(recommended_seats + options.fixed_seats, options.tiers)
            if recommended_tier is None:
                warnings.append(
                    f"{recommended_seats + options.fixed_seats} seats are needed, above the "
                    f"largest tier ({max(options.tiers)})"
                )
        else:
            warnings.append(
                f"no seat count in the range keeps the 95th percentile wait within "
                f"{options.max_wait_p95_s} s with nobody denied; try more seats"
            )
    return SimulationReport(
        data=data,
        options=options,
        runs=runs,
        sweep=sweep,
        day_dates=day_dates,
        recommended_seats=recommended_seats,
        recommended_tier=recommended_tier,
        warnings=warnings,
    )


def acceptable(run: ReplayResult, max_wait_p95_s: int) -> bool:
    """Whether a seat count is good enough to recommend: p95 within the limit, nobody denied.

    The p95 is over served entries only, so it cannot see the users who waited the whole queue
    timeout and gave up: without pre-emption and with few seats every entry may be denied, and
    the p95 is then 0. A denial is a wait longer than any sensible limit, so it disqualifies.
    """
    return run.wait_seconds_p95 <= max_wait_p95_s and run.denied == 0


def _day_starts(data: SimulationInput, settings: PolicySettings, zone: ZoneInfo) -> dict[int, date]:
    """The first second of every local day the replay can touch, with its date."""
    if not data.times:
        return {}
    # The replay runs on after the last request until the queue is empty: at most a queue
    # timeout and a sweep later.
    end = data.times[-1] + settings.queue_timeout_s + 2 * settings.sweep_interval_s
    day = datetime.fromtimestamp(data.times[0], zone).date()
    last = datetime.fromtimestamp(end, zone).date()
    starts: dict[int, date] = {}
    while day <= last:
        starts[int(datetime(day.year, day.month, day.day, tzinfo=zone).timestamp())] = day
        day += timedelta(days=1)
    return starts


# -- JSON --------------------------------------------------------------------------------------

# The keys of a run that scripts may rely on (issue 3); more may sit beside them.
STABLE_RUN_KEYS = (
    "seats",
    "max_seats_held",
    "grants",
    "revokes",
    "preemptions",
    "waits",
    "queued",
    "wait_seconds_total",
    "wait_seconds_p95",
    "denied",
    "daily",
)


def run_to_json(report: SimulationReport, run: ReplayResult) -> dict[str, Any]:
    return {
        "seats": run.seats,
        "max_seats_held": run.max_seats_held,
        "grants": run.grants,
        "revokes": run.revokes,
        "preemptions": run.preemptions,
        "waits": run.waits,
        "queued": run.queued,
        "wait_seconds_total": run.wait_seconds_total,
        "wait_seconds_p95": run.wait_seconds_p95,
        "denied": run.denied,
        "daily": [
            {
                "date": report.run_date(day.start).isoformat(),
                "grants": day.grants,
                "waits": day.waits,
                "wait_seconds_total": day.wait_seconds_total,
                "denied": day.denied,
            }
            for day in run.daily
        ],
        "capacity": run.capacity,
        "served": run.served,
        "wait_seconds_max": run.wait_seconds_max,
        "idle_warnings": run.idle_warnings,
    }


def simulation_to_json(report: SimulationReport) -> dict[str, Any]:
    """A single replay: its run's keys at the top. A sweep: {"runs", "recommended_*", ...}."""
    data, options = report.data, report.options
    settings = options.settings
    zone = ZoneInfo(options.tz)

    def instant(epoch_s: int | None) -> str | None:
        return None if epoch_s is None else datetime.fromtimestamp(epoch_s, zone).isoformat()

    context: dict[str, Any] = {
        "tz": options.tz,
        "settings": {
            "idle_timeout_s": settings.idle_timeout_s,
            "min_hold_s": settings.min_hold_s,
            "preempt": settings.preempt,
            "preempt_after_s": settings.preempt_after_s,
            "warn_before_s": settings.warn_before_s,
            "queue_timeout_s": settings.queue_timeout_s,
            "queue_aging_s": settings.queue_aging_s,
            "sweep_interval_s": settings.sweep_interval_s,
            "reserve": settings.reserve,
            "lock_after_revoke_s": settings.lock_after_revoke_s,
            "pinned": list(options.pins),
        },
        "peak": data.peak,
        "peak_at": instant(data.peak_at),
        "lines": data.lines,
        "malformed_lines": data.malformed_lines,
        "requests": data.requests,
        "users": len(data.pool),
        "first_request_at": instant(data.times[0] if data.times else None),
        "last_request_at": instant(data.times[-1] if data.times else None),
        "files": [
            {
                "path": f.path,
                "format": f.format,
                "lines": f.lines,
                "malformed_lines": f.malformed_lines,
            }
            for f in data.files
        ],
        "malformed_examples": data.malformed_examples,
        "warnings": [*data.warnings, *report.warnings],
    }
    if not report.sweep:
        return {**run_to_json(report, report.runs[0]), **context}
    return {
        "runs": [run_to_json(report, run) for run in report.runs],
        "recommended_seats": report.recommended_seats,
        "recommended_tier": report.recommended_tier,
        "max_wait_p95_s": options.max_wait_p95_s,
        "fixed_seats": options.fixed_seats,
        **context,
    }


def simulation_json_text(report: SimulationReport) -> str:
    return json.dumps(simulation_to_json(report), indent=2, ensure_ascii=False) + "\n"
