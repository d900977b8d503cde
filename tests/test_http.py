from __future__ import annotations

import base64
import email.utils
import json
import logging
from collections.abc import Callable

import httpx
import pytest

from floatseat.directory.errors import (
    GroupNotFound,
    HttpDirectoryError,
    NotFound,
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
    Credentials,
    PersonalAccessToken,
    RetryPolicy,
    call_timeout,
    make_client,
)
from floatseat.service.bootstrap import connect_directory
from floatseat.service.errors import DirectoryError, DirectoryUnavailable
from floatseat.service.settings import load_settings

BASE = "https://wiki.example.com"
PASSWORD = "s3cret-Pa55word"
TOKEN = "NjQ5MzA2MjM3OTQ1OsecretTOKEN"
NOW = 1_780_000_000.0  # the injected wall clock
BEARER = PersonalAccessToken(TOKEN)

Reply = httpx.Response | Exception


class Server:
    """Scripted replies in order (the last one repeats), and the requests it saw."""

    def __init__(self, *replies: Reply) -> None:
        self.replies = list(replies)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        if isinstance(reply, Exception):
            raise reply
        return reply


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def connect(
    server: Server,
    *,
    auth: Credentials | tuple[str, str] = BEARER,
    policy: RetryPolicy | None = None,
    random: Callable[[], float] = lambda: 1.0,
) -> tuple[AtlassianHttp, list[float]]:
    sleeps: list[float] = []
    clock = Clock()

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock.now += seconds

    client = make_client(BASE, auth, transport=httpx.MockTransport(server))
    http = AtlassianHttp(
        client, policy=policy, sleep=sleep, random=random, clock=clock, wall_clock=lambda: NOW
    )
    return http, sleeps


def status(code: int, body: object = None, **headers: str) -> httpx.Response:
    fixed = {k.replace("_", "-"): v for k, v in headers.items()}
    if body is None:
        return httpx.Response(code, headers=fixed)
    return httpx.Response(code, json=body, headers=fixed)


def connection_refused() -> httpx.ConnectError:
    return httpx.ConnectError("[Errno 111] Connection refused")


# -- authentication and the client ---------------------------------------------------------


def test_basic_credentials_are_sent_as_a_basic_authorization_header() -> None:
    server = Server(status(200, {}))
    with connect(server, auth=("admin", PASSWORD))[0] as http:
        http.request("GET", "/rest/api/user", params={"username": "bob"})
    expected = base64.b64encode(f"admin:{PASSWORD}".encode()).decode()
    assert server.requests[0].headers["Authorization"] == f"Basic {expected}"
    assert str(server.requests[0].url) == f"{BASE}/rest/api/user?username=bob"


def test_a_personal_access_token_is_sent_as_a_bearer_header() -> None:
    server = Server(status(200, {}))
    with connect(server)[0] as http:
        http.request("GET", "/rest/api/2/myself")
    assert server.requests[0].headers["Authorization"] == f"Bearer {TOKEN}"
    assert server.requests[0].headers["Accept"] == "application/json"


def test_the_client_has_timeouts_and_follows_no_redirects() -> None:
    with make_client(BASE, PersonalAccessToken(TOKEN), timeout=7.0) as client:
        assert client.timeout == httpx.Timeout(7.0)
        assert client.follow_redirects is False


def test_credentials_in_the_base_url_are_refused_without_echoing_them() -> None:
    with pytest.raises(ValueError) as raised:
        make_client(f"https://admin:{PASSWORD}@wiki.example.com", ("admin", PASSWORD))
    assert PASSWORD not in str(raised.value)


def test_an_expected_status_other_than_200_is_returned() -> None:
    with connect(Server(status(204)))[0] as http:
        response = http.request("PUT", "/rest/api/user/bob/group/IUM_Enabled", expected=(204,))
    assert response.status_code == 204


# -- retries -------------------------------------------------------------------------------


