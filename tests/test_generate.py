"""Tests of the synthetic access-log generator (floatseat.logs.generate)."""

from __future__ import annotations

import gzip
import os
import re
import subprocess
import sys
from bisect import bisect_right
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import NamedTuple

import pytest
from hypothesis import given
from hypothesis import strategies as st

from floatseat.logs.generate import (
    DEFAULT_START,
    SERVICE_ACCOUNT,
    GeneratedLogs,
    Product,
    generate_logs,
    log_file_name,
    tomcat_escape,
)

# Strict patterns, written from the two default valves, independently of the generator.
# A logged value: printable ASCII except space, `"` and `\`, or one of Tomcat's escapes
# (the generator promises lowercase hex). The form plain* (escape plain*)* matters: an
# escape starts with `\`, which no plain character is, so a line that does not match fails
# fast instead of backtracking exponentially (as `(?:plain+|escape)+` would).
_ESCAPE = r'(?:\\u[0-9a-f]{4}|\\["\\])'
_VALUE = rf"(?=[^ ])[!#-\[\]-~]*(?:{_ESCAPE}[!#-\[\]-~]*)*"
_AGENT = rf"(?=.)[ !#-\[\]-~]*(?:{_ESCAPE}[ !#-\[\]-~]*)*"  # may hold spaces
_TIME = (
    r"(?P<time>\d{2}/(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)/\d{4}:\d{2}:\d{2}:\d{2})"
)
_REQUEST = r"(?P<method>GET|POST|PUT|DELETE) (?P<target>/[!#-~]*) HTTP/1\.1"

# %a %{jira.request.id}r %{jira.request.username}r %t "%m %U%q %H" %s %b %D
# "%{Referer}i" "%{User-Agent}i" "%{jira.request.assession.id}r"
JIRA_LINE = re.compile(
    r"(?P<address>[0-9a-f.:]+) "
    r"(?P<minute>\d+)x(?P<counter>\d+)x(?P<in_flight>[1-9]\d*) "
    rf"(?P<user>-|{_VALUE}) "
    rf"\[{_TIME} (?P<offset>[+-]\d{{4}})\] "
    rf'"{_REQUEST}" '
    r"(?P<status>[1-5]\d\d) (?P<bytes>-|[1-9]\d*) (?P<duration>\d+) "
    r'"(?P<referer>-|https://[!#-\[\]-~]+)" '
    rf'"(?P<agent>{_AGENT})" '
    r'"(?P<session>-|[0-9a-z]+)"'
)
# %t %{X-AUSERNAME}o %I %h %r %s %Dms %b %{Referer}i %{User-Agent}i
CONFLUENCE_LINE = re.compile(
    rf"\[{_TIME} (?P<offset>[+-]\d{{4}})\] "
    rf"(?P<user>-|{_VALUE}) "
    r"(?P<thread>http-nio-\d+-exec-\d+) "
    r"(?P<address>[0-9a-f.:]+) "
    rf"{_REQUEST} "
    r"(?P<status>[1-5]\d\d) (?P<duration>\d+)ms (?P<bytes>-|[1-9]\d*) "
    r"(?P<referer>-|https://[!#-\[\]-~]+) "
    rf"(?P<agent>{_AGENT})"
)
PATTERNS: dict[str, re.Pattern[str]] = {"jira": JIRA_LINE, "confluence": CONFLUENCE_LINE}
MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()
POLLING = (
    "/rest/mywork/latest/status/notification/count",
    "/rest/analytics/1.0/publish/bulk",
    "/rest/scriptrunner/latest/message",
    "/rest/quickreload/latest/",
    "/rest/greenhopper/1.0/xboard/work/allData.json",
)


def unescape(text: str) -> str:
    """Tomcat's escapes undone (written here, not imported, to check the generator)."""
    simple = {'"': '"', "\\": "\\", "t": "\t", "n": "\n", "r": "\r", "f": "\f"}

    def replace(match: re.Match[str]) -> str:
        body = match.group(1)
        return chr(int(body[1:], 16)) if body[0] == "u" else simple[body]

    decoded = re.sub(r"\\(u[0-9a-fA-F]{4}|.)", replace, text)
    return decoded.encode("utf-16", "surrogatepass").decode("utf-16")


