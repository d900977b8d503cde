"""Who is asking: sessions, CSRF, API tokens, signed activity reports and waiting-room links.

* A session is a signed cookie (itsdangerous) holding the account name and a CSRF token;
  every visitor gets one, so that even the login form carries CSRF protection. It is
  HttpOnly, SameSite=Strict, and Secure unless the page is plain http on a loopback host.
* A request authenticated by its cookie (or let in by demo mode) must carry the session's
  CSRF token to change anything: the form field `csrf_token` or the `X-CSRF-Token` header.
* `Authorization: Bearer <token>` authenticates an API token (hash in the database); such a
  request needs no CSRF token, since a browser never adds the header by itself.
* POST /api/v1/activity also accepts an HMAC signature:
  `X-Floatseat-Timestamp: <unix seconds>` and
  `X-Floatseat-Signature: sha256=<hex HMAC-SHA256(key, "<timestamp>." + body)>`,
  refused outside the replay window or when the same signature was seen before.
* Waiting-room identity: an SSO header set by a trusted proxy, or a signed, expiring link
  (`waiting_room_token`). A username typed into the page is never trusted.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import Response

from floatseat.web.settings import WebSettings, is_loopback
from floatseat.web.store import Role, WebStore

__all__ = [
    "CSRF_FIELD",
    "CSRF_HEADER",
    "SESSION_COOKIE",
    "ActivitySignatures",
    "LoginThrottle",
    "Principal",
    "Session",
    "Sessions",
    "is_local_visitor",
    "make_waiting_room_link",
    "read_waiting_room_token",
    "sign_activity",
    "waiting_room_token",
]

SESSION_COOKIE = "floatseat_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SIGNATURE_HEADER = "X-Floatseat-Signature"
TIMESTAMP_HEADER = "X-Floatseat-Timestamp"
_SESSION_SALT = "floatseat-session"
_WAITING_SALT = "floatseat-waiting-room"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Principal:
    """Someone the web side let in: an account, an API token, or a demo visitor."""

    name: str
    role: Role
    via: str  # session | token | demo | hmac

    @property
    def can_read(self) -> bool:
        return self.role in (Role.ADMIN, Role.READ_ONLY)

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    @property
    def needs_csrf(self) -> bool:
        return self.via in ("session", "demo")


FLASH_MAX = 300  # characters: the flash rides in the cookie, which browsers cap at 4 KB


@dataclass
class Session:
    user: str | None
    csrf: str
    flash: str | None = None  # a message for the next page shown
    dirty: bool = False
    sid: str | None = None  # names a login, so that logging out can end every copy of it

    def log_in(self, user: str) -> None:
        """A new login: new id and CSRF token, so nothing planted before survives it."""
        self.user = user
        self.sid = secrets.token_urlsafe(18)
        self.csrf = secrets.token_urlsafe(24)
        self.dirty = True

    def say(self, message: str) -> None:
        self.flash = message if len(message) <= FLASH_MAX else message[: FLASH_MAX - 1] + "…"
        self.dirty = True


class Sessions:
    """Reads and writes the session cookie; a login that was logged out stays out."""

    def __init__(self, settings: WebSettings, store: WebStore) -> None:
        self.settings = settings
        self.web_store = store
        self._serializer = URLSafeTimedSerializer(settings.signing_key, salt=_SESSION_SALT)

    def load(self, request: Request) -> Session:
        raw = request.cookies.get(SESSION_COOKIE)
        if raw:
            try:
                data: Any = self._serializer.loads(raw, max_age=self.settings.session_max_age_s)
                user, csrf, flash, sid = data["u"], data["c"], data.get("f"), data.get("s")
                if (
                    (user is None or isinstance(user, str))
                    and isinstance(csrf, str)
                    and (flash is None or isinstance(flash, str))
                    and (sid is None or isinstance(sid, str))
                ):
                    if user is None or (sid and not self.web_store.session_revoked(sid)):
                        return Session(user, csrf, flash, sid=sid)
            except (BadSignature, KeyError, TypeError):
                pass
        return Session(None, secrets.token_urlsafe(24), dirty=True)

    def end(self, session: Session) -> None:
        """Log out: this login ends here and in every copy of its cookie."""
        if session.sid is not None:
            now = int(time.time())  # itsdangerous ages cookies by the wall clock too
            self.web_store.revoke_session(session.sid, now + self.settings.session_max_age_s, now)
        session.user = None
        session.sid = None
        session.csrf = secrets.token_urlsafe(24)
        session.dirty = True

    def store(self, request: Request, response: Response, session: Session) -> None:
        value = self._serializer.dumps(
            {"u": session.user, "c": session.csrf, "f": session.flash, "s": session.sid}
        )
        response.set_cookie(
            SESSION_COOKIE,
            value,
            max_age=self.settings.session_max_age_s,
            httponly=True,
            samesite="strict",
            secure=self.secure(request),
            path="/",
        )

    def secure(self, request: Request) -> bool:
        if self.settings.cookie_secure is not None:
            return self.settings.cookie_secure
        return not (request.url.scheme == "http" and is_loopback(request.url.hostname))


_FORWARDING_HEADERS = (
    "forwarded",
    "via",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-real-ip",
)


def is_local_visitor(request: Request) -> bool:
    """A request straight from this machine, to this machine's name (demo mode's admins).

    Not through a proxy (whatever address it claims to forward for: a proxy on loopback
    would make every visitor look local), and not to a foreign host name (a web page whose
    DNS name was rebound to 127.0.0.1 is same-origin with itself, not with this server).
    """
    client = request.client.host if request.client else None
    if not is_loopback(client) or not is_loopback(request.url.hostname):
        return False
    return not any(name in request.headers for name in _FORWARDING_HEADERS)


class LoginThrottle:
    """Backs off password guessing, per username and per client address.

    Each key gets `free` failures; after that, every failure closes it for twice as long
    as the one before (1 s, 2 s, 4 s ... up to `MAX_WAIT_S`). A closed key is refused
    without checking the password, so the refusal tells nothing about it. A right password
    clears the username's count (not the address's); counts fade after `FORGET_S` without
    failures. A few password checks run at once at most: argon2 takes 64 MiB each.
    """

    NAME_FREE = 5
    ADDRESS_FREE = 30
    MAX_WAIT_S = 900
    FORGET_S = 3600
    MAX_KEYS = 10_000

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._failures: dict[str, tuple[int, float, float]] = {}  # count, last, closed until
        self._lock = threading.Lock()
        self.checking = threading.BoundedSemaphore(4)

    @staticmethod
    def _keys(username: str, address: str | None) -> tuple[tuple[str, int], ...]:
        return (
            ("name:" + username.strip().casefold(), LoginThrottle.NAME_FREE),
            ("addr:" + (address or "?"), LoginThrottle.ADDRESS_FREE),
        )

    def wait_s(self, username: str, address: str | None) -> int:
        """Seconds until this username may try again from this address; 0: now."""
        now = self.clock()
        with self._lock:
            closed = [
                self._failures.get(k, (0, 0.0, 0.0))[2] for k, _ in self._keys(username, address)
            ]
        return max(0, math.ceil(max(closed) - now))

    def failed(self, username: str, address: str | None) -> None:
        now = self.clock()
        with self._lock:
            if len(self._failures) >= self.MAX_KEYS:
                self._forget(now)
            for key, free in self._keys(username, address):
                count, last, until = self._failures.get(key, (0, now, 0.0))
                if now - last > self.FORGET_S and now >= until:
                    count = 0
                count += 1
                if count >= free:
                    until = now + min(2.0 ** (count - free), self.MAX_WAIT_S)
                self._failures[key] = (count, now, until)

    def succeeded(self, username: str) -> None:
        with self._lock:
            self._failures.pop(self._keys(username, None)[0][0], None)

    def _forget(self, now: float) -> None:
        for key, (_, last, until) in list(self._failures.items()):
            if now - last > self.FORGET_S and now >= until:
                del self._failures[key]
        while len(self._failures) >= self.MAX_KEYS:  # still full: the oldest go first
            oldest = min(self._failures, key=lambda k: self._failures[k][1])
            del self._failures[oldest]


def csrf_ok(session: Session, presented: str | None) -> bool:
    return presented is not None and hmac.compare_digest(session.csrf, presented)


def bearer_principal(
    request: Request, store: WebStore, *, cached: bool = False
) -> Principal | None:
    """The API token's principal; with `cached`, only a token verified lately (no I/O)."""
    header = request.headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        return None
    token = store.cached_token(secret.strip()) if cached else store.token(secret.strip())
    return None if token is None else Principal(f"token:{token.name}", token.role, "token")


