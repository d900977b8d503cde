"""`CustomRestDirectory`: the directory port over REST endpoints an admin describes in TOML.

Some instances manage groups through their own endpoints, ScriptRunner custom REST
endpoints for example. Each operation is a template (method, URL, headers, JSON body,
expected statuses, and JSONPaths into the answer), so an admin can wire floatseat to what
their instance exposes without writing code. This configuration drives Jira's own REST API:

    [directory.custom.operations.group_members]
    url = "/rest/api/2/group/member"
    query.groupname = "{group}"      # query values may also be written in the url
    query.includeInactiveUsers = true
    query.startAt = "{start}"
    query.maxResults = "{limit}"
    members = "$.values[*].name"
    paging = { style = "offset", page_size = 50, is_last = "$.isLast" }

    [directory.custom.operations.add_user_to_group]
    method = "POST"
    url = "/rest/api/2/group/user?groupname={group}"
    body = { name = "{user}" }
    expected = [201]
    already = [400]                  # Jira: "Cannot add user. 'bob' is already a member of ..."
    already_if = "already a member"
    confirm = true                   # and look the membership up before calling it done

    [directory.custom.operations.remove_user_from_group]
    method = "DELETE"
    url = "/rest/api/2/group/user?groupname={group}&username={user}"
    expected = [200, 204]
    already = [400, 404]
    confirm = true

    [directory.custom.operations.licence]
    url = "/rest/api/2/applicationrole/jira-software"
    tier = "$.numberOfSeats"
    licensed = "$.userCount"
    unlimited = "$.hasUnlimitedSeats"

`docs/custom-rest.md` has every operation and field, and a ScriptRunner example.

The placeholders are `{user}`, `{group}`, and `{start}`, `{limit}` in paged lists; `{{` and
`}}` are literal braces. No value can change a request's shape:
- in the URL path a value is percent-encoded as one segment (`/`, `?`, `#` and `%` too), and
  a value that would make a segment `.` or `..` is refused;
- in the query it is a percent-encoded value; query keys are literal;
- in the body it replaces a JSON string of the parsed template, so it is always one JSON
  string (or number, for `{start}` and `{limit}`), whatever quotes or braces it holds;
- headers are literal: no placeholder may appear there.

URLs are paths on the connection's base URL: no scheme, host, fragment or dot segment.
Credentials come from the connection settings (`make_client`), never from a template:
headers, query keys and body keys that carry credentials are refused, and `connect` refuses
templates that contain the connection's own password or token.
"""

from __future__ import annotations

import json
import math
import re
import tomllib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote, unquote

import httpx
from jsonpath_ng.jsonpath import JSONPath
from jsonpath_ng.parser import parse as parse_jsonpath

from floatseat.directory.errors import (
    GroupNotFound,
    HttpDirectoryError,
    ManualStepRequired,
    NotFound,
    ReadOnlyDirectory,
    UnexpectedResponse,
    UserNotFound,
)
from floatseat.directory.http import (
    DEFAULT_TIMEOUT,
    AtlassianHttp,
    BasicCredentials,
    Credentials,
    HttpConnector,
    PersonalAccessToken,
    RetryPolicy,
    open_http,
)
from floatseat.directory.port import (
    DEFAULT_GROUPS,
    UNLIMITED_TIER,
    ApplicationAccess,
    ConnectionInfo,
    Licence,
    PoolGroups,
    User,
    merge_memberships,
)
from floatseat.service.errors import DirectoryError

__all__ = [
    "OPERATIONS",
    "UNLIMITED_TIER",
    "CustomRestDirectory",
    "CustomTemplates",
    "Operation",
    "Paging",
    "Problem",
    "TemplateError",
    "TemplateMissing",
    "UnplaceableValue",
    "load_templates",
    "parse_toml",
]

MAX_PAGES = 100_000  # a list longer than this is a server ignoring `{start}`, not a group

Placeholder = Literal["user", "group", "start", "limit"]
PLACEHOLDERS: tuple[Placeholder, ...] = ("user", "group", "start", "limit")
_PAGING_PLACEHOLDERS = frozenset({"start", "limit"})

# -- errors -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the templates: where (operation and field) and what."""

    operation: str  # "" for the table itself
    field: str
    message: str

    def __str__(self) -> str:
        where = f"operations.{self.operation}" if self.operation else "[directory.custom]"
        if self.operation and self.field:
            where += f".{self.field}"
        elif self.field:
            where += f" {self.field}"
        return f"{where}: {self.message}"