_ZONES: dict[str, timezone] = {}


def zone(offset: str) -> timezone:
    if offset not in _ZONES:
        minutes = int(offset[1:3]) * 60 + int(offset[3:])
        _ZONES[offset] = timezone(timedelta(minutes=minutes if offset[0] == "+" else -minutes))
    return _ZONES[offset]


class Line(NamedTuple):
    node: str
    file: str
    fields: re.Match[str]  # the pattern's named groups
    local: datetime  # the timestamp as written, without its offset

    @property
    def instant(self) -> datetime:
        return self.local.replace(tzinfo=zone(self.fields["offset"]))

    @property
    def user(self) -> str:
        return self.fields["user"]

    @property
    def target(self) -> str:
        return self.fields["target"]


def read_text(path: Path) -> str:
    data = path.read_bytes()
    return (gzip.decompress(data) if path.suffix == ".gz" else data).decode("ascii")


def parse(result: GeneratedLogs) -> list[Line]:
    pattern = PATTERNS[result.product]
    lines = []
    for path in result.files:
        for text in read_text(path).splitlines():
            match = pattern.fullmatch(text)
            assert match, f"{path.name}: {text!r}"
            t = match["time"]
            local = datetime(
                int(t[7:11]), MONTHS.index(t[3:6]) + 1, int(t[0:2]),
                int(t[12:14]), int(t[15:17]), int(t[18:20]),
            )  # fmt: skip
            lines.append(Line(path.parent.name, path.name, match, local))
    return lines


def is_polling(line: Line) -> bool:
    return line.target.startswith(POLLING)


@pytest.fixture(scope="module")
def week(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[GeneratedLogs, list[Line]]]:
    """A week (Monday to Sunday) of both products, 2 nodes, 10 people."""
    out: dict[str, tuple[GeneratedLogs, list[Line]]] = {}
    for product in ("jira", "confluence"):
        result = generate_logs(
            tmp_path_factory.mktemp(product), product=product, users=10, days=7, nodes=2, seed=3
        )
        out[product] = (result, parse(result))
    return out


PRODUCTS = pytest.mark.parametrize("product", ["jira", "confluence"])


def small(tmp: Path, product: Product = "jira", **options: object) -> GeneratedLogs:
    arguments: dict[str, object] = {"users": 4, "days": 1, "nodes": 2, "seed": 1} | options
    return generate_logs(tmp, product=product, **arguments)  # type: ignore[arg-type]


def snapshot(result: GeneratedLogs) -> dict[str, bytes]:
    return {str(p.relative_to(result.out_dir)): p.read_bytes() for p in result.files}


# --------------------------------------------------------------------------- determinism


@PRODUCTS
def test_same_seed_gives_identical_bytes(tmp_path: Path, product: Product) -> None:
    first = small(tmp_path / "a", product, seed=11)
    second = small(tmp_path / "b", product, seed=11)
    assert snapshot(first) == snapshot(second)
    assert first.lines == second.lines and first.usernames == second.usernames


@PRODUCTS
def test_different_seed_gives_different_logs(tmp_path: Path, product: Product) -> None:
    first = snapshot(small(tmp_path / "a", product, seed=11))
    second = snapshot(small(tmp_path / "b", product, seed=12))
    assert first.keys() == second.keys()
    assert all(first[name] != second[name] for name in first)


def test_output_does_not_depend_on_string_hashing(tmp_path: Path) -> None:
    here = snapshot(small(tmp_path / "here", users=8))
    script = (
        "import sys; from pathlib import Path; from floatseat.logs.generate import generate_logs;"
        "generate_logs(Path(sys.argv[1]), product='jira', users=8, days=1, nodes=2, seed=1)"
    )
    environment = os.environ | {"PYTHONHASHSEED": "12345"}
    there = tmp_path / "there"
    subprocess.run([sys.executable, "-c", script, str(there)], check=True, env=environment)
    assert {str(p.relative_to(there)): p.read_bytes() for p in there.rglob("*.*-*")} == here


