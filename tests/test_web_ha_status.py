"""Which instance leads, as admins and monitoring see it: `/api/v1/status`'s role, instance,
leader and epoch, the dashboard's badge and the `floatseat_leader` / `floatseat_leadership_epoch`
gauges, for a solo instance, a leader, a leader still taking over and a follower.

The tests use `test_web_api`'s world (uvicorn, the real `Runtime` over a SQLite ledger, a
`FakeDirectory`) and give the runtime a `FakeLeadership` in the place of PostgreSQL's election.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from test_web_api import PASSWORD, World, build_world

from floatseat.service.bootstrap import Services
from floatseat.service.errors import Deposed
from floatseat.service.ports import LeaderInfo, Leadership
from floatseat.web.deps import WebContext
from floatseat.web.store import Role


@dataclass
class FakeLeadership:
    """This instance's part in an election that is decided by hand: whether it leads, whether
    its takeover grace is over, and what the ledger's `leadership` row says."""

    instance: str
    leader: str | None
    epoch: int
    is_leading: bool = False
    grace_over: bool = True
    takeover_grace_s: float = 5.0

    @property
    def leading(self) -> bool:
        return self.is_leading

    def acting(self) -> bool:
        return self.is_leading and self.grace_over

    def campaign(self) -> bool:
        return self.is_leading

    def begin_term(self) -> int:
        if not self.acting():
            raise Deposed(f"{self.instance} may not act")
        return self.epoch

    def check(self) -> None:
        if not self.is_leading:
            raise Deposed(f"{self.instance} does not lead")

    def release_in_flight(self) -> int:
        return 0

    def info(self) -> LeaderInfo | None:
        return LeaderInfo(self.epoch, self.leader, since=None, heartbeat_at=None)

    def resign(self, *, calls_over: bool = True) -> None:
        self.is_leading = False


def leader(grace_over: bool = True) -> FakeLeadership:
    return FakeLeadership("alpha", "alpha", 7, is_leading=True, grace_over=grace_over)


def follower(of: str | None = "alpha") -> FakeLeadership:
    return FakeLeadership("bravo", of, 7)


Serve = Callable[[Leadership | None], World]


@pytest.fixture
def serve(tmp_path: Path, opened: list[Services]) -> Iterator[Serve]:
    """Starts the test's world, its runtime with `leadership` (None: solo, as on SQLite)."""
    started: list[World] = []

    def start(leadership: Leadership | None) -> World:
        world = build_world(tmp_path, opened)
        if leadership is not None:
            world.runtime.leadership = leadership
        started.append(world)
        return world

    yield start
    for world in started:
        world.server.stop()


def status(world: World) -> dict[str, Any]:
    with world.bearer(Role.READ_ONLY) as c:
        reply = c.get("/api/v1/status")
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    return body


def badge(world: World) -> str | None:
    """The dashboard header's instance badge, as text; None if the page has none."""
    with world.bearer(Role.READ_ONLY) as c:
        reply = c.get("/")
    assert reply.status_code == 200, reply.text
    match = re.search(
        r'<span class="instance[^"]*" id="instance-role"[^>]*>(.*?)</span>', reply.text
    )
    return None if match is None else html.unescape(match.group(1))


def gauges(world: World) -> dict[str, float]:
    """`floatseat_leader` (with its labels) and `floatseat_leadership_epoch` samples."""
    with world.client() as c:
        text = c.get("/metrics").text
    return {
        name: float(value)
        for name, value in re.findall(
            r"^(floatseat_leader(?:ship_epoch)?(?:\{[^}]*\})?) (\S+)$", text, re.MULTILINE
        )
    }


# -- each role -----------------------------------------------------------------------------


def test_a_solo_instance_reports_solo_and_shows_no_badge(serve: Serve) -> None:
    world = serve(None)
    s = status(world)
    assert (s["role"], s["instance"], s["leader"], s["epoch"]) == ("solo", "solo", None, None)
    assert badge(world) is None
    assert gauges(world) == {
        'floatseat_leader{instance_name="solo"}': 1.0,
        "floatseat_leadership_epoch": 0.0,
    }


def test_the_leader_reports_itself_with_its_epoch(serve: Serve) -> None:
    world = serve(leader())
    s = status(world)
    assert (s["role"], s["instance"], s["leader"], s["epoch"]) == ("leader", "alpha", "alpha", 7)
    assert badge(world) == "alpha · leader (epoch 7)"
    assert gauges(world) == {
        'floatseat_leader{instance_name="alpha"}': 1.0,
        "floatseat_leadership_epoch": 7.0,
    }


