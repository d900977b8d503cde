"""The custom REST connector: templates validated at load, values escaped, lists paged.

`httpx.MockTransport` stands in for the server, so the assertions read the requests the
server receives; the contract test at the end runs against the DC simulator over HTTP.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote

import httpx
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from floatseat.directory import custom
from floatseat.directory.custom import (
    UNLIMITED_TIER,
    CustomRestDirectory,
    TemplateError,
    TemplateMissing,
    UnplaceableValue,
    load_templates,
    parse_toml,
)
from floatseat.directory.errors import (
    GroupNotFound,
    ManualStepRequired,
    NotPermitted,
    RateLimited,
    ReadOnlyDirectory,
    Unavailable,
    UnexpectedResponse,
    UserNotFound,
)
from floatseat.directory.http import (
    AtlassianHttp,
    BasicCredentials,
    PersonalAccessToken,
    RetryPolicy,
    make_client,
)
from floatseat.directory.port import Licence, User
from floatseat.service.errors import DirectoryError, DirectoryUnavailable

BASE = "https://jira.example.com/jira"
TOKEN = "NjQ5MzA2MjM3OTQ1OsecretTOKEN"
DOCS = Path(__file__).parent.parent / "docs" / "custom-rest.md"

Handler = Callable[[httpx.Request], httpx.Response]


def minimal() -> dict[str, Any]:
    """The smallest valid `[directory.custom]` table (a ScriptRunner-like API)."""
    return {
        "operations": {
            "group_members": {
                "url": "/rest/scriptrunner/latest/custom/members/{group}",
                "members": "$.members[*]",
                "paging": {"style": "none"},
            },
            "add_user_to_group": {
                "method": "POST",
                "url": "/rest/scriptrunner/latest/custom/member",
                "body": {"user": "{user}", "group": "{group}"},
            },
            "remove_user_from_group": {
                "method": "DELETE",
                "url": "/rest/scriptrunner/latest/custom/member?user={user}&group={group}",
            },
            "licence": {
                "url": "/rest/scriptrunner/latest/custom/licence",
                "tier": "$.tier",
                "licensed": "$.licensed",
            },
        }
    }


def table_with(operation: str, **fields: Any) -> dict[str, Any]:
    """`minimal()` with `fields` set on `operation` (None removes a field)."""
    table = minimal()
    op = table["operations"].setdefault(operation, {})
    for key, value in fields.items():
        if value is None:
            op.pop(key, None)
        else:
            op[key] = value
    return table


class Server:
    """Answers with `handler` and keeps every request it saw."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.handler(request)


def connect(
    handler: Handler, table: dict[str, Any] | None = None
) -> tuple[CustomRestDirectory, Server, list[float]]:
    server = Server(handler)
    sleeps: list[float] = []
    client = make_client(BASE, PersonalAccessToken(TOKEN), transport=httpx.MockTransport(server))
    http = AtlassianHttp(
        client,
        policy=RetryPolicy(attempts=3),
        sleep=sleeps.append,
        random=lambda: 0.0,
        clock=lambda: 0.0,
        wall_clock=lambda: 0.0,
    )
    templates = load_templates(table if table is not None else minimal())
    return CustomRestDirectory(http, templates), server, sleeps


def ok(body: object = None, status: int = 200, **headers: str) -> httpx.Response:
    fixed = {k.replace("_", "-"): v for k, v in headers.items()}
    if body is None:
        return httpx.Response(status, headers=fixed)
    return httpx.Response(status, json=body, headers=fixed)


def problems_of(table: dict[str, Any]) -> TemplateError:
    with pytest.raises(TemplateError) as caught:
        load_templates(table)
    return caught.value


# -- validation at load time ------------------------------------------------------------------