# --------------------------------------------------------------------------- files


def test_jira_file_names(week: dict[str, tuple[GeneratedLogs, list[Line]]]) -> None:
    result, _ = week["jira"]
    days = [f"2026-01-{day:02d}" for day in range(5, 12)]
    expected = [result.out_dir / f"node{n}" / f"access_log.{d}" for n in (1, 2) for d in days]
    assert list(result.files) == expected
    assert sorted(result.out_dir.rglob("*")) == sorted(
        [*expected, result.out_dir / "node1", result.out_dir / "node2"]
    )
    assert (result.first_day, result.last_day) == (DEFAULT_START, date(2026, 1, 11))
    assert DEFAULT_START.weekday() == 0


def test_confluence_file_names(week: dict[str, tuple[GeneratedLogs, list[Line]]]) -> None:
    result, _ = week["confluence"]
    names = {path.name for path in result.files}
    assert names == {f"conf_access_log.2026-01-{day:02d}.log" for day in range(5, 12)}
    assert {path.parent.name for path in result.files} == {"node1", "node2"}


def test_log_file_name() -> None:
    assert log_file_name("jira", date(2026, 2, 1)) == "access_log.2026-02-01"
    assert log_file_name("confluence", date(2026, 2, 1)) == "conf_access_log.2026-02-01.log"
    assert log_file_name("jira", date(2026, 2, 1), gzip=True) == "access_log.2026-02-01.gz"


@PRODUCTS
def test_counts_in_the_result(
    week: dict[str, tuple[GeneratedLogs, list[Line]]], product: Product
) -> None:
    result, lines = week[product]
    assert result.lines == len(lines) > 10_000
    logged = {unescape(line.user) for line in lines} - {"-"}
    assert logged == result.usernames
    # Nearly everyone worked this week; a light user may have been away.
    assert len(result.usernames - result.service_accounts) >= 8
    assert result.service_accounts == {SERVICE_ACCOUNT}


@PRODUCTS
def test_each_node_has_a_file_per_day_with_people_in_it(tmp_path: Path, product: Product) -> None:
    result = small(tmp_path, product, users=6, nodes=3, days=2)
    assert len(result.files) == 3 * 2
    for node in ("node1", "node2", "node3"):
        files = sorted((tmp_path / node).iterdir())
        assert len(files) == 2
        monday = read_text(files[0])
        assert SERVICE_ACCOUNT in monday or "GET /status" in monday
    people = [line for line in parse(result) if line.user not in ("-", SERVICE_ACCOUNT)]
    assert {line.node for line in people} == {"node1", "node2", "node3"}


def test_gzip_holds_the_same_lines(tmp_path: Path) -> None:
    plain = small(tmp_path / "plain", "confluence")
    packed = small(tmp_path / "packed", "confluence", gzip=True)
    assert all(path.name.endswith(".log.gz") for path in packed.files)
    assert [read_text(path) for path in packed.files] == [read_text(p) for p in plain.files]
    assert snapshot(packed) == snapshot(small(tmp_path / "again", "confluence", gzip=True))


# --------------------------------------------------------------------------- line format


@PRODUCTS
def test_every_line_matches_the_products_pattern(
    week: dict[str, tuple[GeneratedLogs, list[Line]]], product: Product
) -> None:
    result, lines = week[product]  # parse() asserts the full match of every line
    assert len(lines) == result.lines
    assert all(line.fields["offset"] == "+0000" for line in lines)


def test_jira_request_ids(week: dict[str, tuple[GeneratedLogs, list[Line]]]) -> None:
    _, lines = week["jira"]
    for line in lines:
        local = line.local
        assert int(line.fields["minute"]) == local.hour * 60 + local.minute
    counters = defaultdict(list)
    for line in lines:
        counters[line.node].append(int(line.fields["counter"]))
    for values in counters.values():
        assert len(set(values)) == len(values)  # one counter per node, never reused
        assert sorted(values) == list(range(min(values), min(values) + len(values)))
    in_flight = Counter(int(line.fields["in_flight"]) for line in lines)
    assert in_flight[1] > len(lines) / 3 and max(in_flight) > 3


