"""CrowdDirectory against recorded Crowd responses served by `httpx.MockTransport`.

As in test_jira.py, each test scripts the exact requests it expects and the replies. Crowd
error bodies are `{"reason": ..., "message": ...}` (Crowd's ErrorEntity).
"""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from recorded import Script as Server
from recorded import reply, scripted_http

from floatseat.directory import crowd as crowd_module
from floatseat.directory.crowd import SYNC_LAG_NOTE, CrowdDirectory
from floatseat.directory.errors import (
    GroupNotFound,
    ManualStepRequired,
    NotFound,
    NotPermitted,
    ReadOnlyDirectory,
    UnexpectedResponse,
    UserNotFound,
)
from floatseat.directory.http import AtlassianHttp, PersonalAccessToken, make_client
from floatseat.directory.jira import JiraDirectory
from floatseat.directory.port import ConnectionInfo, Licence, ManagedDirectory, User

BASE = "https://crowd.example.com/crowd"
C = "/crowd/rest/usermanagement/1"
APP = ("floatseat-app", "app-s3cret")


def error(status: int, reason: str, message: str) -> httpx.Response:
    return reply(status, {"reason": reason, "message": message})


def crowd(
    server: Server,
    sleeps: list[float] | None = None,
    licence_source: ManagedDirectory | None = None,
    **options: Any,
) -> CrowdDirectory:
    http = scripted_http(BASE, APP, server, sleeps)
    return CrowdDirectory(http, licence_source=licence_source, **options)


def users(*names: str) -> dict[str, object]:
    return {
        "expand": "user",
        "users": [{"link": {"href": f"{BASE}{C}/user?username={n}"}, "name": n} for n in names],
    }


def groups(*names: str) -> dict[str, object]:
    return {
        "expand": "group",
        "groups": [{"link": {"href": f"{BASE}{C}/group?groupname={n}"}, "name": n} for n in names],
    }


def direct_members(group: str, *names: str) -> tuple[tuple[str, str, httpx.Response], ...]:
    """Crowd listing `group`'s direct members: a page of `names`, then the empty page."""
    url = f"{C}/group/user/direct?groupname={group}&start-index={{}}&max-results=1000"
    return (
        ("GET", url.format(0), reply(200, users(*names))),
        ("GET", url.format(len(names)), reply(200, users())),
    )


def direct_groups(user: str, *names: str) -> tuple[tuple[str, str, httpx.Response], ...]:
    """Crowd listing `user`'s direct groups: a page of `names`, then the empty page after it."""
    url = f"{C}/user/group/direct?username={user}&start-index={{}}&max-results=1000"
    return (
        ("GET", url.format(0), reply(200, groups(*names))),
        ("GET", url.format(len(names)), reply(200, groups())),
    )


CROWD_USER = {
    "name": "bob",
    "first-name": "Bob",
    "last-name": "Smith",
    "display-name": "Bob Smith",
    "email": "bob@example.com",
    "active": True,
    "key": "32769:6f2c9a1e",
}


# -- the port and the lag ------------------------------------------------------------------


def test_the_connector_implements_the_managed_directory_port() -> None:
    directory: ManagedDirectory = crowd(Server())
    assert isinstance(directory, CrowdDirectory)


def test_the_sync_lag_is_stated_for_setup_to_warn_with() -> None:
    directory = crowd(Server())
    assert directory.sync_lag_note == SYNC_LAG_NOTE
    assert "synchronisation" in SYNC_LAG_NOTE
    assert "product's REST API" in SYNC_LAG_NOTE
    module_doc = crowd_module.__doc__ or ""
    assert "synchronisation" in module_doc
    assert "Prefer the product's own REST API" in module_doc


def test_requests_authenticate_as_the_application() -> None:
    server = Server(
        ("GET", f"{C}/group?groupname=IUM_Enabled", reply(200, {"name": "IUM_Enabled"}))
    )
    assert crowd(server).info() == ConnectionInfo(
        product="crowd",
        version=None,
        api="Crowd REST usermanagement/1 (application credentials)",
        base_url=BASE,
    )
    encoded = base64.b64encode(b"floatseat-app:app-s3cret").decode()
    assert server.requests[0].headers["Authorization"] == f"Basic {encoded}"


def test_info_works_before_the_pool_group_exists() -> None:
    server = Server(
        (
            "GET",
            f"{C}/group?groupname=IUM_Enabled",
            error(404, "GROUP_NOT_FOUND", "Group <IUM_Enabled> does not exist"),
        )
    )
    assert crowd(server).info().product == "crowd"


