"""`ServeSettings`: what `floatseat serve` runs with, from a TOML file and the environment.

Order of precedence: `FLOATSEAT_*` environment variables, then the TOML file given with
`--config`, then the defaults. Nested values use `__` in the environment, e.g.
`FLOATSEAT_POLICY__IDLE_TIMEOUT_S=1800`.

Secrets (the product's password or token, the activity API's token and HMAC key) come only
from the environment (`FLOATSEAT_PASSWORD`, `FLOATSEAT_TOKEN`, `FLOATSEAT_ACTIVITY_TOKEN`,
`FLOATSEAT_ACTIVITY_HMAC_KEY`) or from files (`password_file = "/run/secrets/..."`). A TOML
file that holds a secret is refused: config files get copied, committed and mailed. Secrets
are `SecretStr`, so they print as `**********`, and never reach the ledger.

A minimal file::

    product = "confluence"
    base_url = "https://wiki.example.com"
    username = "floatseat-bot"
    users_group = "confluence-users"

    [policy]
    idle_timeout_s = 1800
    max_revokes_per_sweep = 20

    [[nodes]]
    name = "node1"
    access_logs = ["/var/atlassian/confluence/logs/conf_access_log.*.log"]
    security_logs = ["/var/atlassian/application-data/confluence/logs/atlassian-confluence.log*"]
    timezone = "Europe/Berlin"
"""

from __future__ import annotations

import socket
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from floatseat.directory.port import PoolGroups
from floatseat.domain.activity import DEFAULT_POLLING_PREFIXES
from floatseat.domain.policy import PolicySettings, SettingsError
from floatseat.logs.formats import FORMATS_BY_NAME

__all__ = ["NodeLogs", "PolicyConfig", "ServeSettings", "SettingsError", "load_settings"]

SECRET_FIELDS = ("password", "token", "activity_token", "activity_hmac_key")
DEFAULT_SEAT_PATHS = ("/rest/scriptrunner/latest/custom/",)


class NodeLogs(BaseModel):
    """The logs of one cluster node."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="The node's name, as alerts and the dashboard show it.")
    access_logs: list[str] = Field(
        default_factory=list, description="Globs of the node's access logs (`**` allowed)."
    )
    security_logs: list[str] = Field(
        default_factory=list,
        description="Globs of the log with refused logins: atlassian-confluence.log (Confluence) "
        "or atlassian-jira-security.log (Jira).",
    )
    format: str | None = Field(
        None, description=f"Access-log format: one of {sorted(FORMATS_BY_NAME)}; default detect."
    )
    pattern: str | None = Field(None, description="The valve's pattern, instead of `format`.")
    timezone: str = Field(
        "UTC", description="Zone of the node's app-log times that carry no offset (Confluence)."
    )

    @field_validator("format")
    @classmethod
    def _known_format(cls, value: str | None) -> str | None:
        if value is not None and value not in FORMATS_BY_NAME:
            raise ValueError(
                f"unknown format {value!r}; known: {', '.join(sorted(FORMATS_BY_NAME))}"
            )
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(f"unknown time zone {value!r}") from error
        return value

    @model_validator(mode="after")
    def _one_format(self) -> NodeLogs:
        if self.format is not None and self.pattern is not None:
            raise ValueError("give a node's format or its pattern, not both")
        return self


class PolicyConfig(BaseModel):
    """The seat policy's knobs (see `floatseat.domain.policy.PolicySettings`); seconds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    idle_timeout_s: int = 1800
    min_hold_s: int = 300
    preempt: bool = True
    preempt_after_s: int = 900
    warn_before_s: int = 60
    queue_timeout_s: int = 1800
    sweep_interval_s: int = 60
    reserve: int = 3
    lock_after_revoke_s: int = 0
    queue_aging_s: int = 300
    max_revokes_per_sweep: int = 20

    def policy(self) -> PolicySettings:
        return PolicySettings(**self.model_dump())

    @model_validator(mode="after")
    def _valid(self) -> PolicyConfig:
        try:
            self.policy()
        except SettingsError as error:
            raise ValueError(str(error)) from error
        return self