@PRODUCTS
def test_malformed_lines_fail_the_pattern(tmp_path: Path, product: Product) -> None:
    clean = small(tmp_path / "clean", product)
    broken = small(tmp_path / "broken", product, malformed_every=7)
    assert broken.lines == clean.lines
    for clean_path, broken_path in zip(clean.files, broken.files, strict=True):
        clean_lines = read_text(clean_path).splitlines()
        broken_lines = read_text(broken_path).splitlines()
        assert len(broken_lines) == len(clean_lines) > 1000
        for number, (good, bad) in enumerate(zip(clean_lines, broken_lines, strict=True), 1):
            if number % 7:
                assert bad == good
            else:  # cut short, and missing fields of the pattern
                assert good.startswith(bad) and len(bad) < len(good)
                assert not PATTERNS[product].fullmatch(bad)


# --------------------------------------------------------------------------- escaping


def test_tomcat_escape_examples() -> None:
    assert tomcat_escape("anna.schmidt") == "anna.schmidt"
    assert tomcat_escape("józef.müller") == "j\\u00f3zef.m\\u00fcller"
    assert tomcat_escape("o'brien") == "o'brien"
    assert tomcat_escape('say "hi"') == 'say \\"hi\\"'
    assert tomcat_escape("C:\\temp") == "C:\\\\temp"
    assert tomcat_escape("a\tb\nc") == "a\\tb\\nc"
    assert tomcat_escape("\x7f") == "\\u007f"
    assert tomcat_escape("李") == "\\u674e"
    assert tomcat_escape("😀") == "\\ud83d\\ude00"  # UTF-16, as Java holds it
    assert tomcat_escape("") == "-"


@given(st.text(min_size=1))
def test_tomcat_escape_round_trips(text: str) -> None:
    escaped = tomcat_escape(text)
    assert all(" " <= char <= "~" for char in escaped)
    assert unescape(escaped) == text


@PRODUCTS
def test_non_ascii_users_appear_only_escaped(
    week: dict[str, tuple[GeneratedLogs, list[Line]]], product: Product
) -> None:
    result, lines = week[product]
    special = {name for name in result.usernames if not name.isascii()}
    assert {"józef.müller", "ærlig"} <= special  # users 1 and 9 get them
    assert "o'brien" in result.usernames
    logged = Counter(line.user for line in lines)
    for name in special:
        assert logged[tomcat_escape(name)] > 0
        assert "\\u" in tomcat_escape(name)


@PRODUCTS
def test_quotes_and_backslashes_in_user_agents_are_escaped(
    week: dict[str, tuple[GeneratedLogs, list[Line]]], product: Product
) -> None:
    _, lines = week[product]
    agents = {unescape(line.fields["agent"]) for line in lines}
    quoted = {agent for agent in agents if '"' in agent}
    assert quoted, "some User-Agents hold a quote"
    assert any("\\" in agent for agent in quoted)
    raw = {line.fields["agent"] for line in lines}
    assert all('"' not in agent.replace('\\"', "") for agent in raw)


# --------------------------------------------------------------------------- realism


@PRODUCTS
def test_working_hours_are_busy_and_nights_quiet(
    week: dict[str, tuple[GeneratedLogs, list[Line]]], product: Product
) -> None:
    _, lines = week[product]
    weekdays = [DEFAULT_START + timedelta(days=n) for n in range(5)]

    def per_hour(lines: list[Line], hours: range) -> float:
        counts = Counter((line.local.date(), line.local.hour) for line in lines)
        return sum(counts[day, hour] for day in weekdays for hour in hours) / (5 * len(hours))

    # Everything, health checks and the service account included ...
    assert per_hour(lines, range(10, 16)) > 4 * per_hour(lines, range(2, 4)) > 0
    # ... and people alone: at night only idle tabs and someone on call.
    people = [line for line in lines if line.user not in ("-", SERVICE_ACCOUNT)]
    assert per_hour(people, range(10, 16)) > 20 * per_hour(people, range(2, 4))