def test_info_refuses_a_404_that_is_not_crowds() -> None:
    # A wrong base URL: Tomcat's own 404 page, not Crowd's GROUP_NOT_FOUND. The check must
    # not pass, or setup would go on against nothing.
    page = httpx.Response(404, text="<html><h1>HTTP Status 404 – Not Found</h1></html>")
    server = Server(("GET", f"{C}/group?groupname=IUM_Enabled", page))
    with pytest.raises(UnexpectedResponse, match="base URL"):
        crowd(server).info()


def test_bad_application_credentials_are_not_permitted() -> None:
    server = Server(
        (
            "GET",
            f"{C}/group?groupname=IUM_Enabled",
            httpx.Response(401, text="Application failed to authenticate"),
        )
    )
    with pytest.raises(NotPermitted):
        crowd(server).info()


# -- licence comes from the product --------------------------------------------------------


def test_without_a_licence_source_the_licence_is_a_manual_step() -> None:
    directory = crowd(Server())
    for call in (
        directory.licence,
        directory.licensed_users,
        directory.application_access,
        lambda: directory.grant_application_access("IUM_Enabled"),
        lambda: directory.revoke_application_access("IUM_Enabled"),
    ):
        with pytest.raises(ManualStepRequired) as raised:
            call()
        assert any("licence_source" in step for step in raised.value.steps)


