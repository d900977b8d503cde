"""Notifications against a real SMTP server (aiosmtpd) and a real HTTP webhook receiver,
both started by the tests on loopback; then wired to a real Runtime over a FakeDirectory."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from floatseat.directory.fake import FakeDirectory
from floatseat.domain.policy import Activity, Grant, Rule, Sweep, Warn
from floatseat.notify import Notifier, NotifySettings, load_notify_settings
from floatseat.service.bootstrap import build_service
from floatseat.service.runtime import RuntimeStatus
from floatseat.service.settings import SettingsError, load_settings

T0 = 1_767_600_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Inbox:
    """An aiosmtpd handler that keeps every message."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        message = message_from_bytes(envelope.content)
        message["X-Rcpt"] = ", ".join(envelope.rcpt_tos)
        self.messages.append(message)
        return "250 OK"


def authenticator(
    server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == b"bot"
        and auth_data.password == b"s3cret"
    )
    return AuthResult(success=ok)


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        authenticator=authenticator,
        auth_require_tls=False,
    )
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


class Hooks:
    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.status = 204


@pytest.fixture
def webhook() -> Iterator[tuple[Hooks, str]]:
    hooks = Hooks()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            hooks.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(hooks.status)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hooks, f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()
        server.server_close()


def notify_settings(port: int, **extra: Any) -> NotifySettings:
    base: dict[str, Any] = {
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "product_url": "https://wiki.example.com",
        "user_email_domain": "example.com",
        "mail_from": "floatseat@example.com",
    }
    return NotifySettings(**{**base, **extra})


WARN = Warn("ann", T0, Rule.WARN_IDLE, "idle; the seat goes in 120 s")
READY = Grant("bob", T0, Rule.GRANT_FROM_QUEUE, "a seat came free")


