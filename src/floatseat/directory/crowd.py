"""`CrowdDirectory`: pool membership written to Atlassian Crowd, for groups that live there.

    jira = JiraDirectory.connect("https://jira.example.com", PersonalAccessToken(t))
    crowd = CrowdDirectory.connect(
        "https://crowd.example.com/crowd", ("floatseat-app", app_password), licence_source=jira
    )
    crowd.add_user_to_group("bob", "IUM_Enabled")

**Prefer the product's own REST API.** Write through Jira's or Confluence's connector
wherever the product can change the groups itself (an internal directory, or a Crowd
directory the product may write to). Use this connector only where the pool groups live in
a Crowd server the product reads.

**The lag.** Jira and Confluence see a change made in Crowd only at their next
synchronisation of that Crowd directory (the interval is set per directory under User
Directories; an admin can also press "Synchronise"). Until then the product still
licenses the old members: a seat taken back in Crowd is not free in the product yet, and a
seat given is not usable yet. `sync_lag_note` says this to the admin, and `floatseat setup`
warns with it. The engine must judge the licence by what the *product* reports
(`licence()`), never by Crowd's groups.

**No licence in Crowd.** Crowd knows nothing of seats, so `licence()`, `licensed_users()`
and the application-access calls go to `licence_source`: the product's connector
(`JiraDirectory`, or Confluence's). Without one they raise `ManualStepRequired`.

Calls, all under `/rest/usermanagement/1`, authenticated as a Crowd *application* (name and
password), not as a user ("the application name and password is used" [Crowd REST
resources, atlassian.md §3]):

- Direct members: `GET /group/user/direct?groupname=G&start-index=N&max-results=M` →
  `{"users": [{"name": ...}]}`; read page by page until an empty page [atlassian.md §3].
- A user's direct groups: `GET /user/group/direct?username=U&start-index&max-results` →
  `{"groups": [{"name": ...}]}`; 404 when the user is unknown.
- Add: `POST /user/group/direct?username=U` with `{"name": G}` → 201; 400 group not found;
  404 user not found; 409 already a direct member (success here) [codes of this form: Go and
  Python Crowd clients; atlassian-python-api 4.0.7 sends this form]. The other form,
  `POST /group/user/direct?groupname=G` with `{"name": U}`, swaps 400 and 404 ("400 ... user
  could not be found", "404 ... group could not be found", Crowd's docs as quoted in a
  Java client), which is why the reference's code list is read for this form only.
- Remove: `DELETE /user/group/direct?username=U&groupname=G` → 204; 404 "if the user or group
  could not be found" [Crowd docs as quoted in a Java client]. A 404 for a user who is simply
  not a member is assumed (Crowd's `MEMBERSHIP_NOT_FOUND` reason); every 404 is resolved by
  its `reason`, or else by looking the user and the group up.
- Group: `GET /group?groupname=G` (404 if missing); `POST /group` with
  `{"name", "type": "GROUP", "active": true}` → 201, 400 when it exists (assumed, checked by a
  look-up) [Crowd 6.0.1 docs, atlassian.md §3].
- User: `GET /user?username=U` → `{"name", "display-name", "email", "active", "key"}`; 404.

Names go only into query parameters, percent-encoded by httpx: none can change the path.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Final

import httpx

from floatseat.directory.errors import (
    GroupNotFound,
    HttpDirectoryError,
    ManualStepRequired,
    NotFound,
    UnexpectedResponse,
    UserNotFound,
)
from floatseat.directory.http import (
    DEFAULT_TIMEOUT,
    AtlassianHttp,
    BasicCredentials,
    HttpConnector,
    RetryPolicy,
    open_http,
)
from floatseat.directory.port import (
    DEFAULT_GROUPS,
    ApplicationAccess,
    ConnectionInfo,
    Licence,
    ManagedDirectory,
    PoolGroups,
    User,
    merge_memberships,
)

__all__ = ["SYNC_LAG_NOTE", "CrowdDirectory"]

log = logging.getLogger(__name__)

API = "/rest/usermanagement/1"
PAGE_SIZE = 1000

SYNC_LAG_NOTE: Final = (
    "The pool groups live in Crowd. Jira and Confluence see a change made there only at "
    "their next synchronisation of the Crowd directory (set under User Directories), so a "
    "seat freed or given in Crowd takes effect in the product that much later. Prefer "
    "writing through the product's REST API where the product allows it, and keep the "
    "synchronisation interval short."
)

_REASONS = (
    "MEMBERSHIP_NOT_FOUND",
    "MEMBERSHIP_ALREADY_EXISTS",
    "USER_NOT_FOUND",
    "GROUP_NOT_FOUND",
)
_REASON = re.compile(r"\b(" + "|".join(_REASONS) + r")\b")


def _reason(error: HttpDirectoryError) -> str | None:
    """Crowd's `reason` (e.g. `USER_NOT_FOUND`), which the HTTP layer keeps in the message."""
    found = _REASON.search(error.server_message)
    return found.group(1) if found else None


