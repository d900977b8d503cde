"""The web side over real HTTP: auth on every mutating route, CSRF, signed activity, policy,
pins and manual grants in the audit log, CSV export, metrics, health, and the waiting room.

The app runs in uvicorn on a loopback port against a real SQLite ledger, the real `Runtime`
and a `FakeDirectory`; nothing of ours is mocked.
"""

from __future__ import annotations

import csv
import io
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.routing import APIRoute
from itsdangerous import TimestampSigner
from pydantic import SecretStr

from floatseat.directory.fake import FakeDirectory
from floatseat.domain.policy import DirectoryChanged, PolicySettings
from floatseat.service.bootstrap import Services, bootstrap
from floatseat.service.engine import SeatEngine
from floatseat.service.ports import LicenceReport
from floatseat.service.runtime import Runtime
from floatseat.web import agents, api, pages
from floatseat.web.app import create_app, setup_path
from floatseat.web.metrics import METRIC_NAMES
from floatseat.web.security import make_waiting_room_link, sign_activity
from floatseat.web.settings import WebSettings
from floatseat.web.store import Role, WebStore

USERS = ("ann", "bob", "carl", "dora", "eve")
ENABLED, DISABLED = "IUM_Enabled", "IUM_Disabled"
POLICY = PolicySettings(
    idle_timeout_s=600, min_hold_s=60, preempt=False, warn_before_s=0, reserve=0
)
HMAC_KEY = "k" * 40
SECRET = "s" * 40
PASSWORD = "correct horse battery"


class Clock:
    """The service's clock: real time, moved on by hand."""

    def __init__(self) -> None:
        self.t = float(int(time.time()))

    def __call__(self) -> float:
        return self.t


@dataclass
class EditableRuntime(Runtime):
    """The service's `Runtime`, plus changing the policy while it runs (which the web side
    asks the runtime for: see `floatseat.web.ports.PolicyEditor`)."""

    def update_policy(self, settings: PolicySettings, by: str) -> None:
        self.policy_settings = settings
        self.engine = SeatEngine(self.ledger, settings)


class Server:
    """`app` served by uvicorn on a loopback port (free unless given), in a thread; the same
    `port` serves it again after `stop()`."""

    def __init__(self, app: FastAPI, port: int = 0) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


@dataclass
class World:
    """A running web side: its server, runtime, directory, clock and a few clients."""

    app: FastAPI
    server: Server
    runtime: EditableRuntime
    fake: FakeDirectory
    clock: Clock
    settings: WebSettings
    announced: list[str]

    @property
    def url(self) -> str:
        return self.server.url

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, follow_redirects=False, timeout=20, **kwargs)

    def token(self, role: Role, name: str = "t") -> str:
        store = WebStore(self.runtime.ledger.engine)
        return store.add_token(f"{name}-{role}", role, "test", int(self.clock()))[1]

    def bearer(self, role: Role) -> httpx.Client:
        return self.client(headers={"Authorization": f"Bearer {self.token(role)}"})

    def admin_account(self, username: str = "root") -> None:
        WebStore(self.runtime.ledger.engine).add_account(
            username, PASSWORD, Role.ADMIN, int(self.clock())
        )

    def logged_in(self, username: str = "root") -> tuple[httpx.Client, str]:
        """A browser-like client logged in as `username`, and its CSRF token."""
        client = self.client()
        csrf = csrf_of(client.get("/login").text)
        reply = client.post(
            "/login", data={"username": username, "password": PASSWORD, "csrf_token": csrf}
        )
        assert reply.status_code == 303, reply.text
        return client, csrf_of(client.get("/").text)


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match is not None, html[:500]
    return match.group(1)


def build_world(tmp_path: Path, opened: list[Services], *, tier: int = 2, **settings: Any) -> World:
    clock = Clock()
    fake = FakeDirectory(tier, groups={ENABLED: set(), DISABLED: set(USERS)})
    services = bootstrap(f"sqlite:///{tmp_path / 'ledger.db'}", POLICY, fake)
    opened.append(services)
    runtime = EditableRuntime(
        ledger=services.ledger, engine=services.engine, policy_settings=POLICY, clock=clock
    )
    runtime.submit(DirectoryChanged(runtime.now(), fake.figures()))
    web = WebSettings(
        **{
            "secret_key": SECRET,
            "activity_hmac_key": HMAC_KEY,
            "product_url": "https://confluence.example.com/",
            **settings,
        }
    )
    announced: list[str] = []
    app = create_app(runtime, web_settings=web, announce=announced.append)
    return World(app, Server(app), runtime, fake, clock, web, announced)