INVALID = [
    # (operation, fields, the field named, a fragment of the message)
    ("add_user_to_group", {"url": "/x/{usr}/{user}/{group}"}, "url", "unknown placeholder {usr}"),
    ("add_user_to_group", {"url": "/x/{user}/{group}/{"}, "url", "lone '{'"),
    ("add_user_to_group", {"url": "/x/{user}}/{group}"}, "url", "lone '}'"),
    ("group_members", {"members": "$.values[*"}, "members", "malformed JSONPath"),
    ("group_members", {"members": ""}, "members", "give a JSONPath"),
    ("licence", {"tier": "$..["}, "tier", "malformed JSONPath"),
    ("add_user_to_group", {"method": "FETCH"}, "method", "'FETCH' is not one of"),
    ("add_user_to_group", {"method": None}, "method", "missing"),
    ("add_user_to_group", {"expected": [302]}, "expected", "302 is out of range"),
    ("add_user_to_group", {"expected": [600]}, "expected", "600 is out of range"),
    ("add_user_to_group", {"expected": ["200"]}, "expected", "not an HTTP status"),
    ("add_user_to_group", {"expected": []}, "expected", "give a list"),
    ("add_user_to_group", {"already": [429]}, "already", "429 cannot mean"),
    ("add_user_to_group", {"already": [403]}, "already", "403 cannot mean"),
    ("add_user_to_group", {"already": [503]}, "already", "503 cannot mean"),
    ("add_user_to_group", {"already": [200]}, "already", "also in `expected`"),
    ("add_user_to_group", {"already_if": "exists"}, "already_if", "give them too"),
    ("licence", {"url": "/licence?for={user}"}, "url", "{user}: `licence` has no user"),
    ("add_user_to_group", {"url": "/add?at={start}"}, "url", "{start}: only in paged list"),
    ("group_members", {"url": "/m/{group}?s={start}"}, "url", "only where paging.style"),
    (
        "add_user_to_group",
        {"url": "/rest/add", "body": {"u": "{user}"}},
        "url",
        "{group} is never used",
    ),
    ("add_user_to_group", {"body": {"user": "x"}}, "url", "{user} is never used"),
    ("add_user_to_group", {"url": "https://evil.example.com/x"}, "url", "absolute URLs"),
    ("add_user_to_group", {"url": "//evil.example.com/x"}, "url", "absolute URLs"),
    ("add_user_to_group", {"url": "javascript:alert(1)"}, "url", "absolute URLs"),
    ("add_user_to_group", {"url": "rest/add"}, "url", "must start with /"),
    ("add_user_to_group", {"url": "/rest/../admin"}, "url", "dot segments"),
    ("add_user_to_group", {"url": "/rest/%2e%2e/admin"}, "url", "dot segments"),
    ("add_user_to_group", {"url": "/rest//add"}, "url", "empty path segment"),
    ("add_user_to_group", {"url": "/rest/add#x"}, "url", "fragment"),
    ("add_user_to_group", {"url": "/rest/a dd"}, "url", "control characters"),
    ("add_user_to_group", {"url": "/rest/a\\dd"}, "url", "backslashes"),
    ("add_user_to_group", {"url": "/rest/é"}, "url", "percent-encode"),
    ("add_user_to_group", {"url": "/rest/add?"}, "url", "empty query"),
    ("add_user_to_group", {"url": "/rest/add?{user}=1"}, "url", "not allowed in query names"),
    ("add_user_to_group", {"url": "/rest/add?os_password=x"}, "url", "carries credentials"),
    ("add_user_to_group", {"url": "/rest/add?access_token=x"}, "url", "carries credentials"),
    ("add_user_to_group", {"query": {"api_key": "x"}}, "query", "carries credentials"),
    ("add_user_to_group", {"query": {"g": 1.5}}, "query", "must be a string"),
    ("licence", {"query": {"u": "{user}"}}, "query", "{user}: `licence` has no user"),
    ("add_user_to_group", {"headers": {"Authorization": "Basic YTpi"}}, "headers", "may not be"),
    ("add_user_to_group", {"headers": {"Cookie": "JSESSIONID=1"}}, "headers", "may not be"),
    ("add_user_to_group", {"headers": {"X-Api-Key": "k"}}, "headers", "may not be"),
    ("add_user_to_group", {"headers": {"X-A": "a\r\nX-B: b"}}, "headers", "line breaks"),
    ("add_user_to_group", {"headers": {"X-A": "a\x00"}}, "headers", "control characters"),
    ("add_user_to_group", {"headers": {"X-A": "é"}}, "headers", "printable ASCII"),
    ("add_user_to_group", {"headers": {"X A": "a"}}, "headers", "not a valid header name"),
    ("add_user_to_group", {"headers": {"X-A\r\n": "a"}}, "headers", "not a valid header name"),
    ("add_user_to_group", {"headers": {"X-For": "{user}"}}, "headers", "not allowed in headers"),
    ("add_user_to_group", {"body": '{"user": "{user}", '}, "body", "not JSON"),
    ("add_user_to_group", {"body": "null"}, "body", "null body"),
    ("add_user_to_group", {"body": {"{user}": "{group}"}}, "body", "not allowed in keys"),
    ("add_user_to_group", {"body": {"u": "{user}", "password": "{group}"}}, "body", "credential"),
    ("add_user_to_group", {"body": {"u": "{user}", "g": "{group}", "x": float("nan")}}, "body", ""),
    ("group_members", {"body": {"g": "{group}"}}, "body", "a GET request carries no body"),
    ("group_members", {"paging": None}, "paging", "never guesses the end of a list"),
    ("group_members", {"paging": {"style": "pages"}}, "paging.style", "'pages'"),
    ("group_members", {"paging": {"style": "offset"}}, "paging", "needs {start}"),
    ("group_members", {"paging": {"style": "next"}}, "paging.next", "missing"),
    (
        "group_members",
        {"paging": {"style": "none", "is_last": "$.x"}},
        "paging.is_last",
        "not used",
    ),
    (
        "group_members",
        {"url": "/m/{group}?s={start}", "paging": {"style": "offset", "is_last": "$["}},
        "paging.is_last",
        "malformed JSONPath",
    ),
    (
        "group_members",
        {"url": "/m/{group}?s={start}", "paging": {"style": "offset", "page_size": 0}},
        "paging.page_size",
        "from 1 to 10000",
    ),
    ("group_members", {"not_found": "nobody"}, "not_found", "say what a 404 means"),
    ("add_user_to_group", {"expectd": [200]}, "expectd", "unknown field 'expectd'"),
    ("licence", {"members": "$.x"}, "members", "unknown field"),
    ("licence", {"confirm": True}, "confirm", "only add, remove and create_group"),
    ("licence", {"tier": None}, "tier", "missing"),
    ("licence", {"licensed": None}, "licensed", "give it here or in `licensed_count`"),
    ("find_user", {"url": "/u?name={user}", "name": "name", "not_found": "user"}, "not_found", ""),
    ("find_user", {"url": "/u?name={user}"}, "name", "missing"),
    ("add_user", {"url": "/x"}, "", "unknown operation 'add_user'"),
]


