"""`NotifySettings`: who is told what, and how; from `FLOATSEAT_NOTIFY_*` variables.

User notices are off by default: mailing every idle user is spam. Turn them on with
`FLOATSEAT_NOTIFY_USER_EMAIL=true` (and/or `..._USER_WEBHOOK=true`). Secrets (the SMTP
password, the webhook's HMAC key) come only from the environment or a file named by
`*_file`, never from a TOML file; `load_notify_settings` refuses a file that holds one.

Lists come as JSON in the environment: `FLOATSEAT_NOTIFY_ADMIN_EMAILS='["ops@example.com"]'`.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from floatseat.domain.policy import SettingsError

__all__ = ["NotifySettings", "load_notify_settings"]

SECRET_FIELDS = ("smtp_password", "webhook_secret")


class NotifySettings(BaseSettings):
    """Every knob of the notifications; durations in seconds."""

    model_config = SettingsConfigDict(env_prefix="FLOATSEAT_NOTIFY_", extra="forbid", frozen=True)

    product_url: str = Field("", description="The product's base URL, put in every message.")
    product_name: str = Field("Confluence", description="How messages name the product.")

    # Email (SMTP, standard library).
    smtp_host: str | None = Field(None, description="SMTP server; no email without it.")
    smtp_port: int = 25
    smtp_starttls: bool = Field(False, description="STARTTLS after connecting.")
    smtp_ssl: bool = Field(False, description="TLS from the start (port 465).")
    smtp_username: str | None = None
    smtp_password: SecretStr | None = Field(None, description="FLOATSEAT_NOTIFY_SMTP_PASSWORD.")
    smtp_password_file: Path | None = None
    smtp_timeout_s: float = 10.0
    mail_from: str = "floatseat@localhost"
    user_email_domain: str | None = Field(
        None, description="user@domain when the directory knows no email for a user."
    )

    # Webhook (JSON POST, HMAC-SHA256 signed when a secret is set).
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = Field(None, description="FLOATSEAT_NOTIFY_WEBHOOK_SECRET.")
    webhook_secret_file: Path | None = None
    webhook_timeout_s: float = 10.0

    # Who gets what.
    user_email: bool = Field(False, description="Email users (off: it is easily spam).")
    user_webhook: bool = Field(False, description="Post users' notices to the webhook.")
    admin_emails: list[str] = Field(default_factory=list)
    admin_webhook: bool = Field(False, description="Post admin alerts to the webhook.")
    user_min_interval_s: int = Field(
        3600, ge=0, description="At most one notice of each kind per user this often."
    )
    seat_ready_wait_s: int = Field(
        120, ge=0, description="How long a seat-ready notice waits for the grant to be applied."
    )

    # Admin alerts.
    check_interval_s: float = Field(30.0, gt=0, description="How often the status is read.")
    seats_exhausted_after_s: int = Field(600, ge=0, description="No free seat this long: alert.")
    outbox_stuck_after_s: int = Field(300, ge=0, description="A move unapplied this long: alert.")
    directory_failures: int = Field(3, ge=1, description="Directory errors in a row: alert.")
    alert_repeat_s: int = Field(3600, ge=0, description="A lasting problem is re-alerted then.")

    templates_dir: Path | None = Field(
        None, description="Jinja2 templates overriding the built-in ones (same names)."
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (env_settings, init_settings, file_secret_settings)

    @model_validator(mode="after")
    def _consistent(self) -> NotifySettings:
        if self.smtp_ssl and self.smtp_starttls:
            raise ValueError("smtp_ssl and smtp_starttls do not go together")
        if self.user_email and not self.smtp_host:
            raise ValueError("user_email needs smtp_host")
        if self.admin_emails and not self.smtp_host:
            raise ValueError("admin_emails needs smtp_host")
        if (self.user_webhook or self.admin_webhook) and not self.webhook_url:
            raise ValueError("user_webhook and admin_webhook need webhook_url")
        return self

    def secret(self, name: str) -> str | None:
        """A secret's value: from the environment, else from its file; None if neither."""
        if name not in SECRET_FIELDS:
            raise KeyError(name)
        value: SecretStr | None = getattr(self, name)
        if value is not None and value.get_secret_value():
            return value.get_secret_value()
        path: Path | None = getattr(self, f"{name}_file")
        if path is None:
            return None
        try:
            return path.read_text(encoding="utf-8").strip() or None
        except OSError as error:
            raise SettingsError(f"cannot read {name}_file {path}: {error.strerror}") from error

    @property
    def enabled(self) -> bool:
        return bool(self.user_email or self.user_webhook or self.admin_emails or self.admin_webhook)


def load_notify_settings(config: Path | None = None, **overrides: Any) -> NotifySettings:
    """Settings from the `[notify]` table of `config` (TOML) and the environment."""
    values: dict[str, Any] = {}
    if config is not None:
        try:
            with config.open("rb") as handle:
                values = dict(tomllib.load(handle).get("notify", {}))
        except OSError as error:
            raise SettingsError(f"cannot read {config}: {error.strerror}") from error
        except tomllib.TOMLDecodeError as error:
            raise SettingsError(f"{config} is not valid TOML: {error}") from error
        found = sorted(k for k in values if k in SECRET_FIELDS)
        if found:
            envs = ", ".join(f"FLOATSEAT_NOTIFY_{k.upper()}" for k in found)
            raise SettingsError(
                f"{config} holds secrets ({', '.join(found)}): set {envs} in the environment, "
                "or name a file with <name>_file"
            )
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return NotifySettings(**values)
    except ValueError as error:
        raise SettingsError(str(error)) from error