class TemplateError(ValueError):
    """The templates are invalid; `problems` lists every mistake, each naming its place."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = tuple(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"the custom REST templates are invalid:\n{lines}")


class TemplateMissing(DirectoryError):
    """The call needs an operation the configuration does not define."""

    def __init__(self, operation: str, why: str = "") -> None:
        super().__init__(
            f"custom REST: no template for `{operation}`{why}; define it under "
            f"[directory.custom.operations.{operation}] (see docs/custom-rest.md)"
        )
        self.operation = operation


class UnplaceableValue(DirectoryError):
    """A user or group name cannot be placed in the request without changing its meaning."""


# -- operations -------------------------------------------------------------------------------

Kind = Literal["read", "list", "write"]
NotFoundMeaning = Literal["user", "group", "error"]


@dataclass(frozen=True)
class _Spec:
    """What one operation takes: placeholders it must use, JSONPaths (required or not)."""

    kind: Kind
    placeholders: frozenset[str]
    paths: Mapping[str, bool] = field(default_factory=dict)  # field -> required
    not_found: NotFoundMeaning = "error"


OPERATIONS: Mapping[str, _Spec] = {
    "info": _Spec("read", frozenset(), {"version": True}),
    "licence": _Spec(
        "read",
        frozenset(),
        {"tier": True, "licensed": False, "unlimited": False},
    ),
    "licensed_count": _Spec("read", frozenset(), {"licensed": True}),
    "group_members": _Spec("list", frozenset({"group"}), {"members": True}, "group"),
    "groups_of": _Spec("list", frozenset({"user"}), {"groups": True}, "user"),
    "licensed_users": _Spec("list", frozenset(), {"users": True}),
    "find_user": _Spec(
        "read",
        frozenset({"user"}),
        {
            "item": False,
            "name": True,
            "key": False,
            "display_name": False,
            "email": False,
            "active": False,
        },
    ),
    "add_user_to_group": _Spec("write", frozenset({"user", "group"})),
    "remove_user_from_group": _Spec("write", frozenset({"user", "group"})),
    "create_group": _Spec("write", frozenset({"group"})),
    "application_access": _Spec("read", frozenset(), {"groups": True, "default_groups": False}),
    "grant_application_access": _Spec("write", frozenset({"group"})),
    "revoke_application_access": _Spec("write", frozenset({"group"})),
}

_COMMON_FIELDS = frozenset({"method", "url", "query", "headers", "body", "expected", "not_found"})
_WRITE_FIELDS = frozenset({"already", "already_if", "confirm"})
_CONFIRMABLE = frozenset({"add_user_to_group", "remove_user_from_group", "create_group"})
_METHODS = frozenset({"GET", "POST", "PUT", "DELETE", "PATCH"})
_BODYLESS = frozenset({"GET"})

# Statuses an `already` list may not claim: auth failures, rate limiting, server errors.
_NEVER_ALREADY = frozenset({401, 403, 407, 429})

_TOKEN = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}|[{}]")
_PCHAR = r"[A-Za-z0-9\-._~!$'()*+,;:@]|%[0-9A-Fa-f]{2}"  # RFC 3986 pchar, without & and =
_PATH_LITERAL = re.compile(rf"(?:{_PCHAR}|[&=])*")
_QUERY_LITERAL = re.compile(rf"(?:{_PCHAR}|[/?])*")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_HEADER_VALUE = re.compile(r"[\x21-\x7e]([\x20-\x7e\t]*[\x21-\x7e])?")
_RESERVED_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "upgrade",
        "te",
    }
)
# Names that carry credentials; templates may not set them (X-Atlassian-Token is a CSRF flag).
_SECRETISH = re.compile(
    r"pass(word|wd)?|secret|token|api[-_]?key|credential|authori[sz]ation|cookie|"
    r"^os_(username|authtype)$|^auth",
    re.IGNORECASE,
)
_NOT_SECRET = frozenset({"x-atlassian-token"})
_MIN_SECRET = 8  # shorter credentials are not searched for in templates: too many false hits


# -- templated text ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Slot:
    name: str


@dataclass(frozen=True)
class _Text:
    """A string with placeholders: literal parts and `_Slot`s, in order."""

    parts: tuple[str | _Slot, ...]

    @property
    def slots(self) -> frozenset[str]:
        return frozenset(p.name for p in self.parts if isinstance(p, _Slot))

    @property
    def literal(self) -> str:
        return "".join(p for p in self.parts if isinstance(p, str))

    def render(self, values: Mapping[str, str | int], encode: Callable[[str], str]) -> str:
        return "".join(p if isinstance(p, str) else encode(str(values[p.name])) for p in self.parts)


class _Bad(Exception):
    """A problem found while parsing one field; the caller adds the operation and field."""


def _text(raw: str) -> _Text:
    """Split `raw` into literals and placeholders; `{{`/`}}` are literal braces."""
    parts: list[str | _Slot] = []
    at = 0
    for match in _TOKEN.finditer(raw):
        if match.start() > at:
            parts.append(raw[at : match.start()])
        token = match.group(0)
        if token in ("{{", "}}"):
            parts.append(token[0])
        elif match.group(1) is not None:
            name = match.group(1)
            if name not in PLACEHOLDERS:
                known = ", ".join(f"{{{p}}}" for p in PLACEHOLDERS)
                raise _Bad(f"unknown placeholder {{{name}}}; the placeholders are {known}")
            parts.append(_Slot(name))
        else:
            raise _Bad(
                f"a lone {token!r} at position {match.start()}: write {token * 2!r} for a "
                "literal brace, or {user}, {group}, {start}, {limit} for a placeholder"
            )
        at = match.end()
    if at < len(raw):
        parts.append(raw[at:])
    merged: list[str | _Slot] = []
    for part in parts:
        if isinstance(part, str) and merged and isinstance(merged[-1], str):
            merged[-1] += part
        else:
            merged.append(part)
    return _Text(tuple(merged))


def _percent(value: str) -> str:
    """`value` with every reserved character percent-encoded: one segment, one query value."""
    return quote(value, safe="")


# -- URL ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Url:
    """A path on the base URL: segments and query pairs, each value percent-encoded alone."""

    segments: tuple[_Text, ...]
    query: tuple[tuple[str, _Text], ...]

    @property
    def slots(self) -> frozenset[str]:
        found: set[str] = set()
        for text in (*self.segments, *(v for _, v in self.query)):
            found |= text.slots
        return frozenset(found)

    def literals(self) -> Iterator[str]:
        for text in (*self.segments, *(v for _, v in self.query)):
            yield text.literal
        for key, _ in self.query:
            yield key

    def render(self, values: Mapping[str, str | int]) -> str:
        segments: list[str] = []
        for text in self.segments:
            segment = text.render(values, _percent)
            if text.slots and unquote(segment) in (".", ".."):
                raise UnplaceableValue(
                    f"a path segment would read {unquote(segment)!r}, which climbs the URL; "
                    "floatseat does not send it"
                )
            segments.append(segment)
        url = "/" + "/".join(segments)
        if self.query:
            url += "?" + "&".join(f"{k}={v.render(values, _percent)}" for k, v in self.query)
        return url


def _parse_url(raw: object) -> _Url:
    if not isinstance(raw, str) or not raw:
        raise _Bad("give the path on the base URL, e.g. /rest/api/2/group/member?groupname={group}")
    if re.match(r"[A-Za-z][A-Za-z0-9+.-]*:", raw) or raw.startswith("//"):
        raise _Bad(
            "absolute URLs are refused: give a path on the connection's base URL, "
            "starting with one /"
        )
    if not raw.startswith("/"):
        raise _Bad("the path must start with / (it is taken relative to the base URL)")
    if "#" in raw:
        raise _Bad("a fragment (#) is never sent to a server; remove it")
    if "\\" in raw or any(ord(c) < 0x21 or ord(c) == 0x7F for c in raw):
        raise _Bad("backslashes, spaces and control characters are refused: percent-encode them")
    path, has_query, query = raw.partition("?")
    raw_segments = path[1:].split("/")
    segments: list[_Text] = []
    for index, raw_segment in enumerate(raw_segments):
        text = _text(raw_segment)
        if not text.parts and index < len(raw_segments) - 1:
            raise _Bad("an empty path segment (//) is refused")
        literal_only = not text.slots
        if literal_only and unquote(text.literal) in (".", ".."):
            raise _Bad("dot segments (. and ..) are refused: the URL must stay on the base URL")
        for part in text.parts:
            if isinstance(part, str) and not _PATH_LITERAL.fullmatch(part):
                raise _Bad(f"{part!r} is not a valid path segment: percent-encode it")
        segments.append(text)
    pairs: list[tuple[str, _Text]] = []
    if has_query:
        if not query:
            raise _Bad("an empty query (a trailing ?) is refused")
        for item in query.split("&"):
            key, has_value, raw_value = item.partition("=")
            if not key:
                raise _Bad(f"the query item {item!r} has no name")
            key_text = _text(key)
            if key_text.slots:
                raise _Bad(f"placeholders are not allowed in query names ({key!r})")
            if not _QUERY_LITERAL.fullmatch(key_text.literal):
                raise _Bad(f"the query name {key!r} is not valid: percent-encode it")
            if _is_secretish(unquote(key_text.literal)):
                raise _Bad(
                    f"the query name {key!r} carries credentials; they come from the "
                    "connection settings, never from a template"
                )
            value = _text(raw_value) if has_value else _Text(())
            for part in value.parts:
                if isinstance(part, str) and not _QUERY_LITERAL.fullmatch(part):
                    raise _Bad(f"{part!r} is not a valid query value: percent-encode it")
            pairs.append((key_text.literal, value))
    return _Url(tuple(segments), tuple(pairs))


def _parse_query(raw: object) -> tuple[tuple[str, _Text], ...]:
    """The `query` table: names and values as written (floatseat percent-encodes them)."""
    if not isinstance(raw, dict):
        raise _Bad('give a table, e.g. query.groupname = "{group}"')
    pairs: list[tuple[str, _Text]] = []
    for key, value in raw.items():
        if _text(key).slots:
            raise _Bad(f"placeholders are not allowed in query names ({key!r})")
        if not key or _is_secretish(key):
            raise _Bad(
                f"the query name {key!r} carries credentials; they come from the "
                "connection settings, never from a template"
                if key
                else "a query name must not be empty"
            )
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, int):
            value = str(value)
        if not isinstance(value, str):
            raise _Bad(f"the value of {key!r} must be a string, a whole number or a boolean")
        text = _text(value)
        encoded = tuple(_percent(p) if isinstance(p, str) else p for p in text.parts)
        pairs.append((_percent(_text(key).literal), _Text(encoded)))
    return tuple(pairs)


def _is_secretish(name: str) -> bool:
    return name.lower() not in _NOT_SECRET and bool(_SECRETISH.search(name))


# -- body ------------------------------------------------------------------------------------

# A body template: the parsed JSON, with every string replaced by a `_Text`.
_Body = Any


def _parse_body(raw: object) -> _Body:
    """A TOML table/array, or a string holding JSON; checked and turned into a template."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError as error:
            raise _Bad(f"not JSON ({error}); give a TOML table or a JSON string") from error
    if raw is None:
        raise _Bad("a null body is refused; leave `body` out to send none")
    return _body_node(raw, "body")


