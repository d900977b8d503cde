"""The simulated nodes' logs, in the products' default formats, file names and escapes.

Layout under the log folder, one folder per cluster node as `floatseat.logs.generate` writes
them (so `floatseat analyze DIR` reads the access logs and leaves the rest alone):

- Confluence: ``node{k}/conf_access_log.YYYY-MM-DD.log`` (valve pattern
  ``%t %{X-AUSERNAME}o %I %h %r %s %Dms %b %{Referer}i %{User-Agent}i``) and the local home's
  ``node{k}/home/logs/atlassian-confluence.log`` with refused logins;
- Jira: ``node{k}/access_log.YYYY-MM-DD`` (Jira's default valve) and
  ``node{k}/home/log/atlassian-jira-security.log``.

Line formats: shared/reference/atlassian.md §6 (access logs) and §7 (logins). Times are UTC;
Confluence's application log writes no offset, Jira's security log writes `+0000`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, Literal

from floatseat.logs.generate import log_file_name, tomcat_escape

__all__ = [
    "AccessRecord",
    "LogSink",
    "confluence_access_line",
    "confluence_refusal_line",
    "jira_access_line",
    "jira_refusal_lines",
]

Product = Literal["confluence", "jira"]
_MONTHS: Final = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()
_REFUSAL: Final = (
    "login : '{user}' tried to login but they do not have USE permission or weren't found. "
    "Deleting remember me cookie."
)


@dataclass(frozen=True)
class AccessRecord:
    """One request as the valve sees it. `user` None is anonymous (logged `-`)."""

    at: float  # start, Unix seconds
    method: str
    uri: str  # path plus query, as sent
    status: int
    size: int  # bytes of the body; 0 is logged `-`
    took_ms: int
    user: str | None = None
    ip: str = "10.0.0.10"
    referer: str = ""
    agent: str = ""
    session: str = ""  # Jira's ASESSIONID; "" for sessionless calls
    thread: str = "http-nio-8090-exec-1"


def _utc(at: float) -> datetime:
    return datetime.fromtimestamp(at, UTC)


def _clf_time(at: float) -> str:
    t = _utc(at)
    return f"[{t.day:02d}/{_MONTHS[t.month - 1]}/{t.year}:{t:%H:%M:%S} +0000]"


def _user(user: str | None) -> str:
    return tomcat_escape(user) if user else "-"


def confluence_access_line(r: AccessRecord) -> str:
    size = str(r.size) if r.size else "-"
    return (
        f"{_clf_time(r.at)} {_user(r.user)} {r.thread} {r.ip} {r.method} {r.uri} HTTP/1.1 "
        f"{r.status} {r.took_ms}ms {size} {tomcat_escape(r.referer)} {tomcat_escape(r.agent)}"
    )


def jira_access_line(r: AccessRecord, request_number: int, in_flight: int = 1) -> str:
    t = _utc(r.at)
    request_id = f"{t.hour * 60 + t.minute}x{request_number}x{in_flight}"
    size = str(r.size) if r.size else "-"
    return (
        f'{r.ip} {request_id} {_user(r.user)} {_clf_time(r.at)} "{r.method} {r.uri} HTTP/1.1" '
        f'{r.status} {size} {r.took_ms} "{tomcat_escape(r.referer)}" '
        f'"{tomcat_escape(r.agent)}" "{r.session or "-"}"'
    )


def _app_time(at: float) -> str:
    t = _utc(at)
    return f"{t:%Y-%m-%d %H:%M:%S},{t.microsecond // 1000:03d}"


def confluence_refusal_line(at: float, user: str, thread: str) -> str:
    """The WARN line Confluence writes to atlassian-confluence.log (local time, no offset)."""
    return (
        f"{_app_time(at)} WARN [{thread}] [atlassian.seraph.auth.DefaultAuthenticator] login "
        + _REFUSAL.format(user=user)
    )


def jira_refusal_lines(
    at: float, user: str, *, thread: str, request_id: str, session: str, ip: str, url: str
) -> list[str]:
    """The two lines Jira's security log gets for a login refused for want of USE."""
    head = f"{_app_time(at)}+0000 {thread} anonymous {request_id} {session or '-'} {ip} {url} "
    return [
        head + _REFUSAL.format(user=user),
        head + f"The user '{user}' has FAILED authentication.  Failure count equals 1",
    ]


class LogSink:
    """Appends the nodes' log lines to their files; thread-safe, holds no file open."""

    def __init__(self, log_dir: Path, product: Product, nodes: int = 2) -> None:
        if nodes < 1:
            raise ValueError("nodes must be 1 or more")
        self.log_dir = log_dir
        self.product = product
        self.nodes = nodes
        self._lock = threading.Lock()
        self._requests = [0] * nodes  # Jira's per-node request counters
        self.lines = 0

    def node_dir(self, node: int) -> Path:
        return self.log_dir / f"node{node + 1}"

    def access_path(self, node: int, at: float) -> Path:
        return self.node_dir(node) / log_file_name(self.product, _utc(at).date())

    def security_path(self, node: int) -> Path:
        if self.product == "jira":
            return self.node_dir(node) / "home" / "log" / "atlassian-jira-security.log"
        return self.node_dir(node) / "home" / "logs" / "atlassian-confluence.log"

    def followed_nodes(self) -> list[dict[str, object]]:
        """`floatseat serve`'s `nodes` settings for these logs: what a follower reads."""
        access = "conf_access_log.*.log" if self.product == "confluence" else "access_log.*"
        return [
            {
                "name": self.node_dir(k).name,
                "access_logs": [str(self.node_dir(k) / access)],
                "security_logs": [f"{self.security_path(k)}*"],
                "format": self.product,
                "timezone": "UTC",  # the application log's times carry no offset: UTC here
            }
            for k in range(self.nodes)
        ]

    def access(self, node: int, record: AccessRecord) -> None:
        with self._lock:
            if self.product == "jira":
                self._requests[node] += 1
                line = jira_access_line(record, self._requests[node])
            else:
                line = confluence_access_line(record)
            self._append(self.access_path(node, record.at), [line])

    def refusal(
        self, node: int, at: float, user: str, *, ip: str, session: str = "", url: str = ""
    ) -> None:
        """A login refused because `user` has no application access (or does not exist)."""
        with self._lock:
            if self.product == "jira":
                self._requests[node] += 1
                t = _utc(at)
                request_id = f"{t.hour * 60 + t.minute}x{self._requests[node]}x1"
                lines = jira_refusal_lines(
                    at,
                    user,
                    thread=_thread("jira", node),
                    request_id=request_id,
                    session=session,
                    ip=ip,
                    url=url or "/login.jsp",
                )
            else:
                lines = [confluence_refusal_line(at, user, _thread("confluence", node))]
            self._append(self.security_path(node), lines)

    def _append(self, path: Path, lines: list[str]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8", newline="\n") as out:
            out.write("".join(line + "\n" for line in lines))
        self.lines += len(lines)


def _thread(product: Product, node: int) -> str:
    port = 8080 if product == "jira" else 8090
    return f"http-nio-{port}-exec-{node + 3}"


def thread_name(product: Product, number: int) -> str:
    """A Tomcat worker thread's name as the product's connector names it."""
    return f"http-nio-{8080 if product == 'jira' else 8090}-exec-{number}"