@pytest.fixture
def world(tmp_path: Path, opened: list[Services]) -> Iterator[World]:
    w = build_world(tmp_path, opened)
    yield w
    w.server.stop()


def signed(body: dict[str, Any], *, at: int | None = None, key: str = HMAC_KEY) -> dict[str, Any]:
    raw = json.dumps(body).encode()
    stamp = int(time.time()) if at is None else at
    return {
        "content": raw,
        "headers": {
            "Content-Type": "application/json",
            "X-Floatseat-Timestamp": str(stamp),
            "X-Floatseat-Signature": sign_activity(key.encode(), stamp, raw),
        },
    }


def audit(world: World, **params: Any) -> list[dict[str, Any]]:
    with world.bearer(Role.READ_ONLY) as c:
        reply = c.get("/api/v1/audit", params=params)
    assert reply.status_code == 200, reply.text
    entries: list[dict[str, Any]] = reply.json()["entries"]
    return entries


# -- auth on every mutating route ----------------------------------------------------------

# Each mutating route, and a body that would be accepted from an admin.
MUTATIONS: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/api/v1/seats/{user}/grant"): {"json": {"reason": "r"}},
    ("POST", "/api/v1/seats/{user}/revoke"): {"json": {"reason": "r"}},
    ("PUT", "/api/v1/policy"): {"json": {"reserve": 0}},
    ("PUT", "/api/v1/pins/{user}"): {"json": {}},
    ("DELETE", "/api/v1/pins/{user}"): {},
    ("POST", "/api/v1/freeze"): {"json": {"reason": "r"}},
    ("POST", "/api/v1/unfreeze"): {},
    ("POST", "/api/v1/activity"): {"json": {"user": "ann"}},
    ("POST", "/api/v1/agent/batches"): {
        "json": {"agent_id": "a", "node": "n", "seq": 1, "items": []}
    },
    ("POST", "/api/v1/waiting-room/links"): {"json": {"user": "ann"}},
    ("POST", "/api/v1/tokens"): {"json": {"name": "x", "role": "admin"}},
    ("DELETE", "/api/v1/tokens/{token_id}"): {},
    ("POST", "/api/v1/accounts"): {
        "json": {"username": "x", "password": "p" * 12, "role": "admin"}
    },
    ("POST", "/actions/pin"): {"data": {"user": "ann"}},
    ("POST", "/actions/unpin"): {"data": {"user": "ann"}},
    ("POST", "/actions/grant"): {"data": {"user": "ann", "reason": "r"}},
    ("POST", "/actions/revoke"): {"data": {"user": "ann", "reason": "r"}},
    ("POST", "/actions/freeze"): {"data": {"reason": "r"}},
    ("POST", "/actions/unfreeze"): {"data": {}},
    ("POST", "/actions/policy"): {"data": {"reserve": "0"}},
    # Login, logout and setup change sessions, not seats: they need the CSRF token.
    ("POST", "/login"): {"data": {"username": "root", "password": PASSWORD}},
    ("POST", "/logout"): {"data": {}},
    ("POST", "/setup"): {"data": {"token": "x", "username": "x", "password": "p" * 12}},
}


def mutating_routes(app: FastAPI) -> set[tuple[str, str]]:
    """Every route of the app that is not a GET (FastAPI keeps included routers whole)."""
    routes = [
        *app.routes,
        *api.router.routes,
        *agents.router.routes,
        *pages.router.routes,
        *pages.static_router.routes,
    ]
    return {
        (method, route.path)
        for route in routes
        if isinstance(route, APIRoute)
        for method in route.methods or ()
        if method not in ("GET", "HEAD", "OPTIONS")
    }


def concrete(path: str) -> str:
    return path.replace("{user}", "ann").replace("{token_id}", "1")


def test_every_mutating_route_is_listed_here(world: World) -> None:
    assert mutating_routes(world.app) == set(MUTATIONS)


def test_every_mutating_route_refuses_anonymous_callers(world: World) -> None:
    world.admin_account()
    before = audit(world)
    with world.client() as anonymous:
        for (method, path), body in MUTATIONS.items():
            reply = anonymous.request(method, concrete(path), **body)
            assert reply.status_code in (401, 403), (method, path, reply.status_code)
    assert audit(world) == before
    assert world.runtime.state().holders == ()