@pytest.mark.parametrize(("operation", "fields", "field", "fragment"), INVALID)
def test_an_invalid_template_is_refused_naming_its_operation_and_field(
    operation: str, fields: dict[str, Any], field: str, fragment: str
) -> None:
    error = problems_of(table_with(operation, **fields))
    named = [p for p in error.problems if p.operation == operation and p.field == field]
    assert named, f"no problem names {operation}.{field}: {error}"
    assert any(fragment in p.message for p in named), str(error)
    assert f"operations.{operation}" in str(error)


def test_a_missing_required_operation_is_named() -> None:
    table = minimal()
    del table["operations"]["remove_user_from_group"]
    del table["operations"]["group_members"]
    error = problems_of(table)
    assert {p.operation for p in error.problems} == {"remove_user_from_group", "groups_of"}
    assert "operations.remove_user_from_group: missing" in str(error)


def test_every_problem_is_reported_at_once() -> None:
    table = minimal()
    table["operations"]["add_user_to_group"]["method"] = "FETCH"
    table["operations"]["licence"]["tier"] = "$["
    table["unknown"] = 1
    error = problems_of(table)
    assert {(p.operation, p.field) for p in error.problems} == {
        ("add_user_to_group", "method"),
        ("licence", "tier"),
        ("", "unknown"),
    }


def test_the_minimal_table_loads() -> None:
    templates = load_templates(minimal())
    assert set(templates.operations) == {
        "group_members",
        "add_user_to_group",
        "remove_user_from_group",
        "licence",
    }


def test_toml_that_is_not_valid_or_has_no_table_is_refused() -> None:
    with pytest.raises(TemplateError, match="not valid TOML"):
        parse_toml("[directory.custom\n")
    with pytest.raises(TemplateError, match=r"no \[directory.custom\] table"):
        parse_toml("[directory]\nx = 1\n")


def toml_blocks(text: str) -> list[str]:
    return re.findall(r"```toml\n(.*?)```", text, re.DOTALL)


def test_every_example_in_the_docs_loads() -> None:
    blocks = toml_blocks(DOCS.read_text(encoding="utf-8"))
    assert len(blocks) >= 3  # Jira's and Confluence's own REST APIs, and ScriptRunner
    for block in blocks:
        templates = parse_toml(block)
        assert "add_user_to_group" in templates.operations


def test_the_example_in_the_module_docstring_loads() -> None:
    doc = custom.__doc__ or ""
    start = doc.index("    [directory.custom.")
    block = "\n".join(line[4:] for line in doc[start:].split("\n\n`docs/")[0].splitlines() if line)
    templates = parse_toml(block)
    assert templates.operations["group_members"].paging is not None


# -- escaping: no value changes a request's shape ---------------------------------------------

ESCAPING = {
    "operations": {
        **minimal()["operations"],
        "add_user_to_group": {
            "method": "PUT",
            "url": "/rest/api/user/{user}/group/{group}?by={user}&g=x-{group}&fixed=a%2Fb",
            "query": {"also": "{user}", "flag": True},
            "body": {
                "name": "{user}",
                "label": "user {user} in {{group}}",
                "nested": {"list": ["{group}", 7, False]},
            },
        },
    }
}

awkward = st.lists(
    st.one_of(
        st.sampled_from(list("/?#%&=+;.\\\"'{}[]$ \r\n\t\x00:@é中🙂")),
        st.sampled_from(["%2F", "..", "{group}", "{user}", "{{", "}}", "%00", "\u2028"]),
        st.characters(codec="utf-8", exclude_categories=["Cs"]),
    ),
    min_size=1,
    max_size=10,
).map("".join)


@settings(max_examples=150, deadline=None)
@given(user=awkward, group=awkward)
def test_no_name_changes_the_path_the_query_or_the_body(user: str, group: str) -> None:
    assume(user not in (".", "..") and group not in (".", ".."))
    directory, server, _ = connect(lambda r: ok(status=204), copy.deepcopy(ESCAPING))
    directory.add_user_to_group(user, group)
    (request,) = server.requests
    assert request.url.host == "jira.example.com"
    raw = request.url.raw_path.decode("ascii")
    path, _, query = raw.partition("?")
    segments = path.split("/")
    assert segments[:4] == ["", "jira", "rest", "api"]
    assert len(segments) == 8
    assert [segments[4], segments[6]] == ["user", "group"]
    assert unquote(segments[5]) == user and unquote(segments[7]) == group
    pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True)
    assert pairs == [
        ("by", user),
        ("g", f"x-{group}"),
        ("fixed", "a/b"),
        ("also", user),
        ("flag", "true"),
    ]
    assert json.loads(request.content) == {
        "name": user,
        "label": f"user {user} in {{group}}",
        "nested": {"list": [group, 7, False]},
    }


