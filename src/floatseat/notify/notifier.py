"""`Notifier`: tells users and admins what the engine decided and how the service is doing.

Fed two ways, and never in the way of a decision:
- `on_decisions(decisions)` (the runtime's hook, called after every commit) only queues the
  notices it cares about: `Warn` (the seat goes soon) and a `Grant` with rule
  `grant-from-queue` (the seat a queued user waited for);
- `step(now)` (its own thread, or a test) sends them, rate-limited per user, waiting for a
  seat-ready grant to be applied before saying so, and reads the runtime's status for the
  admin alerts (`floatseat.notify.alerts`).

Shadow mode moves nobody, so users are told nothing then; admins still get alerts.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from floatseat.domain.policy import Decision, Grant, Rule, Warn
from floatseat.notify.alerts import Alert, AlertRules, AlertState, admin_alerts
from floatseat.notify.channels import Mailer, NotifyError, Webhook
from floatseat.notify.settings import NotifySettings
from floatseat.notify.templates import Templates

if TYPE_CHECKING:
    from floatseat.directory.port import ManagedDirectory
    from floatseat.service.runtime import Runtime, RuntimeStatus

__all__ = ["Notice", "Notifier", "Sent"]

log = logging.getLogger(__name__)

SEAT_WARNING = "seat-warning"
SEAT_READY = "seat-ready"
ADMIN_ALERT = "admin-alert"
_SECONDS_LEFT = re.compile(r"\bin (\d+) s\b")
_DRIFT_KINDS = ("drift-adopted", "drift-revoked", "drift-regranted")


@dataclass(frozen=True)
class Notice:
    """A message for one user, decided at `at`."""

    event: str  # seat-warning or seat-ready
    user: str
    at: int
    reason: str
    seconds_left: int = 0


@dataclass(frozen=True)
class Sent:
    """What was sent (or failed), for the log and the tests."""

    event: str
    to: str  # a user, or "admins"
    channel: str  # email or webhook
    at: int
    error: str | None = None


@dataclass
class Notifier:
    settings: NotifySettings
    mailer: Mailer | None = None
    webhook: Webhook | None = None
    email_of: Callable[[str], str | None] | None = None  # default: user@user_email_domain
    status: Callable[[], RuntimeStatus] | None = None
    drift_details: Callable[[int], list[str]] = lambda _since: []
    grant_pending: Callable[[str], bool] = lambda _user: False
    shadow: bool = False
    warn_before_s: int = 60
    clock: Callable[[], float] = time.time
    templates: Templates = field(init=False)
    sent: deque[Sent] = field(default_factory=lambda: deque(maxlen=1000))
    _queue: deque[Notice] = field(default_factory=deque, init=False)
    _waiting: list[Notice] = field(default_factory=list, init=False)
    _last_user: dict[tuple[str, str], int] = field(default_factory=dict, init=False)
    _alerts: AlertState = field(default_factory=AlertState, init=False)
    _next_check: float = field(default=float("-inf"), init=False)
    _last_check_at: int = field(default=0, init=False)
    _step_sent: list[Sent] = field(default_factory=list, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _wake: threading.Event = field(default_factory=threading.Event, init=False)
    _stop: threading.Event = field(default_factory=threading.Event, init=False)
    _thread: threading.Thread | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.templates = Templates(self.settings.templates_dir)
        self._email_of = self.email_of or _email_lookup(self.settings, None)
        s = self.settings
        if self.mailer is None and s.smtp_host:
            self.mailer = Mailer(
                s.smtp_host,
                s.smtp_port,
                sender=s.mail_from,
                starttls=s.smtp_starttls,
                use_ssl=s.smtp_ssl,
                username=s.smtp_username,
                password=s.secret("smtp_password"),
                timeout_s=s.smtp_timeout_s,
            )
        if self.webhook is None and s.webhook_url:
            self.webhook = Webhook(s.webhook_url, s.secret("webhook_secret"), s.webhook_timeout_s)

    # -- wiring ----------------------------------------------------------------------------

    @classmethod
    def for_runtime(
        cls,
        settings: NotifySettings,
        runtime: Runtime,
        directory: ManagedDirectory | None = None,
        **options: Any,
    ) -> Notifier:
        """A notifier reading `runtime`'s status and ledger, hooked to its decisions; user
        emails from `directory` (its `find_user`), else `user_email_domain`."""
        from floatseat.service.ports import AuditKind

        ledger = runtime.ledger

        def drift_details(since: int) -> list[str]:
            with ledger.transaction() as tx:
                entries = tx.audit_log()
            kinds = {AuditKind(k) for k in _DRIFT_KINDS}
            return [f"{e.user}: {e.reason}" for e in entries if e.kind in kinds and e.at >= since]

        def grant_pending(user: str) -> bool:
            with ledger.transaction() as tx:
                return user in tx.users_with_unfinished_moves()

        notifier = cls(
            settings,
            email_of=_email_lookup(settings, directory),
            status=runtime.status,
            drift_details=drift_details,
            grant_pending=grant_pending,
            shadow=runtime.shadow,
            warn_before_s=runtime.policy_settings.warn_before_s,
            clock=runtime.clock,
            **options,
        )
        runtime.on_decisions = notifier.on_decisions
        return notifier

    # -- fed by the runtime ----------------------------------------------------------------

    def on_decisions(self, decisions: Iterable[Decision]) -> None:
        """Queue the notices `decisions` call for; cheap, never raises, never blocks on I/O."""
        if self.shadow or not (self.settings.user_email or self.settings.user_webhook):
            return
        notices = []
        for d in decisions:
            if isinstance(d, Warn):
                match = _SECONDS_LEFT.search(d.reason)
                left = int(match[1]) if match else self.warn_before_s
                notices.append(Notice(SEAT_WARNING, d.user, d.at, d.reason, left))
            elif isinstance(d, Grant) and d.rule is Rule.GRANT_FROM_QUEUE:
                notices.append(Notice(SEAT_READY, d.user, d.at, d.reason))
        if notices:
            with self._lock:
                self._queue.extend(notices)
            self._wake.set()

    # -- sending ---------------------------------------------------------------------------

    def step(self, now: float) -> list[Sent]:
        """Send what is due: users' notices, then admin alerts when their check is due."""
        t = int(now)
        self._step_sent = []
        with self._lock:
            notices = [*self._waiting, *self._queue]
            self._queue.clear()
            self._waiting = []
        for notice in notices:
            if notice.event == SEAT_READY and self._grant_pending(notice.user):
                if t - notice.at < self.settings.seat_ready_wait_s:
                    with self._lock:
                        self._waiting.append(notice)
                else:
                    log.warning("seat of %s not applied yet: not telling them", notice.user)
                continue
            self._send_notice(notice, t)
        if self.status is not None and now >= self._next_check:
            self._next_check = now + self.settings.check_interval_s
            self._check(t)
        return self._step_sent

    def _grant_pending(self, user: str) -> bool:
        try:
            return self.grant_pending(user)
        except Exception as error:  # the ledger failed: tell them anyway, later
            log.warning("cannot read the outbox: %s", error)
            return True

    def _send_notice(self, notice: Notice, now: int) -> None:
        key = (notice.event, notice.user.casefold())
        last = self._last_user.get(key)
        if last is not None and now - last < self.settings.user_min_interval_s:
            return
        self._last_user[key] = now
        if len(self._last_user) > 10_000:
            horizon = now - self.settings.user_min_interval_s
            self._last_user = {k: v for k, v in self._last_user.items() if v >= horizon}
        context = self._context(user=notice.user, seconds_left=notice.seconds_left)
        context["reason"] = notice.reason
        subject, text = self.templates.render(notice.event, **context)
        s = self.settings
        if s.user_email and self.mailer is not None:
            address = self._email(notice.user)
            if address is None:
                self._record(Sent(notice.event, notice.user, "email", now, "no email address"))
            else:
                self._deliver_mail(notice.event, notice.user, [address], subject, text, now)
        if s.user_webhook and self.webhook is not None:
            payload = {
                "event": notice.event,
                "user": notice.user,
                "email": self._email(notice.user),
                "decided_at": notice.at,
                "seconds_left": notice.seconds_left,
                "subject": subject,
                "text": text,
                "product": s.product_name,
                "product_url": s.product_url,
            }
            self._deliver_hook(notice.event, notice.user, payload, now)

    def _check(self, now: int) -> None:
        assert self.status is not None
        if not (self.settings.admin_emails or self.settings.admin_webhook):
            return
        try:
            status = self.status()
        except Exception as error:
            log.warning("cannot read the service's status: %s", error)
            return
        if status.role == "follower":
            return  # the leader alerts: three instances must not send three alerts
        details: list[str] = []
        if status.drift_repairs > self._alerts.drift_seen:
            try:
                details = self.drift_details(self._last_check_at)
            except Exception as error:
                log.warning("cannot read the audit log: %s", error)
        self._last_check_at = now
        rules = AlertRules(
            self.settings.seats_exhausted_after_s,
            self.settings.outbox_stuck_after_s,
            self.settings.directory_failures,
            self.settings.alert_repeat_s,
        )
        for alert in admin_alerts(status, self._alerts, rules, drift_details=details):
            self.alert(alert)

    def alert(self, alert: Alert) -> None:
        """Send `alert` to the admins, by every channel configured."""
        s = self.settings
        subject, text = self.templates.render(ADMIN_ALERT, **self._context(alert=alert))
        if s.admin_emails and self.mailer is not None:
            self._deliver_mail(ADMIN_ALERT, "admins", list(s.admin_emails), subject, text, alert.at)
        if s.admin_webhook and self.webhook is not None:
            payload = {
                "event": ADMIN_ALERT,
                "alert": alert.kind,
                "title": alert.title,
                "detail": alert.detail,
                "at": alert.at,
                "subject": subject,
                "text": text,
                "product": s.product_name,
                "product_url": s.product_url,
            }
            self._deliver_hook(ADMIN_ALERT, "admins", payload, alert.at)

    def _context(self, **extra: Any) -> dict[str, Any]:
        return {
            "product": self.settings.product_name,
            "product_url": self.settings.product_url,
            **extra,
        }

    def _email(self, user: str) -> str | None:
        try:
            return self._email_of(user)
        except Exception as error:
            log.warning("cannot look up the email of %s: %s", user, error)
            return None

    def _deliver_mail(
        self, event: str, to: str, addresses: list[str], subject: str, text: str, now: int
    ) -> None:
        assert self.mailer is not None
        try:
            self.mailer.send(addresses, subject, text)
        except NotifyError as error:
            log.warning("%s for %s: %s", event, to, error)
            self._record(Sent(event, to, "email", now, str(error)))
        else:
            self._record(Sent(event, to, "email", now))

    def _deliver_hook(self, event: str, to: str, payload: dict[str, Any], now: int) -> None:
        assert self.webhook is not None
        try:
            self.webhook.send(payload, now)
        except NotifyError as error:
            log.warning("%s for %s: %s", event, to, error)
            self._record(Sent(event, to, "webhook", now, str(error)))
        else:
            self._record(Sent(event, to, "webhook", now))

    def _record(self, sent: Sent) -> None:
        self.sent.append(sent)
        self._step_sent.append(sent)

    # -- its thread ------------------------------------------------------------------------

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="floatseat-notify", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                self.step(self.clock())
            except Exception:  # a bug here must never stop the notices for good
                log.exception("notifier step failed")
            self._wake.wait(min(self.settings.check_interval_s, 1.0 if self._waiting else 5.0))


def _email_lookup(
    settings: NotifySettings, directory: ManagedDirectory | None
) -> Callable[[str], str | None]:
    cache: dict[str, str | None] = {}

    def email_of(user: str) -> str | None:
        if user in cache:
            return cache[user]
        found = None
        if directory is not None:
            person = directory.find_user(user)
            found = None if person is None else person.email
        if found is None and settings.user_email_domain:
            found = f"{user}@{settings.user_email_domain}"
        if len(cache) > 10_000:
            cache.clear()
        cache[user] = found
        return found

    return email_of


def sent_events(sent: Sequence[Sent]) -> list[tuple[str, str, str]]:
    """(event, to, channel) of what was sent without error."""
    return [(s.event, s.to, s.channel) for s in sent if s.error is None]
