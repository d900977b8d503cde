"""Compile a Tomcat AccessLogValve pattern into a line parser.

Any pattern an admin wrote works: the pattern's tokens become one anchored regular expression
with a named group for each field floatseat reads (user, time, request target, user agent).
The same expression serves the pure-Python parser here and the columnar engine (Polars speaks
the same syntax), so both read a line identically.

Tomcat's tokens: https://tomcat.apache.org/tomcat-10.1-doc/config/valve.html#Access_Logging
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from floatseat.logs.escapes import unescape

# Shorthands Tomcat accepts in place of a pattern.
NAMED_PATTERNS = {
    "common": '%h %l %u %t "%r" %s %b',
    "combined": '%h %l %u %t "%r" %s %b "%{Referer}i" "%{User-Agent}i"',
}

# The fields that may carry the authenticated user, most specific first.
USER_TOKENS = ("%{X-AUSERNAME}o", "%{jira.request.username}r", "%u")

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
MONTH_NUMBER = {name: number for number, name in enumerate(MONTHS, start=1)}

# %t: [dd/Mon/yyyy:HH:mm:ss +zzzz]. Day ranges follow the month, so that a line with a date
# that does not exist is malformed already in the match (29 Feb is checked when parsing).
_DAY_MONTH = (
    r"(?:(?:0[1-9]|1[0-9]|2[0-9])/(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
    r"|30/(?:Jan|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
    r"|31/(?:Jan|Mar|May|Jul|Aug|Oct|Dec))"
)
CLF_TIME = _DAY_MONTH + r"/[0-9]{4}:(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9] [+-][0-9]{4}"

NO_SPACE = r'[^\s"]+'
QUOTED_TEXT = r'(?:[^"\\]|\\.)*'
NUMBER_OR_DASH = r"(?:[0-9]+|-)"

# Value expressions of the single-letter tokens.
SIMPLE_TOKENS: dict[str, str] = {
    "a": NO_SPACE,  # remote IP
    "A": NO_SPACE,  # local IP
    "b": NUMBER_OR_DASH,  # bytes sent, '-' for zero
    "B": r"-?[0-9]+",  # bytes sent
    "h": NO_SPACE,  # remote host
    "H": NO_SPACE,  # protocol
    "l": NO_SPACE,  # remote logical user, always '-'
    "m": NO_SPACE,  # method
    "p": NUMBER_OR_DASH,  # local port
    "s": r"(?:[0-9]{3}|-)",  # status
    "S": NO_SPACE,  # session id
    "u": NO_SPACE,  # remote user
    "v": NO_SPACE,  # server name
    "D": NUMBER_OR_DASH,  # time taken
    "F": NUMBER_OR_DASH,  # time to commit the response
    "T": r"(?:[0-9]+(?:\.[0-9]+)?|-)",  # time taken in seconds
    "I": NO_SPACE,  # thread name
    "X": r"[X+-]",  # connection status
}

# Headers whose unquoted values hold spaces; anything else unquoted is one word.
HEADER_LISTS = {"x-forwarded-for": r'(?:[^\s,"]+(?:, ?[^\s,"]+)*|-)'}
SPACED_HEADERS = {"user-agent", "referer", "cookie"}

TOKEN = re.compile(r"%(?:\{(?P<param>[^}]*)\})?(?P<code>[a-zA-Z%])")


class PatternError(ValueError):
    """The pattern cannot be turned into a parser; the message says why."""


@dataclass(frozen=True)
class AccessLine:
    """The fields of one access-log line that floatseat reads, decoded."""

    user: str | None  # None when anonymous ('-' or empty); as logged, case kept
    epoch_s: int  # request start, whole seconds since the epoch, UTC
    target: str  # request target as logged: path plus '?query', not decoded
    user_agent: str | None


@dataclass(frozen=True)
class CompiledPattern:
    """A pattern turned into regular expressions.

    `regex` matches a whole well-formed line and has the named groups `user`, `time` and
    `target` (or `path` and `query`), and `agent` when the pattern logs the User-Agent.
    The other expressions only locate fields in a line `regex` already validated: they stop
    after the last group they need where that is unambiguous, and read the time as whatever
    stands between the brackets (validating it again would cost twice).
    `extract_regex` has user, time and target; `user_time_regex` only user and time.
    `target_prefix_regex` matches from the line's start up to where the target begins (None
    when a field before it is ambiguous), so that polling prefixes can be tested on the raw
    line by a DFA, without extracting the target.
    """

    pattern: str
    regex: str
    extract_regex: str
    user_time_regex: str
    target_prefix_regex: str | None
    has_agent: bool
    target_groups: tuple[str, ...]  # ("target",) from %r, or ("path", "query") from %U%q

    def compiled(self) -> re.Pattern[str]:
        return _compile_cached(self.regex)

    def polling_line_regex(self, prefixes: tuple[str, ...]) -> str | None:
        """A regex matching the validated lines whose target starts with one of `prefixes`.

        None when the pattern does not allow it. A prefix holding whitespace or a quote can
        never begin a logged target, so it is left out.
        """
        if self.target_prefix_regex is None or not all(p.startswith("/") for p in prefixes):
            return None  # a target without its leading slash ('-', '*') is left to the slow path
        usable = [p for p in prefixes if not any(c.isspace() or c == '"' for c in p)]
        if not usable:
            return "$^"  # matches nothing
        return self.target_prefix_regex + "(?:" + "|".join(map(_escape_literal, usable)) + ")"

    def parse(self, line: str) -> AccessLine | None:
        """Parse one line; None when the line is malformed."""
        match = self.compiled().match(line.rstrip("\r\n"))
        if match is None:
            return None
        epoch_s = parse_clf_time(match["time"])
        if epoch_s is None:
            return None
        return AccessLine(
            user=canonical_user_or_none(match["user"]),
            epoch_s=epoch_s,
            target="".join(match[name] or "" for name in self.target_groups),
            user_agent=unescape(match["agent"]) if self.has_agent else None,
        )


@functools.cache
def _compile_cached(regex: str) -> re.Pattern[str]:
    return re.compile(regex)


def canonical_user_or_none(raw: str | None) -> str | None:
    """The user a field names, decoded; None for Tomcat's '-' (empty) and the empty string."""
    if raw is None or raw in ("-", ""):
        return None
    return unescape(raw)


