"""Activity in from the logs: one `NodeFeed` per cluster node, `Feeds` over them all.

Each node has two followers (`tail -F`, see `floatseat.logs.follow`):

- its **access logs**, parsed with the analyzer's parser (`CompiledPattern`, the node's
  format or pattern, else detected from the first lines) and counted by the analyzer's
  rules (`CountingRules`: anonymous and polling requests never count). Each counted request
  is activity of its user at the request's time. A request to a "seat path" (ScriptRunner
  custom REST endpoints, say) is *urgent*: it counts even if a polling prefix matches it,
  and reaches the ledger at once even for a holder;
- its **refused-login log** (Confluence's `atlassian-confluence.log`, Jira's
  `atlassian-jira-security.log`): a refused login is a disabled user who is back, urgent.

A malformed access line is counted and kept as `file:line` (the last few), never fatal.
Every poll tells `FeedHealth` whether the node's logs grew or cannot be read, so that a
silent node stops idle revokes instead of making everyone look idle.

`positions()` is what the service saves once the engine has committed what was read;
a new `Feeds` given those resumes exactly there (no replay, no skip).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from floatseat.domain.activity import CountingRules
from floatseat.domain.feeds import FeedHealth
from floatseat.logs.follow import FilePosition, FollowedLine, LogFollower
from floatseat.logs.formats import FORMATS_BY_NAME, detect_format
from floatseat.logs.pattern import (
    CompiledPattern,
    PatternError,
    canonical_user,
    compile_pattern,
    is_username,
)
from floatseat.logs.security import parse_refused_login
from floatseat.service.settings import NodeLogs, ServeSettings

__all__ = ["Feeds", "NodeFeed", "Seen", "counting_rules"]

log = logging.getLogger(__name__)

HEALTH_KEY = "__health__"
_KEEP_MALFORMED = 20


@dataclass(frozen=True)
class Seen:
    """A user seen in a log: a counted request or a refused login."""

    user: str  # canonical (lower case)
    at: int  # the line's time, Unix seconds
    urgent: bool  # a refused login or a seat path: straight to the ledger
    node: str
    refused: bool = False


@dataclass
class NodePoll:
    seen: list[Seen] = field(default_factory=list)
    lines: int = 0  # access-log lines read (any kind)
    malformed: int = 0


def counting_rules(settings: ServeSettings) -> CountingRules:
    return CountingRules(
        polling_prefixes=tuple(settings.polling_prefixes),
        polling_regexes=tuple(settings.polling_regexes),
        excluded_users=frozenset(canonical_user(u) for u in settings.excluded_users),
        excluded_agent_regex=settings.excluded_agent_regex,
        context_path=settings.context_path,
    )


class NodeFeed:
    """The followers of one node and the parsing of their lines."""

    def __init__(
        self,
        node: NodeLogs,
        rules: CountingRules,
        seat_paths: Sequence[str],
        saved: Mapping[str, Any] | None = None,
        *,
        from_start: bool = False,
    ) -> None:
        self.node = node
        self.name = node.name
        self.rules = rules
        self.seat_paths = tuple(seat_paths)
        self.zone = ZoneInfo(node.timezone)
        saved = saved or {}
        self.access = LogFollower(
            node.access_logs, _positions(saved.get("access")), from_start=from_start
        )
        self.security = LogFollower(
            node.security_logs, _positions(saved.get("security")), from_start=from_start
        )
        self.pattern: CompiledPattern | None = None
        if node.pattern is not None:
            self.pattern = compile_pattern(node.pattern)
        elif node.format is not None:
            self.pattern = FORMATS_BY_NAME[node.format].compiled()
        self.malformed = 0
        self.malformed_at: deque[str] = deque(maxlen=_KEEP_MALFORMED)

    def close(self) -> None:
        self.access.close()
        self.security.close()

    def positions(self) -> dict[str, Any]:
        return {
            "access": [p.to_json() for p in self.access.positions()],
            "security": [p.to_json() for p in self.security.positions()],
        }

    def unreadable(self) -> str | None:
        """Why the node's logs cannot be read now, or None."""
        problems = {**self.access.unreadable, **self.security.unreadable}
        if problems:
            path, why = sorted(problems.items())[0]
            return f"{path}: {why}"
        if self.node.access_logs and not self.access.positions():
            return "no file matches " + ", ".join(self.node.access_logs)
        return None

    def poll(self) -> NodePoll:
        out = NodePoll()
        lines = self.access.poll()
        out.lines = len(lines)
        if lines and self.pattern is None:
            self.pattern = self._detect(lines)
        for line in lines:
            self._access_line(line, out)
        for line in self.security.poll():
            refused = parse_refused_login(line.text, zone=self.zone)
            if refused is None:
                continue
            if not is_username(refused.user):  # typed at the login page by nobody we know
                log.info(
                    "%s:%d: a refused login for a name of %d characters: nobody's, left out",
                    line.path,
                    line.line,
                    len(refused.user),
                )
                continue
            out.seen.append(Seen(refused.user, refused.at, True, self.name, refused=True))
        return out

    def _detect(self, lines: Sequence[FollowedLine]) -> CompiledPattern | None:
        found = detect_format(line.text for line in lines)
        if found is None:
            log.warning("%s: no known access-log format matches its lines", self.name)
            return None
        log.info("%s: access logs in the %s format", self.name, found.name)
        return found.compiled()

    def _access_line(self, line: FollowedLine, out: NodePoll) -> None:
        if not line.text.strip():
            return
        parsed = self.pattern.parse(line.text) if self.pattern is not None else None
        if parsed is None:
            self.malformed += 1
            out.malformed += 1
            where = f"{line.path}:{line.line}"
            self.malformed_at.append(where)
            if self.malformed <= 10 or self.malformed % 1000 == 0:
                log.warning("%s: malformed access-log line (%d so far)", where, self.malformed)
            return
        if parsed.user is None:
            return
        rules = self.rules
        seat = bool(self.seat_paths) and rules.strip_context(parsed.target).startswith(
            self.seat_paths
        )
        counted = rules.counts(parsed.user, parsed.target, parsed.user_agent)
        if not counted and seat:
            counted = canonical_user(parsed.user) not in rules.excluded_users and not (
                rules.is_excluded_agent(parsed.user_agent)
            )
        if counted:
            user = canonical_user(parsed.user)
            if is_username(user):  # else a damaged line: no user has such a name
                out.seen.append(Seen(user, parsed.epoch_s, seat, self.name))


