"""`JiraDirectory`: the `ManagedDirectory` port over Jira Data Center / Server REST v2.

    with JiraDirectory.connect("https://jira.example.com", PersonalAccessToken(t)) as jira:
        jira.add_user_to_group("bob", "IUM_Enabled")
        print(jira.licence())

What it calls, and what we checked (sources in brackets; "assumed" where we found none):

- Members: `GET /rest/api/2/group/member?groupname=G&includeInactiveUsers=..&startAt=..
  &maxResults=50` returns `{"self", "nextPage", "maxResults", "startAt", "total", "isLast",
  "values": [user...]}`
  [atlassian.md §2; Jira DC REST v10004 "group" page]. Servers cap `maxResults` (clients treat
  50 as the effective size [JiraPS, PowerJira "hard-limited to 50"]), so paging follows
  `isLast` and advances by the number of values received, never stopping at a short page.
  The list includes members of nested groups ["members of the specified group and its
  subgroups", Jira DC REST docs]: Jira offers no direct-members-only list.
- Add: `POST /rest/api/2/group/user?groupname=G` `{"name": U}` → 201 [atlassian.md §2, DC docs].
  A user already in the group gets a 400 [Cloud: JRACLOUD AX-17 "Cannot add user. User is
  already a member of '{1}'", status 400]; the DC text is assumed to read alike, so a 400 is
  also checked against the user's groups before it is called a failure. A 404 means "the
  group or the user" [DC docs]; we look up which.
- Remove: `DELETE /rest/api/2/group/user?groupname=G&username=U` → 200 [atlassian.md §2]. What
  DC answers for a non-member is not documented (assumed 400 or 404): any 400/404 is
  followed by a look-up, and "not a member" counts as done.
- Create group: `POST /rest/api/2/group` `{"name": G}` → 201 (200 accepted); an existing
  group answers 400 (assumed), confirmed by a look-up before returning False.
- User: `GET /rest/api/2/user?username=U&expand=groups` → `groups: {"size", "items": [{"name"}]}`;
  404 when unknown [atlassian.md §2; the `items` shape is assumed from Jira's list wrapper].
  `/rest/api/2/user/search` stops at 1,000 users, so no list here comes from it.
- Version: `GET /rest/api/2/serverInfo` → `{"version": "9.12.2", "versionNumbers": [9, 12, 2], ...}`
  [JiraPS test fixture; pycontribs/jira reads `versionNumbers`].
- Seats: `GET /rest/api/2/applicationrole/{key}` → `groups`, `defaultGroups`, `numberOfSeats`,
  `userCount`, `hasUnlimitedSeats` [atlassian.md §2, Atlassian OpenAPI example]. An active
  user in any of the role's groups takes one seat, however many of those groups they are in.
- Application access: `PUT /rest/api/2/applicationrole/{key}` `{"groups", "defaultGroups"}`;
  "Only the groups and default groups setting of the role may be updated" [jira.js server
  docs]. `GET /rest/api/2/applicationrole` returns "an ETag header containing a version hash"
  for `If-Match` [Jira REST WADL, via a Postman export]; the PUT "updates the ApplicationRoles
  with the passed data if the version hash is the same as the server" [jira.js server docs].
  So a change reads every role (for the hash), PUTs with `If-Match`, and reads again and
  retries once if an admin changed the roles in between; it checks the role Jira returns.
  What Jira answers on a stale hash is not documented: 409 and 412 are both taken as that.
- Sessions: `DELETE /rest/api/2/user/session/{username}` ends a user's sessions across the
  cluster from Jira 9.11; before that the KB says "N/A" [KB "Invalidating user sessions in
  Jira Data Center"]. The success status is undocumented: 200 and 204 are accepted.
- Read-only directories answer "You cannot add user 'x' to group 'y'. The user's directory is
  read only." [Jira KB, atlassian.md §3]; the HTTP layer raises `ReadOnlyDirectory` for it.

Every user and group name travels as a query parameter (percent-encoded by httpx) or as one
percent-encoded path segment (`segment`, which refuses "." and ".."), so no name can change
the request's path or query.
Usernames and group names compare case-insensitively, as in Atlassian's directories.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import httpx

from floatseat.directory.errors import (
    GroupNotFound,
    ManualStepRequired,
    NotFound,
    UnexpectedResponse,
    UserNotFound,
)
from floatseat.directory.http import (
    DEFAULT_TIMEOUT,
    AtlassianHttp,
    Credentials,
    HttpConnector,
    RetryPolicy,
    open_http,
    segment,
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

__all__ = ["DEFAULT_ROLE", "SESSIONS_API_SINCE", "UNLIMITED_SEATS", "JiraDirectory"]

log = logging.getLogger(__name__)

API = "/rest/api/2"
DEFAULT_ROLE = "jira-software"
PAGE_SIZE = 50  # what Jira serves at most per page, whatever is asked
SESSIONS_API_SINCE = (9, 11)  # DELETE /rest/api/2/user/session/{username}
UNLIMITED_SEATS = UNLIMITED_TIER  # the tier reported for a role with `hasUnlimitedSeats`

_ALREADY_MEMBER = re.compile(r"already\s+a\s+member", re.IGNORECASE)


def _fold(name: str) -> str:
    return name.casefold()


def _names(values: object) -> list[str]:
    """The `name` of every entry of a JSON list of strings or of `{"name": ...}` objects."""
    if not isinstance(values, list):
        return []
    names: list[str] = []
    for value in values:
        if isinstance(value, str):
            names.append(value)
        elif isinstance(value, dict) and isinstance(value.get("name"), str):
            names.append(value["name"])
    return names


class JiraDirectory(HttpConnector):
    """Group membership, users, licence and application access of one Jira DC instance.

    Parameters:
    - `http`: the `AtlassianHttp` to the instance; closed with this object.
    - `groups`: the pool groups; `groups.enabled` is the one with application access.
    - `role`: the application role whose seats are the licence (`jira-software`,
      `jira-servicedesk`, `jira-core`...).
    - `page_size`: `maxResults` asked for per page (the server may serve fewer).
    - `kill_sessions_on_revoke`: after taking a user out of `groups.enabled`, end their
      sessions too (Jira 9.11+; skipped with a warning on older versions).

    The constructor does no I/O; `info()` probes the server.
    """

    def __init__(
        self,
        http: AtlassianHttp,
        *,
        groups: PoolGroups = DEFAULT_GROUPS,
        role: str = DEFAULT_ROLE,
        page_size: int = PAGE_SIZE,
        kill_sessions_on_revoke: bool = False,
    ) -> None:
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        if not role:
            raise ValueError("the application role key must not be empty")
        self.http = http
        self.groups = groups
        self.role = role
        self.page_size = page_size
        self.kill_sessions_on_revoke = kill_sessions_on_revoke
        self._version: tuple[int, ...] | None = None
        self._version_text: str | None = None

    @classmethod
    def connect(
        cls,
        base_url: str,
        credentials: Credentials | tuple[str, str],
        *,
        groups: PoolGroups = DEFAULT_GROUPS,
        role: str = DEFAULT_ROLE,
        page_size: int = PAGE_SIZE,
        kill_sessions_on_revoke: bool = False,
        policy: RetryPolicy | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> JiraDirectory:
        """A directory for the Jira at `base_url` (context path included), without I/O."""
        return cls(
            open_http(base_url, credentials, policy=policy, timeout=timeout, transport=transport),
            groups=groups,
            role=role,
            page_size=page_size,
            kill_sessions_on_revoke=kill_sessions_on_revoke,
        )

    def __repr__(self) -> str:
        return f"JiraDirectory({self.http!r}, role={self.role!r}, groups={self.groups!r})"

    # -- probing ------------------------------------------------------------------------------

    def info(self) -> ConnectionInfo:
        """`GET /rest/api/2/serverInfo`: the version, and proof that the credentials work."""
        self._probe_version()
        return ConnectionInfo(
            product="jira",
            version=self._version_text,
            api="REST v2",
            base_url=self.base_url,
        )

    def version(self) -> tuple[int, ...] | None:
        """The server's version numbers, e.g. (9, 12, 2), probed once; None if it won't say."""
        if self._version is None and self._version_text is None:
            self._probe_version()
        return self._version

    def _probe_version(self) -> None:
        body = self.http.json_object(self.http.request("GET", f"{API}/serverInfo"), "serverInfo")
        text = body.get("version")
        self._version_text = text if isinstance(text, str) and text else None
        numbers = body.get("versionNumbers")
        if isinstance(numbers, list) and numbers and all(isinstance(n, int) for n in numbers):
            self._version = tuple(numbers)
        elif self._version_text:
            digits = re.findall(r"\d+", self._version_text.split("-")[0])
            self._version = tuple(int(d) for d in digits[:3]) or None
        else:
            self._version = None

    # -- the engine's port --------------------------------------------------------------------

    def licence(self) -> Licence:
        """The role's seats (`numberOfSeats`) and the users counted against them (`userCount`)."""
        role = self._role()
        seats = role.get("numberOfSeats")
        count = role.get("userCount")
        if not isinstance(count, int):
            raise UnexpectedResponse(f"application role {self.role!r} reports no userCount")
        if role.get("hasUnlimitedSeats") is True or (isinstance(seats, int) and seats < 0):
            return Licence(tier=UNLIMITED_SEATS, licensed=count)
        if not isinstance(seats, int):
            raise UnexpectedResponse(f"application role {self.role!r} reports no numberOfSeats")
        return Licence(tier=seats, licensed=count)

    def groups_of(self, user: str) -> frozenset[str]:
        """The groups Jira lists for `user` (`expand=groups`); `UserNotFound` if unknown.

        Jira resolves nested groups itself, so a group reached through a parent group is
        listed too.
        """
        return frozenset(self._groups_listed(user)[0])

    def add_user_to_group(self, user: str, group: str) -> None:
        """`POST /rest/api/2/group/user`; a user already in the group is left as they are."""
        try:
            self.http.request(
                "POST",
                f"{API}/group/user",
                params={"groupname": group},
                json={"name": user},
                expected=(200, 201),
            )
        except UnexpectedResponse as error:
            if error.status != 400:
                raise
            if _ALREADY_MEMBER.search(error.server_message):
                return
            if self._diagnose(user, group):
                return  # a member already, whatever the message said
            raise
        except NotFound as error:
            if self._diagnose(user, group):  # raises UserNotFound or GroupNotFound
                return
            raise UnexpectedResponse(
                f"{error} (yet the user and the group both exist)",
                status=error.status,
                server_message=error.server_message,
            ) from error

    def remove_user_from_group(self, user: str, group: str) -> None:
        """`DELETE /rest/api/2/group/user`; a user not in the group is left as they are.

        With `kill_sessions_on_revoke`, taking a user out of the licensed pool group also
        ends their sessions (Jira 9.11+).
        """
        try:
            self.http.request(
                "DELETE",
                f"{API}/group/user",
                params={"groupname": group, "username": user},
                expected=(200, 204),
            )
        except (UnexpectedResponse, NotFound) as error:
            if error.status not in (400, 404):
                raise
            if self._diagnose(user, group):
                raise  # still a member: the refusal stands
        if self.kill_sessions_on_revoke and _fold(group) == _fold(self.groups.enabled):
            try:
                self.invalidate_sessions(user)
            except ManualStepRequired as error:
                # the seat is free already; the sessions end at their idle timeout
                log.warning("%s", error)

    # -- setup and reconciliation -------------------------------------------------------------

    def group_members(self, group: str) -> list[str]:
        """Every member of `group`, active or not; `GroupNotFound` if it is missing."""
        return [name for name, _ in self._members(group, include_inactive=True)]

    def active_members(self, group: str) -> list[str]:
        """The active members of `group`: those who take a seat when the group is licensed."""
        return [name for name, active in self._members(group, include_inactive=False) if active]

    def create_group(self, group: str) -> bool:
        """`POST /rest/api/2/group`; True when created, False when it already existed."""
        try:
            self.http.request("POST", f"{API}/group", json={"name": group}, expected=(200, 201))
        except UnexpectedResponse as error:
            if error.status in (400, 409) and self._group_exists(group):
                return False
            raise
        return True

    def find_user(self, name: str) -> User | None:
        """`GET /rest/api/2/user?username=`; None when Jira has no such user."""
        try:
            response = self.http.request(
                "GET", f"{API}/user", params={"username": name}, not_found=UserNotFound
            )
        except UserNotFound:
            return None
        body = self.http.json_object(response, "user")
        spelled = body.get("name")
        key = body.get("key")
        display = body.get("displayName")
        email = body.get("emailAddress")
        return User(
            name=spelled if isinstance(spelled, str) and spelled else name,
            key=key if isinstance(key, str) else None,
            display_name=display if isinstance(display, str) else "",
            email=email if isinstance(email, str) and email else None,
            active=body.get("active") is not False,
        )

    def memberships(self, groups: Iterable[str]) -> Mapping[str, frozenset[str]]:
        """For every member of any of `groups`: which of `groups` they are in."""
        return merge_memberships(groups, self.group_members)

    def licensed_users(self) -> frozenset[str]:
        """The active members of the role's groups, each counted once."""
        users: dict[str, str] = {}
        for group in _names(self._role().get("groups")):
            for name in self.active_members(group):
                users.setdefault(_fold(name), name)
        return frozenset(users.values())

    def application_access(self) -> ApplicationAccess:
        """The role's `groups` and `defaultGroups`."""
        role = self._role()
        return ApplicationAccess(
            groups=frozenset(_names(role.get("groups"))),
            default_groups=frozenset(_names(role.get("defaultGroups"))),
        )

    def grant_application_access(self, group: str) -> None:
        """Add `group` to the role's groups, keeping every other group and default group."""

        def change(groups: list[str], defaults: list[str]) -> tuple[list[str], list[str]]:
            if any(_fold(g) == _fold(group) for g in groups):
                return groups, defaults
            return groups + [group], defaults

        self._change_role(change)

    def revoke_application_access(self, group: str, *, default_group: bool = True) -> None:
        """Take `group` out of the role's groups (and, with `default_group`, default groups)."""

        def change(groups: list[str], defaults: list[str]) -> tuple[list[str], list[str]]:
            kept = [g for g in groups if _fold(g) != _fold(group)]
            if default_group:
                defaults = [g for g in defaults if _fold(g) != _fold(group)]
            return kept, defaults

        self._change_role(change)

    # -- sessions -----------------------------------------------------------------------------

    def sessions_invalidation_available(self) -> bool:
        """Whether this Jira can end a user's sessions over REST (9.11 and later)."""
        version = self.version()
        return version is not None and version[:2] >= SESSIONS_API_SINCE

    def invalidate_sessions(self, user: str) -> None:
        """`DELETE /rest/api/2/user/session/{user}`: end `user`'s sessions on every node.

        Raises `ManualStepRequired` below Jira 9.11, where no REST call does this.
        """
        by_hand = (
            "Administration > System > Security > User sessions: find the user and "
            "invalidate their sessions"
        )
        if not self.sessions_invalidation_available():
            raise ManualStepRequired(
                f"Jira {self._version_text or '(unknown version)'} cannot end {user}'s "
                "sessions over REST; that call arrived in Jira 9.11",
                steps=(
                    by_hand,
                    "or upgrade to Jira 9.11 or later, where floatseat does this itself",
                ),
            )
        if user in (".", ".."):
            raise ManualStepRequired(
                f"the user {user!r} cannot be named in a URL path, so floatseat cannot end "
                "their sessions over REST",
                steps=(by_hand,),
            )
        self.http.request(
            "DELETE",
            f"{API}/user/session/{segment(user)}",
            expected=(200, 204),
            not_found=UserNotFound,
        )

    # -- helpers ------------------------------------------------------------------------------

    def _role(self) -> dict[str, Any]:
        response = self.http.request("GET", f"{API}/applicationrole/{segment(self.role)}")
        return self.http.json_object(response, f"application role {self.role!r}")

    def _change_role(
        self, change: Callable[[list[str], list[str]], tuple[list[str], list[str]]]
    ) -> None:
        """Read the role with its version hash, apply `change`, PUT it if it changed."""
        for attempt in (1, 2):
            role, version_hash = self._role_with_version()
            groups, defaults = _names(role.get("groups")), _names(role.get("defaultGroups"))
            wanted, wanted_defaults = change(groups, defaults)
            if (wanted, wanted_defaults) == (groups, defaults):
                return
            try:
                self._put_role(wanted, wanted_defaults, version_hash)
                return
            except UnexpectedResponse as error:
                if error.status not in (409, 412) or attempt == 2:
                    raise
                log.info("application role %r changed meanwhile; reading it again", self.role)

    def _role_with_version(self) -> tuple[dict[str, Any], str | None]:
        """The role, and the roles' version hash (the ETag of the list) when Jira sends it."""
        response = self.http.request("GET", f"{API}/applicationrole")
        try:
            roles = response.json()
        except ValueError:
            roles = None
        if not isinstance(roles, list):
            raise UnexpectedResponse("application roles: Jira did not answer with a list")
        for role in roles:
            if isinstance(role, dict) and role.get("key") == self.role:
                return role, response.headers.get("ETag")
        raise UnexpectedResponse(f"Jira has no application role {self.role!r}", status=404)

    def _put_role(
        self, groups: list[str], default_groups: list[str], version_hash: str | None
    ) -> None:
        response = self.http.request(
            "PUT",
            f"{API}/applicationrole/{segment(self.role)}",
            json={"groups": groups, "defaultGroups": default_groups},
            headers={"If-Match": version_hash} if version_hash else None,
            expected=(200, 204),
        )
        if response.status_code == 204 or not response.content:
            return
        echoed = self.http.json_object(response, f"application role {self.role!r}")
        if "groups" in echoed and {_fold(g) for g in _names(echoed["groups"])} != {
            _fold(g) for g in groups
        }:
            raise UnexpectedResponse(
                f"application role {self.role!r}: asked for groups {sorted(groups)}, Jira now "
                f"lists {sorted(_names(echoed['groups']))} (changed by someone else?)",
                status=response.status_code,
            )

    def _members(self, group: str, *, include_inactive: bool) -> Iterator[tuple[str, bool]]:
        """(name, active) of each member, page by page until Jira says `isLast`."""
        start = 0
        previous: list[str] | None = None
        while True:
            response = self.http.request(
                "GET",
                f"{API}/group/member",
                params={
                    "groupname": group,
                    "includeInactiveUsers": include_inactive,
                    "startAt": start,
                    "maxResults": self.page_size,
                },
                not_found=GroupNotFound,
            )
            body = self.http.json_object(response, f"members of {group!r}")
            values = body.get("values")
            if not isinstance(values, list):
                raise UnexpectedResponse(f"members of {group!r}: the page has no `values` list")
            names = _names(values)
            if values and names == previous:
                raise UnexpectedResponse(
                    f"members of {group!r}: Jira served the same page twice at startAt={start}"
                )
            for value in values:
                if isinstance(value, dict) and isinstance(value.get("name"), str):
                    yield value["name"], value.get("active") is not False
            is_last = body.get("isLast")
            if is_last is None:  # no paging signal: fall back on `total`, then on an empty page
                total = body.get("total")
                is_last = start + len(values) >= total if isinstance(total, int) else not values
            if is_last:
                return
            if not values:
                raise UnexpectedResponse(
                    f"members of {group!r}: an empty page at startAt={start} that is not the last"
                )
            start += len(values)
            previous = names

    def _groups_listed(self, user: str) -> tuple[list[str], bool]:
        """The groups `expand=groups` lists for `user`, and whether the list is complete."""
        response = self.http.request(
            "GET",
            f"{API}/user",
            params={"username": user, "expand": "groups"},
            not_found=UserNotFound,
        )
        body = self.http.json_object(response, f"user {user!r}")
        wrapper = body.get("groups")
        if isinstance(wrapper, dict):
            names = _names(wrapper.get("items"))
            size = wrapper.get("size")
            complete = not isinstance(size, int) or size <= len(names)
        else:
            names, complete = _names(wrapper), True
        if not complete:
            log.warning("Jira listed %d of the groups of %s", len(names), user)
        return names, complete

    def _group_exists(self, group: str) -> bool:
        try:
            self.http.request(
                "GET",
                f"{API}/group/member",
                params={"groupname": group, "startAt": 0, "maxResults": 1},
                not_found=GroupNotFound,
            )
        except GroupNotFound:
            return False
        return True

    def _diagnose(self, user: str, group: str) -> bool:
        """After a refused membership change: is `user` in `group` now?

        Raises `UserNotFound` or `GroupNotFound` when one of them does not exist.
        """
        names, complete = self._groups_listed(user)  # raises UserNotFound
        if any(_fold(g) == _fold(group) for g in names):
            return True
        if not self._group_exists(group):
            raise GroupNotFound(f"Jira has no group {group!r}")
        if complete:
            return False
        return any(_fold(m) == _fold(user) for m in self.group_members(group))
