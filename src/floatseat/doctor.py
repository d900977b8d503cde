"""`floatseat doctor`: check an installation and say, for every problem, what is wrong and
how to fix it.

Each check gives a `Finding`: OK, WARN (works, but slower or riskier than it should),
FAIL (floatseat cannot work as it should, or the licence is at risk) or SKIP (not checked:
the message says why, and what to check by hand). The exit status is 2 with any FAIL, 1 with
any WARN, else 0.

The checks are pure functions of what was read (`check_*`); `run_doctor` does the reading:
server.xml files, the nodes' log files, the product's REST API (the same connector as
`floatseat serve`) and one plain HTTP request for the `Date` and `X-RateLimit-*` headers.
Nothing is changed in the product unless `write_test` asks for it.
"""

from __future__ import annotations

import email.utils
import glob
import json
import os
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from floatseat.directory.port import UNLIMITED_TIER, ApplicationAccess, Licence, PoolGroups
from floatseat.logs.formats import FORMATS_BY_NAME, detect_format
from floatseat.logs.pattern import CompiledPattern, PatternError, compile_pattern

if TYPE_CHECKING:
    import httpx

    from floatseat.directory.port import ManagedDirectory
    from floatseat.service.ports import LeaderInfo
    from floatseat.service.settings import NodeLogs, ServeSettings
    from floatseat.store.inbox import AgentSeen

__all__ = [
    "DoctorReport",
    "Finding",
    "Level",
    "LogFile",
    "check_access",
    "check_date_header",
    "check_log_clock",
    "check_log_files",
    "check_pattern",
    "check_rate_limit",
    "check_seats",
    "check_server_xml",
    "check_writable",
    "run_doctor",
]

# How far a node's clock may be from floatseat's before it matters: activity times decide
# who is idle, so a node behind makes its users look idler by that much.
SKEW_WARN_S = 10
SKEW_FAIL_S = 120
# A line is written when its request completes, and %t is when it began: a node's newest
# line is normally a little older than the file's last write.
SLOW_REQUEST_S = 60
STALE_AFTER_S = 15 * 60
TAIL_BYTES = 64 * 1024
RATE_LIMIT_HEADERS = (
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-interval-seconds",
    "x-ratelimit-fillrate",
)