def test_a_503_is_retried_and_the_success_returned() -> None:
    server = Server(status(503), status(200, {"ok": True}))
    http, sleeps = connect(server, random=lambda: 0.5)
    with http:
        assert http.request("GET", "/rest/api/group").json() == {"ok": True}
    assert len(server.requests) == 2
    assert sleeps == [0.25]  # half of the first step, 0.5 s


def test_the_backoff_doubles_under_full_jitter() -> None:
    server = Server(status(502), status(504), status(503), status(200, {}))
    http, sleeps = connect(server, random=lambda: 1.0)
    with http:
        http.request("GET", "/rest/api/group")
    assert sleeps == [0.5, 1.0, 2.0]


def test_retry_after_in_seconds_is_honoured() -> None:
    server = Server(status(429, retry_after="7"), status(200, {}))
    http, sleeps = connect(server)
    with http:
        http.request("GET", "/rest/api/group")
    assert sleeps == [7.0]


def test_retry_after_as_an_http_date_is_honoured() -> None:
    date = email.utils.formatdate(NOW + 12, usegmt=True)
    server = Server(status(503, retry_after=date), status(200, {}))
    http, sleeps = connect(server)
    with http:
        http.request("GET", "/rest/api/group")
    assert sleeps == [12.0]


def test_a_429_with_an_empty_bucket_waits_the_rate_limit_interval() -> None:
    limited = status(
        429,
        retry_after="0",
        x_ratelimit_remaining="0",
        x_ratelimit_interval_seconds="5",
        x_ratelimit_fillrate="1",
    )
    server = Server(limited, status(200, {}))
    http, sleeps = connect(server)
    with http:
        http.request("GET", "/rest/api/group")
    assert sleeps == [5.0]


def test_a_success_that_empties_the_bucket_holds_the_next_call_back() -> None:
    emptied = status(200, {}, x_ratelimit_remaining="0", retry_after="3")
    server = Server(emptied, status(200, {}))
    http, sleeps = connect(server)
    with http:
        http.request("GET", "/rest/api/group")
        assert sleeps == []
        http.request("GET", "/rest/api/group")
    assert sleeps == [3.0]
    assert len(server.requests) == 2


def test_a_refused_connection_is_retried() -> None:
    server = Server(connection_refused(), status(200, {}))
    http, sleeps = connect(server)
    with http:
        http.request("GET", "/rest/api/group")
    assert len(server.requests) == 2
    assert sleeps == [0.5]


# -- giving up -----------------------------------------------------------------------------


def test_gives_up_after_the_last_attempt_as_rate_limited_with_the_retry_after() -> None:
    server = Server(status(429, {"message": "Rate limit exceeded"}, retry_after="2"))
    http, sleeps = connect(server, policy=RetryPolicy(attempts=3))
    with http, pytest.raises(RateLimited) as raised:
        http.request("GET", "/rest/api/group")
    assert len(server.requests) == 3
    assert sleeps == [2.0, 2.0]
    assert raised.value.retry_after_s == 2
    assert raised.value.status == 429
    assert "Rate limit exceeded" in str(raised.value)
    assert isinstance(raised.value, DirectoryUnavailable)


def test_gives_up_as_unavailable_when_the_server_stays_down() -> None:
    server = Server(status(503, {"message": "Confluence is starting up"}))
    http, sleeps = connect(server, policy=RetryPolicy(attempts=4))
    with http, pytest.raises(Unavailable) as raised:
        http.request("GET", "/rest/api/group")
    assert len(server.requests) == 4
    assert len(sleeps) == 3
    assert raised.value.retry_after_s is None
    assert "503" in str(raised.value)
    assert "Confluence is starting up" in str(raised.value)
    assert isinstance(raised.value, DirectoryUnavailable)


def test_gives_up_as_unavailable_when_timeouts_persist() -> None:
    server = Server(httpx.ReadTimeout("timed out"))
    http, _ = connect(server, policy=RetryPolicy(attempts=2))
    with http, pytest.raises(Unavailable, match="could not be reached"):
        http.request("GET", "/rest/api/group")
    assert len(server.requests) == 2