def test_the_licence_is_read_from_the_products_connector() -> None:
    role = {
        "key": "jira-software",
        "groups": ["IUM_Enabled"],
        "defaultGroups": [],
        "numberOfSeats": 500,
        "userCount": 498,
    }

    def jira_server(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/rest/api/2/applicationrole/jira-software"
        return reply(200, role)

    jira = JiraDirectory(
        AtlassianHttp(
            make_client(
                "https://jira.example.com",
                PersonalAccessToken("t"),
                transport=httpx.MockTransport(jira_server),
            )
        )
    )
    server = Server()
    assert crowd(server, licence_source=jira).licence() == Licence(tier=500, licensed=498)
    assert server.requests == []  # Crowd itself is not asked


# -- members -------------------------------------------------------------------------------


def test_members_are_read_page_by_page_until_an_empty_page() -> None:
    server = Server(
        (
            "GET",
            f"{C}/group/user/direct?groupname=IUM_Enabled&start-index=0&max-results=2",
            reply(200, users("ann", "bob")),
        ),
        (
            "GET",
            f"{C}/group/user/direct?groupname=IUM_Enabled&start-index=2&max-results=2",
            reply(200, users("cat")),
        ),
        (
            "GET",
            f"{C}/group/user/direct?groupname=IUM_Enabled&start-index=3&max-results=2",
            reply(200, users()),
        ),
    )
    assert crowd(server, page_size=2).group_members("IUM_Enabled") == ["ann", "bob", "cat"]
    assert server.done()


def test_a_server_that_ignores_start_index_does_not_loop_us_forever() -> None:
    server = Server(
        (
            "GET",
            f"{C}/user/group/direct?username=bob&start-index=0&max-results=1000",
            reply(200, groups("a", "b")),
        ),
        (
            "GET",
            f"{C}/user/group/direct?username=bob&start-index=2&max-results=1000",
            reply(200, groups("a", "b")),
        ),
    )
    assert crowd(server).groups_of("bob") == {"a", "b"}
    assert server.done()


def test_members_of_a_missing_group_raise_group_not_found() -> None:
    server = Server(
        (
            "GET",
            f"{C}/group/user/direct?groupname=IUM_Gone&start-index=0&max-results=1000",
            error(404, "GROUP_NOT_FOUND", "Group <IUM_Gone> does not exist"),
        )
    )
    with pytest.raises(GroupNotFound, match="IUM_Gone"):
        crowd(server).group_members("IUM_Gone")


def test_groups_of_lists_the_direct_groups() -> None:
    server = Server(*direct_groups("bob", "jira-users", "IUM_Enabled"))
    assert crowd(server).groups_of("bob") == {"jira-users", "IUM_Enabled"}
    assert server.done()  # a short page is not the end: only the empty one is


def test_memberships_merge_names_case_insensitively() -> None:
    server = Server(
        *direct_members("IUM_Enabled", "Ann"),
        *direct_members("IUM_Disabled", "ann", "bob"),
    )
    assert crowd(server).memberships(["IUM_Enabled", "IUM_Disabled"]) == {
        "Ann": frozenset({"IUM_Enabled", "IUM_Disabled"}),
        "bob": frozenset({"IUM_Disabled"}),
    }
    assert server.done()


# -- adding --------------------------------------------------------------------------------


def test_add_posts_the_group_name_for_the_user() -> None:
    server = Server(("POST", f"{C}/user/group/direct?username=bob", reply(201)))
    crowd(server).add_user_to_group("bob", "IUM_Enabled")
    assert server.body(0) == {"name": "IUM_Enabled"}
    assert server.requests[0].headers["Content-Type"] == "application/json"


@pytest.mark.parametrize(
    "answer",
    [
        reply(409),
        error(
            409,
            "MEMBERSHIP_ALREADY_EXISTS",
            "User <bob> is already a direct member of <IUM_Enabled>",
        ),
    ],
)
def test_adding_a_direct_member_again_is_a_no_op(answer: httpx.Response) -> None:
    server = Server(("POST", f"{C}/user/group/direct?username=bob", answer))
    crowd(server).add_user_to_group("bob", "IUM_Enabled")
    assert len(server.requests) == 1


def test_adding_to_a_missing_group_is_a_400_and_group_not_found() -> None:
    server = Server(
        (
            "POST",
            f"{C}/user/group/direct?username=bob",
            error(400, "GROUP_NOT_FOUND", "Group <IUM_Gone> does not exist"),
        )
    )
    with pytest.raises(GroupNotFound, match="IUM_Gone"):
        crowd(server).add_user_to_group("bob", "IUM_Gone")


def test_adding_a_missing_user_is_a_404_and_user_not_found() -> None:
    server = Server(
        (
            "POST",
            f"{C}/user/group/direct?username=ghost",
            error(404, "USER_NOT_FOUND", "User <ghost> does not exist"),
        )
    )
    with pytest.raises(UserNotFound, match="ghost"):
        crowd(server).add_user_to_group("ghost", "IUM_Enabled")


def test_a_read_only_directory_is_reported() -> None:
    text = "You cannot add user 'bob' to group 'IUM_Enabled'. The user's directory is read only."
    server = Server(
        ("POST", f"{C}/user/group/direct?username=bob", error(403, "OPERATION_FAILED", text))
    )
    with pytest.raises(ReadOnlyDirectory) as raised:
        crowd(server).add_user_to_group("bob", "IUM_Enabled")
    assert text in str(raised.value)


def test_an_application_without_the_permission_is_not_permitted() -> None:
    server = Server(
        (
            "POST",
            f"{C}/user/group/direct?username=bob",
            error(
                403,
                "APPLICATION_PERMISSION_DENIED",
                "Application floatseat-app may not add memberships",
            ),
        )
    )
    with pytest.raises(NotPermitted):
        crowd(server).add_user_to_group("bob", "IUM_Enabled")


def test_a_429_waits_the_retry_after() -> None:
    sleeps: list[float] = []
    server = Server(
        ("POST", f"{C}/user/group/direct?username=bob", reply(429, retry_after="3")),
        ("POST", f"{C}/user/group/direct?username=bob", reply(201)),
    )
    crowd(server, sleeps).add_user_to_group("bob", "IUM_Enabled")
    assert sleeps == [3.0]


# -- removing ------------------------------------------------------------------------------


def test_remove_deletes_the_direct_membership() -> None:
    server = Server(
        ("DELETE", f"{C}/user/group/direct?username=bob&groupname=IUM_Enabled", reply(204))
    )
    crowd(server).remove_user_from_group("bob", "IUM_Enabled")
    assert server.done()


def test_removing_a_non_member_is_a_no_op() -> None:
    server = Server(
        (
            "DELETE",
            f"{C}/user/group/direct?username=bob&groupname=IUM_Enabled",
            error(
                404,
                "MEMBERSHIP_NOT_FOUND",
                "User <bob> is not a direct member of group <IUM_Enabled>",
            ),
        )
    )
    crowd(server).remove_user_from_group("bob", "IUM_Enabled")
    assert len(server.requests) == 1


def bare_404_for(bobs_groups: tuple[str, ...]) -> Server:
    """A DELETE answered by a bare 404; bob and the group exist, and bob is in `bobs_groups`."""
    return Server(
        ("DELETE", f"{C}/user/group/direct?username=bob&groupname=IUM_Enabled", reply(404)),
        ("GET", f"{C}/user?username=bob", reply(200, CROWD_USER)),
        ("GET", f"{C}/group?groupname=IUM_Enabled", reply(200, {"name": "IUM_Enabled"})),
        *direct_groups("bob", *bobs_groups),
    )


def test_a_bare_404_for_a_non_member_is_looked_up_and_a_no_op() -> None:
    server = bare_404_for(("jira-users",))
    crowd(server).remove_user_from_group("bob", "IUM_Enabled")
    assert server.done()


def test_a_bare_404_while_still_a_member_stays_an_error() -> None:
    server = bare_404_for(("IUM_Enabled",))
    with pytest.raises(NotFound):
        crowd(server).remove_user_from_group("bob", "IUM_Enabled")
    assert server.done()


def test_removing_a_missing_user_raises_user_not_found() -> None:
    server = Server(
        (
            "DELETE",
            f"{C}/user/group/direct?username=ghost&groupname=IUM_Enabled",
            error(404, "USER_NOT_FOUND", "User <ghost> does not exist"),
        )
    )
    with pytest.raises(UserNotFound):
        crowd(server).remove_user_from_group("ghost", "IUM_Enabled")


def test_removing_from_a_missing_group_raises_group_not_found() -> None:
    server = Server(
        ("DELETE", f"{C}/user/group/direct?username=bob&groupname=IUM_Gone", reply(404)),
        ("GET", f"{C}/user?username=bob", reply(200, CROWD_USER)),
        (
            "GET",
            f"{C}/group?groupname=IUM_Gone",
            error(404, "GROUP_NOT_FOUND", "Group <IUM_Gone> does not exist"),
        ),
    )
    with pytest.raises(GroupNotFound):
        crowd(server).remove_user_from_group("bob", "IUM_Gone")


def test_a_dropped_connection_is_retried() -> None:
    server = Server(
        (
            "DELETE",
            f"{C}/user/group/direct?username=bob&groupname=IUM_Enabled",
            httpx.RemoteProtocolError("closed"),
        ),
        ("DELETE", f"{C}/user/group/direct?username=bob&groupname=IUM_Enabled", reply(204)),
    )
    crowd(server).remove_user_from_group("bob", "IUM_Enabled")
    assert server.done()


# -- users and groups ----------------------------------------------------------------------


def test_find_user_reads_crowds_user() -> None:
    server = Server(("GET", f"{C}/user?username=bob", reply(200, CROWD_USER)))
    assert crowd(server).find_user("bob") == User(
        name="bob", key="32769:6f2c9a1e", display_name="Bob Smith", email="bob@example.com"
    )


def test_find_user_is_none_for_an_unknown_user() -> None:
    server = Server(
        (
            "GET",
            f"{C}/user?username=ghost",
            error(404, "USER_NOT_FOUND", "User <ghost> does not exist"),
        )
    )
    assert crowd(server).find_user("ghost") is None


def test_create_group_posts_an_active_group() -> None:
    server = Server(("POST", f"{C}/group", reply(201)))
    assert crowd(server).create_group("IUM_Enabled") is True
    assert server.body(0) == {"name": "IUM_Enabled", "type": "GROUP", "active": True}


def test_creating_an_existing_group_says_it_existed() -> None:
    server = Server(
        ("POST", f"{C}/group", error(400, "INVALID_GROUP", "Group <IUM_Enabled> already exists")),
        ("GET", f"{C}/group?groupname=IUM_Enabled", reply(200, {"name": "IUM_Enabled"})),
    )
    assert crowd(server).create_group("IUM_Enabled") is False


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
]


def recorded(call: str, user: str, group: str) -> httpx.Request:
    seen: list[httpx.Request] = []

    def server(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return reply(201 if request.method == "POST" else 204)

    directory = CrowdDirectory(
        AtlassianHttp(make_client(BASE, APP, transport=httpx.MockTransport(server)))
    )
    if call == "add":
        directory.add_user_to_group(user, group)
    else:
        directory.remove_user_from_group(user, group)
    return seen[-1]


@settings(max_examples=150, deadline=None)
@given(
    user=st.one_of(st.sampled_from(NASTY), st.text(min_size=1, max_size=40)),
    group=st.one_of(st.sampled_from(NASTY), st.text(min_size=1, max_size=40)),
)
def test_no_user_or_group_name_can_change_the_request(user: str, group: str) -> None:
    added = recorded("add", user, group)
    assert added.url.path == "/crowd/rest/usermanagement/1/user/group/direct"
    assert list(added.url.params.multi_items()) == [("username", user)]
    assert json.loads(added.content) == {"name": group}

    removed = recorded("remove", user, group)
    assert removed.url.path == "/crowd/rest/usermanagement/1/user/group/direct"
    assert list(removed.url.params.multi_items()) == [("username", user), ("groupname", group)]