class Level(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"


@dataclass(frozen=True)
class Finding:
    """What one check found: its level, the finding in plain words, and the fix."""

    check: str  # e.g. "valve", "logs", "clock", "access"
    level: Level
    message: str
    fix: str = ""
    subject: str = ""  # where: a file, a node, a group; "" for the installation


@dataclass(frozen=True)
class DoctorReport:
    findings: tuple[Finding, ...]

    @property
    def exit_status(self) -> int:
        levels = {f.level for f in self.findings}
        if Level.FAIL in levels:
            return 2
        return 1 if Level.WARN in levels else 0

    def as_json(self) -> str:
        return json.dumps(
            {
                "exit_status": self.exit_status,
                "findings": [{**asdict(f), "level": f.level.value} for f in self.findings],
            },
            indent=2,
        )


# -- the valve ------------------------------------------------------------------------------

_BUFFERED_WHY = (
    "Tomcat's AccessLogValve buffers its lines by default and writes them out only when "
    "the buffer fills or at its periodic flush, so floatseat reads a refused login seconds "
    "late and the user's retry still fails"
)


def check_server_xml(xml_text: str, source: str) -> list[Finding]:
    """The AccessLogValve of a server.xml: its pattern, and that it does not buffer."""
    try:
        root = ElementTree.fromstring(xml_text)
    except ElementTree.ParseError as error:
        return [
            Finding(
                "valve",
                Level.FAIL,
                f"server.xml is not well-formed XML: {error}",
                "Fix the file (Tomcat will not start with it either), or name the right one.",
                source,
            )
        ]
    valves = [v for v in root.iter("Valve") if v.get("className", "").endswith("AccessLogValve")]
    if not valves:
        return [
            Finding(
                "valve",
                Level.FAIL,
                "no AccessLogValve: the product writes no access log, so floatseat sees no "
                "activity",
                "Add the product's AccessLogValve to the <Host> of server.xml (see "
                "docs/operations.md) and restart the node.",
                source,
            )
        ]
    findings = []
    for valve in valves:
        pattern = valve.get("pattern")
        if not pattern:
            findings.append(
                Finding(
                    "valve",
                    Level.FAIL,
                    "the AccessLogValve has no pattern attribute: Tomcat's default logs no "
                    "user floatseat can read",
                    'Set pattern="%t %{X-AUSERNAME}o %I %h %r %s %Dms %b %{Referer}i '
                    "%{User-Agent}i\" (Confluence) or Jira's default pattern.",
                    source,
                )
            )
        else:
            findings.append(check_pattern(pattern, source))
        buffered = valve.get("buffered")
        if buffered is None or buffered.strip().lower() != "false":
            said = (
                "buffers (no buffered attribute: true is the default)"
                if buffered is None
                else (f'buffers (buffered="{buffered}")')
            )
            findings.append(
                Finding(
                    "buffered",
                    Level.WARN,
                    f"the AccessLogValve {said}. {_BUFFERED_WHY}",
                    'Add buffered="false" to the AccessLogValve in server.xml and restart the '
                    "node; the cost is one write per request, which Tomcat handles easily.",
                    source,
                )
            )
        else:
            findings.append(
                Finding(
                    "buffered", Level.OK, 'buffered="false": lines are written at once', "", source
                )
            )
    return findings


def check_pattern(pattern: str, source: str) -> Finding:
    """A valve pattern: floatseat can parse it, and it logs the user, time and target."""
    try:
        compile_pattern(pattern)
    except PatternError as error:
        return Finding(
            "valve",
            Level.FAIL,
            f"floatseat cannot read lines of the pattern {pattern!r}: {error}",
            "Use the product's default pattern (docs/operations.md), or add the missing "
            "field to the valve's pattern and restart the node.",
            source,
        )
    return Finding(
        "valve", Level.OK, f"pattern {pattern!r} is readable, with a user field", "", source
    )


# -- log files ------------------------------------------------------------------------------


@dataclass(frozen=True)
class LogFile:
    path: str
    size: int
    mtime: float


def stat_globs(globs: Iterable[str]) -> list[LogFile]:
    """The files matching `globs` (`**` allowed), with their size and last write."""
    files = []
    for pattern in globs:
        for name in sorted(glob.glob(os.path.expanduser(pattern), recursive=True)):
            try:
                st = os.stat(name)
            except OSError:
                continue
            if os.path.isfile(name):
                files.append(LogFile(name, st.st_size, st.st_mtime))
    return files


def check_log_files(
    node: str,
    kind: str,
    globs: Sequence[str],
    files: Sequence[LogFile],
    now: float,
    *,
    stale_after_s: float = STALE_AFTER_S,
    grown: bool | None = None,
) -> Finding:
    """A node's `kind` logs ("access" or "security") exist and are being written."""
    check = f"{kind} logs"
    if not globs:
        if kind == "access":
            return Finding(
                check,
                Level.FAIL,
                "no access logs configured: floatseat sees no activity on this node",
                "List the node's access logs in access_logs, e.g. "
                '"/opt/atlassian/confluence/logs/conf_access_log.*.log".',
                node,
            )
        return Finding(
            check,
            Level.WARN,
            "no security log configured: a refused login is seen only once the access log "
            "shows it, or not at all",
            "List atlassian-confluence.log (Confluence) or atlassian-jira-security.log (Jira) "
            "in security_logs.",
            node,
        )
    if not files:
        return Finding(
            check,
            Level.FAIL,
            f"no file matches {', '.join(globs)}",
            "Check the path on this node (and that floatseat's user may read the folder); "
            "Tomcat inserts the date into access-log names, so end the glob with *.",
            node,
        )
    newest = max(files, key=lambda f: f.mtime)
    age = now - newest.mtime
    if grown:
        return Finding(check, Level.OK, f"{newest.path} is growing", "", node)
    if age > stale_after_s:
        return Finding(
            check,
            Level.WARN,
            f"{newest.path} was last written {_duration(age)} ago: this node's activity is "
            "not reaching floatseat (or nobody uses this node)",
            "Check that the node is up and in the load balancer, that the path is this "
            "node's (each node writes its own logs), and that the valve is on.",
            node,
        )
    return Finding(check, Level.OK, f"{newest.path} was written {_duration(age)} ago", "", node)


def check_log_clock(
    node: str, newest_line_at: int | None, written_at: float, now: float
) -> Finding:
    """A node's clock against floatseat's, from its newest access-log line.

    The line's time is the node's clock when the request began; the file's last write is
    when it was written, by this host's view of the file. A line from after its own write
    means the node's clock is ahead; one far older means it is behind (or the valve buffers).
    """
    if newest_line_at is None:
        return Finding(
            "clock",
            Level.SKIP,
            "no readable line at the end of the newest access log",
            "Compare `date -u` on the node with this host's by hand.",
            node,
        )
    if now - written_at > STALE_AFTER_S:
        return Finding(
            "clock",
            Level.SKIP,
            "the access log is too old to compare clocks with",
            "Compare `date -u` on the node with this host's, or re-run while it is in use.",
            node,
        )
    reference = min(written_at, now)
    skew = newest_line_at - reference
    if skew > 0:
        off, which = skew, "ahead of"
    elif -skew > SLOW_REQUEST_S:
        off, which = -skew - SLOW_REQUEST_S, "behind"
    else:
        off, which = 0, ""
    return _skew_finding(node, off, which, "its newest access-log line")


def check_date_header(date_header: str | None, sent_at: float, received_at: float) -> Finding:
    """The product's clock (its HTTP `Date` header) against floatseat's."""
    subject = "product"
    if not date_header:
        return Finding(
            "clock",
            Level.SKIP,
            "the product's response has no Date header",
            "Compare `date -u` on each node with this host's by hand.",
            subject,
        )
    try:
        their = email.utils.parsedate_to_datetime(date_header).timestamp()
    except (TypeError, ValueError):
        return Finding("clock", Level.SKIP, f"unreadable Date header {date_header!r}", "", subject)
    # The header has second resolution and was stamped between sending and receiving.
    if their > received_at:
        off, which = their - received_at, "ahead of"
    elif their < sent_at - 1:
        off, which = sent_at - 1 - their, "behind"
    else:
        off, which = 0, ""
    return _skew_finding(subject, off, which, "its HTTP Date header")


def _skew_finding(subject: str, off: float, which: str, source: str) -> Finding:
    if off <= SKEW_WARN_S:
        return Finding("clock", Level.OK, f"in step with this host (by {source})", "", subject)
    level = Level.FAIL if off > SKEW_FAIL_S else Level.WARN
    return Finding(
        "clock",
        level,
        f"the clock is about {_duration(off)} {which} floatseat's (by {source}): users' "
        "activity looks that much older or newer, so seats are taken back too early or too "
        "late",
        "Run NTP (chrony or systemd-timesyncd) on every node and on floatseat's host.",
        subject,
    )


def newest_line_time(path: str, pattern: CompiledPattern | None) -> int | None:
    """The latest request time among the last lines of `path` (lines are not in order)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - TAIL_BYTES))
            tail = handle.read().decode("utf-8", "replace")
    except OSError:
        return None
    lines = tail.splitlines()
    if size > TAIL_BYTES:
        lines = lines[1:]  # the first may be cut
    if pattern is None:
        found = detect_format(lines)
        if found is None:
            return None
        pattern = found.compiled()
    times = [p.epoch_s for p in map(pattern.parse, lines[-200:]) if p is not None]
    return max(times, default=None)


# -- the directory --------------------------------------------------------------------------


def check_access(
    product: str,
    access: ApplicationAccess,
    groups: PoolGroups,
    users_group: str | None,
) -> list[Finding]:
    """Application access to the licensed pool group only; new users land unlicensed."""
    fold = str.casefold
    granted = {fold(g): g for g in access.groups}
    where = (
        "Confluence administration > Global permissions > Can use"
        if product == "confluence"
        else "Jira administration > Applications > Application access"
    )
    findings = []
    admins = {fold(g) for g in access.admin_groups}
    others = sorted(g for k, g in granted.items() if k != fold(groups.enabled) and k not in admins)
    if fold(groups.enabled) not in granted:
        findings.append(
            Finding(
                "access",
                Level.FAIL,
                f"{groups.enabled} has no application access: a seat floatseat grants gives "
                "nobody access",
                f"Give {groups.enabled} application access in {where} (floatseat setup does it).",
                groups.enabled,
            )
        )
    everyone = {fold(groups.disabled)} | ({fold(users_group)} if users_group else set())
    fatal = [g for g in others if fold(g) in everyone]
    kept = [g for g in others if fold(g) not in everyone]
    if fatal:
        findings.append(
            Finding(
                "access",
                Level.FAIL,
                f"application access is also granted to {', '.join(fatal)}: its members all "
                "hold a seat whether they work or not, so floating saves nothing",
                f"Take application access away from {', '.join(fatal)} in {where}; pin or "
                "exclude the users who must always have a seat instead.",
                ", ".join(fatal),
            )
        )
    if kept:
        findings.append(
            Finding(
                "access",
                Level.WARN,
                f"application access is also granted to {', '.join(kept)}: their members hold "
                "seats outside the pool that floatseat never moves",
                f"Fine if deliberate (setup --keep-access); otherwise take their access away "
                f"in {where} and let them float.",
                ", ".join(kept),
            )
        )
    if not others and fold(groups.enabled) in granted:
        findings.append(
            Finding("access", Level.OK, f"only {groups.enabled} has application access", "", "")
        )
    if access.admin_groups:
        findings.append(
            Finding(
                "access",
                Level.OK,
                f"administrators ({', '.join(sorted(access.admin_groups))}) count against the "
                "licence outside the pool",
                "",
                "",
            )
        )
    findings.append(_new_users(product, access, groups, users_group))
    return findings


def _new_users(
    product: str, access: ApplicationAccess, groups: PoolGroups, users_group: str | None
) -> Finding:
    """Where new users land. Jira's role puts new users in its default groups, which must be
    among its groups (so each has access): any default group gives every new user a seat.
    Neither product says through its API which group the user directory adds new users to;
    floatseat serve places new members of `users_group` in the unlicensed group."""
    fold = str.casefold
    if product == "jira" and access.default_groups:
        defaults = sorted(access.default_groups)
        which = (
            f"{groups.enabled} is a default group"
            if fold(groups.enabled) in {fold(g) for g in defaults}
            else f"{', '.join(defaults)} "
            + ("is a default group" if len(defaults) == 1 else "are default groups")
        )
        return Finding(
            "new users",
            Level.FAIL,
            f"{which} of the application role: every new user takes a seat the moment they "
            "are created",
            "In Jira administration > Applications > Application access, untick the default "
            f"of {', '.join(defaults)}; to place new users in {groups.disabled} at once, add "
            "it to the user directory's default group memberships.",
            ", ".join(defaults),
        )
    if users_group:
        return Finding(
            "new users",
            Level.OK,
            f"new users get no seat; floatseat serve places new members of {users_group} in "
            f"{groups.disabled} at its next reconciliation",
            f"To place them at once, add {groups.disabled} to the user directory's default "
            "group memberships (User directories > Edit).",
            users_group,
        )
    default = "confluence-users" if product == "confluence" else "jira-software-users"
    return Finding(
        "new users",
        Level.WARN,
        f"users_group is not set: new users are never placed in {groups.disabled}, so they "
        "cannot get a seat",
        f'Set users_group = "{default}" (the group new users join) in the config, or add '
        f"{groups.disabled} to the user directory's default group memberships.",
        "",
    )


def check_writable(tested: Mapping[str, str | None], groups: PoolGroups, *, ran: bool) -> Finding:
    """The pool groups' memberships can be changed. `tested`: user -> error (None: fine)."""
    by_hand = (
        "In User management > User directories, the pool users' directory must be the "
        'internal directory, Crowd, or LDAP with "Read Only, with Local Groups" or '
        '"Read/Write"; and since a user\'s groups are read only in the first directory '
        "holding their name, the directory holding the pool groups must come first for "
        "them"
    )
    if not ran:
        return Finding(
            "directory",
            Level.SKIP,
            "not tested (it changes memberships): run with --write-test to try it",
            by_hand + ".",
            f"{groups.enabled}, {groups.disabled}",
        )
    if not tested:
        return Finding(
            "directory",
            Level.SKIP,
            f"{groups.disabled} has no member to test with",
            by_hand + ".",
            groups.disabled,
        )
    refused = {u: e for u, e in tested.items() if e is not None}
    if refused:
        names = ", ".join(sorted(refused))
        first = next(iter(refused.values()))
        return Finding(
            "directory",
            Level.FAIL,
            f"the directory refused to change the memberships of {names}: {first}",
            by_hand + ".",
            names,
        )
    return Finding(
        "directory",
        Level.OK,
        f"memberships of {len(tested)} pool user(s) can be changed; the order of user "
        "directories cannot be read through the API",
        by_hand + ".",
        groups.disabled,
    )


def check_rate_limit(status: int, headers: Mapping[str, str]) -> Finding:
    """The service account is exempt from the DC rate limiter: no `X-RateLimit-*` headers."""
    lowered = {k.lower(): v for k, v in headers.items()}
    found = [h for h in RATE_LIMIT_HEADERS if h in lowered]
    fix = (
        "Exempt floatseat's service account: Administration > Rate limiting > Exemptions > "
        "Add exemption > the account, Allow unlimited requests."
    )
    if status == 429:
        return Finding(
            "rate limit",
            Level.FAIL,
            "the product is rate-limiting floatseat's account right now (429): grants wait "
            "until the limiter lets them through",
            fix,
            "product",
        )
    if found:
        limit = lowered.get("x-ratelimit-limit", "?")
        return Finding(
            "rate limit",
            Level.WARN,
            f"floatseat's account is rate-limited (X-RateLimit-Limit {limit}): under load its "
            "moves wait for tokens, and a returning user's retry fails",
            fix,
            "product",
        )
    return Finding("rate limit", Level.OK, "the account is not rate-limited", "", "product")


def check_seats(
    licence: Licence,
    *,
    enabled_members: int,
    licensed_users: int | None,
    reserve: int,
) -> Finding:
    """Free seats against the licence, and the floating seats left for the pool."""
    if licence.tier >= UNLIMITED_TIER:
        return Finding("seats", Level.OK, "the licence is unlimited", "", "licence")
    free = licence.tier - licence.licensed
    said = f"{licence.licensed} of {licence.tier} seats licensed, {free} free"
    if free < 0:
        return Finding(
            "seats",
            Level.FAIL,
            f"{said}: over the licence. Confluence is read-only now; Jira refuses new issues",
            "Take seats back at once: move idle users out of "
            "the licensed group, or run floatseat serve, which never exceeds the tier.",
            "licence",
        )
    if licensed_users is not None:
        outside = max(0, licensed_users - enabled_members)
        floating = licence.tier - outside - reserve
        said += f"; {outside} licensed outside the pool, {floating} floating seat(s)"
        if floating <= 0:
            return Finding(
                "seats",
                Level.FAIL,
                f"{said}: nothing left to float after the reserve of {reserve}",
                "Take application access away from the other licensed groups, or lower the "
                "reserve, or buy a bigger tier.",
                "licence",
            )
    if free < reserve:
        return Finding(
            "seats",
            Level.WARN,
            f"{said}: fewer free seats than the reserve of {reserve}",
            "floatseat serve takes seats back until the reserve is free; check that the "
            "licensed count is as expected.",
            "licence",
        )
    return Finding("seats", Level.OK, said, "", "licence")


# -- the cluster: the leader and the agents ---------------------------------------------------

AGENT_QUIET_AFTER_S = 5 * 60  # agents send a heartbeat every 30 s, even with nothing to say


def check_leadership(info: LeaderInfo | None, db_now: int, leader_timeout_s: float) -> Finding:
    """Several instances on PostgreSQL: who leads, and whether its heartbeat is fresh."""
    if info is None or info.leader is None:
        return Finding(
            "cluster",
            Level.WARN,
            "no instance leads now: nobody reads the logs or moves seats",
            "Start floatseat serve (one instance is enough); if instances run, see their "
            "logs for 'leads under epoch'.",
            "leadership",
        )
    age = db_now - (info.heartbeat_at or info.since or db_now)
    said = f"{info.leader} leads (epoch {info.epoch}), heartbeat {_duration(age)} ago"
    if age > leader_timeout_s:
        return Finding(
            "cluster",
            Level.FAIL,
            f"{said}: it is hung or cut off from the database",
            f"Followers end its session after ha_leader_timeout_s ({int(leader_timeout_s)} s) "
            "and take over; if none runs, start another instance, and look at the leader's "
            "host.",
            "leadership",
        )
    return Finding("cluster", Level.OK, said, "", "leadership")


def check_agents(agents: Sequence[AgentSeen], now: float) -> list[Finding]:
    """Each cluster agent's last batch: an agent that went quiet leaves its node unread."""
    found = []
    for agent in agents:
        age = now - agent.last_at
        subject = f"agent {agent.agent_id} ({agent.node})"
        if age > AGENT_QUIET_AFTER_S:
            found.append(
                Finding(
                    "agents",
                    Level.WARN,
                    f"last batch {_duration(age)} ago (batch {agent.last_seq})",
                    f"Check floatseat-agent on {agent.node}: `systemctl status floatseat-agent` "
                    "and its journal (it spools while the service is unreachable). If the "
                    "node is gone for good, ignore this.",
                    subject,
                )
            )
        else:
            found.append(
                Finding("agents", Level.OK, f"last batch {_duration(age)} ago", "", subject)
            )
    return found


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} days"