@pytest.mark.parametrize("name", [".", ".."])
def test_a_name_that_would_climb_the_path_is_refused_before_sending(name: str) -> None:
    directory, server, _ = connect(lambda r: ok(status=204), copy.deepcopy(ESCAPING))
    with pytest.raises(UnplaceableValue, match="climbs the URL"):
        directory.add_user_to_group(name, "IUM_Enabled")
    with pytest.raises(UnplaceableValue):
        directory.add_user_to_group("bob", name)
    assert server.requests == []


def test_a_dot_name_in_the_query_or_body_only_is_sent() -> None:
    directory, server, _ = connect(lambda r: ok(status=204))
    directory.add_user_to_group("..", "IUM_Enabled")  # body only in the minimal table
    directory.remove_user_from_group("..", ".")  # query only
    assert json.loads(server.requests[0].content) == {"user": "..", "group": "IUM_Enabled"}
    assert dict(server.requests[1].url.params) == {"user": "..", "group": "."}


def test_an_empty_name_is_refused() -> None:
    directory, server, _ = connect(lambda r: ok(status=204))
    with pytest.raises(UnplaceableValue, match="empty user"):
        directory.add_user_to_group("", "IUM_Enabled")
    assert server.requests == []


def test_literal_braces_and_percent_escapes_in_the_template_are_kept() -> None:
    table = table_with(
        "add_user_to_group", url="/rest/a%20b/{user}/{group}", body={"q": "{{user}}"}
    )
    directory, server, _ = connect(lambda r: ok(status=201), table)
    directory.add_user_to_group("bob", "g")
    assert server.requests[0].url.raw_path == b"/jira/rest/a%20b/bob/g"
    assert json.loads(server.requests[0].content) == {"q": "{user}"}


def test_template_headers_are_sent_and_cannot_touch_the_credentials() -> None:
    table = table_with("add_user_to_group", headers={"X-Requested-With": "floatseat"})
    directory, server, _ = connect(lambda r: ok(status=204), table)
    directory.add_user_to_group("bob", "g")
    directory.remove_user_from_group("bob", "g")
    added, removed = server.requests
    assert added.headers["X-Requested-With"] == "floatseat"
    assert "X-Requested-With" not in removed.headers  # only the operation that declares it
    assert added.headers["Authorization"] == f"Bearer {TOKEN}"
    assert added.headers["Content-Type"] == "application/json"


def test_a_template_holding_the_connections_credential_is_refused() -> None:
    table = table_with("add_user_to_group", headers={"X-Note": f"t{TOKEN}"})
    templates = load_templates(table)
    with pytest.raises(TemplateError) as caught:
        CustomRestDirectory.connect(BASE, PersonalAccessToken(TOKEN), templates)
    assert "operations.add_user_to_group.headers" in str(caught.value)
    assert TOKEN not in str(caught.value)
    password = "correct-horse-battery"
    table = table_with("licence", url="/licence?check=correct-horse-battery")
    with pytest.raises(TemplateError, match=r"operations\.licence\.url"):
        CustomRestDirectory.connect(BASE, ("admin", password), load_templates(table))
    CustomRestDirectory.connect(BASE, BasicCredentials("admin", "other-password"), templates)


def test_credentials_never_appear_in_an_error() -> None:
    def echo(request: httpx.Request) -> httpx.Response:
        return ok({"errorMessages": [f"bad header {request.headers['Authorization']}"]}, 400)

    directory, _, _ = connect(echo)
    with pytest.raises(UnexpectedResponse) as caught:
        directory.add_user_to_group("bob", "g")
    assert TOKEN not in str(caught.value)
    assert TOKEN not in caught.value.server_message
    assert TOKEN not in repr(directory)


def test_an_answer_echoing_the_credentials_is_masked_in_our_own_errors() -> None:
    def login_page(request: httpx.Request) -> httpx.Response:
        echoed = f"<html>{request.headers['Authorization']}</html>"
        return httpx.Response(200, text=echoed, headers={"content-type": "text/html"})

    directory, _, _ = connect(login_page)
    with pytest.raises(UnexpectedResponse, match=r"not JSON \(text/html\)") as caught:
        directory.licence()
    assert TOKEN not in str(caught.value)
    assert "Bearer ***" in str(caught.value)


# -- paging ---------------------------------------------------------------------------------


def jira_members(names: list[str], cap: int = 50) -> Handler:
    """Jira's group member list: serves at most `cap` per page, whatever is asked."""

    def handler(request: httpx.Request) -> httpx.Response:
        params = request.url.params
        start = int(params["startAt"])
        size = min(int(params["maxResults"]), cap)
        page = names[start : start + size]
        return ok(
            {
                "startAt": start,
                "maxResults": size,
                "total": len(names),
                "isLast": start + size >= len(names),
                "values": [{"name": n, "active": True} for n in page],
            }
        )

    return handler