def test_a_leader_within_its_takeover_grace_says_it_is_taking_over(serve: Serve) -> None:
    world = serve(leader(grace_over=False))
    s = status(world)
    assert (s["role"], s["instance"], s["leader"], s["epoch"]) == (
        "leader-taking-over",
        "alpha",
        "alpha",
        7,
    )
    assert badge(world) == (
        "alpha · taking over as leader (epoch 7): directory moves resume within seconds"
    )
    assert gauges(world) == {  # it leads: alerts on "nobody leads" must not fire
        'floatseat_leader{instance_name="alpha"}': 1.0,
        "floatseat_leadership_epoch": 7.0,
    }


def test_a_follower_names_the_leader(serve: Serve) -> None:
    world = serve(follower("alpha"))
    s = status(world)
    assert (s["role"], s["instance"], s["leader"], s["epoch"]) == ("follower", "bravo", "alpha", 7)
    assert badge(world) == "bravo · follower — leader: alpha (epoch 7)"
    assert gauges(world) == {
        'floatseat_leader{instance_name="bravo"}': 0.0,
        "floatseat_leadership_epoch": 7.0,
    }


def test_a_follower_says_when_nobody_leads(serve: Serve) -> None:
    world = serve(follower(None))
    s = status(world)
    assert (s["role"], s["leader"]) == ("follower", None)
    assert badge(world) == "bravo · follower — no leader at the moment (epoch 7)"
    assert gauges(world)['floatseat_leader{instance_name="bravo"}'] == 0.0


def test_instance_names_are_escaped_on_the_dashboard(serve: Serve) -> None:
    world = serve(follower("<b>alpha</b>"))
    with world.bearer(Role.READ_ONLY) as c:
        page = c.get("/").text
    assert "<b>alpha</b>" not in page and "&lt;b&gt;alpha&lt;/b&gt;" in page


# -- the reply stays backwards compatible ----------------------------------------------------

EARLIER_FIELDS = {
    "capacity",
    "seats_held",
    "queue_length",
    "pinned",
    "tier",
    "licensed",
    "licence_reported_at",
    "revokes_paused",
    "frozen",
    "shadow",
    "stalled_feeds",
    "feed_lag_s",
    "outbox_backlog",
    "directory_errors",
    "last_reconciliation",
    "drift_repairs",
    "warnings",
    "now",
}


def test_the_status_reply_only_adds_fields_and_documents_them(serve: Serve) -> None:
    world = serve(follower())
    assert set(status(world)) == EARLIER_FIELDS | {"role", "instance", "leader", "epoch"}
    with world.client() as c:
        schema = c.get("/openapi.json").json()
    fields = schema["components"]["schemas"]["StatusPublic"]["properties"]
    assert fields["role"]["enum"] == ["solo", "leader", "leader-taking-over", "follower"]
    for name in ("role", "instance", "leader", "epoch"):
        assert fields[name].get("description"), name


# -- the dashboard follows a change of leader without a reload --------------------------------


@pytest.mark.browser
def test_the_badge_follows_a_takeover_as_the_dashboard_polls(
    tmp_path: Path, opened: list[Services]
) -> None:
    from conftest import system_program
    from playwright.sync_api import sync_playwright
    from test_html_report import CHROMIUM_ARGS
    from test_web_browser import Watched, wait_until

    path = system_program("chromium", "headless browser for the dashboard test")
    leadership = FakeLeadership("bravo", "alpha", 7)
    world = build_world(tmp_path, opened, poll_interval_s=1)
    world.runtime.leadership = leadership
    world.admin_account()
    ctx: WebContext = world.app.state.floatseat
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
            watched = Watched(browser, world)
            page = watched.page
            try:
                page.goto(world.url + "/login")
                page.fill("input[name=username]", "root")
                page.fill("input[name=password]", PASSWORD)
                page.click("button[type=submit]")
                page.wait_for_url(world.url + "/")
                text = "document.getElementById('instance-role').textContent"
                assert page.evaluate(text) == "bravo · follower — leader: alpha (epoch 7)"

                # alpha dies; bravo wins epoch 8 and waits out its grace, then acts.
                leadership.leader, leadership.epoch = "bravo", 8
                leadership.is_leading, leadership.grace_over = True, False
                ctx.forget_status()
                taking_over = "bravo · taking over as leader (epoch 8): " + (
                    "directory moves resume within seconds"
                )
                wait_until(page, f"{text} === {taking_over!r}")
                leadership.grace_over = True
                ctx.forget_status()
                wait_until(page, f"{text} === 'bravo · leader (epoch 8)'")
                assert page.evaluate("document.getElementById('instance-role').className") == (
                    "instance role-leader"
                )
                watched.assert_clean()
            finally:
                watched.close()
                browser.close()
    finally:
        world.server.stop()