def test_a_read_only_token_reads_but_changes_nothing(world: World) -> None:
    with world.bearer(Role.READ_ONLY) as c:
        assert c.get("/api/v1/status").status_code == 200
        for (method, path), body in MUTATIONS.items():
            if path.startswith("/api/"):
                reply = c.request(method, concrete(path), **body)
                assert reply.status_code == 403, (method, path, reply.status_code)


def test_a_reporter_token_reports_activity_but_reads_nothing(world: World) -> None:
    with world.bearer(Role.REPORTER) as c:
        assert c.get("/api/v1/status").status_code == 403
        assert c.post("/api/v1/activity", json={"user": "ann"}).json()["decision"] == "granted"


def test_an_admin_token_may_change_things_without_a_csrf_token(world: World) -> None:
    with world.bearer(Role.ADMIN) as c:
        reply = c.post("/api/v1/seats/ann/grant", json={"reason": "on call"})
        assert reply.status_code == 200, reply.text
        assert [d["rule"] for d in reply.json()] == ["grant-by-admin"]


# -- sessions, CSRF, first admin -----------------------------------------------------------


def test_the_first_start_announces_a_one_time_setup_link(world: World) -> None:
    path = setup_path(world.app)
    assert path is not None and world.announced and path in world.announced[0]
    with world.client() as c:
        assert c.get("/").headers["location"] == "/login"
        assert "one-time setup link" in c.get("/login").text
        assert c.get("/setup?token=wrong").status_code == 404
        csrf = csrf_of(c.get(path).text)
        token = path.split("token=")[1]
        form = {"token": token, "username": "root", "password": PASSWORD}
        assert c.post("/setup", data=form).status_code == 403  # no CSRF token
        reply = c.post("/setup", data={**form, "csrf_token": csrf})
        assert reply.status_code == 303
        assert c.get("/").status_code == 200  # logged in
    assert setup_path(world.app) is None
    with world.client() as c:
        assert c.get(path).status_code == 404  # used up
    assert any(e["rule"] == "admin-account" for e in audit(world, user="root"))


def test_login_needs_the_right_password_and_sets_a_strict_http_only_cookie(world: World) -> None:
    world.admin_account()
    with world.client() as c:
        csrf = csrf_of(c.get("/login").text)
        wrong = c.post("/login", data={"username": "root", "password": "x", "csrf_token": csrf})
        assert wrong.status_code == 401 and "Wrong username or password" in wrong.text
        nobody = c.post(
            "/login", data={"username": "nobody", "password": PASSWORD, "csrf_token": csrf}
        )
        assert nobody.status_code == 401
        good = c.post("/login", data={"username": "root", "password": PASSWORD, "csrf_token": csrf})
        assert good.status_code == 303
        cookie = good.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        assert "secure" not in cookie  # plain http on loopback
    stored = WebStore(world.runtime.ledger.engine)
    with stored.engine.connect() as connection:
        hashes = [
            r[0] for r in connection.exec_driver_sql("SELECT password_hash FROM web_accounts")
        ]
    assert hashes and all(h.startswith("$argon2id$") and PASSWORD not in h for h in hashes)


def test_cookies_are_secure_off_loopback(tmp_path: Path, opened: list[Services]) -> None:
    w = build_world(tmp_path, opened, cookie_secure=True)
    try:
        with w.client() as c:
            assert "secure" in c.get("/login").headers["set-cookie"].lower()
    finally:
        w.server.stop()


def test_session_requests_need_the_csrf_token(world: World) -> None:
    world.admin_account()
    client, csrf = world.logged_in()
    with closing(client):
        assert client.post("/actions/pin", data={"user": "ann"}).status_code == 403
        assert (
            client.post("/actions/pin", data={"user": "ann", "csrf_token": "x"}).status_code == 403
        )
        assert client.put("/api/v1/pins/ann", json={}).status_code == 403
        assert world.runtime.state().pins == ()
        ok = client.post("/actions/pin", data={"user": "ann", "csrf_token": csrf})
        assert ok.status_code == 303
        assert [p.user for p in world.runtime.state().pins] == ["ann"]
        api = client.put("/api/v1/pins/bob", json={}, headers={"X-CSRF-Token": csrf})
        assert api.status_code == 200, api.text
        assert {p.user for p in world.runtime.state().pins} == {"ann", "bob"}