def jira_table(**paging: Any) -> dict[str, Any]:
    return table_with(
        "group_members",
        url="/rest/api/2/group/member",
        query={
            "groupname": "{group}",
            "includeInactiveUsers": True,
            "startAt": "{start}",
            "maxResults": "{limit}",
        },
        members="$.values[*].name",
        paging={"style": "offset", "page_size": 200, **paging},
    )


def test_offset_paging_follows_is_last_past_short_pages() -> None:
    names = [f"user{i:03}" for i in range(123)]
    directory, server, _ = connect(jira_members(names, cap=50), jira_table(is_last="$.isLast"))
    assert directory.group_members("IUM_Enabled") == names
    starts = [r.url.params["startAt"] for r in server.requests]
    assert starts == ["0", "50", "100"]
    assert {r.url.params["maxResults"] for r in server.requests} == {"200"}


def test_offset_paging_by_total_and_by_empty_page() -> None:
    names = [f"u{i}" for i in range(7)]
    directory, server, _ = connect(jira_members(names, cap=3), jira_table(total="$.total"))
    assert directory.group_members("g") == names
    assert len(server.requests) == 3
    directory, server, _ = connect(jira_members(names, cap=3), jira_table())
    assert directory.group_members("g") == names
    assert len(server.requests) == 4  # the empty page ends the list


def test_a_server_that_ignores_start_is_caught() -> None:
    def stuck(request: httpx.Request) -> httpx.Response:
        return ok({"isLast": False, "values": [{"name": "a"}, {"name": "b"}]})

    directory, _, _ = connect(stuck, jira_table(is_last="$.isLast"))
    with pytest.raises(UnexpectedResponse, match="same page"):
        directory.group_members("g")


def test_an_empty_page_that_claims_more_follow_is_an_error() -> None:
    directory, _, _ = connect(
        lambda r: ok({"isLast": False, "values": []}), jira_table(is_last="$.isLast")
    )
    with pytest.raises(UnexpectedResponse, match="empty, yet"):
        directory.group_members("g")


def test_a_missing_is_last_is_an_error_not_the_end() -> None:
    directory, _, _ = connect(
        lambda r: ok({"values": [{"name": "a"}]}), jira_table(is_last="$.isLast")
    )
    with pytest.raises(UnexpectedResponse, match=r"`paging.is_last` \(\$.isLast\) matched nothing"):
        directory.group_members("g")


def confluence_table() -> dict[str, Any]:
    return table_with(
        "group_members",
        url="/rest/api/group/{group}/member?limit={limit}&start={start}",
        members="$.results[*].username",
        paging={"style": "next", "next": "$._links.next", "page_size": 2},
    )


def test_next_links_are_followed_on_the_base_url() -> None:
    pages = {
        "0": (
            {
                "results": [{"username": "a"}, {"username": "b"}],
                "_links": {"next": "/rest/api/group/g/member?limit=2&start=2"},
            }
        ),
        "2": (
            {
                "results": [{"username": "c"}],
                "_links": {"next": f"{BASE}/rest/api/group/g/member?limit=2&start=3"},
            }
        ),
        "3": ({"results": [{"username": "d"}], "_links": {}}),
    }

    def handler(request: httpx.Request) -> httpx.Response:
        return ok(pages[request.url.params["start"]])

    directory, server, _ = connect(handler, confluence_table())
    assert directory.group_members("g") == ["a", "b", "c", "d"]
    assert [str(r.url) for r in server.requests] == [
        f"{BASE}/rest/api/group/g/member?limit=2&start=0",
        f"{BASE}/rest/api/group/g/member?limit=2&start=2",
        f"{BASE}/rest/api/group/g/member?limit=2&start=3",
    ]


@pytest.mark.parametrize(
    "link",
    [
        "https://evil.example.com/jira/rest/api/group/g/member?start=2",
        "http://jira.example.com/jira/rest/x",
        "https://jira.example.com:8443/jira/rest/x",
        "https://jira.example.com/other/rest/x",
        "https://admin:pw@jira.example.com/jira/rest/x",
        "//evil.example.com/jira/rest/x",
        "/rest/../../admin",
        "/rest/%2e%2e/admin",
        "javascript:alert(1)",
        42,
    ],
)
def test_a_next_link_off_the_base_url_is_not_followed(link: object) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return ok({"results": [{"username": "a"}], "_links": {"next": link}})

    directory, server, _ = connect(handler, confluence_table())
    with pytest.raises(UnexpectedResponse, match="off the base URL"):
        directory.group_members("g")
    assert len(server.requests) == 1  # the credentials went nowhere else


def test_no_paging_reads_one_answer() -> None:
    directory, server, _ = connect(lambda r: ok({"members": ["a", "B", "b"]}))
    assert directory.group_members("g") == ["a", "B"]  # names compare case-insensitively
    assert len(server.requests) == 1


# -- statuses and errors ----------------------------------------------------------------------


