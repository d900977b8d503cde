"""The Confluence Data Center / Server connector: `ConfluenceDirectory`.

It implements `ManagedDirectory` on `AtlassianHttp`, and picks its API path from the version
the server reports in its application-links manifest:

* **8.2 and later: REST.** `PUT|DELETE /rest/api/user/{username}/group/{groupName}` (204,
  idempotent), `POST /rest/api/admin/group`, `GET /rest/api/user/memberof`.
* **7.16 to 8.1: the legacy JSON-RPC API** (`POST /rpc/json-rpc/confluenceservice-v2`) for
  the group changes, which REST cannot make before 8.2; and, before 9.2.5, for granting and
  revoking "Can use". The admin must have enabled the
  Remote API; when it is off, every change raises `ManualStepRequired` saying what to switch on.

Reads that every supported version serves over REST stay on REST in both modes: group
members, one user, the licence figures. `info()` says which path is in use, and it is logged.

    with ConfluenceDirectory.connect("https://wiki.example.com", PersonalAccessToken(t)) as wiki:
        print(wiki.info().api)            # "REST (8.2+)"
        wiki.add_user_to_group("jsmith", "IUM_Enabled")

What was checked, and where (the search corpus of stored public pages and code; 2026-11):

- Membership REST calls, idempotent, 204: Atlassian's Confluence DC REST docs, "User Group"
  (v9.0.0, v9.4.0: "This method is idempotent i.e., if the membership already exists then
  no action will be taken"; "No Content if the user is successfully added to the group").
- `GET /rest/api/user/memberof?username=`, `GET /rest/api/user?username=`,
  `GET /rest/api/group/{groupName}`, `POST /rest/api/admin/group`,
  `GET /rest/api/admin/users/list/active` ("users which count into license usage", with
  `start`/`limit`): the Confluence Server REST API v10.2.0 reference (a generated copy of
  Atlassian's Postman collection). The 9.3 licensed-users path is also spelled
  `/rest/api/user/list/active` in CONFSERVER-37100, so both are probed.
- Paging: DC docs v9.2.3/v9.4.0 show `{"results", "start", "limit", "size", "_links":
  {"base", "context", "next", ...}}`; `next` may be absolute or relative, so only its `start`
  is taken from it and the path is always our own (escaped) one.
- `POST /rest/api/admin/group` needs `{"name": ..., "type": "group"}`: atlassian-python-api
  sends it, and a public Terraform provider's changelog records a 400 "missing type id
  property 'type'" without it.
- Licence: `GET /rest/license/1.0/license/maxUsers|userCount` → `{"count": N}` (reference §1).
- Manifest: `GET /rest/applinks/1.0/manifest`, unauthenticated XML with `<typeId>`,
  `<version>`, `<buildNumber>` (several public clients and fakes parse it so).
- JSON-RPC: Atlassian's "Confluence JSON-RPC APIs" page: POST to
  `/rpc/json-rpc/confluenceservice-v2` with a JSON-RPC 2.0 envelope, basic auth, and "Leave
  out the token argument of each method". Parameter lists from the paranamer table of
  Confluence's own `XhtmlSoapService` (decompiled, public): `addUserToGroup(token, username,
  groupname)`, `removeUserFromGroup(token, username, groupname)`, `addGroup(token,
  groupname)`, `hasGroup(token, groupname)`, `getUserGroups(token, username)`,
  `addGlobalPermission(token, permission, remoteEntityName)`,
  `removeGlobalPermission(token, permission, remoteEntityName)`. No RPC method *reads* the
  global permissions. The "Can use" permission string is `SpacePermission.
  USE_CONFLUENCE_PERMISSION = "USECONFLUENCE"` (Confluence source).
- The global-permission RPC methods (decompiled `SpacesSoapService`) look `remoteEntityName`
  up as a *user first*, then as a group; `removeGlobalPermission` takes away only the one
  permission named. So a group that shares its name with a user cannot be changed this way
  (we refuse, with the steps to click), and revoking "Can use" over RPC leaves the group's
  other global permissions (administrator ones included) in place.
- Global permissions over REST (`RemoteGlobalPermissionService` "Since: 9.2.5", Confluence
  javadoc 10.1.2; docs v9.2.18 and v10.0.0), so only from 9.2.5 on, versions compared as
  (major, minor, patch): `GET /rest/api/permissions` (all grants, as
  `{"operation": {"targetType", "operationKey"}, "subject": {"type", "displayName"}}`),
  `GET /rest/api/permissions/group/{groupName}`, `PUT .../group/{groupName}/grant|revoke`
  with `[{"targetType": "application", "operationKey": "use"}]`. The documented operations
  are "application use", "application administer" (Confluence Administrator), "system
  administer" (System Administrator), "personal_space create" and "space create". Grant
  "doesn't override existing permissions"; on revoke, "When 'application use' is revoked, all
  granted permissions will be removed from target group". The field that names a group
  subject is not documented: `name`, then `groupName`, then `displayName` is assumed, with a
  per-group fallback.
- Who holds a seat (reference §1, KB "What happens when I reach my license user limit"):
  members of groups with "Can use", individual grants, and holders of the Confluence
  Administrator and System Administrator permissions. `application_access()` reports the
  groups holding an administrator permission as `admin_groups`.
- A disabled Remote API: Confluence's XML-RPC and SOAP servlets (decompiled `XmlRpcServer`
  and `AxisSoapServer`) check `Settings.isAllowRemoteApi()` and answer `sendError(403,
  "Remote API is not enabled on this server. Ask a site administrator to enable it.")`.
  A 403 at the RPC path is therefore taken as the Remote API being off, whatever its body
  (Tomcat wraps that text in an HTML error page); so are a 404 there and an RPC error naming
  the Remote API.

Assumed, not verified: that the JSON-RPC servlet answers a disabled Remote API as the
XML-RPC and SOAP ones do; the RPC error texts for an unknown user or group (we look both up
before changing anything, so they matter little); that 7.16-8.1 serve the REST reads used
here (`/rest/api/group/{g}/member` and `/rest/api/user` are old, reference §1).

Group names containing `/` are sent as `%2F`, which Tomcat rejects by default
(`ALLOW_ENCODED_SLASH`); such a group cannot be managed through these paths.
"""

