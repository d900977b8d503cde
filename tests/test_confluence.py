"""`ConfluenceDirectory` against recorded Confluence answers, served by `httpx.MockTransport`.

The JSON bodies follow Atlassian's DC REST docs (v9.2.3-v10.2 examples) and the reference;
each test asserts the exact requests sent: method, escaped path, query and body.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from urllib.parse import parse_qs, unquote

import httpx
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from floatseat.directory.confluence import (
    API_JSON_RPC,
    API_REST,
    ConfluenceDirectory,
    parse_version,
    segment,
)
from floatseat.directory.errors import (
    GroupNotFound,
    HttpDirectoryError,
    ManualStepRequired,
    NotPermitted,
    RateLimited,
    ReadOnlyDirectory,
    UnexpectedResponse,
    UserNotFound,
)
from floatseat.directory.http import AtlassianHttp, PersonalAccessToken, RetryPolicy, make_client
from floatseat.directory.port import (
    UNLIMITED_TIER,
    ApplicationAccess,
    Licence,
    ManagedDirectory,
    User,
)

BASE = "https://wiki.example.com/confluence"
CONTEXT = "/confluence"

Handler = Callable[[httpx.Request], httpx.Response]


# `sendError(403, ...)` of Confluence's XML-RPC and SOAP servlets, as Tomcat 9 renders it: the
# text comes after the style sheet, past the 500 characters an error keeps of a body.
TOMCAT_403 = httpx.Response(
    403,
    text=(
        '<!doctype html><html lang="en"><head><title>HTTP Status 403 – Forbidden</title>'
        '<style type="text/css">body {font-family:Tahoma,Arial,sans-serif;} h1, h2, h3, b '
        "{color:white;background-color:#525D76;} h1 {font-size:22px;} h2 {font-size:16px;} "
        "h3 {font-size:14px;} p {font-size:12px;} a {color:black;} .line {height:1px;"
        "background-color:#525D76;border:none;}</style></head><body><h1>HTTP Status 403 – "
        'Forbidden</h1><hr class="line" /><p><b>Type</b> Status Report</p><p><b>Message</b> '
        "Remote API is not enabled on this server. Ask a site administrator to enable it.</p>"
        "<p><b>Description</b> The server understood the request but refuses to authorize "
        'it.</p><hr class="line" /><h3>Apache Tomcat/9.0.98</h3></body></html>'
    ),
    headers={"content-type": "text/html;charset=utf-8"},
)


def manifest(version: str, type_id: str = "confluence") -> httpx.Response:
    xml = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        "<manifest><id>2f1b0a2e-3a6c-3d6b-9d4e-5f5e0f1b2c3d</id><name>Confluence</name>"
        f"<typeId>{type_id}</typeId><version>{version}</version><buildNumber>9012</buildNumber>"
        "<applinksVersion>9.1.4</applinksVersion><url>https://wiki.example.com/confluence</url>"
        "</manifest>"
    )
    return httpx.Response(200, text=xml, headers={"content-type": "application/xml"})


def not_found(message: str = "No group found with name") -> httpx.Response:
    body = {"statusCode": 404, "data": {"authorized": False, "valid": True}, "message": message}
    return httpx.Response(404, json=body)


def rpc_result(result: object) -> httpx.Response:
    return httpx.Response(200, json={"jsonrpc": "2.0", "result": result, "id": 1})


class Wiki:
    """A scripted Confluence: (method, raw path) → handler or replies in turn; it logs requests."""

    def __init__(self, version: str | None = "8.5.4") -> None:
        self.routes: dict[tuple[str, str], list[httpx.Response] | Handler] = {}
        self.requests: list[httpx.Request] = []
        self.rpc_handlers: dict[str, Callable[[list[object]], httpx.Response]] = {}
        if version is not None:
            self.on("GET", "/rest/applinks/1.0/manifest", manifest(version))

    def on(self, method: str, path: str, *replies: httpx.Response | Handler) -> None:
        raw = CONTEXT + path
        if (
            len(replies) == 1
            and callable(replies[0])
            and not isinstance(replies[0], httpx.Response)
        ):
            self.routes[(method, raw)] = replies[0]
        else:
            self.routes[(method, raw)] = [r for r in replies if isinstance(r, httpx.Response)]

    def rpc(self, method: str, reply: Callable[[list[object]], httpx.Response]) -> None:
        self.rpc_handlers[method] = reply

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.raw_path.split(b"?")[0].decode("ascii")
        if request.method == "POST" and path == CONTEXT + "/rpc/json-rpc/confluenceservice-v2":
            call = json.loads(request.content)
            handler = self.rpc_handlers.get(call["method"])
            if handler is None:
                return httpx.Response(200, json={"jsonrpc": "2.0", "error": {"code": 0}})
            return handler(call["params"])
        route = self.routes.get((request.method, path))
        if route is None:
            return not_found(f"nothing at {request.method} {path}")
        if callable(route):
            return route(request)
        return route.pop(0) if len(route) > 1 else route[0]

    # what the tests read

    def sent(self) -> list[tuple[str, str]]:
        """(method, raw path with query) of each request, the manifest left out."""
        return [
            (r.method, r.url.raw_path.decode("ascii"))
            for r in self.requests
            if not r.url.path.endswith("/manifest")
        ]

    def rpc_calls(self) -> list[tuple[str, list[object]]]:
        calls = []
        for request in self.requests:
            if request.url.path.endswith("/confluenceservice-v2"):
                body = json.loads(request.content)
                assert body["jsonrpc"] == "2.0"
                assert isinstance(body["id"], int)
                calls.append((body["method"], body["params"]))
        return calls


def directory(
    wiki: Wiki,
    *,
    version: str | None = None,
    sleeps: list[float] | None = None,
    policy: RetryPolicy | None = None,
) -> ConfluenceDirectory:
    client = make_client(BASE, PersonalAccessToken("pat"), transport=httpx.MockTransport(wiki))
    slept = sleeps if sleeps is not None else []
    http = AtlassianHttp(client, policy=policy, sleep=slept.append, random=lambda: 1.0)
    return ConfluenceDirectory(http, version=version)


def member(name: str) -> dict[str, object]:
    return {
        "type": "known",
        "username": name,
        "userKey": f"8a7f808a{abs(hash(name)) % 10**8:08d}",
        "profilePicture": {"path": "/images/icons/profilepics/default.svg", "isDefault": True},
        "displayName": name.title(),
        "_links": {"self": f"{BASE}/rest/api/user?key=x"},
    }


def page(names: list[str], start: int, limit: int, next_link: str | None) -> dict[str, object]:
    links: dict[str, str] = {"base": BASE, "context": CONTEXT, "self": f"{BASE}/rest/api/x"}
    if next_link is not None:
        links["next"] = next_link
    return {
        "results": [member(n) for n in names],
        "start": start,
        "limit": limit,
        "size": len(names),
        "_links": links,
    }


def test_it_implements_the_managed_directory_port() -> None:
    managed: ManagedDirectory = directory(Wiki())  # mypy checks the structure
    assert callable(managed.info)


# -- probing the version -------------------------------------------------------------------


def test_info_on_8_2_or_later_says_rest_and_logs_it(caplog: pytest.LogCaptureFixture) -> None:
    wiki = Wiki("8.5.4")
    with caplog.at_level(logging.INFO, "floatseat.directory.confluence"):
        info = directory(wiki).info()
    assert info.product == "confluence"
    assert info.version == "8.5.4"
    assert info.api == API_REST == "REST (8.2+)"
    assert info.base_url == BASE
    assert "Confluence 8.5.4" in caplog.text and "REST (8.2+)" in caplog.text
    assert [r.url.raw_path for r in wiki.requests] == [b"/confluence/rest/applinks/1.0/manifest"]


def test_info_before_8_2_checks_the_remote_api_and_says_json_rpc() -> None:
    wiki = Wiki("8.1.4")
    wiki.rpc("hasGroup", lambda params: rpc_result(True))
    info = directory(wiki).info()
    assert info.api == API_JSON_RPC == "JSON-RPC (7.16–8.1 fallback)"
    assert info.version == "8.1.4"
    assert wiki.rpc_calls() == [("hasGroup", ["IUM_Enabled"])]  # no token argument
    rpc = wiki.requests[-1]
    assert rpc.method == "POST"
    assert rpc.url.raw_path == b"/confluence/rpc/json-rpc/confluenceservice-v2"
    assert rpc.headers["content-type"] == "application/json"


def test_the_version_is_probed_once_and_only_when_needed() -> None:
    wiki = Wiki("9.1.0")
    wiki.on("GET", "/rest/license/1.0/license/maxUsers", httpx.Response(200, json={"count": 5}))
    wiki.on("GET", "/rest/license/1.0/license/userCount", httpx.Response(200, json={"count": 4}))
    wiki.on("PUT", "/rest/api/user/bob/group/ium_enabled", httpx.Response(204))
    wiki.on("DELETE", "/rest/api/user/bob/group/ium_enabled", httpx.Response(204))
    confluence = directory(wiki)
    assert wiki.requests == []  # no I/O in the constructor
    confluence.licence()
    assert wiki.requests[0].url.path == "/confluence/rest/license/1.0/license/maxUsers"
    confluence.add_user_to_group("bob", "ium_enabled")
    confluence.remove_user_from_group("bob", "ium_enabled")
    manifests = [r for r in wiki.requests if r.url.path.endswith("/manifest")]
    assert len(manifests) == 1


def test_a_stated_version_skips_the_manifest() -> None:
    wiki = Wiki(version=None)
    wiki.rpc("hasGroup", lambda params: rpc_result(False))
    info = directory(wiki, version="7.19.14").info()
    assert info.api == API_JSON_RPC
    assert [r.url.path for r in wiki.requests] == ["/confluence/rpc/json-rpc/confluenceservice-v2"]


def test_an_unreadable_manifest_falls_back_to_rest_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    wiki = Wiki(version=None)  # the manifest answers 404
    info = directory(wiki).info()
    assert info.api == API_REST
    assert info.version is None
    assert "did not say its version" in caplog.text


def test_a_manifest_of_another_product_is_refused() -> None:
    wiki = Wiki(version=None)
    wiki.on("GET", "/rest/applinks/1.0/manifest", manifest("9.12.0", type_id="jira"))
    with pytest.raises(UnexpectedResponse, match="'jira', not Confluence"):
        directory(wiki).info()


@pytest.mark.parametrize(
    ("reply", "why"),
    [
        (not_found("Not Found"), "404"),
        (
            httpx.Response(403, json={"message": "The Remote API is disabled on this server"}),
            "403",
        ),
        (TOMCAT_403, "Confluence's own 403, wrapped by Tomcat after the CSS"),
        (
            httpx.Response(
                200,
                json={
                    "jsonrpc": "2.0",
                    "error": {"code": 0, "message": "Remote API is not enabled on this server."},
                    "id": 1,
                },
            ),
            "error",
        ),
    ],
)
def test_a_disabled_remote_api_says_what_to_enable(reply: httpx.Response, why: str) -> None:
    wiki = Wiki("7.19.14")
    wiki.rpc("hasGroup", lambda params: reply)
    with pytest.raises(ManualStepRequired) as raised:
        directory(wiki).info()
    assert "Remote API" in str(raised.value), why
    assert any("Remote API (XML-RPC & SOAP)" in step for step in raised.value.steps)


def test_refused_credentials_at_the_rpc_path_stay_not_permitted() -> None:
    wiki = Wiki("7.19.14")
    wiki.rpc("hasGroup", lambda params: httpx.Response(401, text="Unauthorized"))
    with pytest.raises(NotPermitted):
        directory(wiki).info()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("8.5.4", (8, 5, 4)),
        ("9.2.0-m27", (9, 2, 0)),
        ("7.19", (7, 19, 0)),
        ("Confluence 10.1.2", (10, 1, 2)),
        ("", None),
        ("latest", None),
        (None, None),
    ],
)
def test_versions_are_parsed(text: str | None, expected: tuple[int, int, int] | None) -> None:
    assert parse_version(text) == expected


# -- paging --------------------------------------------------------------------------------


def test_group_members_follow_next_through_short_capped_pages() -> None:
    """The server caps `limit` at 2 (we ask 200) and the last-but-one page is shorter still."""
    wiki = Wiki()
    pages = {
        "0": page(["ann", "bob"], 0, 2, "/rest/api/group/ium_enabled/member?limit=2&start=2"),
        "2": page(["cy"], 2, 2, "/rest/api/group/ium_enabled/member?limit=2&start=3"),
        "3": page(["dee", "ed"], 3, 2, None),
    }

    def serve(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=pages[request.url.params["start"]])

    wiki.on("GET", "/rest/api/group/ium_enabled/member", serve)
    members = directory(wiki).group_members("ium_enabled")
    assert members == ["ann", "bob", "cy", "dee", "ed"]
    assert wiki.sent() == [
        ("GET", "/confluence/rest/api/group/ium_enabled/member?start=0&limit=200"),
        ("GET", "/confluence/rest/api/group/ium_enabled/member?start=2&limit=200"),
        ("GET", "/confluence/rest/api/group/ium_enabled/member?start=3&limit=200"),
    ]


def test_an_absolute_next_link_is_followed_by_its_start_on_our_own_path() -> None:
    wiki = Wiki()
    absolute = (
        "http://internal-node:8090/confluence/rest/api/group/ium_enabled/member?start=1&limit=1"
    )
    replies = [page(["ann"], 0, 1, absolute), page(["bob"], 1, 1, None)]
    wiki.on(
        "GET",
        "/rest/api/group/ium_enabled/member",
        lambda r: httpx.Response(200, json=replies.pop(0)),
    )
    assert directory(wiki).group_members("ium_enabled") == ["ann", "bob"]
    assert {r.url.host for r in wiki.requests} == {"wiki.example.com"}


def test_a_page_without_next_ends_the_list_even_when_full() -> None:
    wiki = Wiki()
    wiki.on(
        "GET",
        "/rest/api/group/g/member",
        httpx.Response(200, json=page(["ann", "bob"], 0, 2, None)),
    )
    assert directory(wiki).group_members("g") == ["ann", "bob"]
    assert len(wiki.sent()) == 1


def test_a_next_link_that_does_not_move_on_is_an_error_not_a_loop() -> None:
    wiki = Wiki()
    stuck = page(["ann"], 0, 1, "/rest/api/group/g/member?start=0&limit=1")
    wiki.on("GET", "/rest/api/group/g/member", httpx.Response(200, json=stuck))
    with pytest.raises(UnexpectedResponse, match="does not move on"):
        directory(wiki).group_members("g")


def test_members_of_a_missing_group_raise_group_not_found() -> None:
    wiki = Wiki()
    with pytest.raises(GroupNotFound) as raised:
        directory(wiki).group_members("nope")
    assert raised.value.status == 404


def test_memberships_invert_the_members_of_each_group() -> None:
    wiki = Wiki()
    wiki.on(
        "GET",
        "/rest/api/group/ium_enabled/member",
        httpx.Response(200, json=page(["ann", "bob"], 0, 200, None)),
    )
    wiki.on(
        "GET",
        "/rest/api/group/ium_disabled/member",
        httpx.Response(200, json=page(["cy", "bob"], 0, 200, None)),
    )
    found = directory(wiki).memberships(["ium_enabled", "ium_disabled", "ium_enabled"])
    assert found == {
        "ann": frozenset({"ium_enabled"}),
        "bob": frozenset({"ium_enabled", "ium_disabled"}),
        "cy": frozenset({"ium_disabled"}),
    }
    assert len(wiki.sent()) == 2  # each group once


# -- membership over REST ------------------------------------------------------------------


def test_add_and_remove_use_put_and_delete_with_no_body() -> None:
    wiki = Wiki()
    wiki.on("PUT", "/rest/api/user/jsmith/group/IUM_Enabled", httpx.Response(204))
    wiki.on("DELETE", "/rest/api/user/jsmith/group/IUM_Disabled", httpx.Response(204))
    confluence = directory(wiki)
    confluence.add_user_to_group("jsmith", "IUM_Enabled")
    confluence.remove_user_from_group("jsmith", "IUM_Disabled")
    assert wiki.sent() == [
        ("PUT", "/confluence/rest/api/user/jsmith/group/IUM_Enabled"),
        ("DELETE", "/confluence/rest/api/user/jsmith/group/IUM_Disabled"),
    ]
    assert all(r.content == b"" for r in wiki.requests)


def test_awkward_usernames_stay_in_their_path_segment() -> None:
    wiki = Wiki()
    wiki.on(
        "PUT",
        "/rest/api/user/a%2Fb%3Fc%23d%25e%20f%27g%40h%C3%A9/group/IUM_Enabled",
        httpx.Response(204),
    )
    directory(wiki).add_user_to_group("a/b?c#d%e f'g@hé", "IUM_Enabled")
    (request,) = [r for r in wiki.requests if r.method == "PUT"]
    assert request.url.raw_path == (
        b"/confluence/rest/api/user/a%2Fb%3Fc%23d%25e%20f%27g%40h%C3%A9/group/IUM_Enabled"
    )
    assert request.url.query == b""
    assert request.url.fragment == ""


@settings(max_examples=150, deadline=None)
@given(user=st.text(min_size=1, max_size=30), group=st.text(min_size=1, max_size=20))
def test_no_name_can_change_the_path_or_the_query(user: str, group: str) -> None:
    assume(user not in (".", "..") and group not in (".", ".."))
    seen: list[httpx.Request] = []

    def server(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    client = make_client(BASE, PersonalAccessToken("pat"), transport=httpx.MockTransport(server))
    confluence = ConfluenceDirectory(AtlassianHttp(client), version="8.5.4")
    confluence.add_user_to_group(user, group)
    (request,) = seen
    raw = request.url.raw_path.decode("ascii")
    assert "?" not in raw and "#" not in raw
    parts = raw.split("/")
    assert parts[:5] == ["", "confluence", "rest", "api", "user"]
    assert len(parts) == 8 and parts[6] == "group"
    assert unquote(parts[5]) == user and unquote(parts[7]) == group
    assert parts[5] == segment(user)


@pytest.mark.parametrize(("user", "group"), [("..", "g"), (".", "g"), ("bob", ".."), ("", "g")])
def test_dot_segments_and_empty_names_are_refused_before_sending(user: str, group: str) -> None:
    wiki = Wiki()
    with pytest.raises(HttpDirectoryError, match="cannot be sent as a URL path segment"):
        directory(wiki).add_user_to_group(user, group)
    assert wiki.sent() == []


def test_a_404_on_a_membership_change_names_the_missing_user() -> None:
    wiki = Wiki()
    wiki.on("PUT", "/rest/api/user/ghost/group/IUM_Enabled", not_found("Not Found"))
    wiki.on("GET", "/rest/api/user", not_found("No user found with username: ghost"))
    with pytest.raises(UserNotFound):
        directory(wiki).add_user_to_group("ghost", "IUM_Enabled")
    assert wiki.sent()[-1] == ("GET", "/confluence/rest/api/user?username=ghost&expand=status")


def test_a_404_on_a_membership_change_names_the_missing_group() -> None:
    wiki = Wiki()
    wiki.on("DELETE", "/rest/api/user/bob/group/nogroup", not_found("Not Found"))
    wiki.on(
        "GET", "/rest/api/user", httpx.Response(200, json={**member("bob"), "status": "Active"})
    )
    with pytest.raises(GroupNotFound):
        directory(wiki).remove_user_from_group("bob", "nogroup")


def test_a_read_only_directory_keeps_atlassians_words() -> None:
    text = "You cannot add user 'bob' to group 'ium_enabled'. The user's directory is read only."
    wiki = Wiki()
    wiki.on(
        "PUT",
        "/rest/api/user/bob/group/ium_enabled",
        httpx.Response(400, json={"statusCode": 400, "message": text}),
    )
    with pytest.raises(ReadOnlyDirectory) as raised:
        directory(wiki).add_user_to_group("bob", "ium_enabled")
    assert raised.value.server_message == text
    assert len(wiki.sent()) == 1  # not retried


def test_refused_credentials_carry_the_seraph_reason() -> None:
    wiki = Wiki()
    wiki.on(
        "PUT",
        "/rest/api/user/bob/group/ium_enabled",
        httpx.Response(401, text="", headers={"X-Seraph-LoginReason": "AUTHENTICATED_FAILED"}),
    )
    with pytest.raises(NotPermitted, match="X-Seraph-LoginReason: AUTHENTICATED_FAILED"):
        directory(wiki).add_user_to_group("bob", "ium_enabled")


def test_a_429_waits_the_retry_after_and_then_succeeds() -> None:
    wiki = Wiki()
    limited = httpx.Response(
        429,
        json={"message": "Rate limit exceeded"},
        headers={"Retry-After": "3", "X-RateLimit-Limit": "20", "X-RateLimit-Remaining": "0"},
    )
    wiki.on("PUT", "/rest/api/user/bob/group/ium_enabled", limited, httpx.Response(204))
    sleeps: list[float] = []
    directory(wiki, sleeps=sleeps).add_user_to_group("bob", "ium_enabled")
    assert sleeps == [3.0]
    assert len(wiki.sent()) == 2


def test_a_429_that_lasts_is_reported_with_its_retry_after() -> None:
    wiki = Wiki()
    wiki.on("PUT", "/rest/api/user/bob/group/g", httpx.Response(429, headers={"Retry-After": "2"}))
    with pytest.raises(RateLimited) as raised:
        directory(wiki, policy=RetryPolicy(attempts=2)).add_user_to_group("bob", "g")
    assert raised.value.retry_after_s == 2


# -- users, groups, licence ----------------------------------------------------------------


def test_find_user_reads_the_status_expansion() -> None:
    wiki = Wiki()
    body = {**member("o'brien&co"), "status": "Deactivated", "displayName": "Pat O'Brien"}
    wiki.on("GET", "/rest/api/user", httpx.Response(200, json=body))
    user = directory(wiki).find_user("o'brien&co")
    assert user == User(
        name="o'brien&co",
        key=str(body["userKey"]),
        display_name="Pat O'Brien",
        active=False,
    )
    ((method, sent),) = wiki.sent()
    query = parse_qs(sent.split("?", 1)[1])
    assert query == {"username": ["o'brien&co"], "expand": ["status"]}


def test_find_user_returns_none_for_an_unknown_user() -> None:
    assert directory(Wiki()).find_user("ghost") is None


def test_groups_of_pages_through_memberof() -> None:
    wiki = Wiki()
    replies = [
        {
            "results": [{"type": "group", "name": "confluence-users"}],
            "start": 0,
            "limit": 1,
            "size": 1,
            "_links": {"next": "/rest/api/user/memberof?username=bob&start=1&limit=1"},
        },
        {
            "results": [{"type": "group", "name": "ium_enabled"}],
            "start": 1,
            "limit": 1,
            "size": 1,
            "_links": {},
        },
    ]
    wiki.on("GET", "/rest/api/user/memberof", lambda r: httpx.Response(200, json=replies.pop(0)))
    assert directory(wiki).groups_of("bob") == {"confluence-users", "ium_enabled"}
    assert wiki.sent()[0] == (
        "GET",
        "/confluence/rest/api/user/memberof?username=bob&start=0&limit=200",
    )


def test_groups_of_an_unknown_user_raises_user_not_found() -> None:
    with pytest.raises(UserNotFound):
        directory(Wiki()).groups_of("ghost")


def test_create_group_posts_name_and_type_when_missing() -> None:
    wiki = Wiki()
    wiki.on(
        "POST",
        "/rest/api/admin/group",
        httpx.Response(200, json={"type": "group", "name": "ium_enabled"}),
    )
    assert directory(wiki).create_group("IUM_Enabled") is True
    assert wiki.sent() == [
        ("GET", "/confluence/rest/api/group/IUM_Enabled"),
        ("POST", "/confluence/rest/api/admin/group"),
    ]
    assert json.loads(wiki.requests[-1].content) == {"name": "IUM_Enabled", "type": "group"}


def test_create_group_is_false_when_it_exists() -> None:
    wiki = Wiki()
    wiki.on(
        "GET",
        "/rest/api/group/IUM_Enabled",
        httpx.Response(200, json={"type": "group", "name": "ium_enabled"}),
    )
    assert directory(wiki).create_group("IUM_Enabled") is False
    assert [m for m, _ in wiki.sent()] == ["GET"]


def test_create_group_that_appeared_meanwhile_is_false() -> None:
    wiki = Wiki()
    wiki.on(
        "POST",
        "/rest/api/admin/group",
        httpx.Response(400, json={"message": "Group 'g' already exists"}),
    )
    assert directory(wiki).create_group("g") is False


def test_licence_reads_max_users_and_user_count() -> None:
    wiki = Wiki()
    wiki.on("GET", "/rest/license/1.0/license/maxUsers", httpx.Response(200, json={"count": 500}))
    wiki.on("GET", "/rest/license/1.0/license/userCount", httpx.Response(200, json={"count": 487}))
    assert directory(wiki).licence() == Licence(tier=500, licensed=487)


def test_an_unlimited_licence_is_the_unlimited_tier() -> None:
    wiki = Wiki()
    wiki.on("GET", "/rest/license/1.0/license/maxUsers", httpx.Response(200, json={"count": -1}))
    wiki.on("GET", "/rest/license/1.0/license/userCount", httpx.Response(200, json={"count": 9}))
    assert directory(wiki).licence() == Licence(tier=UNLIMITED_TIER, licensed=9)


def test_a_licence_answer_without_a_count_is_unexpected() -> None:
    wiki = Wiki()
    wiki.on("GET", "/rest/license/1.0/license/maxUsers", httpx.Response(200, json={"count": "500"}))
    with pytest.raises(UnexpectedResponse, match="no integer count"):
        directory(wiki).licence()


def test_licensed_users_probe_both_spellings_on_9_3() -> None:
    wiki = Wiki("9.3.1")
    body = {
        "results": [
            {"type": "known", "username": "admin", "userKey": "k1", "displayName": "Admin"},
            {"type": "known", "username": "ann", "userKey": "k2", "displayName": "Ann"},
        ],
        "start": 0,
        "limit": 200,
        "size": 2,
        "_links": {},
    }
    wiki.on("GET", "/rest/api/user/list/active", httpx.Response(200, json=body))
    assert directory(wiki).licensed_users() == frozenset({"admin", "ann"})
    assert [p.split("?")[0] for _, p in wiki.sent()] == [
        "/confluence/rest/api/admin/users/list/active",
        "/confluence/rest/api/user/list/active",
    ]


def test_licensed_users_are_none_before_9_3_without_asking() -> None:
    wiki = Wiki("8.5.4")
    assert directory(wiki).licensed_users() is None
    assert wiki.sent() == []


# -- the JSON-RPC fallback -----------------------------------------------------------------


def only_bob(request: httpx.Request) -> httpx.Response:
    """`GET /rest/api/user?username=`: bob exists, nobody else does."""
    if request.url.params.get("username", "").casefold() == "bob":
        return httpx.Response(200, json={**member("bob"), "status": "Active"})
    return not_found(f"No user found with username: {request.url.params.get('username')}")


def rpc_wiki(groups_of_bob: list[str], existing_groups: set[str], version: str = "7.19.14") -> Wiki:
    wiki = Wiki(version)
    wiki.on("GET", "/rest/api/user", only_bob)
    wiki.rpc("getUserGroups", lambda params: rpc_result(groups_of_bob))
    wiki.rpc("hasGroup", lambda params: rpc_result(params[0] in existing_groups))
    wiki.rpc("addUserToGroup", lambda params: rpc_result(True))
    wiki.rpc("removeUserFromGroup", lambda params: rpc_result(True))
    wiki.rpc("addGroup", lambda params: rpc_result(True))
    return wiki


def test_json_rpc_add_sends_username_then_group_without_a_token() -> None:
    wiki = rpc_wiki(["confluence-users"], {"ium_enabled"})
    directory(wiki).add_user_to_group("bob", "ium_enabled")
    assert wiki.rpc_calls() == [
        ("getUserGroups", ["bob"]),
        ("hasGroup", ["ium_enabled"]),
        ("addUserToGroup", ["bob", "ium_enabled"]),
    ]


def test_json_rpc_add_is_a_no_op_for_a_member_in_any_case() -> None:
    wiki = rpc_wiki(["ium_enabled"], {"ium_enabled"})
    directory(wiki).add_user_to_group("bob", "IUM_Enabled")
    assert [m for m, _ in wiki.rpc_calls()] == ["getUserGroups"]


def test_json_rpc_remove_only_when_a_member() -> None:
    wiki = rpc_wiki(["ium_disabled"], {"ium_disabled", "ium_enabled"})
    confluence = directory(wiki)
    confluence.remove_user_from_group("bob", "ium_disabled")
    confluence.remove_user_from_group("bob", "ium_enabled")
    assert [c for c in wiki.rpc_calls() if c[0] == "removeUserFromGroup"] == [
        ("removeUserFromGroup", ["bob", "ium_disabled"])
    ]


def test_json_rpc_missing_group_and_user() -> None:
    wiki = rpc_wiki([], set())
    with pytest.raises(GroupNotFound):
        directory(wiki).add_user_to_group("bob", "ium_enabled")
    ghost = Wiki("7.19.14")
    with pytest.raises(UserNotFound):
        directory(ghost).add_user_to_group("ghost", "ium_enabled")
    assert ghost.rpc_calls() == []


def test_json_rpc_read_only_error_becomes_read_only_directory() -> None:
    wiki = rpc_wiki([], {"ium_enabled"})
    text = "com.atlassian.confluence.rpc.RemoteException: The user's directory is read only."
    wiki.rpc(
        "addUserToGroup",
        lambda params: httpx.Response(
            500, json={"jsonrpc": "2.0", "error": {"code": 500, "message": text}, "id": 1}
        ),
    )
    with pytest.raises(ReadOnlyDirectory) as raised:
        directory(wiki).add_user_to_group("bob", "ium_enabled")
    assert "read only" in raised.value.server_message


def test_json_rpc_groups_of_and_create_group() -> None:
    wiki = rpc_wiki(["confluence-users", "ium_enabled"], {"ium_enabled"})
    confluence = directory(wiki)
    assert confluence.groups_of("bob") == {"confluence-users", "ium_enabled"}
    assert confluence.create_group("ium_enabled") is False
    assert confluence.create_group("ium_disabled") is True
    assert ("addGroup", ["ium_disabled"]) in wiki.rpc_calls()
    assert ("addGroup", ["ium_enabled"]) not in wiki.rpc_calls()


# -- application access ("Can use") --------------------------------------------------------


USE = {"targetType": "application", "operationKey": "use"}
ADMINISTER = {"targetType": "application", "operationKey": "administer"}
SYSTEM = {"targetType": "system", "operationKey": "administer"}
SPACE = {"targetType": "space", "operationKey": "create"}


def test_application_access_reads_use_grants_on_9_3() -> None:
    wiki = Wiki("9.3.1")
    grants = [
        {
            "operation": USE,
            "subject": {"type": "group", "name": "ium_enabled", "displayName": "ium_enabled"},
        },
        {
            "operation": USE,
            "subject": {"type": "user", "displayName": "Admin", "username": "admin"},
        },
        {
            "operation": {"targetType": "space", "operationKey": "create"},
            "subject": {"type": "group", "name": "confluence-users"},
        },
        {"operation": USE, "subject": {"type": "group", "name": "confluence-administrators"}},
        {
            "operation": ADMINISTER,
            "subject": {"type": "group", "name": "confluence-administrators"},
        },
        {"operation": SYSTEM, "subject": {"type": "group", "name": "confluence-administrators"}},
        # An administrator permission licenses even without "Can use".
        {"operation": SYSTEM, "subject": {"type": "group", "name": "sysadmins"}},
        {"operation": ADMINISTER, "subject": {"type": "user", "displayName": "Ops"}},
    ]
    wiki.on("GET", "/rest/api/permissions", httpx.Response(200, json=grants))
    access = directory(wiki).application_access()
    assert access == ApplicationAccess(
        groups=frozenset({"ium_enabled", "confluence-administrators"}),
        admin_groups=frozenset({"confluence-administrators", "sysadmins"}),
    )


def test_application_access_asks_each_group_when_subjects_have_no_name() -> None:
    wiki = Wiki("9.3.1")
    wiki.on(
        "GET",
        "/rest/api/permissions",
        httpx.Response(200, json=[{"operation": USE, "subject": {"type": "group"}}]),
    )
    groups = {
        "results": [
            {"type": "group", "name": "confluence-users"},
            {"type": "group", "name": "ium_enabled"},
            {"type": "group", "name": "sysadmins"},
        ],
        "start": 0,
        "limit": 200,
        "size": 3,
        "_links": {},
    }
    wiki.on("GET", "/rest/api/group", httpx.Response(200, json=groups))
    wiki.on("GET", "/rest/api/permissions/group/confluence-users", httpx.Response(200, json=[]))
    wiki.on(
        "GET",
        "/rest/api/permissions/group/ium_enabled",
        httpx.Response(200, json=[{"operation": USE, "subject": {"type": "group"}}]),
    )
    wiki.on(
        "GET",
        "/rest/api/permissions/group/sysadmins",
        httpx.Response(200, json=[{"operation": SYSTEM, "subject": {"type": "group"}}]),
    )
    access = directory(wiki).application_access()
    assert access == ApplicationAccess(
        groups=frozenset({"ium_enabled"}), admin_groups=frozenset({"sysadmins"})
    )


@pytest.mark.parametrize("version", ["8.5.4", "9.2.4"])
def test_application_access_before_9_2_5_is_a_manual_step(version: str) -> None:
    wiki = Wiki(version)
    with pytest.raises(ManualStepRequired) as raised:
        directory(wiki).application_access()
    assert any("Global Permissions" in s for s in raised.value.steps)
    assert wiki.sent() == []


def test_9_2_5_is_the_first_version_that_reads_and_grants_over_rest() -> None:
    """`RemoteGlobalPermissionService` is "Since: 9.2.5": the patch level counts."""
    old = rpc_wiki([], {"ium_enabled"}, version="9.2.4")
    old.rpc("addGlobalPermission", lambda params: rpc_result(True))
    directory(old).grant_application_access("ium_enabled")
    assert not any("/rest/api/permissions" in path for _, path in old.sent())
    assert ("addGlobalPermission", ["USECONFLUENCE", "ium_enabled"]) in old.rpc_calls()

    new = Wiki("9.2.5")
    new.on("GET", "/rest/api/permissions", httpx.Response(200, json=[]))
    new.on("PUT", "/rest/api/permissions/group/ium_enabled/grant", httpx.Response(204))
    confluence = directory(new)
    assert confluence.application_access() == ApplicationAccess(groups=frozenset())
    confluence.grant_application_access("ium_enabled")
    assert new.rpc_calls() == []


def test_grant_and_revoke_use_the_rest_resource_on_9_3(caplog: pytest.LogCaptureFixture) -> None:
    wiki = Wiki("9.3.1")
    held = [{"operation": op, "subject": {"type": "group"}} for op in (USE, SPACE)]
    wiki.on("GET", "/rest/api/permissions/group/confluence-users", httpx.Response(200, json=held))
    wiki.on("PUT", "/rest/api/permissions/group/IUM_Enabled/grant", httpx.Response(204))
    wiki.on("PUT", "/rest/api/permissions/group/confluence-users/revoke", httpx.Response(204))
    confluence = directory(wiki)
    with caplog.at_level(logging.WARNING, "floatseat.directory.confluence"):
        confluence.grant_application_access("IUM_Enabled")
        assert caplog.text == ""
        confluence.revoke_application_access("confluence-users")
    assert wiki.sent() == [
        ("PUT", "/confluence/rest/api/permissions/group/IUM_Enabled/grant"),
        ("GET", "/confluence/rest/api/permissions/group/confluence-users"),
        ("PUT", "/confluence/rest/api/permissions/group/confluence-users/revoke"),
    ]
    puts = [r for r in wiki.requests if r.method == "PUT"]
    assert [json.loads(r.content) for r in puts] == [[USE], [USE]]
    # REST took "space create" away with "Can use": the admin is told, by name.
    assert "'confluence-users' over REST" in caplog.text and "space create" in caplog.text


def test_a_rest_revoke_of_a_group_with_only_can_use_warns_of_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    wiki = Wiki("9.3.1")
    held = [{"operation": USE, "subject": {"type": "group"}}]
    wiki.on("GET", "/rest/api/permissions/group/confluence-users", httpx.Response(200, json=held))
    wiki.on("PUT", "/rest/api/permissions/group/confluence-users/revoke", httpx.Response(204))
    with caplog.at_level(logging.WARNING, "floatseat.directory.confluence"):
        directory(wiki).revoke_application_access("confluence-users")
    assert caplog.text == ""


def test_grant_to_a_missing_group_raises_group_not_found() -> None:
    wiki = Wiki("9.3.1")
    with pytest.raises(GroupNotFound):
        directory(wiki).grant_application_access("nope")


def test_grant_falls_back_to_json_rpc_where_rest_cannot(caplog: pytest.LogCaptureFixture) -> None:
    wiki = rpc_wiki([], {"ium_enabled"})
    wiki.rpc("addGlobalPermission", lambda params: rpc_result(True))
    wiki.rpc("removeGlobalPermission", lambda params: rpc_result(True))
    confluence = directory(wiki)
    with caplog.at_level(logging.WARNING, "floatseat.directory.confluence"):
        confluence.grant_application_access("ium_enabled")
        confluence.revoke_application_access("ium_enabled")
    calls = [c for c in wiki.rpc_calls() if "GlobalPermission" in c[0]]
    assert calls == [
        ("addGlobalPermission", ["USECONFLUENCE", "ium_enabled"]),
        ("removeGlobalPermission", ["USECONFLUENCE", "ium_enabled"]),
    ]
    # removeGlobalPermission takes away USECONFLUENCE only: nothing else to warn about.
    assert caplog.text == ""


@pytest.mark.parametrize("method", ["grant", "revoke"])
def test_json_rpc_refuses_a_group_named_like_a_user(method: str) -> None:
    """`addGlobalPermission(permission, name)` looks the name up as a user first."""
    wiki = rpc_wiki([], {"BOB", "ium_enabled"})
    wiki.rpc("addGlobalPermission", lambda params: rpc_result(True))
    wiki.rpc("removeGlobalPermission", lambda params: rpc_result(True))
    confluence = directory(wiki)
    with pytest.raises(ManualStepRequired, match="a user 'bob'") as raised:
        if method == "grant":
            confluence.grant_application_access("BOB")
        else:
            confluence.revoke_application_access("BOB")
    assert any("'BOB'" in step for step in raised.value.steps)
    assert not [c for c in wiki.rpc_calls() if "GlobalPermission" in c[0]]


def test_grant_without_rest_or_remote_api_gives_the_click_path() -> None:
    wiki = Wiki("8.5.4")
    wiki.rpc("hasGroup", lambda params: not_found("Not Found"))
    with pytest.raises(ManualStepRequired) as raised:
        directory(wiki).grant_application_access("IUM_Enabled")
    steps = " | ".join(raised.value.steps)
    assert "General Configuration → Global Permissions → Edit Permissions" in steps
    assert "Tick 'Can use' for 'IUM_Enabled'" in steps
    assert "Remote API (XML-RPC & SOAP)" in steps


def test_revoke_without_any_api_names_the_group_to_untick() -> None:
    wiki = Wiki("8.5.4")
    wiki.rpc("hasGroup", lambda params: not_found("Not Found"))
    with pytest.raises(ManualStepRequired) as raised:
        directory(wiki).revoke_application_access("confluence-users")
    assert any("Untick 'Can use' for 'confluence-users'" in s for s in raised.value.steps)