def _body_node(node: object, where: str) -> _Body:
    if isinstance(node, dict):
        out: dict[str, _Body] = {}
        for key, value in node.items():
            if not isinstance(key, str):
                raise _Bad(f"{where}: keys must be strings")
            key_text = _text(key)
            if key_text.slots:
                raise _Bad(f"{where}: placeholders are not allowed in keys ({key!r})")
            if _is_secretish(key_text.literal):
                raise _Bad(
                    f"{where}: the key {key!r} carries credentials; they come from the "
                    "connection settings, never from a template"
                )
            out[key_text.literal] = _body_node(value, f"{where}.{key_text.literal}")
        return out
    if isinstance(node, list):
        return [_body_node(v, f"{where}[{i}]") for i, v in enumerate(node)]
    if isinstance(node, str):
        return _text(node)
    if isinstance(node, bool | int):
        return node
    if isinstance(node, float):
        if not math.isfinite(node):
            raise _Bad(f"{where}: {node} cannot be sent as JSON")
        return node
    if node is None:
        raise _Bad(f"{where}: null values are refused")
    raise _Bad(f"{where}: a {type(node).__name__} cannot be sent as JSON (a TOML date?)")


def _body_slots(node: _Body) -> frozenset[str]:
    if isinstance(node, _Text):
        return node.slots
    if isinstance(node, dict):
        return frozenset().union(*(_body_slots(v) for v in node.values()))
    if isinstance(node, list):
        return frozenset().union(*(_body_slots(v) for v in node))
    return frozenset()


def _body_literals(node: _Body) -> Iterator[str]:
    if isinstance(node, _Text):
        yield node.literal
    elif isinstance(node, dict):
        for key, value in node.items():
            yield key
            yield from _body_literals(value)
    elif isinstance(node, list):
        for value in node:
            yield from _body_literals(value)


def _render_body(node: _Body, values: Mapping[str, str | int]) -> Any:
    """The JSON value to send: a placeholder fills a whole JSON string, never the syntax."""
    if isinstance(node, _Text):
        if len(node.parts) == 1 and isinstance(node.parts[0], _Slot):
            return values[node.parts[0].name]  # the value itself: a string, or a number
        return node.render(values, lambda v: v)
    if isinstance(node, dict):
        return {k: _render_body(v, values) for k, v in node.items()}
    if isinstance(node, list):
        return [_render_body(v, values) for v in node]
    return node


# -- templates --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Paging:
    """How a list operation pages.

    - `offset`: `{start}` advances by the number of items each page returned; the list ends
      when `is_last` says so, or `start` reaches `total`, or (with neither) a page is empty.
    - `next`: follow the link at the `next` JSONPath (a path on the base URL, or an absolute
      URL on the same origin) until it is missing.
    - `none`: the API has no paging; one answer is the whole list.
    """

    style: Literal["offset", "next", "none"]
    page_size: int = 50
    first: int = 0
    is_last: JSONPath | None = None
    total: JSONPath | None = None
    next: JSONPath | None = None