def canonical_user(user: str) -> str:
    """Usernames compare case-insensitively, as in Atlassian's user directories."""
    return user.lower()


# Atlassian's user directories hold usernames of at most 255 characters, and so do the
# ledger's columns (store/schema.py).
MAX_USERNAME_LENGTH = 255


def is_username(canonical: str) -> bool:
    """Whether a canonical name could be a user's: not blank, and not longer than any can be.

    A refused login logs whatever a stranger typed at the login page; a name longer than
    this is nobody, and would not fit the ledger."""
    return 0 < len(canonical) <= MAX_USERNAME_LENGTH and not canonical.isspace()


def parse_clf_time(text: str) -> int | None:
    """'24/Nov/2015:00:03:02 +0100' -> seconds since the epoch; None if not a real instant."""
    try:
        day = int(text[0:2])
        month = MONTH_NUMBER[text[3:6]]
        year = int(text[7:11])
        hour, minute, second = int(text[12:14]), int(text[15:17]), int(text[18:20])
        offset_hours, offset_minutes = int(text[22:24]), int(text[24:26])
        if offset_hours > 23 or offset_minutes > 59:  # as the analyzer's scanners judge it
            return None
        sign = -1 if text[21] == "-" else 1
        offset_s = sign * (offset_hours * 3600 + offset_minutes * 60)
        local = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except (ValueError, KeyError, IndexError):
        return None
    return int(local.timestamp()) - offset_s


@dataclass(frozen=True)
class _Piece:
    regex: str
    ambiguous: bool  # may match in several ways, so a prefix match could differ from the whole
    groups: frozenset[str] = frozenset()  # the named groups inside
    before_target: str = ""  # for the piece holding the target: the regex up to the target