def test_a_retry_after_beyond_the_cap_is_left_to_the_outbox() -> None:
    server = Server(status(429, retry_after="3600"))
    http, sleeps = connect(server)
    with http, pytest.raises(RateLimited) as raised:
        http.request("GET", "/rest/api/group")
    assert len(server.requests) == 1
    assert sleeps == []
    assert raised.value.retry_after_s == 3600


def test_the_total_wait_is_bounded() -> None:
    server = Server(status(503, retry_after="3"))
    http, sleeps = connect(server, policy=RetryPolicy(attempts=10, max_total_wait_s=7))
    with http, pytest.raises(Unavailable) as raised:
        http.request("GET", "/rest/api/group")
    assert sleeps == [3.0, 3.0]
    assert raised.value.retry_after_s == 3


# -- mapping -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("not_found", "body"),
    [
        (UserNotFound, {"errorMessages": ["The user named 'ghost' does not exist"]}),
        (GroupNotFound, {"statusCode": 404, "message": "Group not found: IUM_Gone"}),
        (NotFound, {"reason": "USER_NOT_FOUND", "message": "User <ghost> does not exist"}),
    ],
)
def test_a_404_is_the_not_found_the_caller_names(
    not_found: type[NotFound], body: dict[str, object]
) -> None:
    server = Server(status(404, body))
    http, sleeps = connect(server)
    with http, pytest.raises(not_found) as raised:
        http.request("GET", "/rest/api/user/ghost/group/IUM_Gone", not_found=not_found)
    assert type(raised.value) is not_found
    assert raised.value.server_message in str(raised.value)
    assert raised.value.server_message
    assert len(server.requests) == 1
    assert sleeps == []


@pytest.mark.parametrize("code", [401, 403])
def test_401_and_403_are_not_permitted_and_not_retried(code: int) -> None:
    refused = status(
        code,
        {"message": "User is not an administrator"},
        x_seraph_loginreason="AUTHENTICATED_FAILED",
    )
    server = Server(refused)
    http, sleeps = connect(server)
    with http, pytest.raises(NotPermitted) as raised:
        http.request("POST", "/rest/api/admin/group", json={"name": "IUM_Enabled"})
    assert raised.value.status == code
    assert "User is not an administrator" in str(raised.value)
    assert "AUTHENTICATED_FAILED" in str(raised.value)
    assert not isinstance(raised.value, DirectoryUnavailable)
    assert len(server.requests) == 1


JIRA_READ_ONLY = (
    "You cannot add user 'bob' to group 'IUM_Enabled'. The user's directory is read only."
)


@pytest.mark.parametrize(
    ("code", "body"),
    [
        (400, {"errorMessages": [JIRA_READ_ONLY], "errors": {}}),
        (403, {"statusCode": 403, "message": JIRA_READ_ONLY}),
        (500, {"errorMessages": [], "errors": {"groupname": JIRA_READ_ONLY}}),
    ],
)
def test_a_read_only_directory_keeps_the_servers_text(code: int, body: dict[str, object]) -> None:
    server = Server(status(code, body))
    http, _ = connect(server)
    with http, pytest.raises(ReadOnlyDirectory) as raised:
        http.request("POST", "/rest/api/2/group/user", params={"groupname": "IUM_Enabled"})
    assert JIRA_READ_ONLY in str(raised.value)
    assert JIRA_READ_ONLY in raised.value.server_message
    assert len(server.requests) == 1


def test_a_400_is_not_retried() -> None:
    server = Server(status(400, {"errorMessages": ["Cannot add user. 'bob' is already a member"]}))
    http, sleeps = connect(server)
    with http, pytest.raises(UnexpectedResponse, match="already a member") as raised:
        http.request("POST", "/rest/api/2/group/user", json={"name": "bob"}, expected=(201,))
    assert raised.value.status == 400
    assert len(server.requests) == 1
    assert sleeps == []


def test_an_html_error_page_is_kept_as_text() -> None:
    server = Server(httpx.Response(400, text="<html>\n  <body>Bad   request</body></html>"))
    with connect(server)[0] as http, pytest.raises(UnexpectedResponse) as raised:
        http.request("GET", "/rest/api/group")
    assert raised.value.server_message == "<html> <body>Bad request</body></html>"