# -- running it -----------------------------------------------------------------------------


@dataclass
class DoctorOptions:
    server_xml: Sequence[Path] = ()
    write_test: bool = False
    write_test_users: int = 5
    stale_after_s: float = STALE_AFTER_S
    sample_s: float = 0.0  # >0: stat the logs again after this long, to see them grow


@dataclass
class _Run:
    options: DoctorOptions
    clock: Callable[[], float]
    findings: list[Finding] = field(default_factory=list)

    def add(self, *found: Finding) -> None:
        self.findings.extend(found)


def run_doctor(
    settings: ServeSettings | None,
    options: DoctorOptions | None = None,
    *,
    directory: ManagedDirectory | None = None,
    http: httpx.Client | None = None,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> DoctorReport:
    """Run every check that `settings` and `options` allow; never raises for what it finds.

    `directory` and `http` default to the connector and a client built from `settings`
    (credentials from the environment), and are closed afterwards only then.
    """
    options = options or DoctorOptions()
    run = _Run(options, clock)
    for path in options.server_xml:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as error:
            run.add(Finding("valve", Level.FAIL, f"cannot read: {error.strerror}", "", str(path)))
            continue
        run.add(*check_server_xml(text, str(path)))
    if settings is None:
        return DoctorReport(tuple(run.findings))
    for node in settings.nodes:
        if node.pattern is not None:
            run.add(check_pattern(node.pattern, f"{node.name} (config)"))
    agents = _check_ledger(run, settings)
    if settings.nodes or not agents:
        _check_logs(run, settings.nodes, sleep)
    if not settings.base_url:
        run.add(
            Finding(
                "connection",
                Level.SKIP,
                "no base_url: the product was not checked",
                "Set base_url in the config (or FLOATSEAT_BASE_URL) and the credentials.",
            )
        )
        return DoctorReport(tuple(run.findings))
    _check_product(run, settings, directory, http)
    return DoctorReport(tuple(run.findings))


def _check_ledger(run: _Run, settings: ServeSettings) -> list[AgentSeen]:
    """The leadership (PostgreSQL) and the agents, from the ledger; the agents it found."""
    import sqlalchemy as sa

    from floatseat.service.errors import LedgerError
    from floatseat.store.database import create_engine, ensure_current
    from floatseat.store.inbox import Inbox

    url = settings.ledger_url()
    if settings.database_url is None and not (settings.state_dir / "floatseat.db").exists():
        return []  # no ledger yet: serve has not run
    try:
        engine = create_engine(url)
    except LedgerError as error:
        run.add(Finding("ledger", Level.FAIL, str(error), "Fix database_url.", "ledger"))
        return []
    try:
        ensure_current(engine)
        agents = Inbox(engine).agents()
        if engine.dialect.name == "postgresql":
            from floatseat.store.leadership import read_leadership

            info, db_now = read_leadership(engine)
            run.add(check_leadership(info, db_now, settings.ha_leader_timeout_s))
    except LedgerError as error:
        run.add(
            Finding(
                "ledger",
                Level.SKIP,
                f"the ledger could not be read: {error}",
                "Start floatseat serve once: it creates and migrates the ledger.",
                "ledger",
            )
        )
        return []
    except sa.exc.SQLAlchemyError as error:
        run.add(Finding("ledger", Level.FAIL, f"the database failed: {error}", "", "ledger"))
        return []
    finally:
        engine.dispose()
    run.add(*check_agents(agents, run.clock()))
    return agents


def _check_logs(run: _Run, nodes: Sequence[NodeLogs], sleep: Callable[[float], None]) -> None:
    if not nodes:
        run.add(
            Finding(
                "access logs",
                Level.FAIL,
                "no nodes configured: floatseat reads no logs",
                "Add a [[nodes]] table per cluster node with its access_logs and security_logs.",
            )
        )
        return
    first = {
        (n.name, kind): stat_globs(globs)
        for n in nodes
        for kind, globs in (("access", n.access_logs), ("security", n.security_logs))
    }
    grown: dict[tuple[str, str], bool] = {}
    if run.options.sample_s > 0:
        sleep(run.options.sample_s)
        for key, files in first.items():
            before = {f.path: f.size for f in files}
            after = stat_globs(_globs_of(nodes, key))
            grown[key] = any(f.size > before.get(f.path, 0) for f in after)
    now = run.clock()
    for node in nodes:
        for kind, globs in (("access", node.access_logs), ("security", node.security_logs)):
            files = first[(node.name, kind)]
            run.add(
                check_log_files(
                    node.name,
                    kind,
                    globs,
                    files,
                    now,
                    stale_after_s=run.options.stale_after_s,
                    grown=grown.get((node.name, kind)),
                )
            )
        files = first[(node.name, "access")]
        if files:
            newest = max(files, key=lambda f: f.mtime)
            pattern = _node_pattern(node)
            at = newest_line_time(newest.path, pattern)
            run.add(check_log_clock(node.name, at, newest.mtime, now))


def _globs_of(nodes: Sequence[NodeLogs], key: tuple[str, str]) -> list[str]:
    node = next(n for n in nodes if n.name == key[0])
    return list(node.access_logs if key[1] == "access" else node.security_logs)


def _node_pattern(node: NodeLogs) -> CompiledPattern | None:
    try:
        if node.pattern is not None:
            return compile_pattern(node.pattern)
        if node.format is not None:
            return FORMATS_BY_NAME[node.format].compiled()
    except PatternError:
        return None
    return None


def _check_product(
    run: _Run,
    settings: ServeSettings,
    directory: ManagedDirectory | None,
    http: httpx.Client | None,
) -> None:
    from floatseat.service.errors import DirectoryError
    from floatseat.service.settings import SettingsError

    owned: list[Any] = []
    try:
        try:
            if directory is None:
                from floatseat.service.bootstrap import connect_directory

                directory = connect_directory(settings)
                owned.append(directory)
            if http is None:
                http = _probe_client(settings)
                owned.append(http)
        except SettingsError as error:
            run.add(Finding("connection", Level.FAIL, str(error), "Set the credentials."))
            return
        _check_headers(run, settings, http)
        try:
            info = directory.info()
        except DirectoryError as error:
            run.add(
                Finding(
                    "connection",
                    Level.FAIL,
                    f"cannot talk to {settings.base_url}: {error}",
                    "Check base_url (with the context path), the account and its "
                    "administrator permission; the other product checks were skipped.",
                    settings.base_url,
                )
            )
            return
        run.add(
            Finding(
                "connection",
                Level.OK,
                f"{info.product} {info.version or ''} via {info.api}".replace("  ", " "),
                "",
                info.base_url,
            )
        )
        _check_directory(run, settings, directory)
    finally:
        for thing in owned:
            close = getattr(thing, "close", None)
            if callable(close):
                close()


def _probe_client(settings: ServeSettings) -> httpx.Client:
    from floatseat.directory.http import (
        BasicCredentials,
        Credentials,
        PersonalAccessToken,
        make_client,
    )
    from floatseat.service.settings import SettingsError

    token = settings.secret("token")
    credentials: Credentials
    if token is not None:
        credentials = PersonalAccessToken(token)
    elif settings.username is not None and (password := settings.secret("password")):
        credentials = BasicCredentials(settings.username, password)
    else:
        raise SettingsError("set username (password in FLOATSEAT_PASSWORD) or FLOATSEAT_TOKEN")
    return make_client(settings.base_url, credentials, timeout=15.0)


def _check_headers(run: _Run, settings: ServeSettings, http: httpx.Client) -> None:
    import httpx

    path = "/rest/api/2/myself" if settings.product == "jira" else "/rest/api/user/current"
    sent = run.clock()
    try:
        response = http.get(path)
    except httpx.HTTPError as error:
        run.add(Finding("clock", Level.SKIP, f"no answer from {path}: {error}", "", "product"))
        return
    received = run.clock()
    run.add(check_date_header(response.headers.get("date"), sent, received))
    run.add(check_rate_limit(response.status_code, response.headers))


def _check_directory(run: _Run, settings: ServeSettings, directory: ManagedDirectory) -> None:
    from floatseat.directory.errors import GroupNotFound, ManualStepRequired
    from floatseat.service.errors import DirectoryError

    groups = settings.groups
    members: dict[str, list[str]] = {}
    for group in (groups.enabled, groups.disabled):
        try:
            members[group] = directory.group_members(group)
        except GroupNotFound:
            run.add(
                Finding(
                    "groups",
                    Level.FAIL,
                    f"the group {group} does not exist",
                    "Run floatseat setup: it creates the pool groups and fills them.",
                    group,
                )
            )
        except DirectoryError as error:
            run.add(Finding("groups", Level.FAIL, f"cannot list {group}: {error}", "", group))
    if len(members) == 2:
        run.add(
            Finding(
                "groups",
                Level.OK,
                f"{len(members[groups.enabled])} in {groups.enabled}, "
                f"{len(members[groups.disabled])} in {groups.disabled}",
                "",
            )
        )
    try:
        run.add(
            *check_access(
                settings.product, directory.application_access(), groups, settings.users_group
            )
        )
    except ManualStepRequired as error:
        run.add(
            Finding(
                "access",
                Level.SKIP,
                f"no API reads application access here: {error}",
                f"Check by hand that only {groups.enabled} has application access, and that "
                f"new users land in {groups.disabled}.",
            )
        )
    except DirectoryError as error:
        run.add(Finding("access", Level.FAIL, f"cannot read application access: {error}", ""))
    disabled = members.get(groups.disabled, [])
    tested = _write_test(directory, groups, disabled, run.options) if run.options.write_test else {}
    run.add(check_writable(tested, groups, ran=run.options.write_test))
    try:
        licence = directory.licence()
        licensed = directory.licensed_users()
    except DirectoryError as error:
        run.add(Finding("seats", Level.FAIL, f"cannot read the licence: {error}", "", "licence"))
        return
    run.add(
        check_seats(
            licence,
            enabled_members=len(members.get(groups.enabled, [])),
            licensed_users=None if licensed is None else len(licensed),
            reserve=settings.policy.reserve,
        )
    )


def _write_test(
    directory: ManagedDirectory, groups: PoolGroups, disabled: list[str], options: DoctorOptions
) -> dict[str, str | None]:
    """Take a few unlicensed pool users out of the unlicensed group and put them back.

    Harmless for the licence: the unlicensed group has no application access. A user who
    could be taken out but not put back is reported loudly (reconciliation would place them
    again only through users_group)."""
    from floatseat.service.errors import DirectoryError

    tested: dict[str, str | None] = {}
    for user in disabled[: options.write_test_users]:
        try:
            directory.remove_user_from_group(user, groups.disabled)
        except DirectoryError as error:
            tested[user] = str(error)
            continue
        try:
            directory.add_user_to_group(user, groups.disabled)
        except DirectoryError as error:
            tested[user] = (
                f"taken out of {groups.disabled} but not put back, add them by hand: {error}"
            )
            continue
        tested[user] = None
    return tested


def render_report(report: DoctorReport, console: Any) -> None:
    """Print `report` as a Rich table (one row per finding) and a one-line verdict."""
    from rich.table import Table

    styles = {Level.OK: "green", Level.WARN: "yellow", Level.FAIL: "bold red", Level.SKIP: "dim"}
    table = Table(title="floatseat doctor", show_lines=True)
    table.add_column("Check", no_wrap=True)
    table.add_column("Where", overflow="fold")
    table.add_column("Status", no_wrap=True)
    table.add_column("What was found", overflow="fold")
    table.add_column("Fix", overflow="fold")
    for f in report.findings:
        style = styles[f.level]
        table.add_row(f.check, f.subject, f"[{style}]{f.level.value.upper()}[/]", f.message, f.fix)
    console.print(table)
    counts = {level: sum(1 for f in report.findings if f.level is level) for level in Level}
    verdict = {0: "[green]all good[/]", 1: "[yellow]works, with warnings[/]"}.get(
        report.exit_status, "[bold red]problems to fix[/]"
    )
    console.print(
        f"{verdict}: {counts[Level.OK]} ok, {counts[Level.WARN]} warn, "
        f"{counts[Level.FAIL]} fail, {counts[Level.SKIP]} skipped"
    )
