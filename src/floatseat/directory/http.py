"""One HTTP layer under the Confluence, Jira and Crowd clients.

`make_client` builds a pooled `httpx.Client` with timeouts and the credentials (Basic, or a
personal access token sent as `Authorization: Bearer`). `AtlassianHttp` wraps such a client:

    with AtlassianHttp(make_client("https://wiki.example.com", PersonalAccessToken(t))) as http:
        page = http.request("GET", "/rest/api/group/IUM_Enabled/member", params={"limit": 200})

It retries 429/502/503/504, refused connections and timeouts with exponential backoff and
full jitter, honouring `Retry-After` (seconds or an HTTP date) and the DC rate limiter's
`X-RateLimit-*` headers, within a bounded number of attempts and a bounded total wait. It
maps every failure into `floatseat.directory.errors`, with the server's own text and without
any credential. The sleep, the random source and the clocks are injected, so tests never
sleep.
"""

from __future__ import annotations

import base64
import email.utils
import logging
import math
import random as _random
import re
import time
from collections.abc import Callable, Generator, Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import httpx

from floatseat.directory.errors import (
    HttpDirectoryError,
    NotFound,
    NotPermitted,
    RateLimited,
    ReadOnlyDirectory,
    Unavailable,
    UnexpectedResponse,
)

__all__ = [
    "DEFAULT_LIMITS",
    "DEFAULT_TIMEOUT",
    "AtlassianHttp",
    "BasicCredentials",
    "Credentials",
    "HttpConnector",
    "PersonalAccessToken",
    "RetryPolicy",
    "make_client",
    "open_http",
    "segment",
]

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)


def call_timeout(seconds: float) -> httpx.Timeout:
    """Timeouts for directory calls of at most `seconds`: the request is on the wire within
    that time, and its answer is awaited as long. So a call that passed the leader's fence is
    sent before a new leader's takeover grace (longer than `seconds`) is over.

    httpcore applies each timeout per operation: `connect` to the TCP connect and again to
    the TLS handshake, `write` to the headers and again to the body (a directory call's body
    is one small write). Waiting for a pool slot, two connects and two writes: a fifth each.
    (The name lookup has no timeout of its own; docs/operations.md says so.)"""
    part = seconds / 5
    return httpx.Timeout(seconds, connect=part, write=part, pool=part)


DEFAULT_LIMITS = httpx.Limits(max_connections=10, max_keepalive_connections=5)

RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})
_READ_ONLY = re.compile(r"\bread[- ]?only\b", re.IGNORECASE)
_MAX_SERVER_TEXT = 500
_SCRUBBED = "***"


@dataclass(frozen=True)
class BasicCredentials:
    """A user name and password, sent as HTTP Basic. The password never shows in a repr."""

    user: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class PersonalAccessToken:
    """A personal access token (Confluence 7.9+, Jira 8.14+), sent as `Bearer`."""

    token: str = field(repr=False)

    def __repr__(self) -> str:
        return "PersonalAccessToken(token=***)"


Credentials = BasicCredentials | PersonalAccessToken


class _CredentialsAuth(httpx.Auth):
    """Adds the Authorization header to each request; knows which strings to scrub."""

    def __init__(self, credentials: Credentials) -> None:
        self.credentials = credentials
        if isinstance(credentials, BasicCredentials):
            pair = f"{credentials.user}:{credentials.password}".encode()
            encoded = base64.b64encode(pair).decode("ascii")
            self._header = f"Basic {encoded}"
            self.secrets: tuple[str, ...] = (credentials.password, encoded)
        else:
            self._header = f"Bearer {credentials.token}"
            self.secrets = (credentials.token,)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._header
        yield request

    def __repr__(self) -> str:
        return f"_CredentialsAuth({self.credentials!r})"