def compile_pattern(pattern: str, *, user_field: str | None = None) -> CompiledPattern:
    """Compile a Tomcat AccessLogValve pattern.

    `user_field` names the token that carries the user (for example '%{X-AUSERNAME}o');
    by default the first of X-AUSERNAME, jira.request.username and %u in the pattern.
    """
    pattern = NAMED_PATTERNS.get(pattern.strip(), pattern)
    tokens = list(_tokens(pattern))
    token_texts = [text for kind, text in tokens if kind == "field"]
    user_token = user_field or next((t for t in USER_TOKENS if t in token_texts), None)
    if user_token is None:
        raise PatternError(
            "the pattern logs no user: add %{X-AUSERNAME}o (Confluence), "
            "%{jira.request.username}r (Jira) or %u, or name the field with --user-field"
        )
    if user_token not in token_texts:
        raise PatternError(f"the user field {user_token} is not in the pattern {pattern!r}")
    if "%t" not in token_texts:
        raise PatternError("the pattern logs no request time: it needs %t")
    if "%r" not in token_texts and "%U" not in token_texts:
        raise PatternError("the pattern logs no request target: it needs %r or %U%q")

    pieces: list[_Piece] = []
    named: set[str] = set()
    in_quotes = False
    last_field = max(i for i, (kind, _) in enumerate(tokens) if kind == "field")
    for index, (kind, text) in enumerate(tokens):
        if kind == "literal":
            pieces.append(_Piece(_escape_literal(text), ambiguous=False))
            in_quotes ^= text.count('"') % 2 == 1
            continue
        rest_is_blank = index == last_field and all(
            not t.strip() for k, t in tokens[index + 1 :] if k == "literal"
        )
        value, ambiguous = _value_regex(text, in_quotes=in_quotes, at_end=rest_is_blank)
        group = _group_name(text, user_token, has_request_line="%r" in token_texts)
        inner = _INNER_GROUPS.get(text)
        if group is not None and group not in named:
            named.add(group)
            value = f"(?P<{group}>{value})"
            groups = frozenset({group})
        elif inner is not None and inner not in named:
            named.add(inner)
            groups = frozenset({inner})
        else:
            # A field logged twice is read from its first occurrence.
            value = f"(?:{_strip_groups(value)})"
            groups = frozenset()
        before = NO_SPACE + " " if "target" in groups else ""
        pieces.append(_Piece(value, ambiguous, groups, before))

    regex = "^" + "".join(p.regex for p in pieces) + r"\r?$"
    target_groups = ("target",) if "target" in named else ("path", "query")
    target_at = next(i for i, p in enumerate(pieces) if p.groups & {"target", "path"})
    target_prefix = None
    if not any(p.ambiguous for p in pieces[:target_at]):
        head = "".join(_strip_groups(p.regex) for p in pieces[:target_at])
        target_prefix = _loosen("^" + head + pieces[target_at].before_target)
    return CompiledPattern(
        pattern=pattern,
        regex=regex,
        extract_regex=_loosen(
            _prefix_until(pieces, {"user", "time", "target", "path", "query"}) or regex
        ),
        user_time_regex=_loosen(_prefix_until(pieces, {"user", "time"}) or regex),
        target_prefix_regex=target_prefix,
        has_agent="agent" in named,
        target_groups=tuple(g for g in target_groups if g in named),
    )


def _prefix_until(pieces: list[_Piece], groups: set[str]) -> str | None:
    """The regex of the pieces up to the last holding one of `groups`; None if ambiguous."""
    last = max(i for i, p in enumerate(pieces) if p.groups & groups)
    if any(p.ambiguous for p in pieces[: last + 1]):
        return None
    return "^" + "".join(p.regex for p in pieces[: last + 1])


def _loosen(regex: str) -> str:
    """For lines already validated: read the time as whatever stands between the brackets."""
    regex = regex.replace(r"\[(?P<time>" + CLF_TIME + r")\]", r"\[(?P<time>[^\]]*)\]")
    return regex.replace(r"\[(?:" + CLF_TIME + r")\]", r"\[[^\]]*\]")


