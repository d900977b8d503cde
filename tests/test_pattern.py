"""The pattern compiler and the known formats, on real lines written by Jira and Confluence."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from floatseat.logs.escapes import unescape
from floatseat.logs.formats import FORMATS_BY_NAME, detect_format
from floatseat.logs.pattern import PatternError, compile_pattern, read_server_xml_pattern

# Real lines, from shared/reference/atlassian.md section 6 (sources there).
REAL_LINES = {
    "jira": [
        '85.90.246.161 20x2289x1 radim [24/Nov/2015:00:20:04 +0000] "GET /rest/tempo-teams/1/team'
        ' HTTP/1.1" 200 118 25 "-" "eazyBI (https://eazybi.com)" "lc4jfc"',
        '85.90.246.161 3x2282x1 - [24/Nov/2015:00:03:02 +0000] "GET /rest/capabilities HTTP/1.1"'
        ' 200 1504 4 "-" "Confluence-5.7.3 (5785)" "-"',
        # Jira 6.x wrote an empty referer as "" (community answer; the address is ours).
        '10.0.0.1 687x406810x28 userX [17/Apr/2015:11:27:43 -0700] "GET /rest/zephyr/latest/audit'
        '?x=1 HTTP/1.1" 200 47 91 "" "Mozilla/5.0" "2c0qst"',
    ],
    "jira-thread": [
        "142.136.96.252 http-nio-8080-exec-39 1162x35050x7 User6852 [10/Feb/2023:19:22:32 -0500]"
        ' "GET /rest/api/2/issue/10000/subtask/move?_=1676074886672 HTTP/1.1" 200 14 210'
        ' "http://localhost:8080/browse/SCRUM-67754" "Mozilla/5.0 (Windows NT 10.0; Win64; x64)"'
        ' "2ox7nu"',
    ],
    "confluence": [
        "[17/Jun/2021:12:57:26 +0200] user http-nio-8080-exec-6 192.168.192.1 GET /index.action"
        " HTTP/1.1 200 1020ms 7881 http://localhost/ Mozilla/5.0 (Macintosh; Intel Mac OS X"
        " 10_14_6) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/87.0.4280.88 Safari/537.36",
    ],
    "confluence-xff": [
        "[18/Dec/2020:12:57:26 +1100] 192.168.1.15 testuser http-nio-8090-exec-6"
        " 0:0:0:0:0:0:0:1 GET /index.action HTTP/1.1 200 1020ms 7881"
        " http://localhost:8090/login.action?os_destination=%2Findex.action&permissionViolation=true"
        " Mozilla/5.0 (Macintosh; Intel Mac OS X 10_14_6)",
    ],
    "confluence-docker": [
        '172.17.0.1 admin [23/Nov/2022:23:59:30 +0000] "POST /rest/wrm/2.0/resources HTTP/1.1"'
        ' 200 279 93 /rest/wrm/2.0/resources http-nio-8090-exec-10 "Mozilla/5.0 (Macintosh;'
        ' Intel Mac OS X 10_15_7)"',
    ],
}

# The first line of REAL_LINES[name]: (user, UTC time, target).
EXPECTED_FIRST = {
    "jira": ("radim", datetime(2015, 11, 24, 0, 20, 4, tzinfo=UTC), "/rest/tempo-teams/1/team"),
    "jira-thread": (
        "User6852",
        datetime(2023, 2, 11, 0, 22, 32, tzinfo=UTC),
        "/rest/api/2/issue/10000/subtask/move?_=1676074886672",
    ),
    "confluence": ("user", datetime(2021, 6, 17, 10, 57, 26, tzinfo=UTC), "/index.action"),
    "confluence-xff": ("testuser", datetime(2020, 12, 18, 1, 57, 26, tzinfo=UTC), "/index.action"),
    "confluence-docker": (
        "admin",
        datetime(2022, 11, 23, 23, 59, 30, tzinfo=UTC),
        "/rest/wrm/2.0/resources",
    ),
}


@pytest.mark.parametrize("name", sorted(REAL_LINES))
def test_each_known_format_parses_its_real_lines(name: str) -> None:
    pattern = FORMATS_BY_NAME[name].compiled()
    parsed = [pattern.parse(line) for line in REAL_LINES[name]]
    assert all(p is not None for p in parsed)
    first = parsed[0]
    assert first is not None
    user, moment, target = EXPECTED_FIRST[name]
    assert (first.user, first.epoch_s, first.target) == (user, int(moment.timestamp()), target)


@pytest.mark.parametrize("name", sorted(REAL_LINES))
def test_detection_picks_the_format_of_real_lines(name: str) -> None:
    detected = detect_format(REAL_LINES[name])
    assert detected is not None and detected.name == name


@pytest.mark.parametrize("name", sorted(REAL_LINES))
def test_polars_and_python_agree_on_every_real_line(name: str) -> None:
    pattern = FORMATS_BY_NAME[name].compiled()
    frame = pl.DataFrame({"line": REAL_LINES[name]})
    matches = frame.select(pl.col("line").str.contains(pattern.regex))["line"].to_list()
    assert matches == [pattern.parse(line) is not None for line in REAL_LINES[name]]
    users = frame.select(pl.col("line").str.extract_groups(pattern.extract_regex))
    assert [row["user"] for row in users["line"].to_list()] == [
        pattern.compiled().match(line)["user"]  # type: ignore[index]
        for line in REAL_LINES[name]
    ]


def test_every_line_of_the_real_jira_sample_parses(data_dir: Path) -> None:
    pattern = FORMATS_BY_NAME["jira"].compiled()
    for path in sorted((data_dir / "jira-real").iterdir()):
        lines = path.read_text(encoding="utf-8").splitlines()
        assert detect_format(lines) == FORMATS_BY_NAME["jira"]
        assert [line for line in lines if pattern.parse(line) is None] == []


def test_anonymous_user_is_none_even_with_a_session_id() -> None:
    parsed = FORMATS_BY_NAME["jira"].compiled().parse(REAL_LINES["jira"][1])
    assert parsed is not None and parsed.user is None


def test_a_truncated_line_is_malformed_though_user_and_time_are_readable() -> None:
    pattern = FORMATS_BY_NAME["jira"].compiled()
    line = REAL_LINES["jira"][0]
    assert pattern.parse(line[:-10]) is None
    assert pattern.parse(line[:80]) is None


def test_a_date_that_does_not_exist_is_malformed() -> None:
    pattern = FORMATS_BY_NAME["jira"].compiled()
    line = REAL_LINES["jira"][0].replace("24/Nov/2015", "31/Nov/2015")
    assert pattern.parse(line) is None
    leap = REAL_LINES["jira"][0].replace("24/Nov/2015", "29/Feb/2015")
    assert pattern.parse(leap) is None
    assert pattern.parse(REAL_LINES["jira"][0].replace("24/Nov/2015", "29/Feb/2016")) is not None


@pytest.mark.parametrize("offset", ["+2400", "-3000", "+0060"])
def test_an_offset_no_zone_has_is_malformed_as_the_analyzer_judges_it(offset: str) -> None:
    line = REAL_LINES["jira"][0].replace("+0000", offset)
    assert FORMATS_BY_NAME["jira"].compiled().parse(line) is None
    edge = REAL_LINES["jira"][0].replace("+0000", "-2359")
    parsed = FORMATS_BY_NAME["jira"].compiled().parse(edge)
    assert parsed is not None
    assert parsed.epoch_s == datetime(2015, 11, 25, 0, 19, 4, tzinfo=UTC).timestamp()


def test_tomcat_escapes_are_decoded() -> None:
    assert unescape("j\\u00f3zef") == "józef"
    assert unescape('say \\"hi\\" \\\\ there') == 'say "hi" \\ there'
    assert unescape("\\ud83d\\ude00") == "\U0001f600"  # a surrogate pair
    assert unescape("plain") == "plain"


def test_escaped_and_raw_utf8_usernames_are_the_same_user() -> None:
    pattern = FORMATS_BY_NAME["jira"].compiled()
    base = REAL_LINES["jira"][0]
    escaped = pattern.parse(base.replace(" radim ", " J\\u00f3zef.O'Neil-x@ex.com "))
    raw = pattern.parse(base.replace(" radim ", " józef.o'neil-x@ex.com "))
    assert escaped is not None and raw is not None
    assert escaped.user is not None and raw.user is not None
    assert escaped.user.lower() == raw.user.lower() == "józef.o'neil-x@ex.com"


def test_escaped_quotes_inside_a_quoted_field_keep_the_line_well_formed() -> None:
    pattern = FORMATS_BY_NAME["jira"].compiled()
    line = REAL_LINES["jira"][0].replace("eazyBI (https://eazybi.com)", 'a \\"quoted\\" agent')
    parsed = pattern.parse(line)
    assert parsed is not None and parsed.user_agent == 'a "quoted" agent'


def test_any_pattern_an_admin_wrote_compiles_to_a_parser() -> None:
    pattern = compile_pattern('%h %l %u %t "%r" %s %b "%{Referer}i" "%{User-Agent}i" %D')
    parsed = pattern.parse(
        '10.1.1.1 - ann [01/Mar/2026:10:00:00 +0100] "GET /browse/X-1?a=b HTTP/2.0" 200 - '
        '"-" "curl/8" 12'
    )
    assert parsed is not None
    assert (parsed.user, parsed.target, parsed.user_agent) == ("ann", "/browse/X-1?a=b", "curl/8")
    assert compile_pattern("combined").pattern.startswith("%h %l %u %t")


def test_a_pattern_without_a_user_or_time_is_refused_with_a_reason() -> None:
    with pytest.raises(PatternError, match="no user"):
        compile_pattern("%h %t %r")
    with pytest.raises(PatternError, match="no request time"):
        compile_pattern("%h %u %r")
    with pytest.raises(PatternError, match="unknown pattern token"):
        compile_pattern("%u %t %r %J")


def test_the_pattern_is_read_from_server_xml() -> None:
    xml = """<Server><Service><Engine><Host>
      <Valve className="org.apache.catalina.valves.AccessLogValve" directory="logs"
        pattern="%t %{X-AUSERNAME}o %I %h %r %s %Dms %b %{Referer}i %{User-Agent}i"
        prefix="conf_access_log" suffix=".log"/>
    </Host></Engine></Service></Server>"""
    assert read_server_xml_pattern(xml) == FORMATS_BY_NAME["confluence"].pattern
    with pytest.raises(PatternError):
        read_server_xml_pattern("<Server/>")