def test_every_error_is_a_directory_error_and_only_transient_ones_are_unavailable() -> None:
    for kind in (ReadOnlyDirectory, UserNotFound, GroupNotFound, NotPermitted, UnexpectedResponse):
        assert issubclass(kind, DirectoryError)
        assert not issubclass(kind, DirectoryUnavailable)
    for transient in (RateLimited, Unavailable):
        assert issubclass(transient, DirectoryUnavailable)


# -- credentials ---------------------------------------------------------------------------


def echo_credentials(request: httpx.Request) -> httpx.Response:
    """A careless server that puts the Authorization header into its error text."""
    said = request.headers["Authorization"]
    if request.url.path == "/down":
        return httpx.Response(503, json={"message": f"overloaded for {said}"})
    return httpx.Response(400, json={"errorMessages": [f"bad request from {said}"]})


@pytest.mark.parametrize(
    ("auth", "secrets"),
    [
        (
            BasicCredentials("admin", PASSWORD),
            [PASSWORD, base64.b64encode(f"admin:{PASSWORD}".encode()).decode()],
        ),
        (PersonalAccessToken(TOKEN), [TOKEN]),
    ],
)
def test_credentials_appear_in_no_error_repr_or_log(
    auth: Credentials, secrets: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = make_client(BASE, auth, transport=httpx.MockTransport(echo_credentials))
    seen: list[str] = [repr(auth), repr(client.auth)]
    with AtlassianHttp(client, policy=RetryPolicy(attempts=2), sleep=lambda _: None) as http:
        seen.append(repr(http))
        seen.append(str(http))
        for path in ("/down", "/bad"):
            with pytest.raises(HttpDirectoryError) as raised:
                http.request("GET", path)
            seen += [str(raised.value), repr(raised.value), raised.value.server_message]
    assert "***" in seen[-1]
    seen.append(caplog.text)
    seen.append(json.dumps([r.getMessage() for r in caplog.records]))
    for secret in secrets:
        for text in seen:
            assert secret not in text


def test_per_call_headers_go_with_that_call_and_every_retry_only() -> None:
    server = Server(status(503), status(200, {}), status(200, {}))
    http, _ = connect(server)
    with http:
        http.request("PUT", "/rest/api/2/applicationrole/x", headers={"If-Match": '"abc"'})
        http.request("GET", "/rest/api/2/applicationrole/x")
    assert [r.headers.get("If-Match") for r in server.requests] == ['"abc"', '"abc"', None]
    assert all(r.headers["Authorization"] == f"Bearer {TOKEN}" for r in server.requests)


def test_per_call_headers_cannot_replace_the_credentials() -> None:
    http, _ = connect(Server(status(200, {})))
    with http, pytest.raises(ValueError, match="credentials"):
        http.request("GET", "/x", headers={"authorization": "Basic eDp5"})


def test_scrub_masks_every_credential_the_client_sends() -> None:
    http, _ = connect(Server(status(200, {})), auth=("admin", PASSWORD))
    with http:
        assert http.scrub(f"echo: {PASSWORD}!") == "echo: ***!"


@pytest.mark.parametrize("product", ["confluence", "jira"])
def test_a_directory_call_is_on_the_wire_before_a_new_leaders_grace_ends(product: str) -> None:
    # The fence is checked before an attempt; the request must leave (a pool slot, the
    # connection, the body) within the directory timeout, which the takeover grace exceeds.
    settings = load_settings(
        None,
        product=product,
        base_url="https://atlassian.example.com",
        username="floatseat",
        password="secret",
        directory_timeout_s=12,
    )
    directory = connect_directory(settings)
    try:
        timeout = directory.http.client.timeout  # type: ignore[attr-defined]
    finally:
        directory.close()  # type: ignore[attr-defined]
    assert timeout == call_timeout(12)
    # A pool slot, the TCP connect and the TLS handshake, the headers and the body.
    assert timeout.pool + 2 * timeout.connect + 2 * timeout.write <= 12 < settings.takeover_grace_s
    assert timeout.read == 12