def test_already_statuses_are_success_only_with_their_message() -> None:
    table = table_with(
        "add_user_to_group", expected=[201], already=[400], already_if="already a member"
    )
    already = ok({"errorMessages": ["Cannot add user. 'bob' is already a member of 'g'"]}, 400)
    directory, _, _ = connect(lambda r: already, table)
    directory.add_user_to_group("bob", "g")
    other = ok({"errorMessages": ["Group name is invalid"]}, 400)
    directory, _, _ = connect(lambda r: other, table)
    with pytest.raises(UnexpectedResponse, match="custom REST `add_user_to_group`.*invalid"):
        directory.add_user_to_group("bob", "g")


def test_a_2xx_already_status_and_create_group() -> None:
    table = table_with(
        "create_group",
        method="POST",
        url="/g",
        body={"name": "{group}"},
        expected=[201],
        already=[200],
    )
    directory, _, _ = connect(lambda r: ok({}, 201), table)
    assert directory.create_group("IUM_Enabled") is True
    directory, _, _ = connect(lambda r: ok({}, 200), table)
    assert directory.create_group("IUM_Enabled") is False


def test_a_read_only_directory_is_never_already_done() -> None:
    table = table_with("add_user_to_group", already=[400, 409])
    text = "You cannot add user 'bob' to group 'g'. The user's directory is read only."
    directory, _, _ = connect(lambda r: ok({"errorMessages": [text]}, 409), table)
    with pytest.raises(ReadOnlyDirectory):
        directory.add_user_to_group("bob", "g")


def test_confirm_looks_the_membership_up_before_calling_it_done() -> None:
    members: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return ok({"members": members})
        return ok({"errorMessages": ["no change"]}, 400)

    table = table_with("add_user_to_group", already=[400], confirm=True)
    directory, _, _ = connect(handler, table)
    with pytest.raises(UnexpectedResponse, match="'bob' is not in 'IUM_Enabled'"):
        directory.add_user_to_group("bob", "IUM_Enabled")
    members.append("BOB")
    directory.add_user_to_group("bob", "IUM_Enabled")


def test_confirming_a_removal_of_a_user_who_does_not_exist_is_done() -> None:
    table = table_with("remove_user_from_group", already=[404], confirm=True)
    table["operations"]["groups_of"] = {
        "url": "/user/{user}/groups",
        "groups": "$[*]",
        "not_found": "user",
        "paging": {"style": "none"},
    }
    directory, server, _ = connect(lambda r: ok({"message": "no such user"}, 404), table)
    directory.remove_user_from_group("ghost", "IUM_Enabled")
    assert [r.method for r in server.requests] == ["DELETE", "GET"]
    table["operations"]["add_user_to_group"] |= {"already": [404], "confirm": True}
    directory, _, _ = connect(lambda r: ok({"message": "no such user"}, 404), table)
    with pytest.raises(UserNotFound):
        directory.add_user_to_group("ghost", "IUM_Enabled")


def test_404_means_what_the_template_says() -> None:
    directory, _, _ = connect(lambda r: ok({"message": "no such group"}, 404))
    with pytest.raises(GroupNotFound, match="custom REST `group_members`"):
        directory.group_members("nope")
    table = table_with("remove_user_from_group", not_found="user")
    directory, _, _ = connect(lambda r: ok({}, 404), table)
    with pytest.raises(UserNotFound):
        directory.remove_user_from_group("ghost", "g")


def test_429_is_retried_after_retry_after_through_the_shared_layer() -> None:
    replies = [ok({}, 429, retry_after="7"), ok({"tier": 500, "licensed": 12})]
    directory, server, sleeps = connect(lambda r: replies.pop(0))
    assert directory.licence() == Licence(tier=500, licensed=12)
    assert sleeps == [7.0]
    assert len(server.requests) == 2


def test_failures_keep_their_kind_and_name_the_operation() -> None:
    directory, _, _ = connect(lambda r: ok({}, 429, retry_after="1"))
    with pytest.raises(RateLimited) as limited:
        directory.licence()
    assert isinstance(limited.value, DirectoryUnavailable)
    assert "custom REST `licence`" in str(limited.value)
    directory, _, _ = connect(lambda r: ok({}, 503))
    with pytest.raises(Unavailable):
        directory.remove_user_from_group("bob", "g")
    directory, _, _ = connect(lambda r: ok({}, 401))
    with pytest.raises(NotPermitted):
        directory.add_user_to_group("bob", "g")


def test_an_operation_without_a_template_names_it() -> None:
    directory, server, _ = connect(lambda r: ok({}))
    with pytest.raises(TemplateMissing, match=r"`find_user`.*operations\.find_user"):
        directory.find_user("bob")
    with pytest.raises(TemplateMissing, match="create_group"):
        directory.create_group("g")
    assert isinstance(TemplateMissing("x"), DirectoryError)
    with pytest.raises(ManualStepRequired) as manual:
        directory.grant_application_access("IUM_Enabled")
    assert "IUM_Enabled" in manual.value.steps[0]
    with pytest.raises(ManualStepRequired):
        directory.application_access()
    assert directory.licensed_users() is None
    assert server.requests == []


# -- reading answers with JSONPath ------------------------------------------------------------


