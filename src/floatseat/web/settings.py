"""`WebSettings`: everything the web side needs to know, with secrets from the environment or files.

Every setting has a name, a default and a description (read `WebSettings.model_fields`);
`FLOATSEAT_WEB_<NAME>` sets one from the environment. Secrets never come from the database:
the signing key and the activity HMAC key come from `FLOATSEAT_WEB_SECRET_KEY` /
`FLOATSEAT_WEB_ACTIVITY_HMAC_KEY` or from the files named by the `*_FILE` settings.
"""

from __future__ import annotations

import ipaddress
import secrets
from functools import cached_property
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["WebSettings", "is_loopback"]

_MIN_SECRET = 32  # characters; a shorter key is too easy to guess


class WebSettings(BaseSettings):
    """The web side's settings; construct it in the entrypoint, never at import."""

    model_config = SettingsConfigDict(env_prefix="FLOATSEAT_WEB_", frozen=True, extra="forbid")

    secret_key: Annotated[
        SecretStr | None,
        Field(
            description="Signs session cookies and waiting-room links (32+ characters). Unset: "
            "a random key per process, so sessions and links die with the process."
        ),
    ] = None
    secret_key_file: Annotated[
        Path | None, Field(description="Read `secret_key` from this file.")
    ] = None
    activity_hmac_key: Annotated[
        SecretStr | None,
        Field(
            description="Key for `X-Floatseat-Signature` on POST /api/v1/activity. Unset: "
            "only bearer tokens are accepted there."
        ),
    ] = None
    activity_hmac_key_file: Annotated[
        Path | None,
        Field(description="Read `activity_hmac_key` from this file."),
    ] = None
    activity_replay_window_s: Annotated[
        int,
        Field(ge=1, description="A signed activity report older or newer than this is refused."),
    ] = 300
    # A login-page script reports each login, an agent each batch: even a busy cluster's
    # Monday morning is tens a second, so these leave room to spare and stop only a runaway
    # loop or a flood (the engine decides one report at a time, about a hundred a second).
    activity_rate_per_s: Annotated[
        float,
        Field(
            ge=0,
            description="POST /api/v1/activity requests a second each principal (a token, or "
            "all signed reports together) may send, sustained; more get 429. 0: no limit.",
        ),
    ] = 200.0
    activity_burst: Annotated[
        int,
        Field(
            ge=1,
            description="How many activity requests a principal may send at once after a quiet "
            "spell, above the sustained rate.",
        ),
    ] = 400
    activity_auth_failures_per_s: Annotated[
        float,
        Field(
            ge=0,
            description="Failed authentications a second one client address (an IPv6 /64) may "
            "make on POST /api/v1/activity, sustained; then it gets 429 without its "
            "credentials being checked. 0: no limit.",
        ),
    ] = 5.0
    activity_auth_failure_burst: Annotated[
        int,
        Field(
            ge=1,
            description="How many failed authentications an address may make at once before "
            "`activity_auth_failures_per_s` applies.",
        ),
    ] = 100
    product_url: Annotated[
        str,
        Field(
            description="Where the waiting room sends a user once they hold a seat: the base URL "
            "of Confluence or Jira."
        ),
    ] = "/"
    public_url: Annotated[
        str | None,
        Field(
            description="The dashboard's own URL as users reach it (for the setup link and "
            "signed waiting-room links). Unset: taken from each request."
        ),
    ] = None
    sso_user_header: Annotated[
        str | None,
        Field(
            description="The header a reverse proxy sets to the authenticated username (e.g. "
            "X-Remote-User); trusted only from `trusted_proxies`."
        ),
    ] = None
    trusted_proxies: Annotated[
        tuple[str, ...],
        Field(description="Addresses or networks (CIDR) of the reverse proxies trusted for SSO."),
    ] = ()
    waiting_link_max_age_s: Annotated[
        int,
        Field(ge=60, description="How long a signed waiting-room link stays valid."),
    ] = 4 * 3600
    session_max_age_s: Annotated[int, Field(ge=60, description="Lifetime of a login session.")] = (
        12 * 3600
    )
    cookie_secure: Annotated[
        bool | None,
        Field(
            description="Mark cookies Secure. Unset: Secure except for plain http on a "
            "loopback host name (localhost, 127.0.0.1, ::1)."
        ),
    ] = None
    demo: Annotated[
        bool,
        Field(
            description="Let requests from loopback addresses in as admin without a login (the "
            "page says so). For `floatseat demo` only."
        ),
    ] = False
    history_window_s: Annotated[
        int,
        Field(ge=60, description="How far back the dashboard's seats chart starts."),
    ] = 24 * 3600
    poll_interval_s: Annotated[
        int,
        Field(ge=1, description="How often the dashboard and the waiting room ask for news."),
    ] = 5

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError as error:
                raise ValueError(f"trusted_proxies: {item!r} is no address or network") from error
        return value

    @field_validator("product_url")
    @classmethod
    def _web_address(cls, value: str) -> str:
        # Pages link to it and the waiting room redirects to it: http(s) or a path on this
        # server, never javascript:, data: or a scheme-relative //host.
        parsed = urlsplit(value)
        if "\\" in value or any(ord(c) < 0x21 for c in value):
            raise ValueError("product_url must not hold backslashes, spaces or control characters")
        if parsed.scheme in ("http", "https") and parsed.netloc:
            return value
        if not parsed.scheme and value.startswith("/") and not value.startswith("//"):
            return value
        raise ValueError("product_url must be an http(s) URL or a path starting with /")

    @field_validator("secret_key", "activity_hmac_key")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < _MIN_SECRET:
            raise ValueError(f"a secret must be at least {_MIN_SECRET} characters long")
        return value

    @cached_property
    def signing_key(self) -> str:
        """The key that signs cookies and links: configured, or random for this process."""
        key = _secret(self.secret_key, self.secret_key_file, "secret_key_file")
        return key if key is not None else secrets.token_urlsafe(48)

    @property
    def signing_key_is_ephemeral(self) -> bool:
        return self.secret_key is None and self.secret_key_file is None

    @cached_property
    def hmac_key(self) -> bytes | None:
        key = _secret(self.activity_hmac_key, self.activity_hmac_key_file, "activity_hmac_key_file")
        return None if key is None else key.encode("utf-8")

    def is_trusted_proxy(self, address: str | None) -> bool:
        if address is None or not self.trusted_proxies:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in ipaddress.ip_network(n, strict=False) for n in self.trusted_proxies)


def is_loopback(address: str | None) -> bool:
    """Whether `address` (an IP address or host name) is this machine."""
    if address == "localhost":
        return True
    try:
        return address is not None and ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False


def _secret(value: SecretStr | None, path: Path | None, name: str) -> str | None:
    if value is not None:
        return value.get_secret_value()
    if path is None:
        return None
    text = path.read_text(encoding="utf-8").strip()
    if len(text) < _MIN_SECRET:
        raise ValueError(f"{name}: {path} holds fewer than {_MIN_SECRET} characters")
    return text