def test_user_emails_are_off_by_default(smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    notifier = Notifier(notify_settings(port))
    notifier.on_decisions([WARN, READY])
    assert notifier.step(T0) == []
    assert inbox.messages == []


def test_a_warning_is_mailed_with_the_product_url_and_rate_limited_per_user(
    smtp: tuple[Inbox, int],
) -> None:
    inbox, port = smtp
    notifier = Notifier(notify_settings(port, user_email=True, user_min_interval_s=600))
    notifier.on_decisions([WARN])
    [sent] = notifier.step(T0)
    assert sent.error is None and (sent.event, sent.to, sent.channel) == (
        "seat-warning",
        "ann",
        "email",
    )
    [mail] = inbox.messages
    assert mail["X-Rcpt"] == "ann@example.com"
    assert mail["Subject"] == "Your Confluence seat is about to be released"
    body = mail.get_payload()
    assert "https://wiki.example.com" in body and "2 minute(s)" in body and "Hello ann" in body
    notifier.on_decisions([Warn("ANN", T0 + 60, Rule.WARN_IDLE, "idle; the seat goes in 60 s")])
    assert notifier.step(T0 + 60) == []  # same user within the interval
    notifier.on_decisions([WARN])
    notifier.step(T0 + 700)
    assert len(inbox.messages) == 2


def test_seat_ready_waits_until_the_grant_is_applied(smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    pending = {"bob"}
    notifier = Notifier(
        notify_settings(port, user_email=True, seat_ready_wait_s=60),
        grant_pending=lambda user: user in pending,
    )
    notifier.on_decisions([READY, Grant("carl", T0, Rule.GRANT_FREE_SEAT, "free")])
    assert notifier.step(T0 + 1) == []
    pending.clear()
    [sent] = notifier.step(T0 + 2)
    assert sent.to == "bob"
    [mail] = inbox.messages
    assert mail["Subject"] == "Your Confluence seat is ready"
    assert "Log in at https://wiki.example.com" in mail.get_payload()


def test_a_grant_never_applied_is_not_announced(smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    notifier = Notifier(
        notify_settings(port, user_email=True, seat_ready_wait_s=60), grant_pending=lambda _u: True
    )
    notifier.on_decisions([READY])
    notifier.step(T0 + 1)
    notifier.step(T0 + 61)
    assert inbox.messages == [] and notifier._waiting == []


def test_smtp_login_with_the_password_from_the_environment(
    smtp: tuple[Inbox, int], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    inbox, port = smtp
    monkeypatch.setenv("FLOATSEAT_NOTIFY_SMTP_PASSWORD", "s3cret")
    settings = notify_settings(port, user_email=True, smtp_username="bot")
    assert "s3cret" not in repr(settings)
    notifier = Notifier(settings)
    notifier.on_decisions([WARN])
    [sent] = notifier.step(T0)
    assert sent.error is None and len(inbox.messages) == 1
    monkeypatch.setenv("FLOATSEAT_NOTIFY_SMTP_PASSWORD", "wrong")
    notifier = Notifier(
        notify_settings(port, user_email=True, smtp_username="bot", smtp_timeout_s=1)
    )
    notifier.on_decisions([WARN])
    [failed] = notifier.step(T0)
    assert failed.error is not None and "wrong" not in failed.error
    config = tmp_path / "floatseat.toml"
    config.write_text('[notify]\nsmtp_host = "mail"\nsmtp_password = "oops"\n')
    with pytest.raises(SettingsError, match="FLOATSEAT_NOTIFY_SMTP_PASSWORD"):
        load_notify_settings(config)


def test_the_webhook_is_json_and_hmac_signed(webhook: tuple[Hooks, str]) -> None:
    hooks, url = webhook
    settings = NotifySettings(
        webhook_url=url,
        webhook_secret="k3y",
        user_webhook=True,
        product_url="https://jira.example.com",
        product_name="Jira",
    )
    notifier = Notifier(settings, email_of=lambda user: f"{user}@corp.example")
    notifier.on_decisions([WARN])
    [sent] = notifier.step(T0)
    assert sent.error is None and sent.channel == "webhook"
    [(headers, body)] = hooks.received
    assert headers["content-type"] == "application/json"
    stamp = headers["x-floatseat-timestamp"]
    expected = hmac.new(b"k3y", stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["x-floatseat-signature"], "sha256=" + expected)
    payload = json.loads(body)
    assert payload["event"] == "seat-warning" and payload["user"] == "ann"
    assert payload["email"] == "ann@corp.example" and payload["seconds_left"] == 120
    assert "https://jira.example.com" in payload["text"]
    hooks.status = 500
    notifier.on_decisions([READY])
    [failed] = notifier.step(T0)
    assert failed.error is not None and "HTTP 500" in failed.error


def test_templates_can_be_replaced(smtp: tuple[Inbox, int], tmp_path: Path) -> None:
    inbox, port = smtp
    (tmp_path / "seat-warning.subject").write_text("Seat going: {{ user }}")
    (tmp_path / "seat-warning.txt").write_text("Bye in {{ seconds_left }} s, {{ product_url }}\n")
    notifier = Notifier(notify_settings(port, user_email=True, templates_dir=tmp_path))
    notifier.on_decisions([WARN])
    notifier.step(T0)
    [mail] = inbox.messages
    assert mail["Subject"] == "Seat going: ann"
    assert mail.get_payload().strip() == "Bye in 120 s, https://wiki.example.com"


def status(now: int, **changes: Any) -> RuntimeStatus:
    base: dict[str, Any] = {
        "now": now,
        "product": "confluence",
        "capacity": 5,
        "seats_held": 3,
        "queue_length": 0,
        "tier": 10,
        "licensed": 8,
        "licence_reported_at": now,
        "licensed_outside": 5,
        "pinned": 0,
        "revokes_paused": None,
        "shadow": False,
        "frozen": False,
        "frozen_by": None,
        "frozen_reason": None,
        "stalled_feeds": (),
        "outbox_backlog": 0,
        "oldest_pending_move_at": None,
        "directory_errors_in_a_row": 0,
        "last_directory_error": None,
        "last_reconciliation_at": now,
        "drift_repairs": 0,
        "malformed_lines": 0,
        "feed_lag_s": {},
    }
    return RuntimeStatus(**{**base, **changes})


def test_admin_alerts_by_email_and_webhook(
    smtp: tuple[Inbox, int], webhook: tuple[Hooks, str]
) -> None:
    inbox, port = smtp
    hooks, url = webhook
    now = {"status": status(T0)}
    notifier = Notifier(
        notify_settings(
            port,
            admin_emails=["ops@example.com"],
            admin_webhook=True,
            webhook_url=url,
            check_interval_s=1,
            seats_exhausted_after_s=300,
            outbox_stuck_after_s=120,
            directory_failures=3,
            alert_repeat_s=3600,
        ),
        status=lambda: now["status"],
        drift_details=lambda since: ["eve: found licensed by hand; revoked"],
    )

    full = {"seats_held": 5, "queue_length": 2}
    sent = []
    for t, changes in (
        (T0, full),
        (T0 + 200, full),
        (T0 + 301, full),  # exhausted for 301 s
        (T0 + 400, full),  # still: not again before alert_repeat_s
        (T0 + 500, {"outbox_backlog": 4, "oldest_pending_move_at": T0 + 300}),
        (T0 + 600, {"directory_errors_in_a_row": 3, "last_directory_error": "outbox: 503"}),
        (T0 + 700, {"drift_repairs": 1}),
        (T0 + 800, {"drift_repairs": 1}),
    ):
        start = len(hooks.received)
        now["status"] = status(t, **changes)
        notifier.step(t)
        sent.append([json.loads(b)["alert"] for _, b in hooks.received[start:]])
    assert sent == [
        [],
        [],
        ["seats-exhausted"],
        [],
        ["outbox-stuck"],
        ["directory-failing"],
        ["drift-repaired"],
        [],
    ]
    subjects = [m["Subject"] for m in inbox.messages]
    assert subjects == [
        "[floatseat] No free seat",
        "[floatseat] Moves are not being applied",
        "[floatseat] The directory keeps failing",
        "[floatseat] Hand edits to the pool groups were repaired",
    ]
    assert all(m["X-Rcpt"] == "ops@example.com" for m in inbox.messages)
    assert "eve: found licensed by hand" in inbox.messages[-1].get_payload()
    assert "2 user(s) waiting" in inbox.messages[0].get_payload()


def test_wired_to_the_runtime_a_warning_and_a_queued_seat_reach_the_users(
    smtp: tuple[Inbox, int], tmp_path: Path
) -> None:
    inbox, port = smtp
    users = ("ann", "bob")
    fake = FakeDirectory(1, groups={"IUM_Enabled": set(), "IUM_Disabled": set(users)})
    clock = {"now": float(T0)}
    settings = load_settings(
        None,
        state_dir=tmp_path / "state",
        policy={
            "idle_timeout_s": 600,
            "min_hold_s": 60,
            "reserve": 0,
            "warn_before_s": 120,
            "preempt": False,
            "sweep_interval_s": 30,
            "queue_timeout_s": 7200,
            "max_revokes_per_sweep": 0,
        },
    )
    served = build_service(settings, fake, clock=lambda: clock["now"])
    try:
        runtime = served.runtime
        worker = served.service.directory
        worker.step(T0)
        notifier = Notifier.for_runtime(
            notify_settings(port, user_email=True, seat_ready_wait_s=300), runtime, fake
        )
        runtime.submit(Activity("ann", T0))
        runtime.submit(Activity("bob", T0 + 10))  # no seat: queued
        worker.step(T0 + 10)
        assert fake.group("IUM_Enabled") == {"ann"}
        runtime.submit(Sweep(T0 + 490))  # ann idle 490 s: the warning (120 s before)
        notifier.step(T0 + 490)
        clock["now"] = T0 + 600
        runtime.submit(Sweep(T0 + 600))  # ann's seat goes to bob, who waited
        notifier.step(T0 + 600)  # bob's grant is not applied yet: nothing said
        assert [m["Subject"] for m in inbox.messages] == [
            "Your Confluence seat is about to be released"
        ]
        worker.step(T0 + 601)
        assert fake.group("IUM_Enabled") == {"bob"}
        notifier.step(T0 + 602)
        assert [(m["X-Rcpt"], m["Subject"]) for m in inbox.messages] == [
            ("ann@example.com", "Your Confluence seat is about to be released"),
            ("bob@example.com", "Your Confluence seat is ready"),
        ]
    finally:
        served.close()


def test_shadow_mode_tells_users_nothing(smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    notifier = Notifier(notify_settings(port, user_email=True), shadow=True)
    notifier.on_decisions([WARN, READY])
    notifier.step(T0)
    assert inbox.messages == []


def test_the_thread_sends_without_being_stepped(smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    notifier = Notifier(notify_settings(port, user_email=True))
    notifier.start()
    try:
        notifier.on_decisions([WARN])
        deadline = time.monotonic() + 5
        while not inbox.messages and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        notifier.stop()
    assert len(inbox.messages) == 1


def test_serve_reads_its_notify_config_and_refuses_secrets_in_it(tmp_path: Path) -> None:
    import subprocess
    import sys

    config = tmp_path / "notify.toml"
    config.write_text('[notify]\nsmtp_password = "hunter22"\n')
    env = {
        **os.environ,
        "FLOATSEAT_BASE_URL": "http://127.0.0.1:9",  # never called: serve stops first
        "FLOATSEAT_TOKEN": "t0ken",
    }
    done = subprocess.run(
        [str(Path(sys.executable).parent / "floatseat"), "serve", "--no-web",
         "--state", str(tmp_path),
         "--notify-config", str(config)],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "FLOATSEAT_NOTIFY_SMTP_PASSWORD" in done.stderr
    assert "hunter22" not in done.stderr + done.stdout


def test_a_follower_sends_no_admin_alerts_the_leader_does(webhook: tuple[Hooks, str]) -> None:
    hooks, url = webhook
    full = {"seats_held": 5, "queue_length": 2, "outbox_backlog": 4}
    settings = notify_settings(
        0,
        admin_webhook=True,
        webhook_url=url,
        check_interval_s=1,
        seats_exhausted_after_s=0,
        outbox_stuck_after_s=0,
    )
    sent = {}
    for role in ("follower", "leader"):
        start = len(hooks.received)
        now = status(T0, role=role, **full, oldest_pending_move_at=T0 - 60)
        notifier = Notifier(settings, status=lambda now=now: now)
        notifier.step(T0)
        notifier.step(T0 + 2)
        sent[role] = {json.loads(b)["alert"] for _, b in hooks.received[start:]}
    assert sent == {"follower": set(), "leader": {"seats-exhausted", "outbox-stuck"}}
