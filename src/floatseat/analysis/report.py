"""The analysis report: plain data that every renderer (terminal, JSON, CSV, HTML) reads.

Times are timezone-aware datetimes in the report's time zone (`--tz`, default UTC).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime


@dataclass(frozen=True)
class DailyUsage:
    """One calendar day (in the report's time zone) that has a counted request."""

    date: date
    active_users: int  # distinct users with a counted request timestamped that day
    peak: int  # max concurrent(t) over the day, including users active since the evening before


@dataclass(frozen=True)
class UserActivity:
    """How much one user was active over the whole input."""

    username: str
    active_hours: float  # total length of the user's sessions
    requests: int  # counted requests
    days_active: int  # days with a counted request
    service_like: bool  # active more than 20 h a day on most of the days it appears


@dataclass(frozen=True)
class TierAdvice:
    """The licence tier the peak calls for, and what it saves against the current one."""

    peak: int
    headroom: float  # fraction, 0.1 for 10 %
    fixed_seats: int
    required_seats: int  # ceil(peak * (1 + headroom)) + fixed_seats
    recommended_tier: int | None  # None when required_seats is above the largest tier
    largest_tier: int
    current_tier: int | None = None
    yearly_saving: float | None = None  # price(current) - price(recommended), when prices are known
    currency: str = ""

    @property
    def above_largest_tier(self) -> bool:
        return self.recommended_tier is None


@dataclass(frozen=True)
class FileSummary:
    """What was read from one input file."""

    path: str
    format: str | None  # None when the format could not be detected and the file was skipped
    lines: int
    malformed_lines: int


@dataclass(frozen=True)
class AnalysisReport:
    """Everything `floatseat analyze` found out. Counts follow DESIGN.md's semantics exactly."""

    idle_timeout_s: int
    tz: str
    lines: int
    malformed_lines: int
    requests_counted: int
    users_active: int
    sessions: int
    peak: int
    peak_at: datetime | None
    first_request_at: datetime | None
    last_request_at: datetime | None
    daily: list[DailyUsage]
    # Concurrency per minute (the maximum within the minute) from the first to the last active
    # minute, zero minutes included; timeline[i] belongs to timeline_start + i minutes.
    timeline_start: datetime | None
    timeline: list[int]
    # Peak for other idle timeouts, in seconds, side by side (always holds idle_timeout_s too).
    peaks_by_timeout: dict[int, int]
    # heatmap[weekday][hour]: mean over the weeks of the hour's peak; weekday 0 is Monday.
    heatmap: list[list[float]]
    top_users: list[UserActivity]
    service_accounts: list[str]
    tier: TierAdvice
    registered_users: int | None = None
    files: list[FileSummary] = field(default_factory=list)
    malformed_examples: list[str] = field(default_factory=list)  # "path:line"
    warnings: list[str] = field(default_factory=list)

    @property
    def peak_share_of_registered(self) -> float | None:
        if not self.registered_users:
            return None
        return self.peak / self.registered_users

    def minute(self, index: int) -> datetime:
        """The start of the timeline's minute `index`."""
        if self.timeline_start is None:
            raise IndexError("the timeline is empty")
        # From the epoch, not wall-clock arithmetic, so that DST changes are crossed correctly.
        zone = self.timeline_start.tzinfo
        return datetime.fromtimestamp(self.timeline_start.timestamp() + 60 * index, zone)

    def busiest_hours(self, count: int = 5) -> list[tuple[int, int, float]]:
        """The (weekday, hour, mean hourly peak) cells of the heatmap, busiest first."""
        cells = [
            (weekday, hour, value)
            for weekday, row in enumerate(self.heatmap)
            for hour, value in enumerate(row)
            if value > 0
        ]
        cells.sort(key=lambda cell: (-cell[2], cell[0], cell[1]))
        return cells[:count]