def test_demo_mode_lets_loopback_in_and_says_so_but_still_wants_csrf(
    tmp_path: Path, opened: list[Services]
) -> None:
    w = build_world(tmp_path, opened, demo=True)
    try:
        assert w.announced == []  # no setup link in the demo
        with w.client() as c:
            page = c.get("/")
            assert page.status_code == 200 and "Demo mode" in page.text
            assert c.post("/actions/freeze", data={"reason": "x"}).status_code == 403
            csrf = csrf_of(page.text)
            reply = c.post("/actions/freeze", data={"reason": "upgrade", "csrf_token": csrf})
            assert reply.status_code == 303
            assert c.get("/api/v1/status").json()["frozen"] is True
    finally:
        w.server.stop()


# -- the activity API ----------------------------------------------------------------------


def test_signed_activity_gets_a_seat_then_holds_it_then_others_queue(world: World) -> None:
    with world.client() as c:
        first = c.post("/api/v1/activity", **signed({"user": "ann", "source": "sso"}))
        assert first.status_code == 200, first.text
        assert first.json()["decision"] == "granted"
        again = c.post("/api/v1/activity", **signed({"user": "ANN"}))  # any case
        assert again.json()["decision"] == "holding"
        assert c.post("/api/v1/activity", **signed({"user": "bob"})).json()["decision"] == (
            "granted"
        )
        queued = c.post("/api/v1/activity", **signed({"user": "carl"})).json()
        assert queued["decision"] == "queued" and queued["position"] == 1
        later = c.post("/api/v1/activity", **signed({"user": "dora"})).json()
        assert later == {
            "decision": "queued",
            "position": 2,
            "reason": "all 2 seats are in use",
        }
        stranger = c.post("/api/v1/activity", **signed({"user": "mallory"})).json()
        assert stranger["decision"] == "ignored"


def test_activity_refuses_bad_signatures_replays_and_stale_timestamps(world: World) -> None:
    with world.client() as c:
        assert c.post("/api/v1/activity", json={"user": "ann"}).status_code == 401
        forged = signed({"user": "ann"}, key="x" * 40)
        assert c.post("/api/v1/activity", **forged).status_code == 401
        tampered = signed({"user": "ann"})
        tampered["content"] = json.dumps({"user": "bob"}).encode()
        assert c.post("/api/v1/activity", **tampered).status_code == 401
        stale = signed({"user": "ann"}, at=int(time.time()) - 3600)
        assert c.post("/api/v1/activity", **stale).status_code == 401
        fresh = signed({"user": "ann"})
        assert c.post("/api/v1/activity", **fresh).status_code == 200
        replay = c.post("/api/v1/activity", **fresh)
        assert replay.status_code == 401 and "replayed" in replay.text
        assert (
            c.post(
                "/api/v1/activity", json={"user": "ann"}, headers={"Authorization": "Bearer nope"}
            ).status_code
            == 401
        )
    assert [h.user for h in world.runtime.state().holders] == ["ann"]


def test_activity_validates_its_body(world: World) -> None:
    with world.bearer(Role.REPORTER) as c:
        assert c.post("/api/v1/activity", json={}).status_code == 422
        assert c.post("/api/v1/activity", json={"user": "ann", "x": 1}).status_code == 422
        naive = {"user": "ann", "at": "2024-01-01T00:00:00"}
        assert c.post("/api/v1/activity", json=naive).status_code == 422
        future = {"user": "ann", "at": int(world.clock()) + 3600}
        assert c.post("/api/v1/activity", json=future).status_code == 422