# -- signed activity reports ----------------------------------------------------------------


def sign_activity(key: bytes, timestamp: int, body: bytes) -> str:
    """The `X-Floatseat-Signature` value for `body` sent at `timestamp`."""
    mac = hmac.new(key, str(timestamp).encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


class ActivitySignatures:
    """Checks signed activity reports; remembers the signatures seen within the window."""

    def __init__(self, key: bytes | None, window_s: int) -> None:
        self.key = key
        self.window_s = window_s
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def check(self, timestamp: str | None, signature: str | None, body: bytes) -> str | None:
        """None if the report is signed and fresh; otherwise why it is refused."""
        if self.key is None:
            return "signed reports are not configured (no activity HMAC key)"
        if not timestamp or not signature:
            return f"missing {TIMESTAMP_HEADER} or {SIGNATURE_HEADER}"
        try:
            sent = int(timestamp)
        except ValueError:
            return f"{TIMESTAMP_HEADER} is not a whole number of seconds"
        now = time.time()
        if abs(now - sent) > self.window_s:
            return f"the timestamp is more than {self.window_s} s away from now"
        expected = sign_activity(self.key, sent, body)
        if not hmac.compare_digest(expected, signature.strip().lower()):
            return "bad signature"
        with self._lock:
            for seen, expiry in list(self._seen.items()):
                if expiry < now:
                    del self._seen[seen]
            if expected in self._seen:
                return "replayed: this signature was used before"
            self._seen[expected] = sent + self.window_s + 1
        return None


# -- waiting-room links ---------------------------------------------------------------------


def waiting_room_token(settings: WebSettings, user: str) -> str:
    """A signed token naming `user`, valid for `settings.waiting_link_max_age_s`."""
    return URLSafeTimedSerializer(settings.signing_key, salt=_WAITING_SALT).dumps(user)


def read_waiting_room_token(settings: WebSettings, token: str) -> str | None:
    """The user a waiting-room token names, or None if it is forged or expired."""
    serializer = URLSafeTimedSerializer(settings.signing_key, salt=_WAITING_SALT)
    try:
        user = serializer.loads(token, max_age=settings.waiting_link_max_age_s)
    except BadSignature:
        return None
    return user if isinstance(user, str) and user else None


def make_waiting_room_link(settings: WebSettings, user: str, base_url: str | None = None) -> str:
    """The waiting-room URL for `user`: send it to them (mail, chat, a login-page script).

    `base_url` is the dashboard's URL as users reach it; default `settings.public_url`.
    """
    base = (base_url or settings.public_url or "").rstrip("/")
    return f"{base}/waiting-room?{urlencode({'t': waiting_room_token(settings, user)})}"