@dataclass(frozen=True)
class Operation:
    """One validated template."""

    name: str
    method: str
    url: _Url
    headers: tuple[tuple[str, str], ...] = ()
    body: _Body = None
    expected: frozenset[int] = frozenset({200})
    already: frozenset[int] = frozenset()
    already_if: str | None = None
    confirm: bool = False
    not_found: NotFoundMeaning = "error"
    paths: Mapping[str, JSONPath] = field(default_factory=dict)
    sources: Mapping[str, str] = field(default_factory=dict)  # field -> the JSONPath as written
    paging: Paging | None = None

    def literals(self) -> Iterator[tuple[str, str]]:
        """(field, literal text) of everything the admin wrote that will be sent."""
        for text in self.url.literals():
            yield "url", text
        for name, value in self.headers:
            yield "headers", name
            yield "headers", value
        for text in _body_literals(self.body):
            yield "body", text


@dataclass(frozen=True)
class CustomTemplates:
    """Every operation's template, validated; build with `load_templates` or `parse_toml`."""

    operations: Mapping[str, Operation]
    derive_groups_of: tuple[str, ...] = ()  # groups `groups_of` looks in without a template

    def get(self, name: str) -> Operation | None:
        return self.operations.get(name)


class _Collector:
    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def add(self, operation: str, field_: str, message: str) -> None:
        self.problems.append(Problem(operation, field_, message))


