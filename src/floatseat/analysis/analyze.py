"""From counted (user, second) pairs to the analysis report.

Sessions, the concurrency step function and the per-window figures (minutes, days, hours:
`window_peaks_frame`, the column-wise twin of the domain's `window_peaks`) are computed
column-wise with Polars.

Users are numbered by their rank in sorted order, so that the pairs sort on one integer key
(user rank, then second) rather than on strings; the pairs are walked once, at the shortest
idle timeout the report needs, into runs of requests, and the sessions of every timeout are
merged from those runs.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from fractions import Fraction
from zoneinfo import ZoneInfo

import polars as pl

from floatseat.analysis.report import (
    AnalysisReport,
    DailyUsage,
    FileSummary,
    TierAdvice,
    UserActivity,
)
from floatseat.domain.licence import DEFAULT_TIERS, required_seats, smallest_tier
from floatseat.domain.sessions import Session, overlap_seconds

COMPARED_TIMEOUTS_S = (900, 1800, 3600, 7200)
SERVICE_HOURS_PER_DAY = 20


@dataclass(frozen=True)
class ReportOptions:
    idle_timeout_s: int = 1800
    tz: str = "UTC"
    tiers: tuple[int, ...] = DEFAULT_TIERS
    headroom: Fraction = Fraction(1, 10)
    fixed_seats: int = 0
    registered_users: int | None = None
    current_tier: int | None = None
    price_per_tier: dict[int, float] = field(default_factory=dict)
    currency: str = ""
    top_users: int = 25


@dataclass(frozen=True)
class EncodedPairs:
    """Counted pairs with users numbered: `frame` holds uid, ts, n, one row per distinct
    (user, ts), sorted by uid then ts; `users` is sorted, and uid indexes it."""

    frame: pl.DataFrame
    users: pl.Series

    def decoded(self) -> pl.DataFrame:
        """The pairs as (user, ts, n), sorted by user then time."""
        return pl.DataFrame(
            [self.users.gather(self.frame["uid"]).alias("user"), self.frame["ts"], self.frame["n"]]
        )


def ordered_pairs(pairs: pl.DataFrame) -> pl.DataFrame:
    """(user, ts) of grouped pairs, sorted by user then time: the input of `sessions_frame`."""
    return encode_pairs(pairs).decoded().select("user", "ts")


def encode_pairs(pairs: pl.DataFrame) -> EncodedPairs:
    """`pairs` (user, ts, n), one row per distinct (user, ts) in any order, encoded."""
    return encode_frames([pairs], distinct=True)


def encode_frames(frames: list[pl.DataFrame], *, distinct: bool = False) -> EncodedPairs:
    """Frames of (user, ts, n), encoded; a (user, ts) repeated across rows is summed.

    Users are numbered by rank and each pair becomes one integer (rank, then second), so
    that sorting and de-duplicating work on integers rather than strings. `distinct` says
    that no (user, ts) repeats, which spares the summing.
    """
    pairs = pl.concat(frames) if len(frames) != 1 else frames[0]
    users = pairs["user"].unique().sort()
    uid = pl.col("user").cast(pl.Enum(users.to_list())).to_physical().cast(pl.UInt32)
    if pairs.height == 0:
        empty = pairs.select(uid=uid, ts=pl.col("ts"), n=pl.col("n"))
        return EncodedPairs(empty, users)
    first, last = int(pairs["ts"].min()), int(pairs["ts"].max())  # type: ignore[arg-type]
    span = last - first + 1
    if users.len() * span >= 1 << 62:  # the key would not fit: sort on two columns
        frame = pairs.lazy().select(uid=uid, ts=pl.col("ts"), n=pl.col("n"))
        if not distinct:
            frame = frame.group_by("uid", "ts").agg(pl.col("n").sum())
        return EncodedPairs(frame.sort("uid", "ts").collect(), users)
    keyed = (
        pairs.lazy()
        .select(key=uid.cast(pl.Int64) * span + (pl.col("ts") - first), n="n")
        .sort("key")
        .collect()
    )
    # Eager, so that the group-by sees the key flagged sorted and only compares neighbours.
    grouped = (
        keyed if distinct else keyed.group_by("key", maintain_order=True).agg(pl.col("n").sum())
    )
    key = grouped["key"]
    uids = (key // span).cast(pl.UInt32).alias("uid")
    return EncodedPairs(pl.DataFrame([uids, (key % span + first).alias("ts"), grouped["n"]]), users)


def runs_frame(encoded: pl.DataFrame, gap_s: int) -> pl.DataFrame:
    """The runs of each user's requests no more than `gap_s` apart: uid, start, last.

    From `encode_pairs`; sorted by user then start. With gap_s the idle timeout, the runs
    are the sessions (each ending at last + timeout); with a shorter one, sessions merge them.
    """
    uid, ts = pl.col("uid"), pl.col("ts")
    same = ((uid == uid.shift(1)) & (ts - ts.shift(1) <= gap_s)).fill_null(False)
    return (
        encoded.lazy()
        .select(uid, ts, new=~same)
        .select(
            uid=uid.filter(pl.col("new")),
            start=ts.filter(pl.col("new")),
            last=ts.filter(pl.col("new").shift(-1, fill_value=True)),
        )
        .collect()
    )


def merged_sessions(runs: pl.DataFrame, idle_timeout_s: int) -> pl.DataFrame:
    """Sessions (uid, start, end) from `runs_frame` runs of a gap no longer than the timeout."""
    uid = pl.col("uid")
    same = (
        (uid == uid.shift(1)) & (pl.col("start") - pl.col("last").shift(1) <= idle_timeout_s)
    ).fill_null(False)
    return (
        runs.lazy()
        .with_columns(new=~same)
        .select(
            uid=uid.filter(pl.col("new")),
            start=pl.col("start").filter(pl.col("new")),
            end=pl.col("last").filter(pl.col("new").shift(-1, fill_value=True)) + idle_timeout_s,
        )
        .collect()
    )


def sessions_frame(ordered: pl.DataFrame, idle_timeout_s: int) -> pl.DataFrame:
    """One row per session: user, start, end (exclusive), from `ordered_pairs`."""
    return (
        ordered.lazy()
        .with_columns(
            new=(pl.col("user") != pl.col("user").shift(1)).fill_null(True)
            | ((pl.col("ts") - pl.col("ts").shift(1)) > idle_timeout_s).fill_null(True)
        )
        .with_columns(session=pl.col("new").cum_sum())
        .group_by("session")
        .agg(pl.col("user").first(), start=pl.col("ts").min(), end=pl.col("ts").max())
        .with_columns(end=pl.col("end") + idle_timeout_s)
        .select("user", "start", "end")
        .collect()
    )


def steps_frame(sessions: pl.DataFrame) -> pl.DataFrame:
    """concurrent(t) as steps: (at, level) at each instant where the count changes."""
    events = pl.concat(
        [
            sessions.select(at=pl.col("start"), delta=pl.lit(1, pl.Int64)),
            sessions.select(at=pl.col("end"), delta=pl.lit(-1, pl.Int64)),
        ]
    )
    return (
        events.group_by("at")
        .agg(pl.col("delta").sum())
        .filter(pl.col("delta") != 0)
        .sort("at")
        .select("at", level=pl.col("delta").cum_sum())
    )


def peak_of(steps: pl.DataFrame) -> tuple[int, int | None]:
    if steps.height == 0:
        return 0, None
    best = int(steps["level"].max())  # type: ignore[arg-type]
    if best <= 0:
        return 0, None
    at = steps.filter(pl.col("level") == best)["at"].min()
    return best, int(at)  # type: ignore[arg-type]


def window_peaks_frame(steps: pl.DataFrame, edges: Sequence[int]) -> list[int]:
    """The domain's `window_peaks` over a `steps_frame`, column-wise: the maximum of
    concurrent(t) over each window [edges[i], edges[i+1]); `edges` must be increasing."""
    windows = len(edges) - 1
    if windows < 1:
        return []
    bounds = pl.Series("edge", edges, dtype=pl.Int64)
    at, level = steps["at"], steps["level"]
    # concurrent(t) at each window's start: the level of the last step at or before it.
    before = at.search_sorted(bounds.head(windows), side="right")
    at_start = pl.concat([pl.Series([0], dtype=level.dtype), level]).gather(before)
    # Each step within a window may raise its maximum (a step at its start is at_start).
    inside = bounds.search_sorted(at, side="right").cast(pl.Int64) - 1
    candidates = pl.concat(
        [
            pl.DataFrame({"window": pl.int_range(windows, eager=True), "level": at_start}),
            pl.DataFrame({"window": inside, "level": level}).filter(
                pl.col("window").is_between(0, windows - 1)
            ),
        ]
    )
    best = candidates.group_by("window").agg(pl.col("level").max()).sort("window")
    return best["level"].to_list()


def build_report(
    pairs: pl.DataFrame | EncodedPairs,
    options: ReportOptions,
    *,
    files: list[FileSummary],
    malformed_examples: list[str],
    warnings: list[str],
) -> AnalysisReport:
    """The report for counted pairs (user, ts, n), one row per distinct (user, ts)."""
    if isinstance(pairs, pl.DataFrame):
        pairs = encode_pairs(pairs)
    zone = ZoneInfo(options.tz)
    lines = sum(f.lines for f in files)
    malformed = sum(f.malformed_lines for f in files)
    timeout = options.idle_timeout_s

    encoded, users = pairs.frame, pairs.users
    # One walk over the pairs, at the shortest timeout; every timeout's sessions merge its runs.
    runs = runs_frame(encoded, min(timeout, *COMPARED_TIMEOUTS_S))
    sessions = merged_sessions(runs, timeout).sort("start", "uid")  # uid ranks like the names
    steps_df = steps_frame(sessions)
    peak, peak_at = peak_of(steps_df)
    steps_at = steps_df["at"]

    peaks_by_timeout = {timeout: peak}
    for other in COMPARED_TIMEOUTS_S:
        if other not in peaks_by_timeout:
            peaks_by_timeout[other] = peak_of(steps_frame(merged_sessions(runs, other)))[0]

    def instant(epoch_s: int | None) -> datetime | None:
        return None if epoch_s is None else datetime.fromtimestamp(epoch_s, zone)

    first = int(encoded["ts"].min()) if encoded.height else None  # type: ignore[arg-type]
    last = int(encoded["ts"].max()) if encoded.height else None  # type: ignore[arg-type]

    timeline_start: datetime | None = None
    timeline: list[int] = []
    if steps_df.height:
        first_minute = int(steps_at[0]) // 60 * 60
        last_active = int(steps_at[-1]) - 1  # the last step drops to zero
        edges = range(first_minute, last_active // 60 * 60 + 61, 60)
        timeline = window_peaks_frame(steps_df, edges)
        timeline_start = datetime.fromtimestamp(first_minute, zone)

    # The local days of each user's requests, once, for the daily rows and the users' days.
    user_days = _user_days(encoded, zone)
    daily = _daily(user_days, steps_df, zone)
    top_users, service_accounts = _users(
        encoded, user_days, users.to_list(), sessions, zone, options.top_users
    )
    heatmap = _heatmap(steps_df, zone)

    required = required_seats(peak, options.headroom, options.fixed_seats)
    tier = smallest_tier(required, options.tiers)
    saving = None
    prices = options.price_per_tier
    if options.current_tier is not None and tier is not None:
        if options.current_tier in prices and tier in prices:
            saving = prices[options.current_tier] - prices[tier]
    advice = TierAdvice(
        peak=peak,
        headroom=float(options.headroom),
        fixed_seats=options.fixed_seats,
        required_seats=required,
        recommended_tier=tier,
        largest_tier=max(options.tiers),
        current_tier=options.current_tier,
        yearly_saving=saving,
        currency=options.currency,
    )
    if tier is None:
        warnings = [
            *warnings,
            f"{required} seats are needed, above the largest tier ({max(options.tiers)})",
        ]
    return AnalysisReport(
        idle_timeout_s=timeout,
        tz=options.tz,
        lines=lines,
        malformed_lines=malformed,
        requests_counted=int(encoded["n"].sum()) if encoded.height else 0,
        users_active=users.len(),
        sessions=sessions.height,
        peak=peak,
        peak_at=instant(peak_at),
        first_request_at=instant(first),
        last_request_at=instant(last),
        daily=daily,
        timeline_start=timeline_start,
        timeline=timeline,
        peaks_by_timeout=dict(sorted(peaks_by_timeout.items())),
        heatmap=heatmap,
        top_users=top_users,
        service_accounts=service_accounts,
        tier=advice,
        registered_users=options.registered_users,
        files=files,
        malformed_examples=malformed_examples,
        warnings=warnings,
    )


@functools.lru_cache(maxsize=4096)
def _local_midnight(day: date, zone: ZoneInfo) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=zone).timestamp())


def _local_day(epoch_s: int, zone: ZoneInfo) -> date:
    return datetime.fromtimestamp(epoch_s, zone).date()


def _user_days(encoded: pl.DataFrame, zone: ZoneInfo) -> pl.DataFrame:
    """(uid, day): the distinct local days with a request of each user, from `encode_pairs`."""
    day = pl.from_epoch("ts", time_unit="s").dt.convert_time_zone(zone.key).dt.date()
    # Sorted by user then time, so a user's local days never decrease: distinct = changed.
    changed = (pl.col("uid") != pl.col("uid").shift(1)) | (pl.col("day") != pl.col("day").shift(1))
    return encoded.lazy().select("uid", day=day).filter(changed.fill_null(True)).collect()


def _daily(user_days: pl.DataFrame, steps: pl.DataFrame, zone: ZoneInfo) -> list[DailyUsage]:
    """One row per local day with a request, from `_user_days`."""
    if user_days.height == 0:
        return []
    per_day = user_days.group_by("day").agg(active_users=pl.len()).sort("day")
    days: list[date] = per_day["day"].to_list()
    # One pass over contiguous day windows from the first day to the last.
    span = (days[-1] - days[0]).days + 1
    all_days = [days[0] + timedelta(days=i) for i in range(span + 1)]
    day_peaks = window_peaks_frame(steps, [_local_midnight(day, zone) for day in all_days])
    peak_by_day = dict(zip(all_days, day_peaks, strict=False))
    return [
        DailyUsage(date=day, active_users=int(active), peak=peak_by_day[day])
        for day, active in zip(days, per_day["active_users"], strict=True)
    ]


def _heatmap(steps: pl.DataFrame, zone: ZoneInfo) -> list[list[float]]:
    """Mean over the weeks of each (weekday, hour)'s peak, over the span of activity."""
    totals = [[0.0] * 24 for _ in range(7)]
    counts = [[0] * 24 for _ in range(7)]
    if steps.height == 0:
        return totals
    start = int(steps["at"][0]) // 3600 * 3600
    end = (int(steps["at"][-1]) // 3600 + 1) * 3600
    edges = range(start, end + 1, 3600)
    for hour_start, hour_peak in zip(edges, window_peaks_frame(steps, edges), strict=False):
        local = datetime.fromtimestamp(hour_start, zone)
        totals[local.weekday()][local.hour] += hour_peak
        counts[local.weekday()][local.hour] += 1
    return [
        [round(total / count, 2) if count else 0.0 for total, count in zip(row, crow, strict=True)]
        for row, crow in zip(totals, counts, strict=True)
    ]


def _users(
    encoded: pl.DataFrame,
    user_days: pl.DataFrame,
    names: list[str],
    sessions: pl.DataFrame,
    zone: ZoneInfo,
    top: int,
) -> tuple[list[UserActivity], list[str]]:
    """Top users by active hours, and the users who look like service accounts.

    `encoded`, `user_days` and `sessions` (uid, start, end) number the users as `names` does.
    """
    if encoded.height == 0:
        return [], []
    per_user = (
        sessions.lazy()
        .group_by("uid")
        .agg(seconds=(pl.col("end") - pl.col("start")).sum())
        .join(encoded.lazy().group_by("uid").agg(requests=pl.col("n").sum()), on="uid")
        .join(user_days.lazy().group_by("uid").agg(days=pl.len()), on="uid")
        .join(_long_days(sessions, zone), on="uid", how="left")
        # "Most days" counts the days with a request: a session's tail past midnight is no day.
        .with_columns(service=2 * pl.col("long_days").fill_null(0) > pl.col("days"))
        .sort(pl.col("seconds"), pl.col("uid"), descending=[True, False])  # uid ranks like names
        .collect()
    )
    service = [names[u] for u in per_user.filter("service")["uid"].sort()]
    top_users = [
        UserActivity(
            username=names[uid],
            active_hours=round(seconds / 3600, 2),
            requests=int(requests),
            days_active=int(days),
            service_like=service_like,
        )
        for uid, seconds, requests, days, service_like in per_user.head(top)
        .select("uid", "seconds", "requests", "days", "service")
        .iter_rows()
    ]
    return top_users, service


def _long_days(sessions: pl.DataFrame, zone: ZoneInfo) -> pl.LazyFrame:
    """(uid, long_days): how many local days each user was active more than 20 hours."""
    if sessions.height == 0:
        return pl.LazyFrame(schema={"uid": pl.UInt32, "long_days": pl.UInt32})
    first = _local_day(int(sessions["start"].min()), zone)  # type: ignore[arg-type]
    last = _local_day(int(sessions["end"].max()), zone)  # type: ignore[arg-type]
    days = [first + timedelta(days=i) for i in range((last - first).days + 2)]
    midnights = pl.Series("midnight", [_local_midnight(day, zone) for day in days], pl.Int64)
    if not midnights.diff().drop_nulls().ge(0).all():  # a zone's day went back (Alaska, 1867)
        return _long_days_walked(sessions, zone)
    # Each session against each local day it touches: [midnight[d], midnight[d + 1]).
    start, end, day, midnight = pl.col("start"), pl.col("end"), pl.col("day"), pl.lit(midnights)
    return (
        sessions.lazy()
        .with_columns(
            day=pl.int_ranges(
                midnight.search_sorted(start, side="right").cast(pl.Int64) - 1,
                midnight.search_sorted(end, side="left").cast(pl.Int64),
            )
        )
        .explode("day")
        .with_columns(
            seconds=pl.min_horizontal(end, midnight.gather(day + 1))
            - pl.max_horizontal(start, midnight.gather(day))
        )
        .group_by("uid", "day")
        .agg(pl.col("seconds").sum())
        .filter(pl.col("seconds") > SERVICE_HOURS_PER_DAY * 3600)
        .group_by("uid")
        .agg(long_days=pl.len())
    )


def _long_days_walked(sessions: pl.DataFrame, zone: ZoneInfo) -> pl.LazyFrame:
    """`_long_days`, one session and one day at a time: for any zone."""
    per_day: dict[tuple[int, date], int] = defaultdict(int)
    for uid, start, end in sessions.select("uid", "start", "end").iter_rows():
        session = Session("", start, end)
        day = _local_day(start, zone)
        while (day_start := _local_midnight(day, zone)) < end:
            day_end = _local_midnight(day + timedelta(days=1), zone)
            per_day[uid, day] += overlap_seconds(session, day_start, day_end)
            day += timedelta(days=1)
    long_days: dict[int, int] = defaultdict(int)
    for (uid, _), seconds in per_day.items():
        if seconds > SERVICE_HOURS_PER_DAY * 3600:
            long_days[uid] += 1
    return pl.LazyFrame(
        {"uid": list(long_days), "long_days": list(long_days.values())},
        schema={"uid": pl.UInt32, "long_days": pl.UInt32},
    )
