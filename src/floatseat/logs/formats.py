"""The access-log formats Jira and Confluence write out of the box, and their detection."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from floatseat.logs.pattern import CompiledPattern, compile_pattern


@dataclass(frozen=True)
class LogFormat:
    name: str
    pattern: str
    description: str

    def compiled(self) -> CompiledPattern:
        return compile_pattern(self.pattern)


# Sources for each pattern: shared/reference/atlassian.md section 6.
KNOWN_FORMATS: tuple[LogFormat, ...] = (
    LogFormat(
        "jira",
        '%a %{jira.request.id}r %{jira.request.username}r %t "%m %U%q %H" %s %b %D '
        '"%{Referer}i" "%{User-Agent}i" "%{jira.request.assession.id}r"',
        "Jira's default valve (access_log.YYYY-MM-DD)",
    ),
    LogFormat(
        "jira-thread",
        '%a %I %{jira.request.id}r %{jira.request.username}r %t "%m %U%q %H" %s %b %D '
        '"%{Referer}i" "%{User-Agent}i" "%{jira.request.assession.id}r"',
        "Jira's default valve with the thread name (%I) added after the address",
    ),
    LogFormat(
        "confluence",
        "%t %{X-AUSERNAME}o %I %h %r %s %Dms %b %{Referer}i %{User-Agent}i",
        "Confluence 7.11+ default valve (conf_access_log.YYYY-MM-DD.log)",
    ),
    LogFormat(
        "confluence-xff",
        "%t %{X-Forwarded-For}i %{X-AUSERNAME}o %I %h %r %s %Dms %b %{Referer}i %{User-Agent}i",
        "Confluence valve with X-Forwarded-For first (the manual-config KB for 7.10 and older)",
    ),
    LogFormat(
        "confluence-docker",
        '%h %{X-AUSERNAME}o %t "%r" %s %b %D %U %I "%{User-Agent}i"',
        "Confluence's Docker image and Helm chart (confluence_access...)",
    ),
)

FORMATS_BY_NAME = {f.name: f for f in KNOWN_FORMATS}

DETECTION_LINES = 200


def detect_format(
    lines: Iterable[str], formats: Iterable[LogFormat] = KNOWN_FORMATS
) -> LogFormat | None:
    """The known format most of the first non-blank lines match; None if none matches any.

    Ties go to the format listed first.
    """
    sample = []
    for line in lines:
        if line.strip():
            sample.append(line.rstrip("\r\n"))
            if len(sample) >= DETECTION_LINES:
                break
    best: LogFormat | None = None
    best_hits = 0
    for log_format in formats:
        regex = log_format.compiled().compiled()
        hits = sum(1 for line in sample if regex.match(line))
        if hits > best_hits:
            best, best_hits = log_format, hits
    return best
