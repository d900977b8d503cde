"""JiraDirectory against recorded Jira DC responses served by `httpx.MockTransport`.

Each test scripts the server: the exact requests it expects, in order (method, path and
query as sent on the wire), and the reply to each. The JSON bodies are the examples of
`reference/atlassian.md` §2 unless a test says otherwise.
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from recorded import Script as Jira
from recorded import reply, scripted_http

from floatseat.directory.errors import (
    GroupNotFound,
    ManualStepRequired,
    NotPermitted,
    RateLimited,
    ReadOnlyDirectory,
    UnexpectedResponse,
    UserNotFound,
)
from floatseat.directory.http import AtlassianHttp, PersonalAccessToken, make_client
from floatseat.directory.jira import UNLIMITED_SEATS, JiraDirectory
from floatseat.directory.port import (
    ApplicationAccess,
    ConnectionInfo,
    Licence,
    ManagedDirectory,
    User,
)

BASE = "https://jira.example.com/jira"  # with a context path, as many DC instances run
J = "/jira/rest/api/2"
TOKEN = PersonalAccessToken("NjQ5MzA2MjM3OTQ1-token")


def jira(server: Jira, sleeps: list[float] | None = None, **options: Any) -> JiraDirectory:
    return JiraDirectory(scripted_http(BASE, TOKEN, server, sleeps), **options)


def user_json(name: str, *, active: bool = True) -> dict[str, object]:
    """A member as `/group/member` lists it (the shape of the reference's example)."""
    return {
        "self": f"https://www.example.com/jira/rest/api/2/user?username={name}",
        "name": name,
        "key": name.lower(),
        "emailAddress": f"{name}@atlassian.com",
        "avatarUrls": {},
        "displayName": name.title(),
        "active": active,
        "timeZone": "Australia/Sydney",
    }


def member_page(
    names: list[str],
    *,
    start: int,
    is_last: bool,
    total: int,
    inactive: frozenset[str] = frozenset(),
) -> dict[str, object]:
    return {
        "self": "https://www.example.com/jira/rest/api/2/group/member?groupname=G",
        "nextPage": None if is_last else "https://www.example.com/jira/rest/api/2/group/member",
        "maxResults": len(names),
        "startAt": start,
        "total": total,
        "isLast": is_last,
        "values": [user_json(n, active=n not in inactive) for n in names],
    }


def members_url(group: str, start: int, *, inactive: bool = True, size: int = 50) -> str:
    flag = "true" if inactive else "false"
    return (
        f"{J}/group/member?groupname={group}&includeInactiveUsers={flag}"
        f"&startAt={start}&maxResults={size}"
    )


# The group-member example of the reference, verbatim (its startAt disagrees with its self).
REFERENCE_MEMBER_PAGE = {
    "self": "https://www.example.com/jira/rest/api/2/group/member?groupname=jira-administrators&includeInactiveUsers=false&startAt=2&maxResults=2",
    "nextPage": "https://www.example.com/jira/rest/api/2/group/member?groupname=jira-administrators&includeInactiveUsers=false&startAt=4&maxResults=2",
    "maxResults": 2,
    "startAt": 3,
    "total": 5,
    "isLast": False,
    "values": [
        {
            "self": "https://example/jira/rest/api/2/user?username=fred",
            "name": "Fred",
            "key": "fred",
            "emailAddress": "fred@atlassian.com",
            "avatarUrls": {},
            "displayName": "Fred",
            "active": True,
            "timeZone": "Australia/Sydney",
        }
    ],
}

REFERENCE_USER = {
    "self": "http://www.example.com/jira/rest/api/2/user?username=fred",
    "key": "JIRAUSER10100",
    "name": "fred",
    "emailAddress": "fred@example.com",
    "avatarUrls": {"48x48": "…"},
    "displayName": "Fred F. User",
    "active": True,
    "deleted": False,
    "timeZone": "Australia/Sydney",
    "locale": "en_AU",
}

REFERENCE_ROLE = {
    "key": "jira-software",
    "name": "Jira Software",
    "groups": ["jira-software-users", "jira-testers"],
    "defaultGroups": ["jira-software-users"],
    "selectedByDefault": False,
    "defined": False,
    "numberOfSeats": 10,
    "remainingSeats": 5,
    "userCount": 5,
    "userCountDescription": "5 developers",
    "hasUnlimitedSeats": False,
    "platform": False,
}

ROLE_URL = f"{J}/applicationrole/jira-software"
ROLES_URL = f"{J}/applicationrole"
SERVICE_DESK_ROLE = {**REFERENCE_ROLE, "key": "jira-servicedesk", "groups": ["sd-agents"]}


def roles(role_: dict[str, object], etag: str = '"7a1c"') -> httpx.Response:
    """`GET /applicationrole`: every role, and the roles' version hash as the ETag."""
    return httpx.Response(200, json=[SERVICE_DESK_ROLE, role_], headers={"ETag": etag})


ALREADY = "Cannot add user. 'bob' is already a member of 'IUM_Enabled'"
READ_ONLY = "You cannot add user 'bob' to group 'IUM_Enabled'. The user's directory is read only."


def user_with_groups(name: str, groups: list[str]) -> dict[str, object]:
    return {
        **REFERENCE_USER,
        "name": name,
        "groups": {"size": len(groups), "items": [{"name": g, "self": "…"} for g in groups]},
    }


def role(**changes: object) -> dict[str, object]:
    return {**REFERENCE_ROLE, **changes}


# -- the port ------------------------------------------------------------------------------


def test_the_connector_implements_the_managed_directory_port() -> None:
    directory: ManagedDirectory = jira(Jira())
    assert isinstance(directory, JiraDirectory)


def test_the_constructor_and_connect_do_no_io() -> None:
    server = Jira()
    jira(server)
    JiraDirectory.connect(BASE, TOKEN, transport=httpx.MockTransport(server)).close()
    assert server.requests == []


# -- group members and paging --------------------------------------------------------------


def test_members_follow_is_last_through_pages_the_server_capped() -> None:
    server = Jira(
        (
            "GET",
            members_url("IUM_Enabled", 0),
            reply(200, member_page(["ann", "bob"], start=0, is_last=False, total=5)),
        ),
        (
            "GET",
            members_url("IUM_Enabled", 2),
            reply(200, member_page(["cat", "dan"], start=2, is_last=False, total=5)),
        ),
        (
            "GET",
            members_url("IUM_Enabled", 4),
            reply(200, member_page(["eve"], start=4, is_last=True, total=5)),
        ),
    )
    assert jira(server).group_members("IUM_Enabled") == ["ann", "bob", "cat", "dan", "eve"]
    assert server.done()


def test_a_short_page_that_is_not_the_last_does_not_end_the_list() -> None:
    server = Jira(
        ("GET", members_url("G", 0), reply(200, REFERENCE_MEMBER_PAGE)),
        (
            "GET",
            members_url("G", 1),
            reply(200, member_page(["zoe"], start=1, is_last=True, total=2)),
        ),
    )
    assert jira(server).group_members("G") == ["Fred", "zoe"]
    assert server.done()


def test_a_full_page_marked_last_ends_the_list() -> None:
    names = [f"u{i}" for i in range(3)]
    server = Jira(
        (
            "GET",
            members_url("G", 0, size=3),
            reply(200, member_page(names, start=0, is_last=True, total=3)),
        )
    )
    assert jira(server, page_size=3).group_members("G") == names


def test_an_empty_page_that_is_not_the_last_is_an_error_not_a_loop() -> None:
    server = Jira(
        ("GET", members_url("G", 0), reply(200, member_page([], start=0, is_last=False, total=9)))
    )
    with pytest.raises(UnexpectedResponse, match="empty page"):
        jira(server).group_members("G")


def test_the_same_page_served_twice_is_an_error_not_a_loop() -> None:
    page = member_page(["ann"], start=0, is_last=False, total=9)
    server = Jira(
        ("GET", members_url("G", 0), reply(200, page)),
        ("GET", members_url("G", 1), reply(200, page)),
    )
    with pytest.raises(UnexpectedResponse, match="same page"):
        jira(server).group_members("G")


def test_without_is_last_the_total_ends_the_list() -> None:
    first = {
        k: v
        for k, v in member_page(["a", "b"], start=0, is_last=False, total=3).items()
        if k != "isLast"
    }
    second = {
        k: v
        for k, v in member_page(["c"], start=2, is_last=False, total=3).items()
        if k != "isLast"
    }
    server = Jira(
        ("GET", members_url("G", 0), reply(200, first)),
        ("GET", members_url("G", 2), reply(200, second)),
    )
    assert jira(server).group_members("G") == ["a", "b", "c"]
    assert server.done()


def test_members_of_a_missing_group_raise_group_not_found() -> None:
    server = Jira(
        (
            "GET",
            members_url("IUM_Gone", 0),
            reply(
                404, {"errorMessages": ["The group named 'IUM_Gone' does not exist."], "errors": {}}
            ),
        )
    )
    with pytest.raises(GroupNotFound, match="IUM_Gone"):
        jira(server).group_members("IUM_Gone")


def test_memberships_list_each_member_with_their_groups() -> None:
    server = Jira(
        (
            "GET",
            members_url("IUM_Enabled", 0),
            reply(200, member_page(["ann", "Bob"], start=0, is_last=True, total=2)),
        ),
        (
            "GET",
            members_url("IUM_Disabled", 0),
            reply(200, member_page(["bob", "cat"], start=0, is_last=True, total=2)),
        ),
    )
    found = jira(server).memberships(["IUM_Enabled", "IUM_Disabled"])
    assert found == {
        "ann": frozenset({"IUM_Enabled"}),
        "Bob": frozenset({"IUM_Enabled", "IUM_Disabled"}),
        "cat": frozenset({"IUM_Disabled"}),
    }


# -- adding --------------------------------------------------------------------------------


def test_add_posts_the_user_name_to_the_group() -> None:
    server = Jira(
        ("POST", f"{J}/group/user?groupname=IUM_Enabled", reply(201, {"name": "IUM_Enabled"}))
    )
    jira(server).add_user_to_group("bob", "IUM_Enabled")
    assert server.body(0) == {"name": "bob"}
    assert server.requests[0].headers["Content-Type"] == "application/json"
    assert server.requests[0].headers["Authorization"] == "Bearer NjQ5MzA2MjM3OTQ1-token"


def test_adding_a_member_again_is_a_no_op() -> None:
    server = Jira(
        (
            "POST",
            f"{J}/group/user?groupname=IUM_Enabled",
            reply(400, {"errorMessages": [ALREADY], "errors": {}}),
        )
    )
    jira(server).add_user_to_group("bob", "IUM_Enabled")
    assert len(server.requests) == 1


def test_a_400_in_other_words_for_a_member_is_checked_and_counts_as_done() -> None:
    server = Jira(
        (
            "POST",
            f"{J}/group/user?groupname=IUM_Enabled",
            reply(400, {"errorMessages": ["Ungültig"]}),
        ),
        (
            "GET",
            f"{J}/user?username=bob&expand=groups",
            reply(200, user_with_groups("bob", ["ium_enabled"])),
        ),
    )
    jira(server).add_user_to_group("bob", "IUM_Enabled")
    assert server.done()


def test_a_400_for_a_non_member_stays_an_error() -> None:
    server = Jira(
        (
            "POST",
            f"{J}/group/user?groupname=IUM_Enabled",
            reply(400, {"errorMessages": ["Something else"]}),
        ),
        ("GET", f"{J}/user?username=bob&expand=groups", reply(200, user_with_groups("bob", []))),
        (
            "GET",
            f"{J}/group/member?groupname=IUM_Enabled&startAt=0&maxResults=1",
            reply(200, member_page([], start=0, is_last=True, total=0)),
        ),
    )
    with pytest.raises(UnexpectedResponse, match="Something else"):
        jira(server).add_user_to_group("bob", "IUM_Enabled")


def test_adding_a_missing_user_raises_user_not_found() -> None:
    server = Jira(
        (
            "POST",
            f"{J}/group/user?groupname=IUM_Enabled",
            reply(404, {"errorMessages": ["Specified user does not exist"]}),
        ),
        (
            "GET",
            f"{J}/user?username=ghost&expand=groups",
            reply(404, {"errorMessages": ["The user named 'ghost' does not exist"]}),
        ),
    )
    with pytest.raises(UserNotFound, match="ghost"):
        jira(server).add_user_to_group("ghost", "IUM_Enabled")


def test_adding_to_a_missing_group_raises_group_not_found() -> None:
    server = Jira(
        (
            "POST",
            f"{J}/group/user?groupname=IUM_Gone",
            reply(404, {"errorMessages": ["Group does not exist"]}),
        ),
        (
            "GET",
            f"{J}/user?username=bob&expand=groups",
            reply(200, user_with_groups("bob", ["jira-users"])),
        ),
        (
            "GET",
            f"{J}/group/member?groupname=IUM_Gone&startAt=0&maxResults=1",
            reply(404, {"errorMessages": ["no group"]}),
        ),
    )
    with pytest.raises(GroupNotFound, match="IUM_Gone"):
        jira(server).add_user_to_group("bob", "IUM_Gone")


def test_a_read_only_directory_is_reported_in_atlassians_words() -> None:
    server = Jira(
        (
            "POST",
            f"{J}/group/user?groupname=IUM_Enabled",
            reply(400, {"errorMessages": [READ_ONLY], "errors": {}}),
        )
    )
    with pytest.raises(ReadOnlyDirectory) as raised:
        jira(server).add_user_to_group("bob", "IUM_Enabled")
    assert READ_ONLY in str(raised.value)
    assert len(server.requests) == 1


def test_a_refused_login_is_not_permitted_with_seraphs_reason() -> None:
    server = Jira(
        (
            "POST",
            f"{J}/group/user?groupname=IUM_Enabled",
            httpx.Response(401, text="", headers={"X-Seraph-LoginReason": "AUTHENTICATED_FAILED"}),
        )
    )
    with pytest.raises(NotPermitted, match="AUTHENTICATED_FAILED"):
        jira(server).add_user_to_group("bob", "IUM_Enabled")
    assert len(server.requests) == 1


def test_a_429_waits_the_retry_after_then_adds() -> None:
    sleeps: list[float] = []
    server = Jira(
        (
            "POST",
            f"{J}/group/user?groupname=IUM_Enabled",
            reply(429, retry_after="4", x_ratelimit_remaining="0"),
        ),
        ("POST", f"{J}/group/user?groupname=IUM_Enabled", reply(201, {"name": "IUM_Enabled"})),
    )
    jira(server, sleeps).add_user_to_group("bob", "IUM_Enabled")
    assert sleeps == [4.0]
    assert server.done()


def test_still_rate_limited_after_the_retries_carries_the_wait() -> None:
    limited = reply(429, {"message": "Rate limit exceeded"}, retry_after="2")
    server = Jira(*[("POST", f"{J}/group/user?groupname=IUM_Enabled", limited)] * 3)
    with pytest.raises(RateLimited) as raised:
        jira(server).add_user_to_group("bob", "IUM_Enabled")
    assert raised.value.retry_after_s == 2


# -- removing ------------------------------------------------------------------------------


def test_remove_deletes_with_the_group_and_user_in_the_query() -> None:
    server = Jira(("DELETE", f"{J}/group/user?groupname=IUM_Enabled&username=bob", reply(200)))
    jira(server).remove_user_from_group("bob", "IUM_Enabled")
    assert server.requests[0].content == b""


@pytest.mark.parametrize("status", [400, 404])
def test_removing_a_non_member_is_a_no_op(status: int) -> None:
    server = Jira(
        (
            "DELETE",
            f"{J}/group/user?groupname=IUM_Enabled&username=bob",
            reply(status, {"errorMessages": ["not a member"]}),
        ),
        (
            "GET",
            f"{J}/user?username=bob&expand=groups",
            reply(200, user_with_groups("bob", ["IUM_Disabled"])),
        ),
        (
            "GET",
            f"{J}/group/member?groupname=IUM_Enabled&startAt=0&maxResults=1",
            reply(200, member_page([], start=0, is_last=True, total=0)),
        ),
    )
    jira(server).remove_user_from_group("bob", "IUM_Enabled")
    assert server.done()


def test_a_refused_removal_of_a_member_stays_an_error() -> None:
    server = Jira(
        (
            "DELETE",
            f"{J}/group/user?groupname=IUM_Enabled&username=bob",
            reply(400, {"errorMessages": ["nope"]}),
        ),
        (
            "GET",
            f"{J}/user?username=bob&expand=groups",
            reply(200, user_with_groups("bob", ["IUM_Enabled"])),
        ),
    )
    with pytest.raises(UnexpectedResponse, match="nope"):
        jira(server).remove_user_from_group("bob", "IUM_Enabled")


def test_removing_a_missing_user_raises_user_not_found() -> None:
    server = Jira(
        (
            "DELETE",
            f"{J}/group/user?groupname=IUM_Enabled&username=ghost",
            reply(404, {"errorMessages": ["?"]}),
        ),
        (
            "GET",
            f"{J}/user?username=ghost&expand=groups",
            reply(404, {"errorMessages": ["no such user"]}),
        ),
    )
    with pytest.raises(UserNotFound):
        jira(server).remove_user_from_group("ghost", "IUM_Enabled")


def test_a_dropped_connection_is_retried_then_the_removal_succeeds() -> None:
    server = Jira(
        (
            "DELETE",
            f"{J}/group/user?groupname=IUM_Enabled&username=bob",
            httpx.RemoteProtocolError("peer closed"),
        ),
        (
            "DELETE",
            f"{J}/group/user?groupname=IUM_Enabled&username=bob",
            reply(503, {"message": "down"}),
        ),
        ("DELETE", f"{J}/group/user?groupname=IUM_Enabled&username=bob", reply(200)),
    )
    jira(server).remove_user_from_group("bob", "IUM_Enabled")
    assert server.done()


# -- sessions ------------------------------------------------------------------------------


def server_info(version: str) -> dict[str, object]:
    """serverInfo as Jira DC serves it (fields as in the JiraPS fixture)."""
    return {
        "baseUrl": "https://jira.example.com/jira",
        "version": version,
        "versionNumbers": [int(p) for p in version.split(".")],
        "deploymentType": "Server",
        "buildNumber": 911000,
        "serverTitle": "Jira",
    }


def test_info_reports_the_version_the_api_and_the_base_url() -> None:
    server = Jira(("GET", f"{J}/serverInfo", reply(200, server_info("9.12.2"))))
    directory = jira(server)
    assert directory.info() == ConnectionInfo(
        product="jira", version="9.12.2", api="REST v2", base_url=BASE
    )
    assert directory.version() == (9, 12, 2)
    assert len(server.requests) == 1  # the version is remembered


def test_removing_from_the_licensed_group_ends_the_sessions_on_9_11() -> None:
    server = Jira(
        ("DELETE", f"{J}/group/user?groupname=IUM_Enabled&username=a%2Fb+c", reply(200)),
        ("GET", f"{J}/serverInfo", reply(200, server_info("9.11.0"))),
        ("DELETE", f"{J}/user/session/a%2Fb%20c", reply(204)),
        ("DELETE", f"{J}/group/user?groupname=IUM_Disabled&username=a%2Fb+c", reply(200)),
    )
    directory = jira(server, kill_sessions_on_revoke=True)
    directory.remove_user_from_group("a/b c", "IUM_Enabled")
    directory.remove_user_from_group("a/b c", "IUM_Disabled")  # not the licensed group
    assert server.done()


def test_below_9_11_sessions_are_left_alone_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = Jira(
        ("DELETE", f"{J}/group/user?groupname=IUM_Enabled&username=bob", reply(200)),
        ("GET", f"{J}/serverInfo", reply(200, server_info("9.10.2"))),
    )
    with caplog.at_level(logging.WARNING):
        jira(server, kill_sessions_on_revoke=True).remove_user_from_group("bob", "IUM_Enabled")
    assert server.done()
    assert "9.11" in caplog.text


def test_invalidating_sessions_below_9_11_asks_for_a_manual_step() -> None:
    server = Jira(("GET", f"{J}/serverInfo", reply(200, server_info("8.20.30"))))
    directory = jira(server)
    assert directory.sessions_invalidation_available() is False
    with pytest.raises(ManualStepRequired) as raised:
        directory.invalidate_sessions("bob")
    assert any("User sessions" in step for step in raised.value.steps)
    assert len(server.requests) == 1


@pytest.mark.parametrize("name", [".", ".."])
def test_a_dot_username_cannot_climb_the_session_path(name: str) -> None:
    # Tomcat decodes %2E before it normalises the path, so /user/session/%2E%2E would reach
    # DELETE /rest/api/2/user: such a name is never put in a path.
    server = Jira(("GET", f"{J}/serverInfo", reply(200, server_info("10.3.1"))))
    with pytest.raises(ManualStepRequired) as raised:
        jira(server).invalidate_sessions(name)
    assert any("User sessions" in step for step in raised.value.steps)
    assert server.done()


def test_revoking_a_dot_username_skips_ending_their_sessions(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = Jira(
        ("DELETE", f"{J}/group/user?groupname=IUM_Enabled&username=..", reply(200)),
        ("GET", f"{J}/serverInfo", reply(200, server_info("10.3.1"))),
    )
    with caplog.at_level(logging.WARNING):
        jira(server, kill_sessions_on_revoke=True).remove_user_from_group("..", "IUM_Enabled")
    assert server.done()
    assert "sessions" in caplog.text


# -- users and groups ----------------------------------------------------------------------


def test_find_user_reads_the_reference_user() -> None:
    server = Jira(("GET", f"{J}/user?username=fred", reply(200, REFERENCE_USER)))
    assert jira(server).find_user("fred") == User(
        name="fred",
        key="JIRAUSER10100",
        display_name="Fred F. User",
        email="fred@example.com",
        active=True,
    )


def test_find_user_is_none_for_an_unknown_user() -> None:
    server = Jira(("GET", f"{J}/user?username=ghost", reply(404, {"errorMessages": ["no"]})))
    assert jira(server).find_user("ghost") is None


def test_groups_of_reads_the_expanded_groups() -> None:
    server = Jira(
        (
            "GET",
            f"{J}/user?username=bob&expand=groups",
            reply(200, user_with_groups("bob", ["jira-users", "IUM_Enabled"])),
        )
    )
    assert jira(server).groups_of("bob") == {"jira-users", "IUM_Enabled"}


def test_groups_of_an_unknown_user_raises_user_not_found() -> None:
    server = Jira(
        ("GET", f"{J}/user?username=ghost&expand=groups", reply(404, {"errorMessages": ["no"]}))
    )
    with pytest.raises(UserNotFound):
        jira(server).groups_of("ghost")


def test_create_group_posts_its_name_and_says_it_was_created() -> None:
    server = Jira(("POST", f"{J}/group", reply(201, {"name": "IUM_Enabled", "users": {"size": 0}})))
    assert jira(server).create_group("IUM_Enabled") is True
    assert server.body(0) == {"name": "IUM_Enabled"}


def test_creating_an_existing_group_says_it_existed() -> None:
    server = Jira(
        (
            "POST",
            f"{J}/group",
            reply(400, {"errorMessages": ["A group or user with this name already exists."]}),
        ),
        (
            "GET",
            f"{J}/group/member?groupname=IUM_Enabled&startAt=0&maxResults=1",
            reply(200, member_page([], start=0, is_last=True, total=0)),
        ),
    )
    assert jira(server).create_group("IUM_Enabled") is False


# -- licence and application access --------------------------------------------------------


def test_the_licence_is_the_roles_seats_and_user_count() -> None:
    server = Jira(("GET", ROLE_URL, reply(200, REFERENCE_ROLE)))
    assert jira(server).licence() == Licence(tier=10, licensed=5)


def test_an_unlimited_role_reports_an_unlimited_tier() -> None:
    server = Jira(("GET", ROLE_URL, reply(200, role(hasUnlimitedSeats=True, numberOfSeats=-1))))
    assert jira(server).licence() == Licence(tier=UNLIMITED_SEATS, licensed=5)


def test_the_role_key_is_configurable_and_escaped() -> None:
    server = Jira(
        ("GET", f"{J}/applicationrole/jira-servicedesk", reply(200, role(key="jira-servicedesk")))
    )
    assert jira(server, role="jira-servicedesk").licence().tier == 10


def test_licensed_users_count_each_active_member_once_across_the_roles_groups() -> None:
    server = Jira(
        ("GET", ROLE_URL, reply(200, REFERENCE_ROLE)),
        (
            "GET",
            members_url("jira-software-users", 0, inactive=False),
            reply(200, member_page(["ann", "bob"], start=0, is_last=True, total=2)),
        ),
        (
            "GET",
            members_url("jira-testers", 0, inactive=False),
            reply(
                200,
                member_page(
                    ["BOB", "cat", "old"],
                    start=0,
                    is_last=True,
                    total=3,
                    inactive=frozenset({"old"}),
                ),
            ),
        ),
    )
    assert jira(server).licensed_users() == {"ann", "bob", "cat"}
    assert server.done()


def test_application_access_is_the_roles_groups_and_default_groups() -> None:
    server = Jira(("GET", ROLE_URL, reply(200, REFERENCE_ROLE)))
    assert jira(server).application_access() == ApplicationAccess(
        groups=frozenset({"jira-software-users", "jira-testers"}),
        default_groups=frozenset({"jira-software-users"}),
    )


def test_granting_access_puts_the_role_with_every_other_group_kept() -> None:
    after = role(groups=["jira-software-users", "jira-testers", "IUM_Enabled"])
    server = Jira(("GET", ROLES_URL, roles(REFERENCE_ROLE)), ("PUT", ROLE_URL, reply(200, after)))
    jira(server).grant_application_access("IUM_Enabled")
    assert server.body(1) == {
        "groups": ["jira-software-users", "jira-testers", "IUM_Enabled"],
        "defaultGroups": ["jira-software-users"],
    }
    assert server.requests[1].headers["If-Match"] == '"7a1c"'


def test_a_role_changed_meanwhile_is_read_again_and_the_change_made_once() -> None:
    after = role(groups=["jira-software-users", "jira-testers", "new-team", "IUM_Enabled"])
    server = Jira(
        ("GET", ROLES_URL, roles(REFERENCE_ROLE, '"old"')),
        ("PUT", ROLE_URL, reply(412, {"errorMessages": ["version hash mismatch"]})),
        ("GET", ROLES_URL, roles(role(groups=[*REFERENCE_ROLE["groups"], "new-team"]), '"new"')),
        ("PUT", ROLE_URL, reply(200, after)),
    )
    jira(server).grant_application_access("IUM_Enabled")
    assert server.body(3)["groups"] == after["groups"]
    assert server.requests[3].headers["If-Match"] == '"new"'


def test_granting_access_a_group_already_has_changes_nothing() -> None:
    server = Jira(("GET", ROLES_URL, roles(role(groups=["ium_enabled"]))))
    jira(server).grant_application_access("IUM_Enabled")
    assert server.done()


def test_revoking_access_drops_the_group_and_its_default_status() -> None:
    after = role(groups=["jira-testers"], defaultGroups=[])
    server = Jira(("GET", ROLES_URL, roles(REFERENCE_ROLE)), ("PUT", ROLE_URL, reply(200, after)))
    jira(server).revoke_application_access("jira-software-users")
    assert server.body(1) == {"groups": ["jira-testers"], "defaultGroups": []}


def test_revoking_access_can_keep_the_default_group() -> None:
    after = role(groups=["jira-software-users"])
    server = Jira(("GET", ROLES_URL, roles(REFERENCE_ROLE)), ("PUT", ROLE_URL, reply(200, after)))
    jira(server).revoke_application_access("jira-testers", default_group=False)
    assert server.body(1) == {
        "groups": ["jira-software-users"],
        "defaultGroups": ["jira-software-users"],
    }


def test_a_role_that_comes_back_different_is_reported() -> None:
    server = Jira(
        ("GET", ROLES_URL, roles(REFERENCE_ROLE)), ("PUT", ROLE_URL, reply(200, REFERENCE_ROLE))
    )
    with pytest.raises(UnexpectedResponse, match="someone else"):
        jira(server).grant_application_access("IUM_Enabled")


# -- escaping ------------------------------------------------------------------------------

NASTY = [
    "a&b=c",
    "x#y",
    "100%",
    "o'brien",
    "a/b",
    "jo smith",
    "ünïcødé",
    "a+b",
    "?q=1",
    "@me",
    "..",
    ".",
]

names = st.text(min_size=1, max_size=40)


class Recorder:
    """Answers every request with an empty success and keeps it."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path.endswith("/serverInfo"):
            return reply(200, server_info("10.0.0"))
        return reply(200 if request.method != "POST" else 201, {"name": "x"})


def recorded(call: str, user: str, group: str) -> httpx.Request:
    recorder = Recorder()
    directory = JiraDirectory(
        AtlassianHttp(make_client(BASE, TOKEN, transport=httpx.MockTransport(recorder)))
    )
    if call == "add":
        directory.add_user_to_group(user, group)
    elif call == "remove":
        directory.remove_user_from_group(user, group)
    else:
        directory.invalidate_sessions(user)
    return recorder.requests[-1]


@settings(max_examples=150, deadline=None)
@given(
    user=st.one_of(st.sampled_from(NASTY), names), group=st.one_of(st.sampled_from(NASTY), names)
)
def test_no_user_or_group_name_can_change_the_request(user: str, group: str) -> None:
    added = recorded("add", user, group)
    assert added.url.path == "/jira/rest/api/2/group/user"
    assert list(added.url.params.multi_items()) == [("groupname", group)]
    assert json.loads(added.content) == {"name": user}

    removed = recorded("remove", user, group)
    assert removed.url.path == "/jira/rest/api/2/group/user"
    assert list(removed.url.params.multi_items()) == [("groupname", group), ("username", user)]

    if user in (".", ".."):
        return  # never put in a path (test_a_dot_username_cannot_climb_the_session_path)
    ended = recorded("sessions", user, group)
    prefix, _, segment = ended.url.raw_path.decode("ascii").rpartition("/")
    assert prefix == "/jira/rest/api/2/user/session"
    assert unquote(segment) == user
    assert ended.url.query == b""


def test_an_answer_that_is_not_json_is_quoted_without_the_token() -> None:
    # a proxy's page that echoes the request's headers, answered with 200
    page = f"<html>Authorization: Bearer {TOKEN.token}</html>"
    server = Jira(("GET", f"{J}/user?username=bob", httpx.Response(200, text=page)))
    with pytest.raises(UnexpectedResponse) as raised:
        jira(server).find_user("bob")
    assert "Authorization: Bearer ***" in str(raised.value)
    assert TOKEN.token not in str(raised.value)