class ServeSettings(BaseSettings):
    """Everything `floatseat serve` needs. Build it with `load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix="FLOATSEAT_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    product: Literal["confluence", "jira"] = Field("confluence", description="The product.")
    base_url: str = Field("", description="Base URL of Confluence or Jira, context path included.")
    username: str | None = Field(None, description="Admin user; the password from the environment.")
    password: SecretStr | None = Field(None, description="FLOATSEAT_PASSWORD only.")
    password_file: Path | None = Field(None, description="Read the password from this file.")
    token: SecretStr | None = Field(None, description="A personal access token: FLOATSEAT_TOKEN.")
    token_file: Path | None = Field(None, description="Read the token from this file.")
    activity_token: SecretStr | None = Field(None, description="Bearer token of the activity API.")
    activity_token_file: Path | None = None
    activity_hmac_key: SecretStr | None = Field(None, description="HMAC key of the activity API.")
    activity_hmac_key_file: Path | None = None

    state_dir: Path = Field(Path("floatseat-state"), description="Where the SQLite ledger lives.")
    database_url: str | None = Field(None, description="Default: SQLite in the state dir.")
    enabled_group: str = "IUM_Enabled"
    disabled_group: str = "IUM_Disabled"
    users_group: str | None = Field(
        None, description="The product's users group: new members are placed in the pool."
    )
    excluded_users: list[str] = Field(default_factory=list, description="Never touched.")
    policy: PolicyConfig = Field(default_factory=PolicyConfig)

    nodes: list[NodeLogs] = Field(default_factory=list, description="Log sources per node.")
    polling_prefixes: list[str] = Field(
        default_factory=lambda: [p for p, _ in DEFAULT_POLLING_PREFIXES],
        description="Request targets a browser sends by itself: never activity. Editor "
        "heartbeats are real work: never list them.",
    )
    polling_regexes: list[str] = Field(default_factory=list)
    seat_paths: list[str] = Field(
        default_factory=lambda: list(DEFAULT_SEAT_PATHS),
        description="Request targets that need a seat at once (ScriptRunner custom REST "
        "endpoints): a counted request there is urgent activity, never polling.",
    )
    context_path: str | None = Field(None, description="e.g. /jira, stripped before matching.")
    excluded_agent_regex: str | None = None

    poll_interval_s: float = Field(0.25, gt=0, description="How often the logs are read.")
    coalesce_s: float = Field(
        5.0, ge=0, description="A holder's activity reaches the ledger at most this often."
    )
    outbox_interval_s: float = Field(2.0, gt=0, description="Outbox pass when nothing woke it.")
    outbox_lease_s: int = Field(
        60,
        ge=1,
        description="A move whose attempt was cut short (a crash) is retried after this; "
        "longer than any directory call takes.",
    )
    outbox_backoff_base_s: int = Field(5, ge=1, description="Wait after a failed move; doubles.")
    reconcile_interval_s: float = Field(300.0, gt=0)
    stall_check_interval_s: float = Field(5.0, gt=0)
    shadow: bool = Field(False, description="Decide and audit everything, move nobody.")
    read_existing_logs: bool = Field(
        False, description="On a first start, read the logs from their start (else from the end)."
    )
    feed_min_quiet_s: int = Field(600, gt=0, description="A feed is never stalled sooner.")
    feed_max_quiet_s: int = Field(4 * 3600, gt=0, description="A silent feed is stalled then.")

    host: str = "127.0.0.1"
    port: int = 8080

    # High availability: several instances on one PostgreSQL ledger elect a leader
    # (docs/operations.md). With SQLite the one instance always leads.
    instance_name: str = Field(
        default_factory=socket.gethostname,
        min_length=1,
        max_length=100,
        description="This instance's name in the leadership row and the audit.",
    )
    directory_timeout_s: float = Field(
        30.0, gt=0, le=300, description="Longest wait for one directory HTTP call."
    )
    ha_heartbeat_s: float = Field(1.0, gt=0, description="How often the leader renews.")
    ha_lease_s: float = Field(
        5.0, gt=0, description="A leader that could not renew for this long stops acting."
    )
    ha_leader_timeout_s: float = Field(
        15.0, gt=0, description="A follower ends a leader whose heartbeat is this old."
    )
    ha_takeover_grace_s: float | None = Field(
        None,
        ge=0,
        description="A new leader waits this long before its first directory call; "
        "default: directory_timeout_s + 5 (a deposed leader's last call is over by then).",
    )
    forward_wait_s: float = Field(
        2.0, ge=0, description="A follower waits this long for the leader to take activity."
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
        # The environment wins over the file (passed in as init values by `load_settings`).
        return (env_settings, init_settings, file_secret_settings)

    @model_validator(mode="after")
    def _consistent(self) -> ServeSettings:
        if self.enabled_group.casefold() == self.disabled_group.casefold():
            raise ValueError("enabled_group and disabled_group must differ")
        names = [n.name for n in self.nodes]
        if len(set(names)) != len(names):
            raise ValueError("node names must be unique")
        if self.feed_min_quiet_s > self.feed_max_quiet_s:
            raise ValueError("feed_min_quiet_s must not exceed feed_max_quiet_s")
        if self.ha_heartbeat_s >= self.ha_lease_s:
            raise ValueError("ha_heartbeat_s must be shorter than ha_lease_s")
        if self.takeover_grace_s <= self.directory_timeout_s:
            raise ValueError(  # else a deposed leader's last call may land after the grace
                "ha_takeover_grace_s must be longer than directory_timeout_s"
            )
        return self

    # -- derived ---------------------------------------------------------------------------

    @property
    def groups(self) -> PoolGroups:
        return PoolGroups(self.enabled_group, self.disabled_group)

    def policy_settings(self) -> PolicySettings:
        return self.policy.policy()

    @property
    def takeover_grace_s(self) -> float:
        if self.ha_takeover_grace_s is not None:
            return self.ha_takeover_grace_s
        return self.directory_timeout_s + 5.0

    def ledger_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.state_dir / 'floatseat.db').absolute()}"

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
            text = path.read_text(encoding="utf-8").strip()
        except OSError as error:
            raise SettingsError(f"cannot read {name}_file {path}: {error.strerror}") from error
        return text or None


def load_settings(config: Path | None = None, **overrides: Any) -> ServeSettings:
    """Settings from `config` (TOML) and the environment; `overrides` (from the command line)
    win over both. Raises `SettingsError` with a message for people."""
    values: dict[str, Any] = {}
    if config is not None:
        try:
            with config.open("rb") as handle:
                values = tomllib.load(handle)
        except OSError as error:
            raise SettingsError(f"cannot read {config}: {error.strerror}") from error
        except tomllib.TOMLDecodeError as error:
            raise SettingsError(f"{config} is not valid TOML: {error}") from error
        _refuse_secrets(values, str(config))
    try:
        settings = ServeSettings(**values)
        if overrides:
            merged = {
                **settings.model_dump(),
                **{k: v for k, v in overrides.items() if v is not None},
            }
            settings = ServeSettings.model_validate(merged)
    except ValueError as error:
        raise SettingsError(_plain(error)) from error
    return settings


def _refuse_secrets(values: Mapping[str, Any], where: str) -> None:
    found = sorted(k for k in values if k in SECRET_FIELDS)
    if found:
        envs = ", ".join(f"FLOATSEAT_{k.upper()}" for k in found)
        raise SettingsError(
            f"{where} holds secrets ({', '.join(found)}): set {envs} in the environment, or "
            "name a file with <name>_file, and remove them from the file"
        )


def _plain(error: ValueError) -> str:
    from pydantic import ValidationError

    if isinstance(error, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}"
            for e in error.errors()
        )
    return str(error)