def _fold(name: str) -> str:
    return name.casefold()


class CrowdDirectory(HttpConnector):
    """Group membership in Crowd, with the licence read from the product.

    Parameters:
    - `http`: an `AtlassianHttp` to Crowd, authenticated with the application's name and
      password; closed with this object (the licence source is not).
    - `licence_source`: the product's connector, asked for `licence()`, `licensed_users()`
      and application access.
    - `groups`: the pool groups.
    - `page_size`: `max-results` per page.

    The constructor does no I/O.
    """

    sync_lag_note: Final = SYNC_LAG_NOTE

    def __init__(
        self,
        http: AtlassianHttp,
        *,
        licence_source: ManagedDirectory | None = None,
        groups: PoolGroups = DEFAULT_GROUPS,
        page_size: int = PAGE_SIZE,
    ) -> None:
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        self.http = http
        self.licence_source = licence_source
        self.groups = groups
        self.page_size = page_size

    @classmethod
    def connect(
        cls,
        base_url: str,
        application: BasicCredentials | tuple[str, str],
        *,
        licence_source: ManagedDirectory | None = None,
        groups: PoolGroups = DEFAULT_GROUPS,
        page_size: int = PAGE_SIZE,
        policy: RetryPolicy | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> CrowdDirectory:
        """A directory for the Crowd at `base_url` (e.g. `https://crowd.example.com/crowd`).

        `application` is the Crowd application's name and password, not a user's.
        """
        return cls(
            open_http(base_url, application, policy=policy, timeout=timeout, transport=transport),
            licence_source=licence_source,
            groups=groups,
            page_size=page_size,
        )

    def __repr__(self) -> str:
        return f"CrowdDirectory({self.http!r}, groups={self.groups!r})"

    # -- probing ------------------------------------------------------------------------------

    def info(self) -> ConnectionInfo:
        """Look the licensed pool group up, which proves the application credentials work.

        Crowd's application API reports no version.
        """
        try:
            self.http.request(
                "GET",
                f"{API}/group",
                params={"groupname": self.groups.enabled},
                not_found=GroupNotFound,
            )
        except GroupNotFound as error:
            # Crowd's own "no such group" proves the credentials; `setup` creates the group.
            # Any other 404 (a proxy's, Tomcat's) means nothing answered at this path.
            if _reason(error) != "GROUP_NOT_FOUND":
                raise UnexpectedResponse(
                    f"{error}: no Crowd REST API answered; is the base URL Crowd's "
                    "(e.g. https://crowd.example.com/crowd)?",
                    status=error.status,
                    server_message=error.server_message,
                ) from error
        return ConnectionInfo(
            product="crowd",
            version=None,
            api="Crowd REST usermanagement/1 (application credentials)",
            base_url=self.base_url,
        )

    # -- the engine's port --------------------------------------------------------------------

    def licence(self) -> Licence:
        """The product's licence, from `licence_source`: Crowd has none."""
        return self._source("licence").licence()

    def groups_of(self, user: str) -> frozenset[str]:
        """The Crowd groups `user` is a direct member of; `UserNotFound` if unknown."""
        return frozenset(
            self._paged(f"{API}/user/group/direct", {"username": user}, "groups", UserNotFound)
        )

    def add_user_to_group(self, user: str, group: str) -> None:
        """Make `user` a direct member of `group`; 409 (already a member) counts as done."""
        try:
            self.http.request(
                "POST",
                f"{API}/user/group/direct",
                params={"username": user},
                json={"name": group},
                expected=(201, 204),
            )
        except UnexpectedResponse as error:
            reason = _reason(error)
            if error.status == 409 or reason == "MEMBERSHIP_ALREADY_EXISTS":
                return
            if error.status == 400 and reason in (None, "GROUP_NOT_FOUND"):
                raise GroupNotFound(
                    f"Crowd has no group {group!r}: {error}",
                    status=error.status,
                    server_message=error.server_message,
                ) from error
            raise
        except NotFound as error:
            if _reason(error) == "GROUP_NOT_FOUND":
                raise GroupNotFound(
                    f"Crowd has no group {group!r}: {error}",
                    status=error.status,
                    server_message=error.server_message,
                ) from error
            raise UserNotFound(
                f"Crowd has no user {user!r}: {error}",
                status=error.status,
                server_message=error.server_message,
            ) from error

    def remove_user_from_group(self, user: str, group: str) -> None:
        """End `user`'s direct membership of `group`; not a member counts as done."""
        try:
            self.http.request(
                "DELETE",
                f"{API}/user/group/direct",
                params={"username": user, "groupname": group},
                expected=(200, 204),
            )
        except NotFound as error:
            reason = _reason(error)
            if reason == "MEMBERSHIP_NOT_FOUND":
                return
            if reason == "USER_NOT_FOUND" or self.find_user(user) is None:
                raise UserNotFound(
                    f"Crowd has no user {user!r}: {error}",
                    status=error.status,
                    server_message=error.server_message,
                ) from error
            if reason == "GROUP_NOT_FOUND" or not self._group_exists(group):
                raise GroupNotFound(
                    f"Crowd has no group {group!r}: {error}",
                    status=error.status,
                    server_message=error.server_message,
                ) from error
            if any(_fold(g) == _fold(group) for g in self.groups_of(user)):
                raise  # still a member: the refusal stands

    # -- setup and reconciliation -------------------------------------------------------------

    def group_members(self, group: str) -> list[str]:
        """Every direct member of `group` in Crowd; `GroupNotFound` if it is missing."""
        return list(
            self._paged(f"{API}/group/user/direct", {"groupname": group}, "users", GroupNotFound)
        )

    def create_group(self, group: str) -> bool:
        """Create `group` in Crowd; True when created, False when it already existed."""
        try:
            self.http.request(
                "POST",
                f"{API}/group",
                json={"name": group, "type": "GROUP", "active": True},
                expected=(200, 201),
            )
        except UnexpectedResponse as error:
            if error.status in (400, 409) and self._group_exists(group):
                return False
            raise
        return True

    def find_user(self, name: str) -> User | None:
        """`GET /user?username=`; None when Crowd has no such user."""
        try:
            response = self.http.request(
                "GET", f"{API}/user", params={"username": name}, not_found=UserNotFound
            )
        except UserNotFound:
            return None
        body = self.http.json_object(response, "user")
        spelled = body.get("name")
        key = body.get("key")
        display = body.get("display-name")
        email = body.get("email")
        return User(
            name=spelled if isinstance(spelled, str) and spelled else name,
            key=key if isinstance(key, str) and key else None,
            display_name=display if isinstance(display, str) else "",
            email=email if isinstance(email, str) and email else None,
            active=body.get("active") is not False,
        )

    def memberships(self, groups: Iterable[str]) -> Mapping[str, frozenset[str]]:
        """For every direct member of any of `groups`: which of `groups` they are in."""
        return merge_memberships(groups, self.group_members)

    def licensed_users(self) -> frozenset[str] | None:
        """Who the product counts against its licence, from `licence_source`."""
        return self._source("licensed_users").licensed_users()

    def application_access(self) -> ApplicationAccess:
        return self._source("application_access").application_access()

    def grant_application_access(self, group: str) -> None:
        self._source("grant_application_access").grant_application_access(group)

    def revoke_application_access(self, group: str, *, default_group: bool = True) -> None:
        self._source("revoke_application_access").revoke_application_access(
            group, default_group=default_group
        )

    # -- helpers ------------------------------------------------------------------------------

    def _source(self, what: str) -> ManagedDirectory:
        if self.licence_source is None:
            raise ManualStepRequired(
                f"Crowd has no licence or application access, so {what} needs the product",
                steps=(
                    "give CrowdDirectory the product's connector as `licence_source` "
                    "(Jira's or Confluence's base URL and an admin token)",
                ),
            )
        return self.licence_source

    def _paged(
        self,
        path: str,
        params: Mapping[str, str],
        key: str,
        not_found: type[NotFound],
    ) -> Iterator[str]:
        """The `name` of every entry under `key`, page by page until an empty page.

        A page that brings no name not seen yet also ends the list: a server that ignores
        `start-index` serves the whole list every time, and must not loop us forever.
        """
        start = 0
        seen: set[str] = set()
        while True:
            response = self.http.request(
                "GET",
                path,
                params={**params, "start-index": start, "max-results": self.page_size},
                not_found=not_found,
            )
            entries = self.http.json_object(response, path).get(key)
            if not isinstance(entries, list):
                raise UnexpectedResponse(f"{path}: the answer has no {key!r} list")
            names = [
                e["name"] for e in entries if isinstance(e, dict) and isinstance(e.get("name"), str)
            ]
            if len(names) != len(entries):
                raise UnexpectedResponse(f"{path}: an entry without a name")
            fresh = [n for n in names if n not in seen]
            if not fresh:
                return
            if len(fresh) < len(names):
                log.debug(
                    "%s repeated %d names at start-index %d", path, len(names) - len(fresh), start
                )
            seen.update(fresh)
            yield from fresh
            start += len(entries)

    def _group_exists(self, group: str) -> bool:
        try:
            self.http.request(
                "GET", f"{API}/group", params={"groupname": group}, not_found=GroupNotFound
            )
        except GroupNotFound:
            return False
        return True