def test_the_schema_documents_the_activity_body_and_reply(world: World) -> None:
    with world.client() as c:
        schema = c.get("/openapi.json").json()
    operation = schema["paths"]["/api/v1/activity"]["post"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    reply = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    components = schema["components"]["schemas"]
    assert set(components[body.rsplit("/", 1)[1]]["properties"]) == {"user", "at", "source"}
    decision = components[reply.rsplit("/", 1)[1]]["properties"]["decision"]
    assert set(decision["enum"]) == {
        "granted",
        "holding",
        "queued",
        "ignored",
        "denied",
        "forwarded",  # by a follower, to the leader (several instances)
    }
    assert "HMAC" in operation["description"]
    for path in (
        "/api/v1/status",
        "/api/v1/seats",
        "/api/v1/queue",
        "/api/v1/audit",
        "/api/v1/policy",
        "/api/v1/users/{user}",
        "/api/v1/pins/{user}",
    ):
        assert path in schema["paths"]


# -- status, queue, users ------------------------------------------------------------------


def test_status_counts_floating_seats_and_the_queue(world: World) -> None:
    with world.bearer(Role.ADMIN) as c:
        c.put("/api/v1/pins/eve", json={})
        for user in ("ann", "bob", "carl"):
            c.post("/api/v1/activity", json={"user": user})
        status = c.get("/api/v1/status").json()
        # tier 2, eve pinned: one floating seat, held by ann; bob and carl wait.
        assert (status["capacity"], status["seats_held"], status["queue_length"]) == (1, 1, 2)
        assert status["pinned"] == 1
        queue = c.get("/api/v1/queue").json()
        assert [(w["user"], w["position"]) for w in queue] == [("bob", 1), ("carl", 2)]
        # ann may go after the idle timeout (no pre-emption): bob's wait; carl has none.
        assert queue[0]["estimated_wait_s"] == POLICY.idle_timeout_s
        assert queue[1]["estimated_wait_s"] is None
        seats = c.get("/api/v1/seats").json()
        assert [s["user"] for s in seats] == ["ann"]
        user = c.get("/api/v1/users/Bob").json()
        assert user["state"] == "queued" and user["waiter"]["position"] == 1
        assert user["recent_audit"][0]["kind"] == "queued"
        assert c.get("/api/v1/users/eve").json()["state"] == "pinned"
        assert c.get("/api/v1/users/nobody").json()["state"] == "unmanaged"


def test_seat_history_starts_at_the_first_move_and_follows_grants_and_revokes(
    world: World,
) -> None:
    start = int(world.clock())
    with world.bearer(Role.ADMIN) as c:
        c.post("/api/v1/activity", json={"user": "ann"})
        world.clock.t += 60
        c.post("/api/v1/activity", json={"user": "bob"})
        world.clock.t += 60
        c.post("/api/v1/seats/ann/revoke", json={"reason": "left"})
        history = c.get("/api/v1/seats/history").json()
    times = [datetime.fromisoformat(t).timestamp() for t, _ in history["points"]]
    assert times[0] == start  # not a day of empty chart before the first seat moved
    assert [held for _, held in history["points"]] == [1, 2, 1]
    assert times == [start, start + 60, start + 120]


# -- policy, pins, manual moves, freeze ----------------------------------------------------


def test_policy_changes_are_validated_and_audited(world: World) -> None:
    with world.bearer(Role.ADMIN) as c:
        policy = c.get("/api/v1/policy").json()
        assert policy["idle_timeout_s"] == 600 and policy["priority_classes"] == []
        bad = c.put("/api/v1/policy", json={"min_hold_s": 9999})
        assert bad.status_code == 422 and "min_hold_s must not exceed" in bad.text
        assert c.put("/api/v1/policy", json={"nonsense": 1}).status_code == 422
        assert c.put("/api/v1/policy", json={"reserve": "two"}).status_code == 422
        assert c.put("/api/v1/policy", json={"preempt": 1}).status_code == 422
        good = c.put(
            "/api/v1/policy",
            json={
                "idle_timeout_s": 900,
                "priority_classes": [{"name": "vip", "rank": 2, "groups": ["execs"]}],
            },
        )
        assert good.status_code == 200, good.text
        assert good.json()["idle_timeout_s"] == 900
    assert world.runtime.engine.settings.idle_timeout_s == 900
    entries = audit(world, kind="admin", rule="admin-policy")
    assert len(entries) == 1
    assert "idle_timeout_s: 600 -> 900" in entries[0]["reason"]


def test_policy_changes_reach_the_services_own_runtime(
    tmp_path: Path, opened: list[Services]
) -> None:
    """No stand-in: PUT /api/v1/policy changes the policy of the `Runtime` that `floatseat
    serve` and `floatseat demo` pass in, which audits it and applies it at once."""
    clock = Clock()
    fake = FakeDirectory(2, groups={ENABLED: set(), DISABLED: set(USERS)})
    services = bootstrap(f"sqlite:///{tmp_path / 'ledger.db'}", POLICY, fake)
    opened.append(services)
    runtime = Runtime(
        ledger=services.ledger, engine=services.engine, policy_settings=POLICY, clock=clock
    )
    runtime.submit(DirectoryChanged(runtime.now(), fake.figures()))
    app = create_app(runtime, web_settings=WebSettings(secret_key=SECRET), announce=print)
    server = Server(app)
    try:
        token = WebStore(services.ledger.engine).add_token("t", Role.ADMIN, "test", clock.t)[1]
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=server.url, headers=headers, timeout=20) as c:
            reply = c.put("/api/v1/policy", json={"idle_timeout_s": 900})
            assert reply.status_code == 200, reply.text
            assert c.get("/api/v1/policy").json()["idle_timeout_s"] == 900
            entries = c.get("/api/v1/audit", params={"limit": 50}).json()["entries"]
    finally:
        server.stop()
    assert runtime.engine.settings.idle_timeout_s == 900
    assert runtime.policy_settings.idle_timeout_s == 900
    kinds = {e["kind"] for e in entries}
    assert "policy-changed" in kinds  # the runtime's own audit entry