def parse_toml(text: str) -> CustomTemplates:
    """The templates in the `[directory.custom]` table of a TOML document."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise TemplateError([Problem("", "", f"not valid TOML: {error}")]) from error
    table = document.get("directory", {}).get("custom")
    if not isinstance(table, dict):
        raise TemplateError([Problem("", "", "the document has no [directory.custom] table")])
    return load_templates(table)


def load_templates(table: Mapping[str, Any]) -> CustomTemplates:
    """Validate the `[directory.custom]` table; `TemplateError` lists every problem found.

    The engine needs `add_user_to_group`, `remove_user_from_group`, `licence` (with a
    licensed count from it or from `licensed_count`), and `groups_of` or `group_members`;
    the other operations are optional, and calling one that is missing raises
    `TemplateMissing`.
    """
    problems = _Collector()
    for key in table:
        if key not in ("operations", "derive_groups_of"):
            problems.add("", key, _unknown_key_message(key, ("operations", "derive_groups_of")))
    derive: tuple[str, ...] = ()
    raw_derive = table.get("derive_groups_of", [])
    if not isinstance(raw_derive, list) or not all(isinstance(g, str) and g for g in raw_derive):
        problems.add("", "derive_groups_of", "give a list of group names")
    else:
        derive = tuple(raw_derive)
    raw_operations = table.get("operations", {})
    operations: dict[str, Operation] = {}
    if not isinstance(raw_operations, dict):
        problems.add("", "operations", "must be a table of operations")
        raw_operations = {}
    for name, raw in raw_operations.items():
        if name not in OPERATIONS:
            problems.add(name, "", _unknown_key_message(name, tuple(OPERATIONS), "operation"))
            continue
        if not isinstance(raw, dict):
            problems.add(name, "", "must be a table")
            continue
        before = len(problems.problems)
        operation = _load_operation(name, OPERATIONS[name], raw, problems)
        if operation is not None and len(problems.problems) == before:
            operations[name] = operation
    for required in ("add_user_to_group", "remove_user_from_group", "licence"):
        if required not in raw_operations:
            problems.add(required, "", "missing: the seat engine cannot work without it")
    if "groups_of" not in raw_operations and "group_members" not in raw_operations:
        problems.add("groups_of", "", "missing: define groups_of, or group_members to derive it")
    licence = raw_operations.get("licence")
    if (
        isinstance(licence, dict)
        and "licensed" not in licence
        and "licensed_count" not in raw_operations
    ):
        problems.add("licence", "licensed", "missing: give it here or in `licensed_count`")
    if problems.problems:
        raise TemplateError(problems.problems)
    return CustomTemplates(operations, derive)


def _unknown_key_message(key: str, known: Iterable[str], what: str = "field") -> str:
    return f"unknown {what} {key!r}; the {what}s are {', '.join(sorted(known))}"


def _load_operation(
    name: str, spec: _Spec, raw: Mapping[str, Any], problems: _Collector
) -> Operation | None:
    allowed = set(_COMMON_FIELDS) | set(spec.paths)
    if spec.kind == "write":
        allowed |= _WRITE_FIELDS
    if spec.kind == "list":
        allowed.add("paging")
    for key in raw:
        if key not in allowed:
            problems.add(name, key, _unknown_key_message(key, allowed))
    if name not in _CONFIRMABLE and "confirm" in raw:
        problems.add(name, "confirm", "only add, remove and create_group can confirm by look-up")

    def field_(key: str, parse: Any) -> Any:
        if key not in raw:
            return None
        try:
            return parse(raw[key])
        except _Bad as error:
            problems.add(name, key, str(error))
            return None

    method = field_("method", _parse_method)
    if method is None and "method" not in raw:
        if spec.kind == "write":
            problems.add(name, "method", "missing: say which method changes it (POST, PUT...)")
        method = "GET"
    url = field_("url", _parse_url)
    if "url" not in raw:
        problems.add(name, "url", "missing: the path on the base URL")
    query = field_("query", _parse_query)
    query_slots = frozenset().union(*(text.slots for _, text in query or ()))
    if url is not None and query:
        url = _Url(url.segments, url.query + query)
    headers = field_("headers", _parse_headers) or ()
    body = field_("body", _parse_body)
    if body is not None and method in _BODYLESS:
        problems.add(name, "body", f"a {method} request carries no body")
    default_expected = [200, 201, 204] if spec.kind == "write" else [200]
    expected = field_("expected", _parse_expected)
    if expected is None:
        expected = frozenset(default_expected)
    already = field_("already", _parse_already) or frozenset()
    if already & expected:
        problems.add(name, "already", f"{sorted(already & expected)} are also in `expected`")
    already_if = field_("already_if", _parse_nonempty_string)
    if already_if is not None and not already:
        problems.add(name, "already_if", "applies to the `already` statuses: give them too")
    confirm = field_("confirm", _parse_bool) or False
    not_found: NotFoundMeaning = field_("not_found", _parse_not_found) or spec.not_found
    if name == "find_user" and "not_found" in raw:
        problems.add(name, "not_found", "a 404 always means there is no such user here")
    paths: dict[str, JSONPath] = {}
    sources: dict[str, str] = {}
    for key, required in spec.paths.items():
        if key in raw:
            compiled = field_(key, _parse_jsonpath)
            if compiled is not None:
                paths[key] = compiled
                sources[key] = raw[key]
        elif required and not (name == "licence" and key == "licensed"):
            problems.add(name, key, "missing: the JSONPath to it in the answer")
    if name == "find_user" and "item" not in paths:
        paths["item"] = parse_jsonpath("$")
        sources["item"] = "$"
    paging: Paging | None = None
    if spec.kind == "list":
        if "paging" not in raw:
            problems.add(
                name,
                "paging",
                'missing: say how the API pages (style = "offset", "next" or "none"); '
                "floatseat never guesses the end of a list from a short page",
            )
        else:
            paging = _load_paging(name, raw["paging"], problems)

    # placeholders: the operation's own must be used, others are refused
    slots: set[str] = set()
    if url is not None:
        slots |= url.slots
    if body is not None:
        slots |= _body_slots(body)
    allowed_slots = set(spec.placeholders)
    if paging is not None and paging.style != "none":
        allowed_slots |= _PAGING_PLACEHOLDERS
    for slot in sorted(slots - allowed_slots):
        if slot in _PAGING_PLACEHOLDERS and spec.kind == "list":
            why = "only where paging.style is offset or next"
        elif slot in _PAGING_PLACEHOLDERS:
            why = "only in paged list operations"
        else:
            why = f"`{name}` has no {slot} to put there"
        where = "query" if slot in query_slots else "url" if url and slot in url.slots else "body"
        problems.add(name, where, f"{{{slot}}}: {why}")
    for slot in sorted(spec.placeholders - slots if url is not None else ()):
        problems.add(name, "url", f"{{{slot}}} is never used: the request would not name it")
    if paging is not None and paging.style == "offset" and "start" not in slots:
        problems.add(name, "paging", "offset paging needs {start} in the url or the body")
    if method is None or url is None:
        return None
    return Operation(
        name=name,
        method=method,
        url=url,
        headers=headers,
        body=body,
        expected=expected,
        already=already,
        already_if=already_if,
        confirm=confirm,
        not_found=not_found,
        paths=paths,
        sources=sources,
        paging=paging,
    )


def _parse_method(raw: object) -> str:
    if not isinstance(raw, str) or raw.upper() not in _METHODS:
        raise _Bad(f"{raw!r} is not one of {', '.join(sorted(_METHODS))}")
    return raw.upper()


def _parse_headers(raw: object) -> tuple[tuple[str, str], ...]:
    if not isinstance(raw, dict):
        raise _Bad('give a table such as { "X-Requested-With" = "floatseat" }')
    headers: list[tuple[str, str]] = []
    for name, value in raw.items():
        if not _HEADER_NAME.fullmatch(name):
            raise _Bad(f"{name!r} is not a valid header name")
        if name.lower() in _RESERVED_HEADERS or _is_secretish(name):
            raise _Bad(
                f"{name!r} may not be set by a template: the connection sets credentials "
                "and framing headers itself"
            )
        if not isinstance(value, str):
            raise _Bad(f"the value of {name!r} must be a string")
        if not _HEADER_VALUE.fullmatch(value):
            raise _Bad(
                f"the value of {name!r} must be printable ASCII without line breaks, "
                "control characters or surrounding spaces"
            )
        text = _text(value)
        if text.slots:
            raise _Bad(f"placeholders are not allowed in headers ({name!r})")
        headers.append((name, text.literal))
    return tuple(headers)


def _statuses(raw: object) -> list[int]:
    if isinstance(raw, int) and not isinstance(raw, bool):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        raise _Bad("give a list of HTTP statuses, e.g. [200, 204]")
    for status in raw:
        if not isinstance(status, int) or isinstance(status, bool):
            raise _Bad(f"{status!r} is not an HTTP status")
    return raw


def _parse_expected(raw: object) -> frozenset[int]:
    statuses = _statuses(raw)
    for status in statuses:
        if not 200 <= status <= 299:
            raise _Bad(
                f"{status} is out of range: expected statuses are 2xx (declare statuses "
                "that mean 'already done' in `already`)"
            )
    return frozenset(statuses)


def _parse_already(raw: object) -> frozenset[int]:
    statuses = _statuses(raw)
    for status in statuses:
        if not 200 <= status <= 499 or status in _NEVER_ALREADY:
            raise _Bad(
                f"{status} cannot mean 'already done': use 2xx or 4xx, but not 401, 403, "
                "407 or 429 (credentials and rate limits are never success)"
            )
    return frozenset(statuses)


def _parse_nonempty_string(raw: object) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise _Bad("give a non-empty text")
    return raw


def _parse_bool(raw: object) -> bool:
    if not isinstance(raw, bool):
        raise _Bad("give true or false")
    return raw


def _parse_not_found(raw: object) -> NotFoundMeaning:
    if raw == "user":
        return "user"
    if raw == "group":
        return "group"
    if raw == "error":
        return "error"
    raise _Bad(f'{raw!r}: say what a 404 means here: "user", "group" or "error"')


def _parse_jsonpath(raw: object) -> JSONPath:
    if not isinstance(raw, str) or not raw.strip():
        raise _Bad("give a JSONPath, e.g. $.values[*].name")
    try:
        return parse_jsonpath(raw)
    except Exception as error:  # jsonpath-ng raises several unrelated exception types
        raise _Bad(f"malformed JSONPath {raw!r}: {error}") from error


def _load_paging(name: str, raw: object, problems: _Collector) -> Paging | None:
    where = "paging"
    if not isinstance(raw, dict):
        problems.add(name, where, 'give a table, e.g. { style = "offset", is_last = "$.isLast" }')
        return None
    style = raw.get("style")
    fields = {
        "offset": {"style", "page_size", "first", "is_last", "total"},
        "next": {"style", "page_size", "first", "next"},
        "none": {"style"},
    }
    if style not in fields:
        problems.add(name, f"{where}.style", f'{style!r}: give "offset", "next" or "none"')
        return None
    before = len(problems.problems)
    for key in raw:
        if key not in fields[style]:
            problems.add(
                name,
                f"{where}.{key}",
                f"not used with style {style!r}; " + _unknown_key_message(key, fields[style]),
            )
    page_size = raw.get("page_size", 50)
    if (
        not isinstance(page_size, int)
        or isinstance(page_size, bool)
        or not 1 <= page_size <= 10_000
    ):
        problems.add(name, f"{where}.page_size", "give a whole number from 1 to 10000")
    first = raw.get("first", 0)
    if not isinstance(first, int) or isinstance(first, bool) or first < 0:
        problems.add(name, f"{where}.first", "give the first {start}: a whole number from 0")
    paths: dict[str, JSONPath] = {}
    for key in ("is_last", "total", "next"):
        if key in raw and key in fields[style]:
            try:
                paths[key] = _parse_jsonpath(raw[key])
            except _Bad as error:
                problems.add(name, f"{where}.{key}", str(error))
    if style == "next" and "next" not in raw:
        problems.add(name, f"{where}.next", "missing: the JSONPath to the next page's link")
    if len(problems.problems) > before:
        return None
    return Paging(
        style=style,
        page_size=page_size,
        first=first,
        is_last=paths.get("is_last"),
        total=paths.get("total"),
        next=paths.get("next"),
    )


# -- the directory ----------------------------------------------------------------------------

Values = Mapping[str, str | int]


class _Already:
    """The server said the change was already made."""


_ALREADY = _Already()


def _fold(name: str) -> str:
    return name.casefold()


class CustomRestDirectory(HttpConnector):
    """The `ManagedDirectory` port over the admin's templates.

    Parameters:
    - `http`: the `AtlassianHttp` to the instance (credentials, retries, error mapping);
      closed with this object.
    - `templates`: from `load_templates` or `parse_toml`.
    - `groups`: the pool groups; without a `groups_of` template, `groups_of` looks for the
      user in these (and in `templates.derive_groups_of`).

    The constructor does no I/O.
    """

    def __init__(
        self,
        http: AtlassianHttp,
        templates: CustomTemplates,
        *,
        groups: PoolGroups = DEFAULT_GROUPS,
        max_pages: int = MAX_PAGES,
    ) -> None:
        self.http = http
        self.templates = templates
        self.groups = groups
        self.max_pages = max_pages

    @classmethod
    def connect(
        cls,
        base_url: str,
        credentials: Credentials | tuple[str, str],
        templates: CustomTemplates,
        *,
        groups: PoolGroups = DEFAULT_GROUPS,
        policy: RetryPolicy | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> CustomRestDirectory:
        """A directory for `base_url` (context path included), without I/O.

        Refuses (`TemplateError`) templates that contain the credentials' password or token.
        """
        creds = BasicCredentials(*credentials) if isinstance(credentials, tuple) else credentials
        _refuse_secrets_in(templates, creds)
        http = open_http(base_url, creds, policy=policy, timeout=timeout, transport=transport)
        return cls(http, templates, groups=groups)

    def __repr__(self) -> str:
        names = ", ".join(sorted(self.templates.operations))
        return f"CustomRestDirectory({self.http!r}, operations=[{names}])"

    # -- probing --------------------------------------------------------------------------

    def info(self) -> ConnectionInfo:
        """The `info` template's version; without one, the `licence` call proves the access."""
        operation = self.templates.get("info")
        version: str | None = None
        if operation is None:
            self.licence()
        else:
            document = self._json(operation, self._send(operation, {}))
            found = self._one(operation, "version", document)
            version = str(found) if found is not None and found != "" else None
        return ConnectionInfo(
            product="custom",
            version=version,
            api=f"custom REST templates ({len(self.templates.operations)} operations)",
            base_url=self.base_url,
        )

    # -- the engine's port ------------------------------------------------------------------

    def licence(self) -> Licence:
        operation = self._require("licence")
        document = self._json(operation, self._send(operation, {}))
        tier = self._count(operation, "tier", document)
        if "unlimited" in operation.paths and self._flag(operation, "unlimited", document):
            tier = UNLIMITED_TIER
        if "licensed" in operation.paths:
            licensed = self._count(operation, "licensed", document)
        else:
            count = self._require("licensed_count")
            licensed = self._count(count, "licensed", self._json(count, self._send(count, {})))
        return Licence(tier=tier, licensed=licensed)

    def groups_of(self, user: str) -> frozenset[str]:
        operation = self.templates.get("groups_of")
        if operation is not None:
            return frozenset(self._list(operation, "groups", {"user": _name(user, "user")}))
        wanted = _fold(_name(user, "user"))
        found: set[str] = set()
        for group in self._derived_groups():
            try:
                members = self.group_members(group)
            except GroupNotFound:
                continue
            if any(_fold(m) == wanted for m in members):
                found.add(group)
        return frozenset(found)

    def add_user_to_group(self, user: str, group: str) -> None:
        operation = self._require("add_user_to_group")
        values = {"user": _name(user, "user"), "group": _name(group, "group")}
        if self._send(operation, values) is _ALREADY and operation.confirm:
            self._confirm_membership(operation, user, group, member=True)

    def remove_user_from_group(self, user: str, group: str) -> None:
        operation = self._require("remove_user_from_group")
        values = {"user": _name(user, "user"), "group": _name(group, "group")}
        if self._send(operation, values) is _ALREADY and operation.confirm:
            self._confirm_membership(operation, user, group, member=False)

    # -- setup and reconciliation ---------------------------------------------------------

    def group_members(self, group: str) -> list[str]:
        operation = self._require("group_members")
        return self._list(operation, "members", {"group": _name(group, "group")})

    def create_group(self, group: str) -> bool:
        operation = self._require("create_group")
        outcome = self._send(operation, {"group": _name(group, "group")})
        if outcome is not _ALREADY:
            return True
        if operation.confirm:
            try:
                self.group_members(group)
            except GroupNotFound as error:
                raise UnexpectedResponse(
                    f"custom REST `create_group`: the server said {group!r} already exists, "
                    "but `group_members` does not find it"
                ) from error
        return False

    def find_user(self, name: str) -> User | None:
        operation = self._require("find_user")
        try:
            response = self._send(operation, {"user": _name(name, "user")})
        except NotFound:
            return None
        document = self._json(operation, response)
        wanted = _fold(name)
        for match in operation.paths["item"].find(document):
            item = match.value
            found = self._one(operation, "name", item)
            if not isinstance(found, str) or _fold(found) != wanted:
                continue
            active = self._one(operation, "active", item)
            return User(
                name=found,
                key=self._optional_text(operation, "key", item),
                display_name=self._optional_text(operation, "display_name", item) or "",
                email=self._optional_text(operation, "email", item),
                active=active if isinstance(active, bool) else True,
            )
        return None

    def memberships(self, groups: Iterable[str]) -> Mapping[str, frozenset[str]]:
        return merge_memberships(groups, self.group_members)

    def licensed_users(self) -> frozenset[str] | None:
        operation = self.templates.get("licensed_users")
        if operation is None:
            return None
        return frozenset(self._list(operation, "users", {}))

    def application_access(self) -> ApplicationAccess:
        operation = self.templates.get("application_access")
        if operation is None:
            raise ManualStepRequired(
                "custom REST: no `application_access` template, so floatseat cannot read "
                "which groups have application access",
                steps=(
                    "Check in the product's administration which groups grant access "
                    "(Confluence: Global permissions, Can use; Jira: Application access).",
                ),
            )
        document = self._json(operation, self._send(operation, {}))
        groups = self._strings(operation, "groups", document)
        defaults: list[str] = []
        if "default_groups" in operation.paths:
            defaults = self._strings(operation, "default_groups", document)
        return ApplicationAccess(frozenset(groups), frozenset(defaults))

    def grant_application_access(self, group: str) -> None:
        operation = self.templates.get("grant_application_access")
        if operation is None:
            raise ManualStepRequired(
                f"custom REST: no `grant_application_access` template to give {group!r} "
                "application access",
                steps=(
                    f"Give the group {group!r} application access: in Confluence, General "
                    "configuration > Global permissions > Can use; in Jira, Applications > "
                    "Application access.",
                ),
            )
        self._send(operation, {"group": _name(group, "group")})

    def revoke_application_access(self, group: str, *, default_group: bool = True) -> None:
        """The template decides whether default-group status goes too; `default_group` is
        honoured only by what the endpoint does."""
        operation = self.templates.get("revoke_application_access")
        if operation is None:
            raise ManualStepRequired(
                f"custom REST: no `revoke_application_access` template to take application "
                f"access from {group!r}",
                steps=(
                    f"Take application access from the group {group!r}"
                    + (" and make it no default group" if default_group else "")
                    + ": in Confluence, General configuration > Global permissions > Can use; "
                    "in Jira, Applications > Application access.",
                ),
            )
        self._send(operation, {"group": _name(group, "group")})

    # -- requests -------------------------------------------------------------------------

    def _require(self, name: str) -> Operation:
        operation = self.templates.get(name)
        if operation is None:
            raise TemplateMissing(name)
        return operation

    def _derived_groups(self) -> list[str]:
        if "group_members" not in self.templates.operations:
            raise TemplateMissing("groups_of", " (nor `group_members` to derive it from)")
        groups = [self.groups.enabled, self.groups.disabled, *self.templates.derive_groups_of]
        return list(dict.fromkeys(groups))

    def _send(
        self, operation: Operation, values: Values, url: str | None = None
    ) -> httpx.Response | _Already:
        """One request of `operation`; `_ALREADY` when the server says it was done before."""
        path = url if url is not None else operation.url.render(values)
        body = _render_body(operation.body, values) if operation.body is not None else None
        accepted = operation.expected | {s for s in operation.already if s < 300}
        try:
            response = self.http.request(
                operation.method,
                path,
                json=body,
                headers=dict(operation.headers),
                expected=accepted,
                not_found=_NOT_FOUND[operation.not_found],
            )
        except HttpDirectoryError as error:
            if self._is_already(operation, error.status, error.server_message, error):
                return _ALREADY
            raise _in_operation(operation, error) from error
        if response.status_code not in operation.expected:
            if self._is_already(operation, response.status_code, response.text, None):
                return _ALREADY
            raise self._unexpected(
                operation,
                f"{operation.method} {path}: "
                f"{response.status_code} does not say the change was already made "
                f"(`already_if` {operation.already_if!r} is not in the answer)",
                status=response.status_code,
            )
        return response

    @staticmethod
    def _is_already(
        operation: Operation, status: int | None, text: str, error: HttpDirectoryError | None
    ) -> bool:
        if status is None or status not in operation.already:
            return False
        if isinstance(error, ReadOnlyDirectory):
            return False  # "the user's directory is read only" is never success
        if operation.already_if is None:
            return True
        return operation.already_if.casefold() in text.casefold()

    def _confirm_membership(
        self, operation: Operation, user: str, group: str, *, member: bool
    ) -> None:
        """The server said "already": check that the membership is indeed as wanted."""
        try:
            groups = self.groups_of(user)
        except UserNotFound:
            if member:
                raise
            groups = frozenset()  # no such user: in no group
        is_member = _fold(group) in {_fold(g) for g in groups}
        if is_member != member:
            state = "not in" if member else "still in"
            raise self._unexpected(
                operation, f"the server said it was already done, but {user!r} is {state} {group!r}"
            )

    def _list(self, operation: Operation, key: str, values: Values) -> list[str]:
        """Every item across the pages, each once (case-insensitively), in server order."""
        paging = operation.paging
        assert paging is not None  # every list operation has one, by validation
        names: dict[str, str] = {}
        start = paging.first
        url: str | None = None
        previous: list[str] | None = None
        for _ in range(self.max_pages):
            page_values = {**values, "start": start, "limit": paging.page_size}
            document = self._json(operation, self._send(operation, page_values, url))
            page = self._strings(operation, key, document)
            for item in page:
                names.setdefault(_fold(item), item)
            if paging.style == "none":
                break
            if paging.style == "next":
                assert paging.next is not None
                link = self._one(operation, "paging.next", document, path=paging.next)
                if link is None or link == "":
                    break
                url = self._follow(operation, link)
                continue
            if paging.is_last is not None:
                last = self._flag(operation, "paging.is_last", document, path=paging.is_last)
                if last:
                    break
                if not page:
                    raise self._unexpected(
                        operation,
                        f"the page at {{start}}={start} is "
                        "empty, yet `paging.is_last` says more follow",
                    )
            elif paging.total is not None:
                total = self._count(operation, "paging.total", document, path=paging.total)
                if start + len(page) >= total or not page:
                    break
            elif not page:
                break
            if page == previous:
                raise self._unexpected(
                    operation,
                    f"the server sent the same page for "
                    f"{{start}}={start - len(page)} and {{start}}={start}; does the template "
                    "put {start} where the API reads it?",
                )
            previous = page
            start += len(page)
        else:
            raise self._unexpected(operation, f"still more pages after {self.max_pages}")
        return list(names.values())

    def _follow(self, operation: Operation, link: Any) -> str:
        """The next page's link as an absolute URL on the base URL, or an error."""
        base = self.http.client.base_url
        refused = self._unexpected(
            operation,
            f"the next-page link {str(link)[:200]!r} leads "
            f"off the base URL {str(base)!r}; floatseat does not follow it",
        )
        if not isinstance(link, str) or "\\" in link or "#" in link:
            raise refused
        try:
            if link.startswith("/") and not link.startswith("//"):
                url = base.copy_with(raw_path=base.raw_path + link[1:].encode("ascii"))
            else:
                url = httpx.URL(link)
        except (httpx.InvalidURL, UnicodeEncodeError) as error:
            raise refused from error
        path = url.raw_path.split(b"?", 1)[0]
        dot = any(unquote(s.decode("ascii")) in (".", "..") for s in path.split(b"/"))
        if (
            dot
            or url.userinfo
            or (url.scheme, url.host, url.port) != (base.scheme, base.host, base.port)
            or not path.startswith(base.raw_path)
        ):
            raise refused
        return str(url)

    # -- answers --------------------------------------------------------------------------

    def _unexpected(
        self, operation: Operation, message: str, *, status: int | None = None
    ) -> UnexpectedResponse:
        """An error about `operation`'s answer, with any credential the answer echoed masked.

        The HTTP layer scrubs its own messages; these quote the answer too, so they are
        scrubbed here with the credentials the client sends.
        """
        text = self.http.scrub(f"custom REST `{operation.name}`: {message}")
        return UnexpectedResponse(text, status=status)

    def _json(self, operation: Operation, response: httpx.Response | _Already) -> Any:
        if isinstance(response, _Already):
            raise self._unexpected(operation, "no answer to read")
        try:
            return response.json()
        except ValueError as error:
            kind = response.headers.get("content-type", "no content type")
            raise self._unexpected(
                operation,
                f"the answer is not JSON ({kind}): {' '.join(response.text.split())[:200]!r}",
                status=response.status_code,
            ) from error

    def _matches(
        self, operation: Operation, key: str, document: Any, path: JSONPath | None = None
    ) -> list[Any]:
        found = (path or operation.paths[key]).find(document)
        return [m.value for m in found]

    def _one(
        self,
        operation: Operation,
        key: str,
        document: Any,
        *,
        path: JSONPath | None = None,
    ) -> Any:
        """The single value at `key`'s JSONPath, or None when it matches nothing."""
        if path is None and key not in operation.paths:
            return None
        values = self._matches(operation, key, document, path)
        if len(values) > 1:
            raise self._unexpected(
                operation,
                f"`{key}` ({self._source(operation, key)}) "
                f"matched {len(values)} values; it must match one",
            )
        return values[0] if values else None

    def _source(self, operation: Operation, key: str) -> str:
        if key.startswith("paging.") and operation.paging is not None:
            path = getattr(operation.paging, key.removeprefix("paging."))
            return str(path)
        return operation.sources.get(key, "?")

    def _required(
        self, operation: Operation, key: str, document: Any, path: JSONPath | None
    ) -> Any:
        value = self._one(operation, key, document, path=path)
        if value is None:
            raise self._unexpected(
                operation, f"`{key}` ({self._source(operation, key)}) matched nothing in the answer"
            )
        return value

    def _count(
        self, operation: Operation, key: str, document: Any, *, path: JSONPath | None = None
    ) -> int:
        value = self._required(operation, key, document, path)
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value.strip())
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise self._unexpected(
                operation, f"`{key}` ({self._source(operation, key)}) is {value!r}, not a count"
            )
        return value

    def _flag(
        self, operation: Operation, key: str, document: Any, *, path: JSONPath | None = None
    ) -> bool:
        value = self._required(operation, key, document, path)
        if isinstance(value, str) and value.lower() in ("true", "false"):
            value = value.lower() == "true"
        if not isinstance(value, bool):
            raise self._unexpected(
                operation,
                f"`{key}` ({self._source(operation, key)}) is {value!r}, not true or false",
            )
        return value

    def _strings(self, operation: Operation, key: str, document: Any) -> list[str]:
        if not isinstance(document, dict | list):
            raise self._unexpected(
                operation, f"the answer is {str(document)[:200]!r}, not a JSON object or array"
            )
        values = self._matches(operation, key, document)
        for value in values:
            if not isinstance(value, str) or not value:
                raise self._unexpected(
                    operation,
                    f"`{key}` ({self._source(operation, key)}) matched {value!r}, not a name",
                )
        return values

    def _optional_text(self, operation: Operation, key: str, item: Any) -> str | None:
        value = self._one(operation, key, item)
        return value if isinstance(value, str) and value else None


