"""The web side against an attacker: body sizes, password guessing, demo mode behind a proxy
or a rebound DNS name, logout, what errors and caches give away, and the API's pages.

Same world as `test_web_api`: uvicorn on a loopback port, the real `Runtime` and ledger.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from secrets import token_urlsafe

import httpx
import pytest
from pydantic import ValidationError
from test_web_api import PASSWORD, World, build_world, csrf_of, signed

from floatseat.service.bootstrap import Services
from floatseat.web.deps import WebContext
from floatseat.web.settings import WebSettings
from floatseat.web.store import Role


@pytest.fixture
def world(tmp_path: Path, opened: list[Services]) -> Iterator[World]:
    w = build_world(tmp_path, opened)
    yield w
    w.server.stop()


def ctx_of(world: World) -> WebContext:
    ctx: WebContext = world.app.state.floatseat
    return ctx


# -- request bodies ------------------------------------------------------------------------


def test_an_oversized_activity_body_is_refused_unread(world: World) -> None:
    huge = json.dumps({"user": "ann", "source": "x" * 100_000}).encode()
    with world.client() as c:
        reply = c.post(
            "/api/v1/activity", content=huge, headers={"Content-Type": "application/json"}
        )
        assert reply.status_code == 413
        # No Content-Length (chunked): counted as it arrives.
        chunks = (b"x" * 10_000 for _ in range(200))
        chunked = c.post(
            "/api/v1/activity", content=chunks, headers={"Content-Type": "application/json"}
        )
        assert chunked.status_code == 413
        # A signed report of ordinary size still passes.
        assert c.post("/api/v1/activity", **signed({"user": "ann"})).status_code == 200


def test_no_route_reads_a_body_of_megabytes(world: World) -> None:
    for path in ("/login", "/api/v1/policy", "/actions/policy"):
        # A fresh connection each: the server answers 413 before the body is read and may
        # close while the client still sends, which the client sees as a cut connection.
        with world.client() as c:
            try:
                reply = c.post(
                    path,
                    content=b"a=" + b"x" * 3_000_000,
                    headers={"Content-Type": "application/x-www-form-urlencoded"},
                )
            except (httpx.WriteError, httpx.RemoteProtocolError, httpx.ReadError):
                continue  # refused mid-send: not read either
            assert reply.status_code == 413, path


# -- password guessing ---------------------------------------------------------------------


def test_repeated_wrong_passwords_slow_the_username_down(world: World) -> None:
    world.admin_account()
    world.admin_account("other")
    ctx = ctx_of(world)
    now = [1000.0]
    ctx.login_throttle.clock = lambda: now[0]
    with world.client() as c:
        csrf = csrf_of(c.get("/login").text)

        def attempt(user: str, password: str) -> int:
            form = {"username": user, "password": password, "csrf_token": csrf}
            return c.post("/login", data=form).status_code

        for _ in range(5):
            assert attempt("root", "wrong password") == 401
        blocked = c.post(
            "/login", data={"username": "root", "password": PASSWORD, "csrf_token": csrf}
        )
        assert blocked.status_code == 429 and "Too many" in blocked.text
        assert int(blocked.headers["retry-after"]) >= 1
        assert attempt("ROOT", PASSWORD) == 429  # the name in any case
        now[0] += 3600
        assert attempt("root", PASSWORD) == 303  # the wait is over; success forgets it all
    with world.client() as c:
        csrf = csrf_of(c.get("/login").text)
        assert attempt("root", "wrong password") == 401


def test_many_names_from_one_address_slow_the_address_down(world: World) -> None:
    world.admin_account()
    ctx = ctx_of(world)
    now = [1000.0]
    ctx.login_throttle.clock = lambda: now[0]
    with world.client() as c:
        csrf = csrf_of(c.get("/login").text)
        codes = [
            c.post(
                "/login", data={"username": f"u{i}", "password": "x", "csrf_token": csrf}
            ).status_code
            for i in range(40)
        ]
        assert codes[0] == 401 and codes[-1] == 429
        form = {"username": "root", "password": PASSWORD, "csrf_token": csrf}
        assert c.post("/login", data=form).status_code == 429
        now[0] += 3600
        assert c.post("/login", data=form).status_code == 303


# -- demo mode -----------------------------------------------------------------------------


@pytest.fixture
def demo(tmp_path: Path, opened: list[Services]) -> Iterator[World]:
    w = build_world(tmp_path, opened, demo=True)
    yield w
    w.server.stop()


def test_demo_mode_admits_nobody_through_a_proxy(demo: World) -> None:
    with demo.client() as c:
        assert c.get("/").status_code == 200  # straight from loopback: the demo admin
        for header, value in (
            ("X-Forwarded-For", "127.0.0.1"),
            ("X-Forwarded-For", "203.0.113.9"),
            ("Forwarded", "for=127.0.0.1"),
            ("X-Real-IP", "127.0.0.1"),
            ("X-Forwarded-Host", "floatseat.example.com"),
        ):
            reply = c.get("/", headers={header: value})
            assert reply.status_code == 303, (header, value)
            assert c.get("/api/v1/status", headers={header: value}).status_code == 401


def test_demo_mode_admits_nobody_under_a_foreign_host_name(demo: World) -> None:
    """DNS rebinding: a web page whose name now points at 127.0.0.1 is not this machine."""
    with demo.client() as c:
        assert c.get("/", headers={"Host": "localhost"}).status_code == 200
        rebound = c.get("/", headers={"Host": "attacker.example:8080"})
        assert rebound.status_code == 303
        assert c.get("/api/v1/status", headers={"Host": "attacker.example"}).status_code == 401


# -- sessions ------------------------------------------------------------------------------


def test_logging_out_ends_copies_of_the_session_cookie(world: World) -> None:
    world.admin_account()
    client, csrf = world.logged_in()
    with closing(client):
        stolen = dict(client.cookies)
        assert client.post("/logout", data={"csrf_token": csrf}).status_code == 303
    with world.client(cookies=stolen) as thief:
        assert thief.get("/").status_code == 303
        assert thief.get("/api/v1/status").status_code == 401
    again, _ = world.logged_in()  # logging in again works
    with closing(again):
        assert again.get("/").status_code == 200


def test_the_flash_message_cannot_swell_the_cookie(world: World) -> None:
    world.admin_account()
    client, csrf = world.logged_in()
    with closing(client):
        reply = client.post(
            "/actions/pin", data={"user": "ann", "until": token_urlsafe(6000), "csrf_token": csrf}
        )
        assert reply.status_code in (303, 422)
        assert len(reply.headers.get("set-cookie", "")) < 2000
        assert client.get("/").status_code == 200  # still logged in


# -- what replies give away ----------------------------------------------------------------


def test_readyz_keeps_the_error_to_the_log(world: World) -> None:
    with world.runtime.ledger.engine.begin() as connection:
        connection.exec_driver_sql("DROP TABLE ledger_state")
    with world.client() as c:
        reply = c.get("/readyz")
    assert reply.status_code == 503
    assert reply.json() == {"status": "not ready"}


def test_api_replies_are_never_cached(world: World) -> None:
    with world.bearer(Role.ADMIN) as c:
        assert c.get("/api/v1/status").headers["cache-control"] == "no-store"
        made = c.post("/api/v1/tokens", json={"name": "x", "role": "reporter"})
        assert made.headers["cache-control"] == "no-store"


def test_the_api_pages_load_nothing_from_elsewhere(world: World) -> None:
    with world.client() as c:
        page = c.get("/docs")
        assert page.status_code == 200
        assert "://" not in page.text and "<script" not in page.text
        assert page.headers["content-security-policy"].startswith("default-src 'none'")
        assert "/api/v1/activity" in page.text and "/openapi.json" in page.text
        assert c.get("/docs/oauth2-redirect").status_code == 404


def test_metrics_scrapes_share_one_reading(world: World) -> None:
    ctx = ctx_of(world)
    assert ctx.metrics is not None
    calls = []
    real = ctx.metrics.collector._status
    ctx.metrics.collector._status = lambda: calls.append(1) or real()
    with world.client() as c:
        for _ in range(5):
            assert "floatseat_seats_held" in c.get("/metrics").text
    assert len(calls) == 1


# -- settings ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "data:text/html,x",
        "//evil.example/",
        "/\\evil.example",
        "ftp://x/",
        "https:/x",
    ],
)
def test_the_product_url_is_a_web_address_or_a_path(url: str) -> None:
    with pytest.raises(ValidationError):
        WebSettings(product_url=url)


def test_the_product_url_may_be_http_https_or_a_path() -> None:
    for url in ("https://wiki.example.com/", "http://127.0.0.1:8090/", "/healthz"):
        assert WebSettings(product_url=url).product_url == url


def test_a_second_setup_with_the_same_link_is_refused(world: World) -> None:
    """The link is used up the moment one request takes it, even while that one still runs."""
    path = setup_path_of(world)
    ctx = ctx_of(world)
    with world.client() as c:
        csrf = csrf_of(c.get(path).text)
        token = path.split("token=")[1]
        real_add = ctx.store.add_account
        second: list[int] = []

        def add_and_race(*args: object, **kwargs: object) -> object:
            if second:  # the racing request got this far: let it through, then fail below
                return real_add(*args, **kwargs)  # type: ignore[arg-type]
            second.append(0)
            with world.client() as other:
                other_csrf = csrf_of(other.get("/login").text)
                form = {"token": token, "username": "mallory", "password": "p" * 12}
                second.append(
                    other.post("/setup", data={**form, "csrf_token": other_csrf}).status_code
                )
            return real_add(*args, **kwargs)  # type: ignore[arg-type]

        ctx.store.add_account = add_and_race  # type: ignore[method-assign]
        form = {"token": token, "username": "root", "password": PASSWORD, "csrf_token": csrf}
        assert c.post("/setup", data=form).status_code == 303
    assert second == [0, 404]
    assert [a.username for a in ctx.store.accounts()] == ["root"]


def setup_path_of(world: World) -> str:
    from floatseat.web.app import setup_path

    path = setup_path(world.app)
    assert path is not None
    return path


def test_a_failed_setup_leaves_the_link_usable(world: World) -> None:
    path = setup_path_of(world)
    with world.client() as c:
        csrf = csrf_of(c.get(path).text)
        token = path.split("token=")[1]
        short = {"token": token, "username": "root", "password": "short", "csrf_token": csrf}
        assert c.post("/setup", data=short).status_code == 422
        good = {**short, "password": PASSWORD}
        assert c.post("/setup", data=good).status_code == 303


def test_absurd_pages_of_the_audit_log_are_refused_not_crashed(world: World) -> None:
    world.admin_account()
    with world.bearer(Role.READ_ONLY) as c:
        assert c.get("/api/v1/audit", params={"offset": 10**30}).status_code == 422
        assert c.get("/api/v1/audit", params={"limit": 100_000}).status_code == 422
    client, _ = world.logged_in()
    with closing(client):
        assert client.get("/", params={"page": 10**30}).status_code == 422


def test_a_token_id_beyond_the_databases_integers_is_refused_not_crashed(world: World) -> None:
    # Found by schemathesis: an id past SQLite's 64-bit integers raised OverflowError (500).
    with world.bearer(Role.ADMIN) as c:
        reply = c.delete(f"/api/v1/tokens/{2**64}")
    assert reply.status_code == 422
