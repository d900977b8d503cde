"""The port through which the engine moves users between the pool groups.

Every implementation keeps the contract the outbox relies on:
- adding a member who is already in the group, or removing one who is not, succeeds and
  changes nothing (a move applied twice is harmless);
- a failure raises `DirectoryError` (`DirectoryUnavailable` when a retry may succeed),
  never a transport's own exception.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

# The tier reported for an unlimited licence: larger than any real user count, so the
# arithmetic of free seats needs no special case.
UNLIMITED_TIER = 2**31 - 1


@dataclass(frozen=True)
class Licence:
    """The product's licence figures, as it reports them now."""

    tier: int  # users the licence allows
    licensed: int  # users who count against it: the pool's licensed group, admins, grants


@dataclass(frozen=True)
class PoolGroups:
    """The two groups of the pool. Only `enabled` has application access."""

    enabled: str = "IUM_Enabled"
    disabled: str = "IUM_Disabled"

    def __post_init__(self) -> None:
        if self.enabled == self.disabled:
            raise ValueError("the licensed and the unlicensed pool groups must differ")


DEFAULT_GROUPS = PoolGroups()


class Directory(Protocol):
    """Group membership and licence figures of one Confluence or Jira instance."""

    def licence(self) -> Licence:
        """The tier and the licensed count now."""
        ...

    def groups_of(self, user: str) -> frozenset[str]:
        """The groups `user` belongs to directly."""
        ...

    def add_user_to_group(self, user: str, group: str) -> None:
        """Make `user` a member of `group`; a no-op when they already are."""
        ...

    def remove_user_from_group(self, user: str, group: str) -> None:
        """Take `user` out of `group`; a no-op when they are not in it."""
        ...


def merge_memberships(
    groups: Iterable[str], group_members: Callable[[str], Iterable[str]]
) -> dict[str, frozenset[str]]:
    """`ManagedDirectory.memberships` from `group_members`: each user once, spelled as first
    listed, however the groups spell them (usernames compare case-insensitively)."""
    spelled: dict[str, str] = {}
    found: dict[str, set[str]] = {}
    for group in dict.fromkeys(groups):
        for name in group_members(group):
            key = name.casefold()
            spelled.setdefault(key, name)
            found.setdefault(key, set()).add(group)
    return {spelled[key]: frozenset(gs) for key, gs in found.items()}


Product = Literal["confluence", "jira", "crowd", "custom"]


@dataclass(frozen=True)
class ConnectionInfo:
    """What a connector found when it probed the server, said plainly to the admin."""

    product: Product
    version: str | None  # as the server reports it, e.g. "8.5.4"; None when it does not say
    api: str  # the path in use, e.g. "REST (8.2+)" or "JSON-RPC (7.16-8.1 fallback)"
    base_url: str


@dataclass(frozen=True)
class User:
    """A user as the directory knows them."""

    name: str  # the username, spelled as the product spells it
    key: str | None = None  # Jira's and Confluence's stable user key, when reported
    display_name: str = ""
    email: str | None = None
    active: bool = True


@dataclass(frozen=True)
class ApplicationAccess:
    """Which groups give application access ("Can use", or the application role's groups).

    `admin_groups` are the groups licensed through an administrator permission, whether or
    not they also have application access: Confluence counts holders of its Confluence
    Administrator and System Administrator global permissions against the licence (KB "What
    happens when I reach my license user limit"), so their members hold a seat that taking
    "Can use" away would not free. Jira leaves it empty (its administrators need an
    application role to use Jira, so they count through the role's groups), as do Crowd and
    the connectors that cannot tell.
    """

    groups: frozenset[str]
    default_groups: frozenset[str] = frozenset()  # Jira: where new users land
    admin_groups: frozenset[str] = frozenset()  # Confluence: licensed as administrators


class ManagedDirectory(Directory, Protocol):
    """Everything `floatseat setup`, reconciliation and `doctor` need beyond the engine's port.

    Lists are complete: implementations follow the product's own paging signal
    (`_links.next` in Confluence, `isLast` in Jira) and never stop at a short page.
    """

    def info(self) -> ConnectionInfo:
        """Probe the server: product, version and the API path this connector uses."""
        ...

    def group_members(self, group: str) -> list[str]:
        """Every direct member of `group` (active or not); `GroupNotFound` if it is missing."""
        ...

    def create_group(self, group: str) -> bool:
        """Create `group`; True when created, False when it already existed."""
        ...

    def find_user(self, name: str) -> User | None:
        """The user called `name`, or None when the directory has no such user."""
        ...

    def memberships(self, groups: Iterable[str]) -> Mapping[str, frozenset[str]]:
        """For every member of any of `groups`: which of `groups` they are in.

        With the pool groups this lists the pool's users with their groups; with the
        groups of priority classes too, it feeds the policy's `DirectoryFigures`.
        """
        ...

    def licensed_users(self) -> frozenset[str] | None:
        """Every user who counts against the licence, or None if the product cannot list them.

        Who is licensed outside the pool is this minus the licensed pool group's members.
        """
        ...

    def application_access(self) -> ApplicationAccess:
        """The groups with application access; `ManualStepRequired` if no API reads them."""
        ...

    def grant_application_access(self, group: str) -> None:
        """Give `group` application access; `ManualStepRequired` where no API can."""
        ...

    def revoke_application_access(self, group: str, *, default_group: bool = True) -> None:
        """Take application access (and, with `default_group`, default-group status) away."""
        ...