from __future__ import annotations

import itertools
import logging
import re
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal
from urllib.parse import parse_qs, urlsplit

import httpx

from floatseat.directory.errors import (
    GroupNotFound,
    HttpDirectoryError,
    ManualStepRequired,
    NotFound,
    NotPermitted,
    ReadOnlyDirectory,
    Unavailable,
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

__all__ = [
    "API_JSON_RPC",
    "API_REST",
    "ConfluenceDirectory",
    "parse_version",
    "segment",
]

log = logging.getLogger(__name__)

API_REST: Final = "REST (8.2+)"
API_JSON_RPC: Final = "JSON-RPC (7.16–8.1 fallback)"

# Versions compare as (major, minor, patch).
REST_MEMBERSHIP_SINCE: Final = (8, 2, 0)  # PUT/DELETE /rest/api/user/{u}/group/{g}
REST_PERMISSIONS_SINCE: Final = (9, 2, 5)  # /rest/api/permissions: "Since: 9.2.5"
LICENSED_USERS_SINCE: Final = (9, 3, 0)  # /rest/api/admin/users/list/active

MANIFEST = "/rest/applinks/1.0/manifest"
RPC_PATH = "/rpc/json-rpc/confluenceservice-v2"
LICENSED_USERS_PATHS = ("/rest/api/admin/users/list/active", "/rest/api/user/list/active")
USE_PERMISSION_RPC = "USECONFLUENCE"
USE_PERMISSION_REST: Final = ({"targetType": "application", "operationKey": "use"},)
USE_OPERATION: Final = ("application", "use")
# Confluence Administrator and System Administrator: both license their holders.
ADMIN_OPERATIONS: Final = frozenset({("application", "administer"), ("system", "administer")})
PAGE_SIZE = 200  # Confluence caps `limit` anyway; pages are followed to the end
MAX_PAGES = 100_000  # a server whose `next` never ends is a bug, not a directory

ENABLE_REMOTE_API = (
    "Log in to Confluence as a system administrator",
    "Go to General Configuration → Further Configuration and choose Edit",
    "Turn on 'Remote API (XML-RPC & SOAP)' and Save",
)

_VERSION = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?")
_REMOTE_API_OFF = re.compile(
    r"remote api.*(disabled|not enabled|turned off)|(disabled|not enabled).*remote api",
    re.IGNORECASE | re.DOTALL,
)
_READ_ONLY = re.compile(r"\bread[- ]?only\b", re.IGNORECASE)
_ALREADY_EXISTS = re.compile(r"already exists?", re.IGNORECASE)
_NOT_PERMITTED = re.compile(r"not ?permitted|permission", re.IGNORECASE)

Api = Literal["rest", "rpc"]


def parse_version(text: str | None) -> tuple[int, int, int] | None:
    """(major, minor, patch) from a version string such as "8.5.4" or "9.2.0-m27"."""
    if not text:
        return None
    match = _VERSION.search(text)
    if match is None:
        return None
    major, minor, patch = match.groups()
    return int(major), int(minor), int(patch or 0)


@dataclass(frozen=True)
class _Probe:
    version: str | None
    build: str | None
    api: Api

    @property
    def number(self) -> tuple[int, int, int] | None:
        return parse_version(self.version)

    def at_least(self, since: tuple[int, int, int]) -> bool | None:
        """Whether the server is `since` or newer; None when it did not say its version."""
        number = self.number
        return None if number is None else number >= since


class ConfluenceDirectory(HttpConnector):
    """Group membership, licence figures and "Can use" of one Confluence DC/Server instance.

    Parameters:
    - `http`: the `AtlassianHttp` to the instance (closed with this object).
    - `groups`: the pool's groups, for the documentation of the manual steps.
    - `version`: the Confluence version, when the admin would rather state it than have it
      probed (the manifest can be blocked by a proxy). It picks the API path.

    Nothing is sent before the first call; `info()` probes and says what it found.
    """

    def __init__(
        self,
        http: AtlassianHttp,
        *,
        groups: PoolGroups = DEFAULT_GROUPS,
        version: str | None = None,
    ) -> None:
        self.http = http
        self.groups = groups
        self._stated_version = version
        self._probe: _Probe | None = None
        self._rpc_checked = False
        self._ids = itertools.count(1)

    @classmethod
    def connect(
        cls,
        base_url: str,
        credentials: Credentials | tuple[str, str],
        *,
        groups: PoolGroups = DEFAULT_GROUPS,
        version: str | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        policy: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> ConfluenceDirectory:
        """A directory on a new pooled client for `base_url` (context path included)."""
        http = open_http(base_url, credentials, policy=policy, timeout=timeout, transport=transport)
        return cls(http, groups=groups, version=version)

    def __repr__(self) -> str:
        return f"ConfluenceDirectory({self.http!r})"

    # -- probing -------------------------------------------------------------------------

    def info(self) -> ConnectionInfo:
        """Probe the version (once) and, on the JSON-RPC path, that the Remote API is on.

        Raises `ManualStepRequired` when JSON-RPC is needed but the Remote API is off.
        """
        probe = self._mode()
        if probe.api == "rpc":
            self._check_rpc()
        return ConnectionInfo(
            product="confluence",
            version=probe.version,
            api=API_REST if probe.api == "rest" else API_JSON_RPC,
            base_url=self.base_url,
        )

    def _mode(self) -> _Probe:
        if self._probe is not None:
            return self._probe
        version, build = self._stated_version, None
        if version is None:
            version, build = self._read_manifest()
        number = parse_version(version)
        api: Api = "rpc" if number is not None and number < REST_MEMBERSHIP_SINCE else "rest"
        self._probe = _Probe(version, build, api)
        base = self.base_url
        if number is None:
            log.warning(
                "Confluence at %s did not say its version; assuming 8.2 or later and using %s",
                base,
                API_REST,
            )
        else:
            log.info(
                "Confluence %s at %s: using %s",
                version,
                base,
                API_REST if api == "rest" else API_JSON_RPC,
            )
        return self._probe

    def _read_manifest(self) -> tuple[str | None, str | None]:
        """`<version>` and `<buildNumber>` of the applinks manifest, or (None, None)."""
        try:
            response = self.http.request("GET", MANIFEST, expected=(200,))
        except (NotFound, NotPermitted, UnexpectedResponse) as error:
            log.warning("could not read the application-links manifest: %s", error)
            return None, None
        try:
            root = ElementTree.fromstring(response.content)
        except ElementTree.ParseError as error:
            log.warning("the application-links manifest is not XML: %s", error)
            return None, None
        found: dict[str, str] = {}
        for element in root.iter():
            tag = element.tag.rsplit("}", 1)[-1]  # ignore any namespace
            if tag in ("version", "buildNumber", "typeId") and element.text:
                found.setdefault(tag, element.text.strip())
        type_id = found.get("typeId")
        if type_id is not None and type_id != "confluence":
            raise UnexpectedResponse(
                f"{MANIFEST}: this server is {type_id!r}, not Confluence; check the base URL"
            )
        return found.get("version"), found.get("buildNumber")

    # -- the Directory port --------------------------------------------------------------

    def licence(self) -> Licence:
        """The tier (`maxUsers`) and the licensed count (`userCount`).

        Confluence's count includes everyone with "Can use": members of any group granted it,
        individual grants, and holders of the Confluence and System Administrator permissions,
        not only the pool's licensed group.
        """
        tier = self._count("/rest/license/1.0/license/maxUsers")
        licensed = self._count("/rest/license/1.0/license/userCount")
        if tier < 0:  # an unlimited licence (assumed: Atlassian licences encode it as -1)
            tier = UNLIMITED_TIER
        return Licence(tier=tier, licensed=licensed)

    def groups_of(self, user: str) -> frozenset[str]:
        """The groups `user` belongs to directly; `UserNotFound` if there is no such user."""
        if self._mode().api == "rpc":
            self._require_user(user)
            return frozenset(self._rpc_strings("getUserGroups", user))
        names = []
        for item in self._pages(
            "/rest/api/user/memberof", {"username": user}, not_found=UserNotFound
        ):
            name = item.get("name")
            if isinstance(name, str):
                names.append(name)
        return frozenset(names)

    def add_user_to_group(self, user: str, group: str) -> None:
        """Make `user` a member of `group`; a no-op when they already are."""
        if self._mode().api == "rest":
            self._rest_membership("PUT", user, group)
            return
        self._require_user(user)
        if _contains(self._rpc_strings("getUserGroups", user), group):
            return
        self._require_group_rpc(group)
        self._rpc("addUserToGroup", user, group)

    def remove_user_from_group(self, user: str, group: str) -> None:
        """Take `user` out of `group`; a no-op when they are not in it."""
        if self._mode().api == "rest":
            self._rest_membership("DELETE", user, group)
            return
        self._require_user(user)
        if not _contains(self._rpc_strings("getUserGroups", user), group):
            self._require_group_rpc(group)
            return
        self._rpc("removeUserFromGroup", user, group)

    def _rest_membership(self, method: str, user: str, group: str) -> None:
        path = f"/rest/api/user/{segment(user)}/group/{segment(group)}"
        try:
            self.http.request(method, path, expected=(200, 204))
        except NotFound as error:
            # One 404 for two names: find out which one is missing.
            if self.find_user(user) is None:
                raise UserNotFound(
                    f"{method} {path}: no user {user!r}",
                    status=error.status,
                    server_message=error.server_message,
                ) from error
            raise GroupNotFound(
                f"{method} {path}: no group {group!r}",
                status=error.status,
                server_message=error.server_message,
            ) from error

    # -- the ManagedDirectory port -------------------------------------------------------

    def group_members(self, group: str) -> list[str]:
        """Every direct member of `group`, following `_links.next` to the last page."""
        members: list[str] = []
        path = f"/rest/api/group/{segment(group)}/member"
        for item in self._pages(path, {}, not_found=GroupNotFound):
            name = item.get("username")
            if isinstance(name, str):
                members.append(name)
        return members

    def create_group(self, group: str) -> bool:
        """Create `group`; True when created, False when it already existed."""
        if self._mode().api == "rpc":
            if self._rpc("hasGroup", group) is True:
                return False
            self._rpc("addGroup", group)
            return True
        if self._group_exists_rest(group):
            return False
        try:
            self.http.request(
                "POST",
                "/rest/api/admin/group",
                json={"name": group, "type": "group"},
                expected=(200, 201, 204),
            )
        except UnexpectedResponse as error:
            if error.status in (400, 409) and _ALREADY_EXISTS.search(error.server_message):
                return False  # created by someone else since we looked
            raise
        return True

    def find_user(self, name: str) -> User | None:
        """The user called `name` (with their status), or None when Confluence has none."""
        try:
            response = self.http.request(
                "GET",
                "/rest/api/user",
                params={"username": name, "expand": "status"},
                expected=(200,),
                not_found=UserNotFound,
            )
        except UserNotFound:
            return None
        body = self.http.json_object(response, "GET /rest/api/user")
        username = body.get("username")
        if not isinstance(username, str):
            raise UnexpectedResponse(f"GET /rest/api/user: no username in {body!r}"[:300])
        status = body.get("status")
        return User(
            name=username,
            key=_text(body.get("userKey")),
            display_name=_text(body.get("displayName")) or "",
            email=_text(body.get("email")),
            active=not (isinstance(status, str) and status.lower() != "active"),
        )

    def memberships(self, groups: Iterable[str]) -> Mapping[str, frozenset[str]]:
        """For every member of any of `groups`, which of `groups` they are in."""
        return merge_memberships(groups, self.group_members)

    def licensed_users(self) -> frozenset[str] | None:
        """Everyone who counts against the licence (9.3+), else None.

        Atlassian's list excludes anonymous, deactivated, externally deleted, shadowed and
        unlicensed users, and "relies on search index": during a reindex it may be stale.
        """
        if self._mode().at_least(LICENSED_USERS_SINCE) is False:
            return None
        for path in LICENSED_USERS_PATHS:
            try:
                names = [
                    item["username"]
                    for item in self._pages(path, {})
                    if isinstance(item.get("username"), str)
                ]
            except NotFound:
                continue
            return frozenset(names)
        return None

    def application_access(self) -> ApplicationAccess:
        """The groups with "Can use", and those with an administrator permission (which
        licenses their members too), over REST on 9.2.5+; `ManualStepRequired` before."""
        if self._mode().at_least(REST_PERMISSIONS_SINCE) is not False:
            try:
                use, admin = self._group_grants()
            except NotFound:
                pass  # no /rest/api/permissions on this version
            else:
                return ApplicationAccess(groups=use, admin_groups=admin)
        raise ManualStepRequired(
            "Confluence before 9.2.5 has no API that reads global permissions",
            steps=(
                "Go to General Configuration → Global Permissions",
                "Note the groups whose 'Can use' column is ticked",
            ),
        )

    def grant_application_access(self, group: str) -> None:
        """Give `group` "Can use" (REST on 9.2.5+, else JSON-RPC, else the steps to click)."""
        if self._mode().at_least(REST_PERMISSIONS_SINCE) is not False:
            if self._rest_permission("grant", group):
                return
        self._rpc_permission("addGlobalPermission", group, _grant_steps(group))

    def revoke_application_access(self, group: str, *, default_group: bool = True) -> None:
        """Take "Can use" away from `group`.

        What else goes with it depends on the path. Over REST (9.2.5+) Confluence drops
        *all* the group's global permissions (its docs: "When 'application use' is revoked,
        all granted permissions will be removed from target group"); the ones it held besides
        "Can use" are logged as a warning, since granting "Can use" back does not restore
        them. Over JSON-RPC, `removeGlobalPermission` takes away only USECONFLUENCE, and the
        group keeps its other global permissions.

        Confluence has no default group for application access, so `default_group` changes
        nothing here; new users land in the directory's default groups (User Directories →
        Default Group Memberships), which the admin keeps out of "Can use".
        """
        del default_group
        if self._mode().at_least(REST_PERMISSIONS_SINCE) is not False:
            others = self._other_grants(group)
            if self._rest_permission("revoke", group):
                if others is None:
                    log.warning(
                        "revoked 'Can use' from %r over REST: Confluence also removed any "
                        "other global permission the group held",
                        group,
                    )
                elif others:
                    log.warning(
                        "revoked 'Can use' from %r over REST: Confluence also removed its "
                        "other global permissions (%s); grant them again by hand if the "
                        "group should keep them",
                        group,
                        ", ".join(f"{target} {key}" for target, key in others),
                    )
                return
        self._rpc_permission("removeGlobalPermission", group, _revoke_steps(group))

    # -- global permissions --------------------------------------------------------------

    def _group_grants(self) -> tuple[frozenset[str], frozenset[str]]:
        """(groups with "Can use", groups with an administrator permission), over REST."""
        response = self.http.request("GET", "/rest/api/permissions", expected=(200,))
        grants = response.json()
        if not isinstance(grants, list):
            raise UnexpectedResponse("GET /rest/api/permissions: expected a JSON array")
        use: set[str] = set()
        admin: set[str] = set()
        for grant in grants:
            operation = _operation(grant)
            if operation != USE_OPERATION and operation not in ADMIN_OPERATIONS:
                continue
            subject = grant.get("subject")
            if not isinstance(subject, dict) or subject.get("type") != "group":
                continue
            name = next(
                (
                    subject[key]
                    for key in ("name", "groupName", "displayName")
                    if isinstance(subject.get(key), str) and subject[key]
                ),
                None,
            )
            if name is None:
                return self._group_grants_one_by_one()
            (use if operation == USE_OPERATION else admin).add(name)
        return frozenset(use), frozenset(admin)

    def _group_grants_one_by_one(self) -> tuple[frozenset[str], frozenset[str]]:
        """Ask each group for its grants: the subject of `/rest/api/permissions` had no name."""
        use: set[str] = set()
        admin: set[str] = set()
        for item in self._pages("/rest/api/group", {}):
            name = item.get("name")
            if not isinstance(name, str):
                continue
            operations = self._grants_of(name)
            if USE_OPERATION in operations:
                use.add(name)
            if operations & ADMIN_OPERATIONS:
                admin.add(name)
        return frozenset(use), frozenset(admin)

    def _grants_of(self, group: str) -> frozenset[tuple[str, str]]:
        """The global permissions `group` holds, as (targetType, operationKey)."""
        path = f"/rest/api/permissions/group/{segment(group)}"
        response = self.http.request("GET", path, expected=(200,), not_found=GroupNotFound)
        grants = response.json()
        if not isinstance(grants, list):
            raise UnexpectedResponse(f"GET {path}: expected a JSON array")
        return frozenset(op for op in map(_operation, grants) if op is not None)

    def _other_grants(self, group: str) -> list[tuple[str, str]] | None:
        """The global permissions `group` holds besides "Can use"; None when unreadable."""
        try:
            operations = self._grants_of(group)
        except (NotFound, UnexpectedResponse):
            return None  # no such group, or no such resource: the revoke itself tells
        return sorted(operations - {USE_OPERATION})

    def _rest_permission(self, action: Literal["grant", "revoke"], group: str) -> bool:
        """True when done over REST; False when this Confluence has no such REST resource."""
        path = f"/rest/api/permissions/group/{segment(group)}/{action}"
        try:
            self.http.request("PUT", path, json=list(USE_PERMISSION_REST), expected=(200, 204))
        except NotFound as error:
            if self._group_exists_rest(group):
                return False  # the group is there: this Confluence lacks the resource
            raise GroupNotFound(
                f"PUT {path}: no group {group!r}",
                status=error.status,
                server_message=error.server_message,
            ) from error
        return True

    def _group_exists_rest(self, group: str) -> bool:
        try:
            self.http.request("GET", f"/rest/api/group/{segment(group)}", expected=(200,))
        except NotFound:
            return False
        return True

    def _rpc_permission(self, method: str, group: str, steps: tuple[str, ...]) -> None:
        try:
            self._check_rpc()
        except ManualStepRequired as error:
            raise ManualStepRequired(
                f"{error}; or make the change by hand", steps=error.steps + steps
            ) from error
        self._require_group_rpc(group)
        # `SpacesSoapService` resolves the name as a user before a group: with a user of the
        # same name, the call would change that user's permission and leave the group alone.
        namesake = self.find_user(group)
        if namesake is not None:
            raise ManualStepRequired(
                f"JSON-RPC {method} looks {group!r} up as a user before a group, and "
                f"Confluence has a user {namesake.name!r}: it would change that user's global "
                "permissions, not the group's. Make the change by hand",
                steps=steps,
            )
        self._rpc(method, USE_PERMISSION_RPC, group)

    # -- JSON-RPC ------------------------------------------------------------------------

    def _check_rpc(self) -> None:
        """One harmless read, so that a disabled Remote API is reported before any change."""
        if not self._rpc_checked:
            self._rpc("hasGroup", self.groups.enabled)
            self._rpc_checked = True

    def _rpc(self, method: str, *params: object) -> Any:
        """Call `method` without the token argument (JSON-RPC authenticates by HTTP)."""
        body = {"jsonrpc": "2.0", "method": method, "params": list(params), "id": next(self._ids)}
        what = f"JSON-RPC {method}"
        try:
            response = self.http.request("POST", RPC_PATH, json=body, expected=(200, 500))
        except NotFound as error:
            raise _remote_api_off(what, error) from error
        except NotPermitted as error:
            # Confluence's RPC servlets answer a disabled Remote API with 403 (in an HTML
            # page from Tomcat); a 401 stays what it is: refused credentials.
            if error.status == 403 or _REMOTE_API_OFF.search(error.server_message):
                raise _remote_api_off(what, error) from error
            raise
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if not isinstance(payload, dict) or not ("result" in payload or "error" in payload):
            if response.status_code == 500:
                raise Unavailable(f"{what}: 500 from {RPC_PATH}", status=500)
            raise UnexpectedResponse(f"{what}: not a JSON-RPC answer", status=response.status_code)
        fault = payload.get("error")
        if fault:
            raise _rpc_error(what, fault, response.status_code)
        return payload.get("result")

    def _rpc_strings(self, method: str, *params: object) -> list[str]:
        result = self._rpc(method, *params)
        if not isinstance(result, list):
            raise UnexpectedResponse(f"JSON-RPC {method}: expected a list, got {result!r}"[:300])
        return [item for item in result if isinstance(item, str)]

    def _require_user(self, user: str) -> None:
        if self.find_user(user) is None:
            raise UserNotFound(f"Confluence has no user {user!r}", status=404)

    def _require_group_rpc(self, group: str) -> None:
        if self._rpc("hasGroup", group) is not True:
            raise GroupNotFound(f"Confluence has no group {group!r}", status=404)

    # -- REST helpers --------------------------------------------------------------------

    def _count(self, path: str) -> int:
        response = self.http.request("GET", path, expected=(200,))
        body = self.http.json_object(response, f"GET {path}")
        count = body.get("count")
        if isinstance(count, bool) or not isinstance(count, int):
            raise UnexpectedResponse(f"GET {path}: no integer count in {body!r}"[:300])
        return count

    def _pages(
        self,
        path: str,
        params: Mapping[str, str | int | bool],
        *,
        not_found: type[NotFound] = NotFound,
    ) -> Iterator[dict[str, Any]]:
        """Every item of a paged Confluence list, page after page while `_links.next` exists.

        A short page is not the end (servers cap `limit`); only a page without `next` is.
        """
        start = 0
        for _ in range(MAX_PAGES):
            query: dict[str, str | int | bool] = {**params, "start": start, "limit": PAGE_SIZE}
            response = self.http.request(
                "GET", path, params=query, expected=(200,), not_found=not_found
            )
            page = self.http.json_object(response, f"GET {path}")
            results = page.get("results")
            if not isinstance(results, list):
                raise UnexpectedResponse(f"GET {path}: no results list in the page")
            yield from (item for item in results if isinstance(item, dict))
            links = page.get("_links")
            following = links.get("next") if isinstance(links, dict) else None
            if not following:
                return
            after = _next_start(following, page, start, len(results))
            if after <= start:
                raise UnexpectedResponse(f"GET {path}: the next page does not move on ({after})")
            start = after
        raise UnexpectedResponse(f"GET {path}: more than {MAX_PAGES} pages")


# -- helpers ---------------------------------------------------------------------------------


def _contains(groups: Iterable[str], group: str) -> bool:
    """Group names compare case-insensitively (Confluence stores them in lower case)."""
    wanted = group.casefold()
    return any(g.casefold() == wanted for g in groups)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _next_start(link: object, page: Mapping[str, Any], start: int, size: int) -> int:
    """The `start` the `next` link asks for; else this page's start plus its size."""
    if isinstance(link, str):
        values = parse_qs(urlsplit(link).query).get("start")
        if values:
            try:
                return int(values[0])
            except ValueError:
                pass
    base = page.get("start")
    return (base if isinstance(base, int) else start) + size


def _operation(grant: object) -> tuple[str, str] | None:
    """(targetType, operationKey) of one grant of `/rest/api/permissions`."""
    if not isinstance(grant, dict):
        return None
    operation = grant.get("operation")
    if not isinstance(operation, dict):
        return None
    target, key = operation.get("targetType"), operation.get("operationKey")
    if not isinstance(target, str) or not isinstance(key, str):
        return None
    return target, key


def _remote_api_off(what: str, error: HttpDirectoryError) -> ManualStepRequired:
    detail = f" ({error.server_message[:200]})" if error.server_message else ""
    return ManualStepRequired(
        f"{what}: this change goes through Confluence's Remote API (group membership before "
        f"8.2, global permissions before 9.2.5), which answers {error.status} at {RPC_PATH}"
        f"{detail}. Enable the Remote API",
        steps=ENABLE_REMOTE_API,
    )


def _rpc_error(what: str, error: object, status: int) -> HttpDirectoryError | ManualStepRequired:
    message = ""
    if isinstance(error, dict):
        parts = [error.get("message"), error.get("data")]
        message = " ".join(str(p) for p in parts if p and isinstance(p, str | int | float))
    elif isinstance(error, str):
        message = error
    message = message[:500]
    text = f"{what}: {message}" if message else f"{what}: error {error!r}"[:600]
    if _REMOTE_API_OFF.search(message):
        return ManualStepRequired(f"{text}. Enable the Remote API", steps=ENABLE_REMOTE_API)
    if _READ_ONLY.search(message):
        return ReadOnlyDirectory(text, status=status, server_message=message)
    if _NOT_PERMITTED.search(message):
        return NotPermitted(text, status=status, server_message=message)
    return UnexpectedResponse(text, status=status, server_message=message)


def _grant_steps(group: str) -> tuple[str, ...]:
    return (
        "Go to General Configuration → Global Permissions → Edit Permissions",
        f"Under 'Groups', type {group!r} and choose Add",
        f"Tick 'Can use' for {group!r}",
        "Choose Save all",
    )


def _revoke_steps(group: str) -> tuple[str, ...]:
    return (
        "Go to General Configuration → Global Permissions → Edit Permissions",
        f"Untick 'Can use' for {group!r} (e.g. confluence-users)",
        "Choose Save all",
    )
