"""A scripted server for the recorded-response tests of the connectors (Jira, Crowd).

Each test lists the exact requests it expects, in order (method, and path plus query as sent
on the wire), with the reply to each; `Script` fails on anything else. `scripted_http` puts
an `AtlassianHttp` on it that retries without sleeping.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from floatseat.directory.http import AtlassianHttp, Credentials, RetryPolicy, make_client

Reply = httpx.Response | Exception


class Script:
    """The requests a test expects, in order, each with the reply the server sends."""

    def __init__(self, *steps: tuple[str, str, Reply]) -> None:
        self.steps = list(steps)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        sent = (request.method, request.url.raw_path.decode("ascii"))
        assert self.steps, f"unexpected request {sent}"
        method, target, reply = self.steps.pop(0)
        assert sent == (method, target)
        if isinstance(reply, Exception):
            raise reply
        return reply

    def done(self) -> bool:
        return not self.steps

    def body(self, index: int) -> Any:
        return json.loads(self.requests[index].content)


def reply(status: int, body: object = None, **headers: str) -> httpx.Response:
    """A JSON reply (none when `body` is None); `retry_after="3"` sends `retry-after: 3`."""
    fixed = {k.replace("_", "-"): v for k, v in headers.items()}
    if body is None:
        return httpx.Response(status, headers=fixed)
    return httpx.Response(status, json=body, headers=fixed)


def scripted_http(
    base_url: str,
    credentials: Credentials | tuple[str, str],
    server: Script,
    sleeps: list[float] | None = None,
) -> AtlassianHttp:
    """Three attempts, full-size backoff (random() is 1.0), and the waits kept in `sleeps`."""
    client = make_client(base_url, credentials, transport=httpx.MockTransport(server))
    return AtlassianHttp(
        client,
        policy=RetryPolicy(attempts=3),
        sleep=(sleeps.append if sleeps is not None else lambda _: None),
        random=lambda: 1.0,
    )