@PRODUCTS
def test_weekends_are_lighter(
    week: dict[str, tuple[GeneratedLogs, list[Line]]], product: Product
) -> None:
    _, lines = week[product]
    people = [line for line in lines if line.user not in ("-", SERVICE_ACCOUNT)]
    for share, selection in ((1.5, lines), (5, people)):  # machines work weekends too
        per_day = Counter(line.local.date() for line in selection)
        weekday = min(per_day[DEFAULT_START + timedelta(days=n)] for n in range(5))
        weekend = max(per_day[DEFAULT_START + timedelta(days=n)] for n in (5, 6))
        assert weekend * share < weekday


@PRODUCTS
def test_anonymous_traffic(
    week: dict[str, tuple[GeneratedLogs, list[Line]]], product: Product
) -> None:
    _, lines = week[product]
    anonymous = Counter(line.target.split("?")[0] for line in lines if line.user == "-")
    assert anonymous["/status"] > 1000  # health checks of every node
    assert anonymous["/rest/capabilities"] > 100
    assert anonymous["/login.jsp" if product == "jira" else "/login.action"] > 0
    assert any(line.fields["status"] == "404" and line.user == "-" for line in lines)


@PRODUCTS
def test_service_account_calls_around_the_clock(
    week: dict[str, tuple[GeneratedLogs, list[Line]]], product: Product
) -> None:
    _, lines = week[product]
    calls = [line for line in lines if line.user == SERVICE_ACCOUNT]
    assert {line.local.hour for line in calls} == set(range(24))
    rounds = {line.local.replace(minute=line.local.minute // 30 * 30, second=0) for line in calls}
    assert len(rounds) >= 7 * 48 - 2  # every half hour, all week
    assert all(line.fields["agent"] == "python-requests/2.31.0" for line in calls)


@PRODUCTS
def test_open_tabs_keep_polling_while_nobody_works(
    week: dict[str, tuple[GeneratedLogs, list[Line]]], product: Product
) -> None:
    _, lines = week[product]
    people = [line for line in lines if line.user not in ("-", SERVICE_ACCOUNT)]
    work: dict[str, list[datetime]] = defaultdict(list)
    for line in people:
        if not is_polling(line):
            work[line.user].append(line.instant)
    for times in work.values():
        times.sort()
    # Polls with no real request by the same person in the 15 minutes before.
    idle_polls = 0
    for line in people:
        if is_polling(line):
            times = work[line.user]
            before = bisect_right(times, line.instant)
            if before == 0 or line.instant - times[before - 1] > timedelta(minutes=15):
                idle_polls += 1
    assert idle_polls > 500
    polled = Counter(line.target.split("?")[0] for line in people if is_polling(line))
    assert polled["/rest/mywork/latest/status/notification/count"] > 0
    assert polled["/rest/analytics/1.0/publish/bulk"] > 0
    if product == "jira":
        assert polled["/rest/greenhopper/1.0/xboard/work/allData.json"] > 0
        assert any("etag=" in line.target for line in people)
    else:
        assert any(target.startswith("/rest/quickreload/latest/") for target in polled)


def test_confluence_editor_heartbeats(week: dict[str, tuple[GeneratedLogs, list[Line]]]) -> None:
    _, lines = week["confluence"]
    beats = [line for line in lines if line.target == "/json/startheartbeatactivity.action"]
    assert beats and all(line.user != "-" for line in beats)


def test_jira_static_resources_are_anonymous_within_the_session(
    week: dict[str, tuple[GeneratedLogs, list[Line]]],
) -> None:
    _, lines = week["jira"]
    named_sessions = {line.fields["session"] for line in lines if line.user != "-"}
    statics = [line for line in lines if line.target.startswith("/s/")]
    assert statics and all(line.user == "-" for line in statics)
    assert sum(line.fields["session"] in named_sessions for line in statics) > len(statics) / 2
    assert any(line.target.startswith("/images/") and line.user != "-" for line in lines)


def test_confluence_static_resources_carry_the_user(
    week: dict[str, tuple[GeneratedLogs, list[Line]]],
) -> None:
    _, lines = week["confluence"]
    statics = [line for line in lines if line.target.startswith("/s/")]
    assert statics and sum(line.user != "-" for line in statics) > len(statics) * 0.9


@PRODUCTS
def test_people_move_between_nodes(
    week: dict[str, tuple[GeneratedLogs, list[Line]]], product: Product
) -> None:
    _, lines = week[product]
    people = [line for line in lines if line.user not in ("-", SERVICE_ACCOUNT)]
    nodes_of: dict[str, set[str]] = defaultdict(set)
    minutes_of: dict[tuple[str, str], set[datetime]] = defaultdict(set)
    for line in people:
        nodes_of[line.user].add(line.node)
        minutes_of[line.user, line.node].add(line.instant.replace(second=0))
    assert sum(len(nodes) == 2 for nodes in nodes_of.values()) >= len(nodes_of) // 2
    # Now and then someone is on both nodes in the same minute.
    assert any(minutes_of[user, "node1"] & minutes_of[user, "node2"] for user in nodes_of)


def assert_files_rotate_at_local_midnight(lines: list[Line]) -> None:
    """A line is in the file of the day its request completed, in its node's offset."""
    for line in lines:
        file_day = date.fromisoformat(line.file.split(".")[1])
        started = line.local
        if started.date() != file_day:  # started before midnight, completed after
            assert started.date() == file_day - timedelta(days=1)
            completed = started + timedelta(milliseconds=int(line.fields["duration"]))
            assert completed >= datetime.combine(file_day, datetime.min.time())


@PRODUCTS
def test_files_rotate_at_midnight(
    week: dict[str, tuple[GeneratedLogs, list[Line]]], product: Product
) -> None:
    assert_files_rotate_at_local_midnight(week[product][1])


@PRODUCTS
def test_lines_are_written_at_completion_so_some_are_out_of_order(
    week: dict[str, tuple[GeneratedLogs, list[Line]]], product: Product
) -> None:
    _, lines = week[product]
    late: list[timedelta] = []
    for before, after in zip(lines, lines[1:], strict=False):
        if before.file == after.file and after.node == before.node and after.local < before.local:
            late.append(before.local - after.local)
    assert 0.002 * len(lines) < len(late) < 0.08 * len(lines)
    assert max(late) <= timedelta(seconds=15)


def test_nodes_in_other_offsets(tmp_path: Path) -> None:
    result = small(tmp_path, users=6, utc_offset=["+0100", "-0500"])
    lines = parse(result)
    assert {line.fields["offset"] for line in lines if line.node == "node1"} == {"+0100"}
    assert {line.fields["offset"] for line in lines if line.node == "node2"} == {"-0500"}
    assert_files_rotate_at_local_midnight(lines)
    # The service account's half-hourly calls are on the same clock on both nodes.
    utc_minutes = {
        line.instant.astimezone(UTC).minute // 30
        for line in lines
        if line.user == SERVICE_ACCOUNT and line.target.startswith("/rest/api/2/search")
    }
    assert utc_minutes == {0, 1}
    assert {line.node for line in lines if line.user == SERVICE_ACCOUNT} == {"node1", "node2"}


def test_invalid_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="product"):
        generate_logs(tmp_path, product="bamboo", users=1, days=1, nodes=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="days"):
        generate_logs(tmp_path, product="jira", users=1, days=0, nodes=1)
    with pytest.raises(ValueError, match="2 offsets given for 3 nodes"):
        generate_logs(tmp_path, product="jira", users=1, days=1, nodes=3, utc_offset=["+0100"] * 2)
    with pytest.raises(ValueError, match="utc_offset"):
        generate_logs(tmp_path, product="jira", users=1, days=1, nodes=1, utc_offset="UTC")
    with pytest.raises(ValueError, match="malformed_every"):
        generate_logs(tmp_path, product="jira", users=1, days=1, nodes=1, malformed_every=0)
    assert not list(tmp_path.iterdir())