def test_licence_from_an_application_role_and_from_two_endpoints() -> None:
    role = {"numberOfSeats": 500, "userCount": 499, "hasUnlimitedSeats": False}
    table = table_with(
        "licence",
        url="/rest/api/2/applicationrole/jira-software",
        tier="$.numberOfSeats",
        licensed="$.userCount",
        unlimited="$.hasUnlimitedSeats",
    )
    directory, _, _ = connect(lambda r: ok(role), table)
    assert directory.licence() == Licence(500, 499)
    directory, _, _ = connect(lambda r: ok({**role, "hasUnlimitedSeats": True}), table)
    assert directory.licence().tier == UNLIMITED_TIER

    counts = {
        "/jira/rest/license/1.0/license/maxUsers": "2000",
        "/jira/rest/license/1.0/license/userCount": 17,
    }
    table = table_with(
        "licence", url="/rest/license/1.0/license/maxUsers", tier="$.count", licensed=None
    )
    table["operations"]["licensed_count"] = {
        "url": "/rest/license/1.0/license/userCount",
        "licensed": "$.count",
    }
    directory, _, _ = connect(lambda r: ok({"count": counts[r.url.path]}), table)
    assert directory.licence() == Licence(2000, 17)


@pytest.mark.parametrize(
    ("answer", "fragment"),
    [
        ({"licensed": 3}, r"`tier` \(\$.tier\) matched nothing"),
        ({"tier": "lots", "licensed": 3}, "'lots', not a count"),
        ({"tier": True, "licensed": 3}, "True, not a count"),
        ({"tier": -1, "licensed": 3}, "-1, not a count"),
    ],
)
def test_a_licence_answer_of_the_wrong_shape_is_an_error(answer: object, fragment: str) -> None:
    directory, _, _ = connect(lambda r: ok(answer))
    with pytest.raises(UnexpectedResponse, match=fragment):
        directory.licence()


def test_an_answer_that_is_not_json_is_an_error() -> None:
    page = httpx.Response(200, text="<html>Log in</html>", headers={"content-type": "text/html"})
    directory, _, _ = connect(lambda r: page)
    with pytest.raises(UnexpectedResponse, match=r"not JSON \(text/html\)"):
        directory.group_members("g")


def test_members_that_are_not_names_are_an_error() -> None:
    directory, _, _ = connect(lambda r: ok({"members": ["a", {"name": "b"}]}))
    with pytest.raises(UnexpectedResponse, match="not a name"):
        directory.group_members("g")


def test_find_user_picks_the_item_with_that_name() -> None:
    table = table_with(
        "find_user",
        url="/rest/api/2/user/search?username={user}",
        item="$[*]",
        name="name",
        key="key",
        display_name="displayName",
        email="emailAddress",
        active="active",
    )
    found = [
        {"name": "bobby", "key": "JIRAUSER1", "displayName": "Bobby", "active": True},
        {
            "name": "Bob",
            "key": "JIRAUSER2",
            "displayName": "Bob B.",
            "emailAddress": "b@x",
            "active": False,
        },
    ]
    directory, _, _ = connect(lambda r: ok(found), table)
    assert directory.find_user("bob") == User("Bob", "JIRAUSER2", "Bob B.", "b@x", active=False)
    assert directory.find_user("alice") is None
    directory, _, _ = connect(lambda r: ok({"errorMessages": ["no user"]}, 404), table)
    assert directory.find_user("ghost") is None


def test_groups_of_is_derived_from_the_pool_groups_without_a_template() -> None:
    members = {"IUM_Enabled": ["Bob", "carol"], "IUM_Disabled": ["dave"], "admins": ["bob"]}

    def handler(request: httpx.Request) -> httpx.Response:
        group = unquote(request.url.raw_path.decode().rsplit("/", 1)[1])
        if group not in members:
            return ok({"message": "no such group"}, 404)
        return ok({"members": members[group]})

    directory, _, _ = connect(handler)
    assert directory.groups_of("bob") == frozenset({"IUM_Enabled"})
    assert directory.groups_of("dave") == frozenset({"IUM_Disabled"})
    table = minimal()
    table["derive_groups_of"] = ["admins", "missing"]
    directory, _, _ = connect(handler, table)
    assert directory.groups_of("BOB") == frozenset({"IUM_Enabled", "admins"})
    assert directory.memberships(["IUM_Enabled", "admins"]) == {
        "Bob": frozenset({"IUM_Enabled", "admins"}),
        "carol": frozenset({"IUM_Enabled"}),
    }


def test_groups_of_and_application_access_with_templates() -> None:
    table = minimal()
    table["operations"]["groups_of"] = {
        "url": "/rest/api/2/user?username={user}&expand=groups",
        "groups": "$.groups.items[*].name",
        "paging": {"style": "none"},
    }
    table["operations"]["application_access"] = {
        "url": "/rest/api/2/applicationrole/jira-software",
        "groups": "$.groups[*]",
        "default_groups": "$.defaultGroups[*]",
    }
    table["operations"]["info"] = {"url": "/rest/api/2/serverInfo", "version": "$.version"}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/user"):
            return ok(
                {"name": "bob", "groups": {"size": 2, "items": [{"name": "a"}, {"name": "b"}]}}
            )
        if request.url.path.endswith("/serverInfo"):
            return ok({"version": "9.12.2"})
        return ok({"groups": ["IUM_Enabled"], "defaultGroups": []})

    directory, _, _ = connect(handler, table)
    assert directory.groups_of("bob") == frozenset({"a", "b"})
    access = directory.application_access()
    assert access.groups == frozenset({"IUM_Enabled"}) and access.default_groups == frozenset()
    info = directory.info()
    assert (info.product, info.version, info.base_url) == ("custom", "9.12.2", BASE)