_NOT_FOUND: Mapping[NotFoundMeaning, type[NotFound]] = {
    "user": UserNotFound,
    "group": GroupNotFound,
    "error": NotFound,
}


def _name(value: str, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise UnplaceableValue(f"an empty {what} name cannot be sent")
    return value


def _in_operation(operation: Operation, error: HttpDirectoryError) -> HttpDirectoryError:
    """The same error, its message prefixed with the operation's name for the admin."""
    return type(error)(
        f"custom REST `{operation.name}`: {error}",
        status=error.status,
        server_message=error.server_message,
        retry_after_s=error.retry_after_s,
    )


def _refuse_secrets_in(templates: CustomTemplates, credentials: Credentials) -> None:
    if isinstance(credentials, PersonalAccessToken):
        secrets = [credentials.token]
    else:
        secrets = [credentials.password]
    secrets = [s for s in secrets if len(s) >= _MIN_SECRET]
    problems: list[Problem] = []
    for operation in templates.operations.values():
        for field_name, text in operation.literals():
            if any(s in text or quote(s, safe="") in text for s in secrets):
                problems.append(
                    Problem(
                        operation.name,
                        field_name,
                        "contains the connection's credential; credentials come from the "
                        "connection settings, never from a template",
                    )
                )
    if problems:
        raise TemplateError(dict.fromkeys(problems))
