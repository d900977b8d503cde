"""Refused logins in the products' application logs: the signal that a disabled user is back.

A user without application access is not authenticated, so their requests show as `-` in
the access log. The refusal is logged instead, the same line for a password login and a
remember-me cookie:

- Jira, `<jira-home>/log/atlassian-jira-security.log` (user column `anonymous`, the name in
  `login : 'U'`; 9.5+ writes it through Log4j2 with the same columns)::

    2023-06-09 05:11:11,664+0000 http-nio-8080-exec-17 anonymous 311x2831x1 1qvu69a 10.0.0.1
    /login.jsp login : 'admin' tried to login but they do not have USE permission or weren't
    found. Deleting remember me cookie.

  Jira before 8 wrote the time without its offset (`2015-08-14 08:58:12,536 http-bio-...`).

- Confluence, `<confluence-home>/logs/atlassian-confluence.log`, always without an offset::

    2015-01-02 09:37:11,864 WARN [http-bio-8090-exec-9]
    [atlassian.seraph.auth.DefaultAuthenticator] login login : 'user.name' tried to login but
    they do not have USE permission or weren't found. Deleting remember me cookie.

(Each example is one line in the file.) Sources: ../shared/reference/atlassian.md §7 and the
Jira KB "User unable to login with you do not have permission error".

A time without an offset is local time of the node that wrote it, so the caller names that
node's zone. Usernames are neither quoted nor escaped in these logs, so a name with an
apostrophe (`o'brien`) is taken up to the last `' tried to login`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo

from floatseat.logs.pattern import canonical_user

__all__ = ["RefusedLogin", "parse_refused_login"]

_TIME = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2}) (?P<time>\d{2}:\d{2}:\d{2}),(?P<ms>\d{3})(?P<offset>[+-]\d{4})?\s"
)
_REFUSAL = re.compile(
    r"\blogin : '(?P<user>.+)' tried to login but they do not have USE permission"
    r" or weren't found\b"
)


@dataclass(frozen=True)
class RefusedLogin:
    """A login refused for want of application access."""

    user: str  # canonical (lower case), as the analyzer compares names
    at: int  # Unix seconds, UTC
    raw_user: str  # as logged, for messages


def parse_refused_login(line: str, *, zone: tzinfo = UTC) -> RefusedLogin | None:
    """The refused login a Jira security-log or Confluence application-log line reports.

    None for any other line: both files carry much else, and a stack trace's continuation
    lines have no timestamp. `zone` is the writing node's zone, used only when the line's
    time has no offset of its own.
    """
    if "tried to login" not in line:  # most lines: skip the regular expressions
        return None
    stamp = _TIME.match(line)
    refusal = _REFUSAL.search(line, stamp.end() if stamp else 0)
    if stamp is None or refusal is None:
        return None
    raw_user = refusal["user"]
    if not raw_user.strip():
        return None
    try:
        local = datetime.fromisoformat(f"{stamp['date']}T{stamp['time']}")
    except ValueError:  # 31 November and the like
        return None
    offset = stamp["offset"]
    if offset is None:
        at = local.replace(tzinfo=zone)
    else:
        hours, minutes = int(offset[1:3]), int(offset[3:5])
        if hours > 23 or minutes > 59:  # no zone is a day or more away from UTC
            return None
        sign = -1 if offset[0] == "-" else 1
        at = local.replace(tzinfo=timezone(sign * timedelta(hours=hours, minutes=minutes)))
    return RefusedLogin(canonical_user(raw_user), int(at.timestamp()), raw_user)
