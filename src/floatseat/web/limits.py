"""Limits on requests: body sizes, and request rates on POST /api/v1/activity.

Bodies: an unauthenticated caller decides how big a body is; FastAPI reads a route's whole
body before its dependencies look at who is asking, and POST /api/v1/activity reads it to
check the signature. So every request is refused with 413 once its body passes the limit: at
once when `Content-Length` says so, or as soon as a chunked body has sent too much.

Rates: `TokenBucket` is the arithmetic (a pure value), `RateLimiter` keeps one per key in
bounded memory, and `ActivityLimits` is what the activity API asks: a budget per principal,
and a coarse one per client address for failed authentications.
"""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from floatseat.web.settings import WebSettings

__all__ = [
    "ACTIVITY_LIMIT",
    "BODY_LIMIT",
    "ActivityLimits",
    "BodyLimit",
    "Rate",
    "RateLimiter",
    "TokenBucket",
    "address_key",
    "retry_after",
]

BODY_LIMIT = 1024 * 1024  # bytes: the largest form is the policy, a few kilobytes
ACTIVITY_LIMIT = 16 * 1024  # bytes: a username, a time and a source


class BodyLimit:
    """ASGI middleware: at most `limit` bytes of body, or `limits[path]` for those paths."""

    def __init__(self, app: ASGIApp, limit: int, limits: Mapping[str, int] | None = None) -> None:
        self.app = app
        self.limit = limit
        self.limits = dict(limits or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.get(scope["path"], self.limit)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _too_large(limit)(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise HTTPException(413, f"the body is larger than {limit} bytes")
            return message

        await self.app(scope, counted, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _too_large(limit: int) -> JSONResponse:
    return JSONResponse(
        {"detail": f"the body is larger than {limit} bytes"},
        status_code=413,
        headers={"Connection": "close"},
    )


# -- request rates -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rate:
    """`per_s` requests a second sustained, and up to `burst` at once after a quiet spell."""

    per_s: float
    burst: int

    def __post_init__(self) -> None:
        if not self.per_s > 0 or self.burst < 1:
            raise ValueError(f"a rate needs per_s > 0 and burst >= 1, not {self}")

    @property
    def refill_s(self) -> float:
        """Seconds an empty bucket takes to fill up again."""
        return self.burst / self.per_s


@dataclass(frozen=True, slots=True)
class TokenBucket:
    """A token bucket as a value: `tokens` at monotonic time `at`, refilled at `rate.per_s`
    up to `rate.burst`; each request takes one. Pure: `take` returns the next bucket.

    >>> bucket = TokenBucket.full(Rate(per_s=2, burst=1), now=0.0)
    >>> bucket, wait = bucket.take(0.0)  # admitted: wait == 0.0
    >>> bucket.take(0.1)[1]  # refused: one token comes back 0.5 s after the first was taken
    0.4
    """

    rate: Rate
    tokens: float
    at: float

    @classmethod
    def full(cls, rate: Rate, now: float) -> TokenBucket:
        return cls(rate, float(rate.burst), now)

    def level(self, now: float) -> float:
        """The tokens there are at `now` (a clock that went back mints none)."""
        elapsed = max(0.0, now - self.at)
        return min(float(self.rate.burst), self.tokens + elapsed * self.rate.per_s)

    def take(self, now: float) -> tuple[TokenBucket, float]:
        """(the bucket after one request at `now`, 0.0 if it was admitted, else the seconds
        until it would be). A refused request takes nothing."""
        now = max(now, self.at)
        tokens = self.level(now)
        if tokens >= 1.0:
            return TokenBucket(self.rate, tokens - 1.0, now), 0.0
        return TokenBucket(self.rate, tokens, now), (1.0 - tokens) / self.rate.per_s


class RateLimiter:
    """A token bucket per key (thread-safe), forgetting buckets that have filled up again.

    A bucket left alone for `rate.refill_s` is full, the same as no bucket, so forgetting it
    changes nothing; memory then grows only with the keys seen within that time, and never
    past `max_keys` (beyond that the longest unused bucket goes first, which gives its key a
    full bucket back early: only an attacker with that many keys could notice).
    """

    def __init__(self, rate: Rate, *, max_keys: int = 10_000) -> None:
        self.rate = rate
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()  # least recently used first
        self._lock = threading.Lock()

    def take(self, key: str, now: float) -> float:
        """0.0: admitted, and counted; otherwise the seconds until `key` is admitted again."""
        with self._lock:
            self._forget(now)
            known = self._buckets.pop(key, None)
            bucket, wait = (known or TokenBucket.full(self.rate, now)).take(now)
            self._buckets[key] = bucket
            return wait

    def wait(self, key: str, now: float) -> float:
        """The seconds until `key` would be admitted; counts nothing."""
        with self._lock:
            known = self._buckets.get(key)
        if known is None or known.level(now) >= 1.0:
            return 0.0
        return (1.0 - known.level(now)) / self.rate.per_s

    def __len__(self) -> int:
        return len(self._buckets)

    def _forget(self, now: float) -> None:
        # Least recently used first, so the idle ones are at the front.
        while self._buckets:
            key, oldest = next(iter(self._buckets.items()))
            if now - oldest.at < self.rate.refill_s and len(self._buckets) < self.max_keys:
                return
            del self._buckets[key]


def retry_after(wait_s: float) -> int:
    """A `Retry-After` value: whole seconds, at least 1."""
    return max(1, math.ceil(wait_s))


def address_key(host: str | None) -> str:
    """The key of a client address for a per-address limit: an IPv6 address counts by its
    /64 (one subscriber's network hands out billions), anything else as it is."""
    if host is None:
        return "?"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host
    if ip.version == 6 and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


class ActivityLimits:
    """The request rates POST /api/v1/activity allows; `clock` is monotonic seconds.

    * Per principal, counted once the request is authenticated and before any work is done:
      the principal is the one accountable, and one reporter is one budget wherever its
      requests come from (a cluster's nodes behind one load balancer share an address, and
      one token spread over many addresses is still one token). A bearer token is keyed by
      its name (tokens sharing a name share a budget); every HMAC-signed report is "hmac".
      Counting after authentication means nobody can spend a reporter's budget for it.
    * Per client address, for failed authentications only: once an address has failed too
      often, its next requests are refused before the token lookup and the body's HMAC,
      which is what a flood of guesses costs us. A token verified lately still passes (it
      costs nothing to check), so a reporter behind the same proxy as a guesser keeps
      working. IPv6 addresses count by their /64.

    `None` for a rate: no such limit.
    """

    def __init__(
        self,
        per_principal: Rate | None,
        failed_auth: Rate | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 10_000,
    ) -> None:
        self.clock = clock
        self.principals = (
            None if per_principal is None else RateLimiter(per_principal, max_keys=max_keys)
        )
        self.failures = None if failed_auth is None else RateLimiter(failed_auth, max_keys=max_keys)

    @classmethod
    def from_settings(
        cls, settings: WebSettings, *, clock: Callable[[], float] = time.monotonic
    ) -> ActivityLimits:
        def rate(per_s: float, burst: int) -> Rate | None:
            return Rate(per_s, burst) if per_s > 0 else None

        return cls(
            rate(settings.activity_rate_per_s, settings.activity_burst),
            rate(settings.activity_auth_failures_per_s, settings.activity_auth_failure_burst),
            clock=clock,
        )

    def admit(self, principal: str) -> int:
        """0: `principal` may go on (and was counted); else the seconds to wait."""
        if self.principals is None:
            return 0
        wait = self.principals.take(principal, self.clock())
        return 0 if wait == 0.0 else retry_after(wait)

    def closed_to(self, address: str | None) -> int:
        """0: `address` may try to authenticate; else the seconds until it may."""
        if self.failures is None:
            return 0
        wait = self.failures.wait(address_key(address), self.clock())
        return 0 if wait == 0.0 else retry_after(wait)

    def failed(self, address: str | None) -> None:
        """`address` failed to authenticate."""
        if self.failures is not None:
            self.failures.take(address_key(address), self.clock())