def test_pins_and_manual_moves_are_audited(world: World) -> None:
    until = "2099-01-01T00:00:00+00:00"
    with world.bearer(Role.ADMIN) as c:
        pinned = c.put("/api/v1/pins/ann", json={"until": until, "reason": "the CEO"})
        assert pinned.status_code == 200, pinned.text
        assert c.get("/api/v1/pins").json() == [
            {"user": "ann", "group": None, "until": "2099-01-01T00:00:00Z"}
        ]
        assert c.put("/api/v1/pins/bob", json={"until": "2000-01-01T00:00:00Z"}).status_code == (
            422
        )
        grant = c.post("/api/v1/seats/bob/grant", json={"reason": "demo at 3"}).json()
        assert grant[0]["kind"] == "grant" and "by token:t-admin: demo at 3" in grant[0]["reason"]
        revoke = c.post("/api/v1/seats/bob/revoke", json={"reason": "done"}).json()
        assert revoke[0]["kind"] == "revoke" and revoke[0]["rule"] == "revoke-by-admin"
        assert c.post("/api/v1/seats/bob/grant", json={"reason": ""}).status_code == 422
        assert c.delete("/api/v1/pins/ann").status_code == 200
        assert c.delete("/api/v1/pins/ann").status_code == 404
    rules = [e["rule"] for e in audit(world)]
    for rule in (
        "admin-pin",
        "grant-pin-began",
        "grant-by-admin",
        "revoke-by-admin",
        "admin-unpin",
    ):
        assert rule in rules
    pin = audit(world, rule="admin-pin")[0]
    assert pin["user"] == "ann" and "2099-01-01" in pin["reason"] and "the CEO" in pin["reason"]


def test_freeze_and_unfreeze(world: World) -> None:
    with world.bearer(Role.ADMIN) as c:
        assert c.post("/api/v1/freeze", json={"reason": "upgrade"}).status_code == 204
        status = c.get("/api/v1/status").json()
        assert status["frozen"] is True and any("Frozen" in w for w in status["warnings"])
        assert c.post("/api/v1/unfreeze").status_code == 204
        assert c.get("/api/v1/status").json()["frozen"] is False
    kinds = [e["kind"] for e in audit(world)]
    assert "freeze" in kinds and "unfreeze" in kinds


# -- the audit log -------------------------------------------------------------------------


def test_the_audit_log_is_searchable_paged_and_exported_as_csv(world: World) -> None:
    with world.bearer(Role.ADMIN) as c:
        for user in ("ann", "bob", "carl"):
            c.post("/api/v1/activity", json={"user": user})
        world.clock.t += 100
        c.post("/api/v1/seats/ann/revoke", json={"reason": "=HYPERLINK(evil)"})
        grants = audit(world, kind="grant")
        assert {e["user"] for e in grants} == {"ann", "bob", "carl"}
        assert [e["user"] for e in audit(world, user="ANN", kind="revoke")] == ["ann"]
        assert [e["rule"] for e in audit(world, q="hyperlink")] == ["revoke-by-admin"]
        since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(world.clock.t))
        recent = audit(world, since=since)
        assert recent and all(e["at"] >= since for e in recent)
        page = c.get("/api/v1/audit", params={"limit": 2, "offset": 1}).json()
        assert page["total"] >= 5 and len(page["entries"]) == 2
        exported = c.get("/api/v1/audit.csv", params={"user": "ann"})
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    assert "attachment" in exported.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(exported.text)))
    assert rows[0] == ["at", "user", "kind", "rule", "reason", "move_id", "source"]
    assert {r[1] for r in rows[1:]} == {"ann"}
    revoke = next(r for r in rows[1:] if r[3] == "revoke-by-admin")
    assert not revoke[4].startswith("=")  # no formula for a spreadsheet to run


# -- licence, metrics, health --------------------------------------------------------------


def test_the_licence_shows_the_daily_maximum(world: World) -> None:
    now = int(world.clock())
    with world.runtime.ledger.transaction() as tx:
        tx.record_licence(LicenceReport(tier=10, licensed=7, reported_at=now, watermark=1))
        tx.record_licence(LicenceReport(tier=10, licensed=4, reported_at=now + 1, watermark=2))
    with world.bearer(Role.READ_ONLY) as c:
        licence = c.get("/api/v1/licence").json()
    assert licence["licensed"] == 4 and licence["tier"] == 10
    assert [(d["max_licensed"], d["tier"]) for d in licence["days"]] == [(7, 10)]


