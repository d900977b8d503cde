"""`AgentSettings`: what `floatseat agent` runs with, and the one-node feed settings it builds.

The agent reads its node's logs with `floatseat serve`'s own `Feeds`, so it needs a
`ServeSettings` holding one node. The counting rules (polling prefixes, seat paths, excluded
users, context path) come from serve's TOML file when `config` names it, so that a line
counts the same on the agent as on the service; the node's log files come from the
options.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from floatseat.service.settings import NodeLogs, ServeSettings, SettingsError, load_settings

__all__ = [
    "ACCESS_LOG_GLOBS",
    "SECURITY_LOG_GLOBS",
    "AgentSettings",
    "Product",
    "default_node_name",
    "feed_settings",
    "node_logs",
]

Product = Literal["confluence", "jira"]

# The file names each product gives its logs (shared/reference/atlassian.md, sections 6
# and 7), looked for in each --follow folder. The refused-login log is followed through
# its rotations (`.1`, `.2`, ...), as `floatseat serve` does.
ACCESS_LOG_GLOBS: dict[Product, tuple[str, ...]] = {
    "confluence": ("conf_access_log.*.log",),
    "jira": ("access_log.*",),
}
SECURITY_LOG_GLOBS: dict[Product, tuple[str, ...]] = {
    "confluence": ("atlassian-confluence.log*",),
    "jira": ("atlassian-jira-security.log*",),
}


def default_node_name() -> str:
    return socket.gethostname().split(".")[0] or "node"


@dataclass(frozen=True)
class AgentSettings:
    """Options of `floatseat agent`; seconds and bytes."""

    to_url: str  # the floatseat service's base URL
    token: str = field(repr=False)
    product: Product
    node: str
    spool_dir: Path
    follow: tuple[Path, ...] = ()
    access_logs: tuple[str, ...] = ()  # globs, beside those found in `follow`
    security_logs: tuple[str, ...] = ()
    pattern: str | None = None  # the valve's pattern; default: detect the format
    timezone: str = "UTC"  # of Confluence's application-log times, which carry no offset
    config: Path | None = None  # serve's TOML file: the counting rules
    ca_file: Path | None = None
    batch_max: int = 1000
    interval_s: float = 0.25
    heartbeat_s: float = 30.0
    spool_max_bytes: int = 256 * 1024 * 1024
    read_existing: bool = False  # on a first start, read what the logs hold already

    def __post_init__(self) -> None:
        if not self.to_url.startswith(("https://", "http://")):
            raise SettingsError(f"--to must be an http(s) URL, not {self.to_url!r}")
        if not self.token:
            raise SettingsError(
                "no token: set FLOATSEAT_AGENT_TOKEN, or give --token-file (or --token)"
            )
        if not 1 <= self.batch_max <= 5000:
            raise SettingsError("--batch-max must lie between 1 and 5000")
        if self.interval_s <= 0 or self.heartbeat_s <= 0:
            raise SettingsError("--interval must be above 0")
        if self.spool_max_bytes < 1:
            raise SettingsError("--spool-max-mb must be 1 or more")
        if not self.node.strip() or len(self.node) > 255:
            raise SettingsError("--node must be a name of 1 to 255 characters")


def node_logs(settings: AgentSettings) -> NodeLogs:
    """The node's logs: the product's file names in each --follow folder, plus --access and
    --security globs."""
    access = [*_in_folders(settings.follow, ACCESS_LOG_GLOBS[settings.product])]
    security = [*_in_folders(settings.follow, SECURITY_LOG_GLOBS[settings.product])]
    access.extend(settings.access_logs)
    security.extend(settings.security_logs)
    if not access:
        raise SettingsError("nothing to follow: give --follow DIR or --access GLOB")
    try:
        return NodeLogs(
            name=settings.node,
            access_logs=access,
            security_logs=security,
            format=None,  # detected from the first lines, unless the pattern is given
            pattern=settings.pattern,
            timezone=settings.timezone,
        )
    except ValueError as error:
        raise SettingsError(str(error)) from error


def feed_settings(settings: AgentSettings) -> ServeSettings:
    """serve's settings (from `config`, if given, and the environment) with this node only."""
    base = load_settings(settings.config)
    try:
        return ServeSettings.model_validate(
            {
                **base.model_dump(),
                "nodes": [node_logs(settings).model_dump()],
                "read_existing_logs": settings.read_existing,
            }
        )
    except ValueError as error:
        raise SettingsError(str(error)) from error


def _in_folders(folders: Sequence[Path], names: Sequence[str]) -> list[str]:
    return [str(folder / name) for folder in folders for name in names]
