"""The fast path (Polars) against a brute-force reference of the semantics, on random logs.

The reference counts, second by second, which users are active: no sessions, no steps, no
columnar tricks. If the two ever disagree, the fast path is wrong.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from floatseat.analysis.analyze import ReportOptions
from floatseat.analysis.pipeline import AnalysisRequest, analyze
from floatseat.domain.activity import CountingRules

BASE = int(datetime(2026, 3, 28, 22, 0, tzinfo=UTC).timestamp())  # spans the DST change
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

# Logged user field -> the user it names (None: anonymous). Case variants are one user.
USERS = {
    "alice": "alice",
    "ALICE": "alice",
    "bob.smith": "bob.smith",
    "o'neil": "o'neil",
    "j\\u00f3zef": "józef",  # Tomcat's escape
    "józef": "józef",  # raw UTF-8 of the same name
    "ann@example.com": "ann@example.com",
    "-": None,
}
TARGETS = [
    "/browse/ABC-1",
    "/s/123/_/download/batch.js?locale=en",
    "/rest/api/2/issue/ABC-2?expand=x",
    "/rest/quickreload/latest/123?since=1",
    "/rest/mywork/latest/status/notification/count",
    "/jira/browse/ABC-9",
    "/jira/rest/quickreload/latest/9",
    "/status",
    "/browse/A",
]
# Two of the default polling prefixes, restated here so the reference stands alone.
POLLING = ("/rest/quickreload/latest/", "/rest/mywork/latest/status/notification/count")


@dataclass(frozen=True)
class Request:
    user_field: str
    offset_s: int  # seconds after BASE
    target: str
    node: int
    tz_minutes: int


def clf_time(epoch_s: int, tz_minutes: int) -> str:
    local = datetime.fromtimestamp(epoch_s, timezone(timedelta(minutes=tz_minutes)))
    sign = "+" if tz_minutes >= 0 else "-"
    hours, minutes = divmod(abs(tz_minutes), 60)
    return (
        f"{local.day:02d}/{MONTHS[local.month - 1]}/{local.year}:"
        f"{local:%H:%M:%S} {sign}{hours:02d}{minutes:02d}"
    )


def jira_line(r: Request) -> str:
    path, _, query = r.target.partition("?")
    target = path + ("?" + query if query else "")
    when = clf_time(BASE + r.offset_s, r.tz_minutes)
    return (
        f"10.0.0.{r.node} 1x{r.offset_s}x1 {r.user_field} [{when}] "
        f'"GET {target} HTTP/1.1" 200 123 4 "-" "Mozilla/5.0 (X11) \\"q\\"" "abc"'
    )


def confluence_line(r: Request) -> str:
    return (
        f"[{clf_time(BASE + r.offset_s, r.tz_minutes)}] {r.user_field} http-nio-8090-exec-1 "
        f"10.0.0.{r.node} GET {r.target} HTTP/1.1 200 12ms 152 - Mozilla/5.0 (X11; Linux)"
    )


requests_strategy = st.lists(
    st.builds(
        Request,
        user_field=st.sampled_from(sorted(USERS)),
        offset_s=st.integers(0, 400),
        target=st.sampled_from(TARGETS),
        node=st.integers(1, 2),
        tz_minutes=st.sampled_from([0, 60, -300, 330]),
    ),
    max_size=60,
)


def counts(target: str, context_path: str | None) -> bool:
    if context_path and target.startswith(context_path + "/"):
        target = target[len(context_path) :]
    return not target.startswith(POLLING)


def reference(
    requests: list[Request], timeout: int, tz: str, context_path: str | None = None
) -> dict[str, object]:
    """Second by second: who is active, from the definition alone."""
    times: dict[str, set[int]] = defaultdict(set)
    counted = 0
    for r in requests:
        user = USERS[r.user_field]
        if user is None or not counts(r.target, context_path):
            continue
        counted += 1
        times[user].add(BASE + r.offset_s)
    active: dict[int, set[str]] = defaultdict(set)
    for user, user_times in times.items():
        for t in user_times:
            for s in range(t, t + timeout):
                active[s].add(user)
    concurrency = {s: len(users) for s, users in active.items()}
    peak = max(concurrency.values(), default=0)
    peak_at = min((s for s, c in concurrency.items() if c == peak), default=None)
    sessions = sum(
        1
        for user in times
        for s, users in active.items()
        if user in users and user not in active.get(s - 1, set())
    )
    zone = ZoneInfo(tz)
    day_users: dict[str, set[str]] = defaultdict(set)
    for user, user_times in times.items():
        for t in user_times:
            day_users[datetime.fromtimestamp(t, zone).date().isoformat()].add(user)
    day_peak: dict[str, int] = defaultdict(int)
    for s, c in concurrency.items():
        day = datetime.fromtimestamp(s, zone).date().isoformat()
        day_peak[day] = max(day_peak[day], c)
    minutes: dict[int, int] = defaultdict(int)
    for s, c in concurrency.items():
        minutes[s // 60 * 60] = max(minutes[s // 60 * 60], c)
    timeline: list[int] = []
    if minutes:
        first = min(m for m, c in minutes.items() if c > 0)
        last = max(m for m, c in minutes.items() if c > 0)
        timeline = [minutes.get(m, 0) for m in range(first, last + 60, 60)]
    return {
        "peak": peak if peak else 0,
        "peak_at": None if not peak else peak_at,
        "requests_counted": counted,
        "users_active": len(times),
        "sessions": sessions,
        "daily": sorted((d, len(u), day_peak[d]) for d, u in day_users.items()),
        "timeline": timeline,
    }


def write_logs(folder: Path, requests: list[Request], extra: list[str], seed: int) -> int:
    """Write the requests over two nodes and both formats, shuffled; returns non-blank lines."""
    by_file: dict[str, list[str]] = defaultdict(list)
    for r in requests:
        if r.node == 1:
            by_file["node1/access_log.2026-03-28"].append(jira_line(r))
        else:
            by_file["node2/conf_access_log.2026-03-28.log"].append(confluence_line(r))
    shuffler = random.Random(seed)
    for lines in by_file.values():
        shuffler.shuffle(lines)  # lines are not in time order
    by_file["node1/access_log.2026-03-28"].extend(extra)
    for name, lines in by_file.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return sum(1 for lines in by_file.values() for line in lines if line.strip())


def fast(folder: Path, timeout: int, tz: str, context_path: str | None = None) -> dict[str, object]:
    report = analyze(
        AnalysisRequest(
            arguments=(str(folder),),
            rules=CountingRules(context_path=context_path),
            report=ReportOptions(idle_timeout_s=timeout, tz=tz),
        )
    )
    timeline = report.timeline
    return {
        "report": report,
        "peak": report.peak,
        "peak_at": None if report.peak_at is None else int(report.peak_at.timestamp()),
        "requests_counted": report.requests_counted,
        "users_active": report.users_active,
        "sessions": report.sessions,
        "daily": sorted((d.date.isoformat(), d.active_users, d.peak) for d in report.daily),
        "timeline": timeline,
    }


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    requests=requests_strategy,
    timeout=st.sampled_from([1, 2, 30, 60, 90]),
    tz=st.sampled_from(["UTC", "Europe/Vienna", "America/New_York"]),
    truncate=st.integers(0, 3),
    seed=st.integers(0, 2**16),
    context_path=st.sampled_from([None, "/jira"]),
)
def test_fast_path_matches_brute_force_reference(
    tmp_path_factory: pytest.TempPathFactory,
    requests: list[Request],
    timeout: int,
    tz: str,
    truncate: int,
    seed: int,
    context_path: str | None,
) -> None:
    folder = tmp_path_factory.mktemp("logs")
    # A truncated line is malformed even though its user and time are readable.
    sample = Request("alice", 5, "/browse/ABC-1", 1, 0)
    extra = [jira_line(sample)[: -3 - i * 7] for i in range(truncate)] + ["", "   "]
    # A line that is the only one must still be parseable, so keep one good line around.
    anchor = Request("-", 0, "/status", 1, 0)
    all_requests = [*requests, anchor]
    lines = write_logs(folder, all_requests, extra, seed)
    expected = reference(all_requests, timeout, tz, context_path)
    got = fast(folder, timeout, tz, context_path)
    report = got.pop("report")
    assert got == expected
    assert report.lines == lines  # type: ignore[attr-defined]
    assert report.malformed_lines == truncate  # type: ignore[attr-defined]


def test_requests_exactly_the_timeout_apart_make_one_session(tmp_path: Path) -> None:
    requests = [Request("alice", 0, "/browse/ABC-1", 1, 0), Request("alice", 60, "/browse/A", 1, 0)]
    write_logs(tmp_path, requests, [], 0)
    got = fast(tmp_path, 60, "UTC")
    assert got["sessions"] == 1
    assert got["peak"] == 1


def test_requests_the_timeout_plus_one_apart_make_two_sessions(tmp_path: Path) -> None:
    requests = [Request("alice", 0, "/browse/ABC-1", 1, 0), Request("alice", 61, "/browse/A", 1, 0)]
    write_logs(tmp_path, requests, [], 0)
    assert fast(tmp_path, 60, "UTC")["sessions"] == 2


def test_one_user_on_two_nodes_at_once_counts_once(tmp_path: Path) -> None:
    requests = [
        Request("alice", 10, "/browse/ABC-1", 1, 60),
        Request("ALICE", 10, "/browse/ABC-1", 2, -300),
        Request("bob.smith", 20, "/browse/ABC-1", 2, 0),
    ]
    write_logs(tmp_path, requests, [], 0)
    got = fast(tmp_path, 60, "UTC")
    assert got["peak"] == 2
    assert got["users_active"] == 2
    assert got["requests_counted"] == 3
    assert got["peak_at"] == BASE + 20