@dataclass
class FeedPoll:
    seen: list[Seen] = field(default_factory=list)
    lines: int = 0
    malformed: int = 0


class Feeds:
    """Every node's feed, and their health."""

    def __init__(
        self,
        settings: ServeSettings,
        saved: Mapping[str, Any] | None = None,
        *,
        now: int,
    ) -> None:
        saved = saved or {}
        rules = counting_rules(settings)
        # Resuming from saved positions, a node's files are read on from there; a first
        # start reads from the end unless told to read what is already there.
        self.nodes = [
            NodeFeed(
                node,
                rules,
                settings.seat_paths,
                saved.get(node.name),
                from_start=settings.read_existing_logs,
            )
            for node in settings.nodes
        ]
        self.health = FeedHealth(
            min_quiet_s=settings.feed_min_quiet_s, max_quiet_s=settings.feed_max_quiet_s
        )
        learnt = saved.get(HEALTH_KEY)
        if isinstance(learnt, Mapping):
            try:
                self.health.restore(learnt)
            except ValueError as error:
                log.warning("forgetting the saved feed health: %s", error)
        self.last_growth: dict[str, int] = {}
        for node in self.nodes:
            self.health.watch(node.name, now)  # floatseat's own downtime is not the node's
            self.last_growth[node.name] = now

    def close(self) -> None:
        for node in self.nodes:
            node.close()

    @property
    def malformed(self) -> int:
        return sum(n.malformed for n in self.nodes)

    def poll(self, now: int) -> FeedPoll:
        out = FeedPoll()
        for node in self.nodes:
            try:
                got = node.poll()
            except (OSError, PatternError) as error:  # never let one node stop the others
                self.health.unreadable(node.name, str(error))
                continue
            out.seen.extend(got.seen)
            out.lines += got.lines
            out.malformed += got.malformed
            why = node.unreadable()
            if why is not None:
                self.health.unreadable(node.name, why)
            elif got.lines or got.seen:
                self.health.grew(node.name, now)
                self.last_growth[node.name] = now
            else:
                self.health.readable(node.name)
        return out

    def remote(self, nodes: Mapping[str, int | None], now: int) -> None:
        """Nodes whose logs a cluster agent follows: node -> when the agent last saw its logs
        grow (None: not yet). A node first heard of now is watched from now; an agent that
        stops reporting leaves its node quiet, and the node stalls like a local one."""
        for node, log_at in nodes.items():
            if node not in self.last_growth:
                self.health.watch(node, now)
                self.last_growth[node] = now
            if log_at is not None and log_at > self.last_growth[node]:
                grew = min(log_at, now)  # an agent's clock ahead of ours is not the future
                self.health.grew(node, grew)
                self.last_growth[node] = grew

    def lag(self, now: int) -> dict[str, int]:
        """Seconds since each node's logs last grew."""
        return {name: max(0, now - at) for name, at in self.last_growth.items()}

    def positions(self) -> dict[str, Any]:
        """What to save once the engine committed what was read: by node, and the health."""
        saved: dict[str, Any] = {node.name: node.positions() for node in self.nodes}
        saved[HEALTH_KEY] = self.health.snapshot()
        return saved


def _positions(saved: object) -> list[FilePosition]:
    if not isinstance(saved, list):
        return []
    positions = []
    for item in saved:
        try:
            if isinstance(item, Mapping):
                positions.append(FilePosition.from_json(item))
        except ValueError as error:
            log.warning("ignoring a saved log position: %s", error)
    return positions