def make_client(
    base_url: str,
    auth: Credentials | tuple[str, str],
    *,
    timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
    limits: httpx.Limits = DEFAULT_LIMITS,
    transport: httpx.BaseTransport | None = None,
) -> httpx.Client:
    """A pooled client for one Atlassian instance, authenticated with `auth`.

    `auth` is `BasicCredentials`, a `(user, password)` pair, or a `PersonalAccessToken`.
    Credentials go in `auth`, never in the URL. `transport` replaces the network (tests pass
    an `httpx.MockTransport`).
    """
    url = httpx.URL(base_url)
    if url.userinfo:
        raise ValueError("put the credentials in `auth`, not in the base URL")
    credentials = BasicCredentials(*auth) if isinstance(auth, tuple) else auth
    return httpx.Client(
        base_url=url,
        auth=_CredentialsAuth(credentials),
        timeout=timeout,
        limits=limits,
        transport=transport,
        follow_redirects=False,  # a redirect is a login page, not an answer
        headers={"Accept": "application/json", "X-Atlassian-Token": "no-check"},
    )


@dataclass(frozen=True)
class RetryPolicy:
    """How hard `AtlassianHttp` tries before it raises.

    Attempt n (from 1) that fails waits `random() * min(cap_s, base_s * 2 ** (n - 1))` (full
    jitter), or what the server asked for when it said so. The call gives up after `attempts`
    attempts, or as soon as the next wait would push the total past `max_total_wait_s`. A
    server that asks for more than `cap_s` gets no retry here: the error carries its wait as
    `retry_after_s`, and the outbox schedules the move that much later.
    """

    attempts: int = 5
    base_s: float = 0.5
    cap_s: float = 30.0
    max_total_wait_s: float = 60.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")

    def backoff(self, failures: int, random: Callable[[], float]) -> float:
        """The jittered wait after the `failures`-th failure."""
        return random() * min(self.cap_s, self.base_s * 2.0 ** (failures - 1))


