"""Rate limits on POST /api/v1/activity over real HTTP: 429 with Retry-After per principal,
failed authentications per address, the metrics and the schema (the arithmetic is in
`test_rate_limits`).

The tests use `test_web_api`'s world (uvicorn, the real `Runtime` and ledger) and move the
limits' monotonic clock by hand: nothing sleeps.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_web_api import World, build_world, signed

from floatseat.service.bootstrap import Services
from floatseat.web.deps import WebContext
from floatseat.web.settings import WebSettings
from floatseat.web.store import Role

# -- over HTTP -----------------------------------------------------------------------------


class Now:
    """The limits' monotonic clock, moved by hand."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def now() -> Now:
    return Now()


def limited_world(tmp_path: Path, opened: list[Services], now: Now, **settings: Any) -> World:
    world = build_world(tmp_path, opened, **settings)
    ctx: WebContext = world.app.state.floatseat
    ctx.activity_limits.clock = now
    return world


@pytest.fixture
def world(tmp_path: Path, opened: list[Services], now: Now) -> Iterator[World]:
    w = limited_world(tmp_path, opened, now, activity_rate_per_s=1.0, activity_burst=5)
    yield w
    w.server.stop()


def report(c: httpx.Client, user: str = "ann", token: str | None = None) -> httpx.Response:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    return c.post("/api/v1/activity", json={"user": user}, headers=headers)


def test_a_token_past_its_burst_gets_429_while_another_is_served(world: World, now: Now) -> None:
    first, second = world.token(Role.REPORTER, "a"), world.token(Role.REPORTER, "b")
    with world.client() as c:
        assert [report(c, token=first).status_code for _ in range(5)] == [200] * 5
        refused = report(c, token=first)
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "1"
        assert refused.json() == {
            "detail": "too many activity reports from token:a-reporter; retry after 1 s"
        }
        assert report(c, token=second).status_code == 200
        now.t += 1.0  # one token back
        assert [report(c, token=first).status_code for _ in range(2)] == [200, 429]


def test_signed_reports_share_one_budget(world: World) -> None:
    with world.client() as c:
        codes = [
            c.post("/api/v1/activity", **signed({"user": f"u{i}"})).status_code for i in range(6)
        ]
        assert codes == [200] * 5 + [429]
        assert report(c, token=world.token(Role.REPORTER)).status_code == 200


def test_unauthenticated_requests_get_401_and_spend_no_reporters_budget(world: World) -> None:
    token = world.token(Role.REPORTER)
    with world.client() as c:
        for _ in range(20):
            assert report(c).status_code == 401
            assert report(c, token="nope").status_code == 401
            forged = signed({"user": "ann"}, key="x" * 40)
            assert c.post("/api/v1/activity", **forged).status_code == 401
        assert [report(c, token=token).status_code for _ in range(5)] == [200] * 5
        signed_codes = [
            c.post("/api/v1/activity", **signed({"user": f"u{i}"})).status_code for i in range(5)
        ]
        assert signed_codes == [200] * 5


def test_a_read_only_token_is_forbidden_not_throttled(world: World) -> None:
    token = world.token(Role.READ_ONLY)
    with world.client() as c:
        assert {report(c, token=token).status_code for _ in range(10)} == {403}


def test_an_address_that_keeps_failing_is_refused_before_its_credentials_are_checked(
    tmp_path: Path, opened: list[Services], now: Now
) -> None:
    world = limited_world(
        tmp_path,
        opened,
        now,
        activity_auth_failures_per_s=0.5,
        activity_auth_failure_burst=3,
    )
    try:
        token = world.token(Role.REPORTER)
        with world.client() as c:
            assert report(c, token=token).status_code == 200  # verified: cached for a while
            assert [report(c, token="nope").status_code for _ in range(3)] == [401] * 3
            closed = report(c, token="nope")
            assert closed.status_code == 429 and closed.headers["retry-after"] == "2"
            assert "failed authentications" in closed.json()["detail"]
            # Even a good signature waits (checking it is what a flood costs) ...
            assert c.post("/api/v1/activity", **signed({"user": "bob"})).status_code == 429
            # ... but a token verified lately costs nothing to check, and passes.
            assert report(c, token=token).status_code == 200
            now.t += 2.0
            assert report(c, token="nope").status_code == 401
            assert report(c, token="nope").status_code == 429
            text = c.get("/metrics").text
        assert 'floatseat_activity_throttled_total{reason="failed_auth"} 3.0' in text
    finally:
        world.server.stop()


def test_throttled_requests_are_counted_in_the_metrics(world: World) -> None:
    token = world.token(Role.REPORTER)
    with world.client() as c:
        before = c.get("/metrics").text
        for _ in range(8):
            report(c, token=token)
        after = c.get("/metrics").text
    assert 'floatseat_activity_throttled_total{reason="rate"} 0.0' in before
    assert 'floatseat_activity_throttled_total{reason="rate"} 3.0' in after
    assert 'floatseat_activity_throttled_total{reason="failed_auth"} 0.0' in after


def test_the_schema_documents_429_with_retry_after(world: World) -> None:
    with world.client() as c:
        schema = c.get("/openapi.json").json()
    responses = schema["paths"]["/api/v1/activity"]["post"]["responses"]
    assert {"200", "401", "422", "429"} <= set(responses)
    assert "Retry-After" in responses["429"]["headers"]


def test_every_web_setting_is_documented() -> None:
    text = (Path(__file__).parents[1] / "docs" / "web.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"`([a-z_]+)`", text))
    assert set(WebSettings.model_fields) <= documented
