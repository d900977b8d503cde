"""Refused-login lines of Jira's security log and Confluence's application log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from floatseat.logs.security import parse_refused_login

# Lines as the products wrote them: ../shared/reference/atlassian.md §7 and the Jira KB
# "Can't Log In To JIRA - No Global Permission In Database" (Jira 6/7, no UTC offset).
JIRA_9 = (
    "2023-06-09 05:11:11,664+0000 http-nio-8080-exec-17 anonymous 311x2831x1 1qvu69a "
    "xxx.xxx.xxx.x /login.jsp login : 'admin' tried to login but they do not have USE "
    "permission or weren't found. Deleting remember me cookie."
)
JIRA_FAILED = (
    "2023-06-09 05:11:11,681+0000 http-nio-8080-exec-17 anonymous 311x2831x1 1qvu69a "
    "xxx.xxx.xxx.x /login.jsp The user 'admin' has FAILED authentication.  Failure count equals 1"
)
JIRA_PASSED = (
    "2023-06-09 05:10:21,968+0000 http-nio-8080-exec-14 admin 310x2803x1 zokxj2 "
    "xxx.xxx.xxx.x /rest/gadget/1.0/login The user 'admin' has PASSED authentication."
)
JIRA_OLD = (
    "2015-08-14 08:58:12,536 http-bio-6410-exec-24 anonymous 538x1508x1 1vkjf6z 10.60.2.104 "
    "/login.jsp login : 'user' tried to login but they do not have USE permission or weren't "
    "found. Deleting remember me cookie."
)
CONFLUENCE = (
    "2015-01-02 09:37:11,864 WARN [http-bio-8090-exec-9] "
    "[atlassian.seraph.auth.DefaultAuthenticator] login login : 'user.name' tried to login but "
    "they do not have USE permission or weren't found. Deleting remember me cookie."
)
CONFLUENCE_OTHER = (
    "2022-07-12 01:08:59,489 INFO [Catalina-utility-1] "
    "[confluence.cluster.hazelcast.HazelcastClusterManager] startCluster Starting the cluster."
)


def _unix(*args: int, tz: timezone | ZoneInfo = UTC) -> int:
    return int(datetime(*args, tzinfo=tz).timestamp())


def test_jira_line_with_offset() -> None:
    refused = parse_refused_login(JIRA_9, zone=ZoneInfo("Asia/Tokyo"))  # offset wins
    assert refused is not None
    assert refused.user == "admin"
    assert refused.at == _unix(2023, 6, 9, 5, 11, 11)


def test_negative_offset() -> None:
    line = JIRA_9.replace("+0000", "-0330")
    refused = parse_refused_login(line)
    assert refused is not None
    assert refused.at == _unix(2023, 6, 9, 5, 11, 11, tz=timezone(-timedelta(hours=3, minutes=30)))


def test_line_without_offset_is_in_the_nodes_zone() -> None:
    refused = parse_refused_login(JIRA_OLD, zone=ZoneInfo("Europe/Berlin"))
    assert refused is not None
    assert refused.user == "user"
    assert refused.at == _unix(2015, 8, 14, 6, 58, 12)  # CEST is UTC+2


def test_confluence_line() -> None:
    refused = parse_refused_login(CONFLUENCE, zone=ZoneInfo("America/New_York"))
    assert refused is not None
    assert (refused.user, refused.raw_user) == ("user.name", "user.name")
    assert refused.at == _unix(2015, 1, 2, 14, 37, 11)  # EST is UTC-5


@pytest.mark.parametrize("line", [JIRA_FAILED, JIRA_PASSED, CONFLUENCE_OTHER, "", "\tat x.y(Z)"])
def test_other_lines_are_not_refusals(line: str) -> None:
    assert parse_refused_login(line) is None


@pytest.mark.parametrize(
    "line",
    [
        JIRA_9.replace("2023-06-09", "2023-06-31"),  # no such day
        JIRA_9[30:],  # cut before the time: a continuation, not a record
        JIRA_9.replace("'admin'", "''"),
        JIRA_9.replace("+0000", "+3000"),  # no zone is a day or more from UTC (fuzzing found it)
        JIRA_9.replace("+0000", "-0075"),
    ],
)
def test_damaged_lines_are_not_refusals(line: str) -> None:
    assert parse_refused_login(line) is None


def test_names_compare_case_insensitively_and_keep_apostrophes() -> None:
    refused = parse_refused_login(JIRA_9.replace("'admin'", "'Anne.O'Brien@corp'"))
    assert refused is not None
    assert refused.user == "anne.o'brien@corp"
    assert refused.raw_user == "Anne.O'Brien@corp"


@given(
    st.text(
        st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1, max_size=30
    ).filter(lambda s: s.strip() != "")
)
def test_any_username_round_trips(name: str) -> None:
    refused = parse_refused_login(JIRA_9.replace("'admin'", f"'{name}'"))
    assert refused is not None
    assert refused.raw_user == name