def _tokens(pattern: str) -> list[tuple[str, str]]:
    """Split a pattern into ('literal', text) and ('field', '%x' or '%{param}x') tokens."""
    out: list[tuple[str, str]] = []
    position = 0
    for match in TOKEN.finditer(pattern):
        if match.start() > position:
            out.append(("literal", pattern[position : match.start()]))
        if match["code"] == "%":
            out.append(("literal", "%"))
        else:
            out.append(("field", match.group(0)))
        position = match.end()
    if position < len(pattern):
        out.append(("literal", pattern[position:]))
    # Adjacent literals (from '%%') are merged so quote tracking sees whole runs.
    merged: list[tuple[str, str]] = []
    for kind, text in out:
        if merged and kind == "literal" and merged[-1][0] == "literal":
            merged[-1] = ("literal", merged[-1][1] + text)
        else:
            merged.append((kind, text))
    return merged


# Tokens whose value expression carries its own named group.
_INNER_GROUPS = {"%t": "time", "%r": "target"}


def _group_name(token: str, user_token: str, *, has_request_line: bool) -> str | None:
    if token == user_token:
        return "user"
    # The target comes from %r where the pattern has it; %U%q then only repeat it.
    if token == "%U" and not has_request_line:
        return "path"
    if token == "%q" and not has_request_line:
        return "query"
    if token.lower() == "%{user-agent}i":
        return "agent"
    return None


_META = set("\\.^$|?*+()[]{}")


def _escape_literal(text: str) -> str:
    # Escape only metacharacters: the Rust regex engine in Polars rejects escaped spaces.
    return "".join("\\" + char if char in _META else char for char in text)


def _strip_groups(regex: str) -> str:
    return re.sub(r"\(\?P<[a-z]+>", "(?:", regex)


def _value_regex(token: str, *, in_quotes: bool, at_end: bool) -> tuple[str, bool]:
    """The regex for one field's value, and whether it can match ambiguously."""
    code = token[-1]
    param = token[2:-2] if token.startswith("%{") else None
    if param is None:
        if code == "t":
            return r"\[(?P<time>" + CLF_TIME + r")\]", False
        if code == "r":
            # METHOD TARGET PROTOCOL, or '-' when there was no request line.
            return "(?:" + NO_SPACE + ' (?P<target>[^\\s"]*)(?: ' + NO_SPACE + ")?|-)", False
        if code == "U":
            return r'[^\s"?]*', False
        if code == "q":
            return r'(?:\?[^\s"]*)?', False
        if code in SIMPLE_TOKENS:
            return SIMPLE_TOKENS[code], False
        raise PatternError(f"unknown pattern token {token}")
    if code == "t":
        raise PatternError(
            f"{token}: only %t is supported for the time; use %t in the valve pattern"
        )
    if code == "p":
        return NUMBER_OR_DASH, False
    if code == "T":
        return SIMPLE_TOKENS["T"], False
    if code not in "iocrs":
        raise PatternError(f"unknown pattern token {token}")
    if in_quotes:
        return QUOTED_TEXT, False
    if at_end:
        return r".*", False
    header = param.lower()
    if code == "i" and header in HEADER_LISTS:
        return HEADER_LISTS[header], False
    if code == "i" and header in SPACED_HEADERS:
        return r".*?", True
    return r"[^\s]+", False


def read_server_xml_pattern(xml_text: str) -> str:
    """The pattern of the AccessLogValve in a Tomcat server.xml."""
    import xml.etree.ElementTree as ElementTree  # only this rarely used path needs it

    root = ElementTree.fromstring(xml_text)
    for element in root.iter("Valve"):
        class_name = element.get("className", "")
        if class_name.endswith("AccessLogValve") and element.get("pattern"):
            return element.get("pattern", "")
    raise PatternError("server.xml has no AccessLogValve with a pattern attribute")
