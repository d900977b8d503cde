"""The web side's own tables: admin accounts, API tokens and ended logins. (Admin actions are
audited in the ledger's one audit log: `SqlLedger.record_admin`.)

They live in the ledger's database but outside its migrations: `WebStore.create()` makes
them if they are missing (three small tables, no foreign keys into the ledger). Only hashes
are kept: argon2 for passwords, SHA-256 for API tokens (which are 256 random bits, so a fast
hash loses nothing). Secrets themselves never reach the database.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass
from enum import StrEnum

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

__all__ = ["Account", "ApiToken", "Role", "WebStore", "token_hash"]

metadata = sa.MetaData()

accounts = sa.Table(
    "web_accounts",
    metadata,
    sa.Column("username", sa.String(255), primary_key=True),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
)

api_tokens = sa.Table(
    "web_api_tokens",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("created_by", sa.String(255), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
)

# Logins ended by logging out, until their cookies would have expired anyway.
revoked_sessions = sa.Table(
    "web_revoked_sessions",
    metadata,
    sa.Column("sid", sa.String(64), primary_key=True),
    sa.Column("expires_at", sa.BigInteger, nullable=False),
)

TOKEN_PREFIX = "fst_"

# Seconds a verified API token is trusted without asking the database again. Deleting a token
# through this process's app takes effect at once; deleted by another process sharing the
# database (a second `serve`), it may keep working for up to this long there.
TOKEN_CACHE_S = 5.0
TOKEN_CACHE_MAX = 1024  # tokens remembered at most (only ones that exist are remembered)


class Role(StrEnum):
    ADMIN = "admin"  # everything
    READ_ONLY = "read-only"  # every GET
    REPORTER = "reporter"  # POST /api/v1/activity and waiting-room links only (API tokens)


@dataclass(frozen=True)
class Account:
    username: str
    role: Role
    created_at: int


@dataclass(frozen=True)
class ApiToken:
    id: int
    name: str
    role: Role
    created_by: str
    created_at: int


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


# Any constant, the same in every floatseat process (not the ledger's migration lock).
_CREATE_LOCK = 0x666C_6F61_7477_6562  # "floatweb"


class WebStore:
    """Accounts, tokens and admin actions in the ledger's database."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self._hasher = PasswordHasher()
        # SHA-256 of a token -> (its record, monotonic time until which it is trusted)
        self._token_cache: dict[str, tuple[ApiToken, float]] = {}
        self._token_lock = threading.Lock()

    def create(self) -> None:
        """Create the web side's tables where they are missing. Several instances starting at
        once on one PostgreSQL take turns (the second finds the tables there)."""
        with self.engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(sa.select(sa.func.pg_advisory_xact_lock(_CREATE_LOCK)))
            metadata.create_all(connection, checkfirst=True)

    # -- accounts ------------------------------------------------------------------------

    def has_accounts(self) -> bool:
        with self.engine.connect() as c:
            return c.execute(sa.select(accounts.c.username).limit(1)).first() is not None

    def add_account(self, username: str, password: str, role: Role, now: int) -> Account:
        if not username.strip() or len(password) < 12:
            raise ValueError("a username and a password of at least 12 characters are needed")
        hashed = self._hasher.hash(password)
        with self.engine.begin() as c:
            exists = c.execute(
                sa.select(accounts.c.username).where(accounts.c.username == username)
            ).first()
            if exists is not None:
                raise ValueError(f"an account named {username!r} already exists")
            c.execute(
                sa.insert(accounts).values(
                    username=username, password_hash=hashed, role=role.value, created_at=now
                )
            )
        return Account(username, role, now)

    def account(self, username: str) -> Account | None:
        with self.engine.connect() as c:
            row = c.execute(sa.select(accounts).where(accounts.c.username == username)).first()
        return None if row is None else Account(row.username, Role(row.role), row.created_at)

    def accounts(self) -> list[Account]:
        with self.engine.connect() as c:
            rows = c.execute(sa.select(accounts).order_by(accounts.c.username)).all()
        return [Account(r.username, Role(r.role), r.created_at) for r in rows]

    def check_password(self, username: str, password: str) -> Account | None:
        """The account if `password` is right; None otherwise (also for unknown names)."""
        with self.engine.connect() as c:
            row = c.execute(sa.select(accounts).where(accounts.c.username == username)).first()
        stored = row.password_hash if row is not None else _DUMMY_HASH
        try:
            self._hasher.verify(stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        if row is None:
            return None
        if self._hasher.check_needs_rehash(stored):
            with self.engine.begin() as c:
                c.execute(
                    sa.update(accounts)
                    .where(accounts.c.username == username)
                    .values(password_hash=self._hasher.hash(password))
                )
        return Account(row.username, Role(row.role), row.created_at)

    # -- API tokens ----------------------------------------------------------------------

    def add_token(self, name: str, role: Role, created_by: str, now: int) -> tuple[ApiToken, str]:
        """A new token: its record and the secret, which is shown once and never stored."""
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self.engine.begin() as c:
            result = c.execute(
                sa.insert(api_tokens).values(
                    name=name,
                    token_hash=token_hash(secret),
                    role=role.value,
                    created_by=created_by,
                    created_at=now,
                )
            )
            assert result.inserted_primary_key is not None
            token_id = int(result.inserted_primary_key[0])
        return ApiToken(token_id, name, role, created_by, now), secret

    def token(self, secret: str) -> ApiToken | None:
        """The token whose secret this is; verified in the database at most every
        `TOKEN_CACHE_S` seconds (unknown secrets are looked up every time)."""
        digest = token_hash(secret)
        known = self._cached_token(digest)
        if known is not None:
            return known
        with self.engine.connect() as c:
            row = c.execute(sa.select(api_tokens).where(api_tokens.c.token_hash == digest)).first()
        if row is None:
            return None
        token = _token(row)
        with self._token_lock:
            if len(self._token_cache) >= TOKEN_CACHE_MAX:
                self._token_cache.clear()
            self._token_cache[digest] = (token, time.monotonic() + TOKEN_CACHE_S)
        return token

    def cached_token(self, secret: str) -> ApiToken | None:
        """The token if it was verified within `TOKEN_CACHE_S`; None: ask `token()`.
        Never touches the database (one SHA-256), so the event loop may call it."""
        return self._cached_token(token_hash(secret))

    def _cached_token(self, digest: str) -> ApiToken | None:
        with self._token_lock:
            known = self._token_cache.get(digest)
            if known is None:
                return None
            if known[1] <= time.monotonic():
                del self._token_cache[digest]
                return None
            return known[0]

    def tokens(self) -> list[ApiToken]:
        with self.engine.connect() as c:
            return [_token(r) for r in c.execute(sa.select(api_tokens).order_by(api_tokens.c.id))]

    def delete_token(self, token_id: int) -> bool:
        with self.engine.begin() as c:
            result = c.execute(sa.delete(api_tokens).where(api_tokens.c.id == token_id))
        with self._token_lock:
            self._token_cache = {k: v for k, v in self._token_cache.items() if v[0].id != token_id}
        return result.rowcount > 0

    # -- sessions ------------------------------------------------------------------------

    def revoke_session(self, sid: str, expires_at: int, now: int) -> None:
        """End the login `sid` (until `expires_at`, when its cookie dies anyway)."""
        with self.engine.begin() as c:
            c.execute(sa.delete(revoked_sessions).where(revoked_sessions.c.expires_at < now))
            known = c.execute(
                sa.select(revoked_sessions.c.sid).where(revoked_sessions.c.sid == sid)
            ).first()
            if known is None:
                c.execute(sa.insert(revoked_sessions).values(sid=sid, expires_at=expires_at))

    def session_revoked(self, sid: str) -> bool:
        with self.engine.connect() as c:
            row = c.execute(
                sa.select(revoked_sessions.c.sid).where(revoked_sessions.c.sid == sid)
            ).first()
        return row is not None


def _token(row: sa.Row[tuple[object, ...]]) -> ApiToken:
    return ApiToken(
        int(row.id), str(row.name), Role(row.role), str(row.created_by), int(row.created_at)
    )


# Verifying against a real hash for unknown names keeps the answer time the same.
_DUMMY_HASH = PasswordHasher().hash(secrets.token_urlsafe(16))