def test_metrics_are_named_floatseat_and_health_answers(world: World) -> None:
    with world.bearer(Role.REPORTER) as c:
        for user in ("ann", "bob", "carl"):
            c.post("/api/v1/activity", json={"user": user})
    with world.client() as c:
        assert c.get("/healthz").json() == {"status": "ok"}
        assert c.get("/readyz").json() == {"status": "ready"}
        text = c.get("/metrics").text
    samples = re.findall(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{|\s)", text, re.MULTILINE)
    names = set(samples) | set(re.findall(r"^# TYPE (\S+) ", text, re.MULTILINE))
    assert names and all(n.startswith("floatseat_") for n in names), names
    for name in METRIC_NAMES:
        if name != "floatseat_licensed":  # only once the product reported a licence
            assert any(n.startswith(name) for n in names), name
    values = dict(re.findall(r"^(floatseat_\w+) (\S+)$", text, re.MULTILINE))
    assert float(values["floatseat_seats_held"]) == 2
    assert float(values["floatseat_capacity"]) == 2
    assert float(values["floatseat_queue_length"]) == 1
    assert 'floatseat_waits_total{rule="queue-no-seat"} 1.0' in text
    assert (
        'floatseat_http_request_duration_seconds_count{method="POST",route="/api/v1/activity"'
        in text
    )


def test_readyz_fails_when_the_ledger_does_not_answer(world: World) -> None:
    with world.runtime.ledger.engine.begin() as connection:
        connection.exec_driver_sql("DROP TABLE ledger_state")
    with world.client() as c:
        assert c.get("/readyz").status_code == 503
        assert c.get("/healthz").status_code == 200


# -- the waiting room ----------------------------------------------------------------------


def fill_seats(world: World) -> None:
    with world.bearer(Role.REPORTER) as c:
        for user in ("ann", "bob"):
            assert c.post("/api/v1/activity", json={"user": user}).json()["decision"] == "granted"


def test_a_typed_username_claims_nothing(world: World) -> None:
    fill_seats(world)
    with world.client() as c:
        page = c.get("/waiting-room", params={"user": "carl"})
        assert page.status_code == 200 and "cannot tell who you are" in page.text
        assert c.get("/waiting-room/status", params={"user": "carl"}).status_code == 401
        forged = c.get("/waiting-room", params={"t": "carl"})
        assert forged.status_code == 403
        # An SSO header from an untrusted address is ignored (none are trusted here).
        sso = c.get("/waiting-room", headers={"X-Remote-User": "carl"})
        assert "cannot tell who you are" in sso.text
    assert world.runtime.state().waiters == ()


def test_a_signed_link_shows_the_place_and_redirects_once_seated(world: World) -> None:
    fill_seats(world)
    link = make_waiting_room_link(world.settings, "carl", world.url)
    with world.client() as c:
        page = c.get(link)
        assert page.status_code == 200, page.text
        assert 'id="position">1<' in page.text
        assert [w.user for w in world.runtime.state().waiters] == ["carl"]
        status = c.get(link.replace("/waiting-room?", "/waiting-room/status?")).json()
        assert status["position"] == 1 and status["redirect_to"] is None
        with world.bearer(Role.ADMIN) as admin:
            admin.post("/api/v1/seats/ann/revoke", json={"reason": "make room"})
        status = c.get(link.replace("/waiting-room?", "/waiting-room/status?")).json()
        assert status["state"] == "holding"
        assert status["redirect_to"] == "https://confluence.example.com/"
        again = c.get(link)
        assert again.status_code == 303
        assert again.headers["location"] == "https://confluence.example.com/"


def test_expired_and_foreign_links_are_refused(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    fill_seats(world)
    fresh = make_waiting_room_link(world.settings, "carl", world.url)
    other_key = WebSettings(secret_key=SecretStr("o" * 40))
    foreign = make_waiting_room_link(other_key, "carl", world.url)
    two_days_ago = int(time.time()) - 2 * 86400
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: two_days_ago)
    expired = make_waiting_room_link(world.settings, "carl", world.url)
    monkeypatch.undo()
    with world.client() as c:
        assert c.get(foreign).status_code == 403
        assert c.get(expired).status_code == 403
        assert world.runtime.state().waiters == ()
        assert c.get(fresh).status_code == 200


def test_sso_headers_count_only_from_trusted_proxies(
    tmp_path: Path, opened: list[Services]
) -> None:
    w = build_world(
        tmp_path, opened, sso_user_header="X-Remote-User", trusted_proxies=("127.0.0.0/8",)
    )
    try:
        fill_seats(w)
        with w.client() as c:
            page = c.get("/waiting-room", headers={"X-Remote-User": "Carl"})
            assert page.status_code == 200 and 'id="position">1<' in page.text
        assert [x.user for x in w.runtime.state().waiters] == ["carl"]
    finally:
        w.server.stop()


def test_the_api_hands_out_signed_links(world: World) -> None:
    fill_seats(world)
    with world.bearer(Role.REPORTER) as c:
        reply = c.post("/api/v1/waiting-room/links", json={"user": "dora"})
    assert reply.status_code == 200, reply.text
    url = reply.json()["url"]
    assert url.startswith(world.url + "/waiting-room?t=")
    with world.client() as c:
        assert 'id="position">1<' in c.get(url).text


# -- the dashboard as HTML -----------------------------------------------------------------


def test_the_dashboard_changes_policy_through_its_form_with_validation(world: World) -> None:
    world.admin_account()
    client, csrf = world.logged_in()
    with closing(client):
        bad = client.post(
            "/actions/policy",
            data={"csrf_token": csrf, "min_hold_s": "99999", "preempt": "true"},
        )
        assert bad.status_code == 303
        page = client.get("/").text
        assert "Policy unchanged" in page and "min_hold_s must not exceed" in page
        good = client.post(
            "/actions/policy",
            data={"csrf_token": csrf, "reserve": "1", "group_caps": '{"contractors": 2}'},
        )
        assert good.status_code == 303
        assert "Policy changed: group_caps, reserve" in client.get("/").text
    settings = world.runtime.engine.settings
    assert settings.reserve == 1 and dict(settings.group_caps) == {"contractors": 2}
    assert [e["user"] for e in audit(world, rule="admin-policy")] == ["-"]


def test_a_read_only_account_sees_the_dashboard_without_actions(world: World) -> None:
    WebStore(world.runtime.ledger.engine).add_account(
        "auditor", PASSWORD, Role.READ_ONLY, int(world.clock())
    )
    client, csrf = world.logged_in("auditor")
    with closing(client):
        page = client.get("/")
        assert page.status_code == 200 and 'id="actions"' not in page.text
        assert 'id="audit-log"' in page.text and 'id="chart-seats"' in page.text
        refused = client.post("/actions/pin", data={"user": "ann", "csrf_token": csrf})
        assert refused.status_code == 403
        assert client.get("/api/v1/audit.csv").status_code == 200


def test_hostile_usernames_are_shown_as_text(world: World) -> None:
    nasty = "</script><script>alert(1)</script>"
    with world.bearer(Role.REPORTER) as c:
        assert c.post("/api/v1/activity", json={"user": nasty}).json()["decision"] == "ignored"
    world.admin_account()
    client, _ = world.logged_in()
    with closing(client):
        page = client.get("/").text
    assert nasty not in page and "&lt;/script&gt;&lt;script&gt;alert(1)" in page
    scripts = re.findall(r"<script[^>]*>(.*?)</script>", page, re.DOTALL)
    assert all("alert" not in s for s in scripts)


def test_admins_make_accounts_and_tokens_and_both_are_audited(world: World) -> None:
    with world.bearer(Role.ADMIN) as c:
        made = c.post(
            "/api/v1/accounts",
            json={"username": "ops", "password": "p" * 12, "role": "read-only"},
        )
        assert made.status_code == 201, made.text
        short = c.post(
            "/api/v1/accounts", json={"username": "x", "password": "short", "role": "admin"}
        )
        assert short.status_code == 422
        token = c.post("/api/v1/tokens", json={"name": "sr", "role": "reporter"}).json()
        assert token["token"].startswith("fst_")
        listed = c.get("/api/v1/tokens").json()
        assert all("token" not in t for t in listed)
        assert c.delete(f"/api/v1/tokens/{token['id']}").status_code == 204
    with world.client(headers={"Authorization": f"Bearer {token['token']}"}) as c:
        assert c.post("/api/v1/activity", json={"user": "ann"}).status_code == 401
    actions = [e["reason"] for e in audit(world, kind="admin")]
    assert any("created read-only account" in a for a in actions)
    assert any("created reporter token 'sr'" in a for a in actions)
