"""Which requests count as a user's activity (DESIGN.md, "Semantics that must be exact")."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# Requests a browser sends by itself while a tab merely stays open. Prefixes of the request
# target as logged (path plus '?query', not decoded). Editor heartbeats are real work and are
# deliberately absent.
DEFAULT_POLLING_PREFIXES: tuple[tuple[str, str], ...] = (
    ("/rest/mywork/latest/status/notification/count", "notification badge, every few minutes"),
    ("/rest/quickreload/latest/", "Confluence page-changed check while a page is open"),
    ("/rest/analytics/1.0/publish/bulk", "front-end analytics batches sent by open tabs"),
    ("/rest/greenhopper/1.0/xboard/work/allData.json", "agile board refresh, every 30 s"),
    ("/rest/scriptrunner/latest/message", "ScriptRunner banner poll"),
    ("/rest/scriptrunner/1.0/message", "ScriptRunner banner poll (older path)"),
)


@dataclass(frozen=True)
class CountingRules:
    """What makes a logged request count as activity.

    A request counts when it names a user, its target is not polling (after stripping the
    context path), and neither its user nor its user agent is excluded.
    """

    polling_prefixes: tuple[str, ...] = tuple(p for p, _ in DEFAULT_POLLING_PREFIXES)
    polling_regexes: tuple[str, ...] = ()
    excluded_users: frozenset[str] = frozenset()  # canonical (lower-case) usernames
    excluded_agent_regex: str | None = None
    context_path: str | None = None  # e.g. '/jira'
    _compiled: tuple[re.Pattern[str], ...] = field(default=(), init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_compiled", tuple(re.compile(r) for r in self.polling_regexes))
        if self.excluded_agent_regex is not None:
            re.compile(self.excluded_agent_regex)
        if self.context_path is not None:
            object.__setattr__(self, "context_path", "/" + self.context_path.strip("/"))

    def strip_context(self, target: str) -> str:
        prefix = self.context_path
        if prefix is None or prefix == "/" or not target.startswith(prefix):
            return target
        rest = target[len(prefix) :]
        if rest == "" or rest[0] in "/?":
            return rest if rest.startswith("/") else "/" + rest
        return target

    def is_polling(self, target: str) -> bool:
        target = self.strip_context(target)
        if target.startswith(self.polling_prefixes):
            return True
        return any(regex.search(target) for regex in self._compiled)

    def is_excluded_agent(self, agent: str | None) -> bool:
        if self.excluded_agent_regex is None or agent is None:
            return False
        return re.search(self.excluded_agent_regex, agent) is not None

    def counts(self, user: str | None, target: str, agent: str | None) -> bool:
        """Whether a request of `user` (None when anonymous) counts as activity."""
        if user is None:
            return False
        if user.lower() in self.excluded_users:
            return False
        return not self.is_polling(target) and not self.is_excluded_agent(agent)
