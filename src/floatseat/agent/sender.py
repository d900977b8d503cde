"""Sending a batch to the service: POST /api/v1/agent/batches over HTTPS, with a bearer token.

`BatchSender.send` never raises for the network or the service: it answers what happened,

* `Delivered`: a 2xx, the batch is the service's (a `duplicate` too: it had it already);
* `Unavailable`: no connection, a timeout, a 5xx or a 429: the service will be back;
* `Refused`: any other answer (401, 403, 404, 422, a redirect): a configuration the
  service explains in `message`. The agent keeps the batch and retries all the same, so
  that a wrong token or URL costs a delay, never the activity.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from floatseat import __version__
from floatseat.agent.batches import parse_retry_after

__all__ = ["BATCHES_PATH", "BatchSender", "Delivered", "Outcome", "Refused", "Unavailable"]

BATCHES_PATH = "/api/v1/agent/batches"


@dataclass(frozen=True)
class Delivered:
    accepted: int
    duplicate: bool
    too_old: int = 0  # sightings the service left out: more than a week old
    ahead: int = 0  # sightings ahead of the service's clock, counted at its time


@dataclass(frozen=True)
class Unavailable:
    reason: str
    retry_after: float | None = None


@dataclass(frozen=True)
class Refused:
    status: int
    message: str
    retry_after: float | None = None


Outcome = Delivered | Unavailable | Refused


class BatchSender:
    """Sends batches to the floatseat service at `base_url` (its context path included)."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        ca_file: Path | None = None,
        transport: httpx.BaseTransport | None = None,
        timeout_s: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.url = base_url.rstrip("/") + BATCHES_PATH
        self._clock = clock
        verify: ssl.SSLContext | bool = True
        if ca_file is not None:
            verify = ssl.create_default_context(cafile=str(ca_file))
        self._client = httpx.Client(
            headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/json",
                "User-Agent": f"floatseat-agent/{__version__}",
            },
            timeout=httpx.Timeout(timeout_s, connect=5.0),
            verify=verify,
            transport=transport,
            follow_redirects=False,  # a redirect would drop the token or turn POST into GET
        )

    def close(self) -> None:
        self._client.close()

    def send(self, body: bytes) -> Outcome:
        try:
            reply = self._client.post(self.url, content=body)
        except httpx.TransportError as error:
            return Unavailable(_network_reason(error))
        return judge(reply.status_code, reply.headers, reply.content, self._clock())


def judge(status: int, headers: httpx.Headers, content: bytes, now: float) -> Outcome:
    """What an answer means for the batch."""
    retry_after = parse_retry_after(headers.get("retry-after"), now)
    if 200 <= status < 300:
        try:
            answer = httpx.Response(status, content=content).json()
            return Delivered(
                int(answer["accepted"]),
                bool(answer["duplicate"]),
                int(answer.get("too_old", 0)),
                int(answer.get("ahead", 0)),
            )
        except (ValueError, KeyError, TypeError):
            # A 2xx from something else (a captive proxy's page) must not delete the batch.
            return Refused(status, "a 2xx answer that is not floatseat's: check --to", None)
    if status == 429 or status >= 500:
        return Unavailable(f"HTTP {status}{_detail(content)}", retry_after)
    if 300 <= status < 400:
        where = headers.get("location", "?")
        return Refused(status, f"redirected to {where}: give that URL to --to", retry_after)
    return Refused(status, f"HTTP {status}{_detail(content)}", retry_after)


def _detail(content: bytes) -> str:
    """The service's `detail` (FastAPI's errors), else the start of the body."""
    try:
        detail = httpx.Response(200, content=content).json().get("detail")
    except (ValueError, AttributeError):
        detail = content[:200].decode("utf-8", "replace").strip()
    return f": {detail}" if detail else ""


def _network_reason(error: httpx.TransportError) -> str:
    text = str(error) or type(error).__name__
    if isinstance(error, httpx.TimeoutException):
        return f"timed out ({text})"
    return text