class _Closing:
    """`with` support for an object that holds a connection pool: `close()` on the way out."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AtlassianHttp(_Closing):
    """Requests to one Atlassian instance, with retries and errors mapped to `DirectoryError`.

    Parameters:
    - `client`: an `httpx.Client`, usually from `make_client`; closed with this object.
    - `policy`: the `RetryPolicy`.
    - `sleep`, `random`: `time.sleep` and `random.random` unless a test injects its own.
    - `clock`: monotonic seconds, to know how long ago the rate limiter said "no tokens".
    - `wall_clock`: Unix seconds, to turn a `Retry-After` HTTP date into a delay.

    `fence`, called with the call's method and path before every attempt, may raise to stop
    the call before anything is sent (a deposed leader's retries, see store/leadership.py).
    """

    def __init__(
        self,
        client: httpx.Client,
        *,
        policy: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        random: Callable[[], float] = _random.random,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.policy = policy or RetryPolicy()
        self._sleep = sleep
        self._random = random
        self._clock = clock
        self._wall_clock = wall_clock
        auth = client.auth
        self._secrets = auth.secrets if isinstance(auth, _CredentialsAuth) else ()
        self._not_before: float | None = None  # the rate limiter's bucket is empty until then
        self.fence: Callable[[str], None] = _unfenced

    def __repr__(self) -> str:
        auth = self.client.auth
        shown = repr(auth.credentials) if isinstance(auth, _CredentialsAuth) else "None"
        return f"AtlassianHttp(base_url={str(self.client.base_url)!r}, auth={shown})"

    def close(self) -> None:
        self.client.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int | bool] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        expected: Iterable[int] = (200,),
        not_found: type[NotFound] = NotFound,
    ) -> httpx.Response:
        """Send one call, retrying transient failures; the response when its status is expected.

        `not_found` is the error a 404 means here (`UserNotFound`, `GroupNotFound`); the
        caller knows which name in the path can be missing. `headers` go with this call only
        (an `If-Match`, a custom template's headers); they cannot replace the credentials.

        Raises a `DirectoryError` subclass from `floatseat.directory.errors` otherwise.
        """
        if headers and any(name.lower() == "authorization" for name in headers):
            raise ValueError("credentials go in the client's auth, not in per-call headers")
        accepted = frozenset(expected)
        what = f"{method.upper()} {path}"
        waited = 0.0
        failure: HttpDirectoryError
        hint: float | None
        for attempt in range(1, self.policy.attempts + 1):
            waited += self._wait_for_rate_limiter(waited)
            self.fence(what)
            try:
                response = self.client.request(
                    method, path, params=params, json=json, headers=headers
                )
            except httpx.TransportError as error:  # refused, reset, timed out
                reason = self._scrub(f"{type(error).__name__}: {error}")
                failure = Unavailable(f"{what}: the server could not be reached ({reason})")
                hint = None
            else:
                self._note_rate_limit(response)
                if response.status_code in accepted:
                    return response
                failure = self._error_for(what, response, not_found)
                if response.status_code not in RETRYABLE_STATUSES or isinstance(
                    failure, ReadOnlyDirectory
                ):
                    raise failure
                hint = self._server_delay(response)
            if attempt == self.policy.attempts:
                raise self._given_up(failure, attempt, hint)
            delay = hint if hint is not None else self.policy.backoff(attempt, self._random)
            if delay > self.policy.cap_s or waited + delay > self.policy.max_total_wait_s:
                raise self._given_up(failure, attempt, hint)
            log.warning(
                "%s failed (%s), retrying in %.1f s (attempt %d of %d)",
                what,
                failure.status or "no response",
                delay,
                attempt + 1,
                self.policy.attempts,
            )
            self._sleep(delay)
            waited += delay
        raise AssertionError("unreachable")  # pragma: no cover

    # -- retries ----------------------------------------------------------------------------

    def _wait_for_rate_limiter(self, waited: float) -> float:
        """Sleep until the bucket the last response reported empty has a token again."""
        if self._not_before is None:
            return 0.0
        delay = self._not_before - self._clock()
        self._not_before = None
        if delay <= 0:
            return 0.0
        delay = min(delay, self.policy.cap_s, max(0.0, self.policy.max_total_wait_s - waited))
        log.info("rate limiter has no tokens left, waiting %.1f s", delay)
        self._sleep(delay)
        return delay

    def _note_rate_limit(self, response: httpx.Response) -> None:
        """`X-RateLimit-Remaining: 0` on an answered call: hold the next one back."""
        if (
            response.status_code == 429
            or _number(response.headers.get("x-ratelimit-remaining")) != 0
        ):
            return
        delay = self._server_delay(response)
        if delay:
            self._not_before = self._clock() + delay

    def _server_delay(self, response: httpx.Response) -> float | None:
        """The wait the server asked for: `Retry-After`, else the rate limiter's interval."""
        seconds = self._retry_after(response.headers.get("retry-after"))
        if seconds is not None and seconds > 0:
            return seconds
        if _number(response.headers.get("x-ratelimit-remaining")) == 0:
            interval = _number(response.headers.get("x-ratelimit-interval-seconds"))
            if interval is not None and interval > 0:
                return interval
        # "Retry-After: 0" on a 429 only means the bucket has tokens: back off as usual
        return 0.0 if seconds is not None and response.status_code != 429 else None

    def _retry_after(self, value: str | None) -> float | None:
        """`Retry-After` in seconds, from a number of seconds or an HTTP date."""
        if value is None:
            return None
        seconds = _number(value)
        if seconds is not None:
            return max(0.0, seconds)
        try:
            date = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if date.tzinfo is None:
            return None
        return max(0.0, date.timestamp() - self._wall_clock())

    def _given_up(
        self, failure: HttpDirectoryError, attempts: int, hint: float | None
    ) -> HttpDirectoryError:
        retry_after_s = math.ceil(hint) if hint is not None else None
        kind = RateLimited if failure.status == 429 else Unavailable
        return kind(
            f"{failure} (gave up after {attempts} attempt{'s' if attempts > 1 else ''})",
            status=failure.status,
            server_message=failure.server_message,
            retry_after_s=retry_after_s,
        )

    # -- errors -----------------------------------------------------------------------------

    def _error_for(
        self, what: str, response: httpx.Response, not_found: type[NotFound]
    ) -> HttpDirectoryError:
        status = response.status_code
        server = self._scrub(_server_text(response))
        message = f"{what}: {status} {response.reason_phrase}"
        if server:
            message += f": {server}"
        kind: type[HttpDirectoryError]
        if _READ_ONLY.search(server) and status not in RETRYABLE_STATUSES:
            kind = ReadOnlyDirectory
        elif status == 404:
            kind = not_found
        elif status in (401, 403):
            kind = NotPermitted
            reason = response.headers.get("x-seraph-loginreason")
            if reason:
                message += f" (X-Seraph-LoginReason: {self._scrub(reason)})"
        elif status == 429:
            kind = RateLimited
        elif status >= 500:
            kind = Unavailable
        else:
            kind = UnexpectedResponse
        return kind(message, status=status, server_message=server)

    def json_object(self, response: httpx.Response, what: str) -> dict[str, Any]:
        """The answer's JSON object; `UnexpectedResponse` quoting its (scrubbed) start if none."""
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            kind = response.headers.get("content-type", "no content type")
            start = self._scrub(" ".join(response.text.split()))[:200]
            raise UnexpectedResponse(
                f"{what}: expected a JSON object, got {kind}: {start!r}",
                status=response.status_code,
            )
        return body

    def scrub(self, text: str) -> str:
        """`text` with every credential this client sends replaced by `***`.

        For messages that quote a server's answer, which may echo what it was sent.
        """
        return self._scrub(text)

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            if secret:
                text = text.replace(secret, _SCRUBBED)
        return text


def open_http(
    base_url: str,
    credentials: Credentials | tuple[str, str],
    *,
    policy: RetryPolicy | None = None,
    timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
    transport: httpx.BaseTransport | None = None,
) -> AtlassianHttp:
    """`AtlassianHttp` on a new `make_client` pool: what every connector's `connect` opens."""
    client = make_client(base_url, credentials, timeout=timeout, transport=transport)
    return AtlassianHttp(client, policy=policy)


class HttpConnector(_Closing):
    """The base of the connectors that talk to one instance through `self.http`.

    A connector is a context manager that closes its `AtlassianHttp` (and so the connection
    pool) on the way out; `base_url` is the instance's URL as `ConnectionInfo` reports it.
    """

    http: AtlassianHttp

    def close(self) -> None:
        self.http.close()

    @property
    def base_url(self) -> str:
        return str(self.http.client.base_url).rstrip("/")


def _unfenced(_what: str) -> None:
    return None


def segment(value: str) -> str:
    """`value` as one URL path segment: every reserved, non-ASCII or `%` character escaped.

    A name can then never add a segment, a query or a fragment to the URL. "", "." and ".."
    are refused: they are dot segments, which clients and Tomcat remove (Tomcat decodes
    `%2E` before it normalises the path), so ".." would climb to another resource.
    """
    if value in ("", ".", ".."):
        raise HttpDirectoryError(f"{value!r} cannot be sent as a URL path segment")
    return quote(value, safe="")


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _server_text(response: httpx.Response) -> str:
    """The server's own words: Confluence's `message`, Jira's `errorMessages` and `errors`,
    Crowd's `reason`/`message`, else the start of the body."""
    try:
        body = response.json()
    except ValueError:
        body = None
    parts: list[str] = []
    if isinstance(body, dict):
        for key in ("message", "reason"):
            value = body.get(key)
            if isinstance(value, str) and value and value not in parts:
                parts.append(value)
        messages = body.get("errorMessages")
        if isinstance(messages, list):
            parts.extend(str(m) for m in messages if m)
        errors = body.get("errors")
        if isinstance(errors, dict):
            parts.extend(f"{k}: {v}" for k, v in errors.items())
    if parts:
        text = " ".join(parts)
    elif body is not None:
        text = str(body)
    else:
        text = " ".join(response.text.split())
    return text[:_MAX_SERVER_TEXT]
