"""The dashboard and the waiting room in headless Chromium (Debian's), over real HTTP.

An admin logs in and sees both charts drawn, pins a user and finds the audit entry, and a
queued user's waiting room sends them on the moment a seat is theirs. The browser must
report no error and fetch nothing from anywhere but the server.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_html_report import CANVAS_STATS, CHROMIUM_ARGS
from test_web_api import PASSWORD, World, build_world

from floatseat.analysis.html import ECHARTS_VERSION
from floatseat.domain.policy import Activity, AdminRevoke
from floatseat.service.bootstrap import Services
from floatseat.web.pages import CSP
from floatseat.web.security import make_waiting_room_link

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from conftest import system_program
    from playwright.sync_api import sync_playwright

    path = system_program("chromium", "headless browser for the dashboard test")
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def world(tmp_path: Path, opened: list[Services]) -> Iterator[World]:
    # The "product" is this server's /healthz, so the redirect stays on the machine.
    w = build_world(tmp_path, opened, tier=3, product_url="/healthz", poll_interval_s=1)
    w.admin_account()
    yield w
    w.server.stop()


def wait_until(page: Any, expression: str, timeout: int = 10_000) -> None:
    """Poll `expression` until it is true. (Playwright's wait_for_function evaluates strings
    in a way the page's CSP rightly forbids: no eval.)"""
    deadline = time.monotonic() + timeout / 1000
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"timed out waiting for {expression}"
        page.wait_for_timeout(100)


class Watched:
    """A browser page with everything it said and fetched."""

    def __init__(self, browser: Any, world: World) -> None:
        self.origin = world.url
        self.context = browser.new_context(viewport={"width": 1280, "height": 1000})
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))

    def assert_clean(self) -> None:
        assert self.errors == []
        outside = [u for u in self.requests if not u.startswith((self.origin + "/", "data:"))]
        assert outside == []

    def close(self) -> None:
        self.context.close()


def test_the_admin_sees_live_charts_pins_a_user_and_finds_the_audit_entry(
    browser: Any, world: World
) -> None:
    for user in ("ann", "bob"):
        world.runtime.submit(Activity(user, world.runtime.now()))
    watched = Watched(browser, world)
    page = watched.page
    try:
        response = page.goto(world.url + "/")
        assert response is not None and response.url.endswith("/login")
        page.fill("input[name=username]", "root")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(world.url + "/")
        wait_until(page, "document.body.dataset.chartsRendered === '2'", timeout=15_000)
        assert page.evaluate("echarts.version") == ECHARTS_VERSION
        seats, licence = page.evaluate(CANVAS_STATS, ["chart-seats", "chart-licence"])
        assert seats["width"] > 300 and seats["height"] > 200, seats
        assert seats["colours"] > 4 and seats["inked"] > 0.003, seats  # axes, lines, labels
        assert licence["width"] > 100 and licence["inked"] > 0.001, licence
        assert page.text_content("#fig-held") == "2"
        assert page.text_content("#fig-capacity") == "3"

        # Live: a third user takes a seat, and the page shows it without a reload.
        world.runtime.submit(Activity("carl", world.runtime.now()))
        wait_until(page, "document.getElementById('fig-held').textContent === '3'", timeout=10_000)
        wait_until(
            page,
            "[...document.querySelectorAll('#holders td')].some(td => td.textContent === 'carl')",
            timeout=10_000,
        )
        held = page.evaluate(
            "echarts.getInstanceByDom(document.getElementById('chart-seats'))"
            ".getOption().series[0].data.map(p => p[1])"
        )
        assert held[-1] == 3 and 2 in held, held

        page.fill("#form-pin input[name=user]", "dora")
        page.fill("#form-pin input[name=reason]", "runs the payroll")
        page.click("#form-pin button[type=submit]")
        page.wait_for_url(world.url + "/")
        assert "dora" in (page.text_content("#pins") or "")
        row = page.locator("#audit-log tr", has_text="admin-pin")
        assert row.count() == 1
        assert "dora" in row.inner_text() and "runs the payroll" in row.inner_text()
        assert "csrf" not in page.url
        dashboard = page.request.get(world.url + "/")
        assert dashboard.headers["content-security-policy"] == CSP
        watched.assert_clean()
    finally:
        watched.close()


def test_the_waiting_room_sends_the_user_on_once_a_seat_is_granted(
    browser: Any, world: World
) -> None:
    for user in ("ann", "bob", "carl"):
        world.runtime.submit(Activity(user, world.runtime.now()))
    link = make_waiting_room_link(world.settings, "dora", world.url)
    watched = Watched(browser, world)
    page = watched.page
    try:
        page.goto(link)
        assert page.text_content("#position") == "1"
        assert page.text_content("#who") == "dora"
        assert [w.user for w in world.runtime.state().waiters] == ["dora"]
        page.wait_for_timeout(1500)  # at least one poll while still waiting
        assert page.url == link
        world.runtime.submit(AdminRevoke(world.runtime.now(), "ann", "root", "make room"))
        page.wait_for_url(world.url + "/healthz", timeout=10_000)
        assert "ok" in (page.text_content("body") or "")
        watched.assert_clean()
    finally:
        watched.close()