# -- the contract, against the simulator ------------------------------------------------------


@pytest.fixture(scope="module")
def jira_sim() -> Iterator[Any]:
    from simulator import running_simulator

    with running_simulator(product="jira", users=120, tier=200, active_people=False) as sim:
        yield sim


def docs_example(marker: str) -> str:
    """The TOML example of the docs that contains `marker`."""
    (block,) = [b for b in toml_blocks(DOCS.read_text(encoding="utf-8")) if marker in b]
    return block


def jira_directory(sim: Any) -> CustomRestDirectory:
    """The Jira example of the docs, verbatim, with the simulator's PAT."""
    templates = parse_toml(docs_example("/rest/api/2/group/member"))
    return CustomRestDirectory.connect(
        sim.base_url, PersonalAccessToken(sim.admin_token), templates
    )


def test_the_jira_example_lists_pages_and_reads_the_licence_of_the_simulator(jira_sim: Any) -> None:
    state = jira_sim.state()
    with jira_directory(jira_sim) as jira:
        members = jira.group_members("jira-software-users")
        assert len(members) > 100  # more than two of Jira's 50-user pages
        assert sorted(members) == sorted(state["groups"]["jira-software-users"])
        assert jira.licence() == Licence(tier=200, licensed=state["licensed"])
        info = jira.info()
        assert (info.product, info.version) == ("custom", state["version"])
        with pytest.raises(GroupNotFound):
            jira.group_members("no-such-group")
        assert jira.find_user("nobody-here") is None
        user = jira.find_user(members[0].upper())
        assert user is not None and user.name == members[0]


def test_the_jira_example_moves_users_between_the_pool_groups_of_the_simulator(
    jira_sim: Any,
) -> None:
    awkward = "o'brien/../x?y=1&z#ü"
    jira_sim.add_user(awkward)
    with jira_directory(jira_sim) as jira:
        assert jira.create_group("IUM_Enabled") is True
        assert jira.create_group("IUM_Enabled") is False
        assert jira.create_group("IUM_Disabled") is True
        user = jira_sim.users[3]
        for name in (user, awkward):
            jira.add_user_to_group(name, "IUM_Disabled")
            jira.add_user_to_group(name, "IUM_Disabled")  # already a member: done
            assert jira.groups_of(name) >= {"IUM_Disabled"}
        groups = jira_sim.state()["groups"]
        assert sorted(groups["IUM_Disabled"]) == sorted([user, awkward])
        assert sorted(jira.group_members("IUM_Disabled")) == sorted([user, awkward])

        jira.add_user_to_group(user, "IUM_Enabled")
        jira.remove_user_from_group(user, "IUM_Disabled")
        jira.remove_user_from_group(user, "IUM_Disabled")  # not a member any more: done
        jira.remove_user_from_group(awkward, "IUM_Disabled")
        groups = jira_sim.state()["groups"]
        assert groups["IUM_Enabled"] == [user] and groups["IUM_Disabled"] == []
        assert jira.memberships(["IUM_Enabled", "IUM_Disabled"]) == {
            user: frozenset({"IUM_Enabled"})
        }
        access = jira.application_access()
        assert "jira-software-users" in access.groups
    state = jira_sim.state()
    assert state["licence_violations"] == 0


def test_the_confluence_example_pages_by_next_links_and_moves_users_by_path() -> None:
    from simulator import running_simulator

    awkward = "o'brien ?&#ü%2F;x"
    with running_simulator(
        product="confluence", users=10, tier=30, member_page_cap=4, active_people=False
    ) as sim:
        sim.add_user(awkward)
        templates = parse_toml(docs_example("/rest/api/user/{user}/group/{group}"))
        with CustomRestDirectory.connect(sim.base_url, sim.admin_auth, templates) as wiki:
            state = sim.state()
            members = wiki.group_members("confluence-users")
            assert len(members) > 8  # three or more pages of 4
            assert sorted(members) == sorted(state["groups"]["confluence-users"])
            assert wiki.licence() == Licence(tier=30, licensed=state["licensed"])
            assert wiki.create_group("IUM_Enabled") is True
            for name in (awkward, sim.users[0]):
                wiki.add_user_to_group(name, "IUM_Enabled")
                wiki.add_user_to_group(name, "IUM_Enabled")
            assert sorted(sim.state()["groups"]["IUM_Enabled"]) == sorted([awkward, sim.users[0]])
            assert wiki.groups_of(awkward) == frozenset({"IUM_Enabled"})
            wiki.remove_user_from_group(awkward, "IUM_Enabled")
            wiki.remove_user_from_group(awkward, "IUM_Enabled")
            assert sim.state()["groups"]["IUM_Enabled"] == [sim.users[0]]
        assert sim.state()["licence_violations"] == 0
