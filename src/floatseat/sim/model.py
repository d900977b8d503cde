"""The simulated instance's directories, groups and licence: pure state, no I/O, no clock.

Rules, as the products apply them (shared/reference/atlassian.md §1-§3, §9):

- Users live in several user directories, in order. A username belongs to the *first*
  directory where it appears; memberships of the same name in later directories are
  shadowed and count for nothing.
- Writes go to the user's directory. "internal" and "crowd" are writable; "read_only" LDAP
  refuses every membership change; "read_only_local_groups" LDAP accepts changes to groups
  that are local (not from LDAP) and refuses changes to its LDAP groups.
- Confluence counts, once each and active users only: members of a group with "Can use",
  individual "Can use" grants, and holders of the Confluence Administrator / System
  Administrator global permissions (through a group or individually). Jira counts active
  users in any group of the application role.
- A change that leaves more users licensed than the tier, and more than before, is a
  licence violation. The change still happens (the products accept it); Confluence then
  turns read-only.
- A "crowd" directory keeps two states: `live` (what Crowd's REST sees and changes) and
  the product's synchronised copy. Changes through Crowd reach the product at `sync()`;
  changes through the product write through to both.

Usernames and group names compare case-insensitively; the spelling of creation is kept.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "AlreadyExists",
    "AlreadyMember",
    "DirectoryKind",
    "LicenceRules",
    "NotAMember",
    "NotFound",
    "ReadOnlyDirectory",
    "SimError",
    "SimUser",
    "UserDirectory",
    "Violation",
    "World",
]

DirectoryKind = Literal["internal", "read_only", "read_only_local_groups", "crowd"]
WRITABLE: frozenset[str] = frozenset({"internal", "crowd"})


class SimError(Exception):
    """A request the simulated product refuses; the REST layer maps each kind to a status."""


class NotFound(SimError):
    def __init__(self, what: Literal["user", "group"], name: str) -> None:
        super().__init__(f"{what} {name!r} not found")
        self.what = what
        self.name = name


class AlreadyMember(SimError):
    pass


class NotAMember(SimError):
    pass


class AlreadyExists(SimError):
    pass


class ReadOnlyDirectory(SimError):
    """The user's directory refuses the change; `verb` is "add" or "remove"."""

    def __init__(self, verb: str, user: str, group: str) -> None:
        # Jira KB "User unable to login with you do not have permission error" quotes the
        # add text; the remove text mirrors it (UNVERIFIED).
        if verb == "add":
            text = f"You cannot add user '{user}' to group '{group}'. "
        else:
            text = f"You cannot remove user '{user}' from group '{group}'. "
        super().__init__(text + "The user's directory is read only.")
        self.verb = verb
        self.user = user
        self.group = group


def fold(name: str) -> str:
    """How the directories compare names."""
    return name.casefold()


def user_key(name: str) -> str:
    """A stable, product-like user key (Confluence keys are 32 hex digits)."""
    return hashlib.md5(fold(name).encode(), usedforsecurity=False).hexdigest()


@dataclass
class SimUser:
    name: str
    display_name: str
    email: str
    active: bool = True
    password: str | None = None  # None: cannot log in with a password
    key: str = ""

    def __post_init__(self) -> None:
        if not self.key:
            self.key = user_key(self.name)


@dataclass
class UserDirectory:
    """One user directory of the product, in the product's order."""

    name: str
    kind: DirectoryKind
    users: dict[str, SimUser] = field(default_factory=dict)  # folded name -> user
    groups: dict[str, str] = field(default_factory=dict)  # folded -> spelling
    members: dict[str, set[str]] = field(default_factory=dict)  # folded group -> folded users
    ldap_groups: set[str] = field(default_factory=set)  # folded; read-only in local-groups mode
    # Crowd only: what Crowd itself holds, before the product synchronises.
    live_users: dict[str, SimUser] = field(default_factory=dict)
    live_groups: dict[str, str] = field(default_factory=dict)
    live_members: dict[str, set[str]] = field(default_factory=dict)

    def group_writable(self, group: str) -> bool:
        if self.kind in WRITABLE:
            return True
        if self.kind == "read_only_local_groups":
            return fold(group) not in self.ldap_groups
        return False


@dataclass(frozen=True)
class LicenceRules:
    """Who counts. Confluence: its global permissions; Jira: the application role's groups.

    Confluence's global permissions that license a user, each a set of folded names:
    "Can use" (`can_use` groups, `grants` users), "Confluence Administrator"
    (`admin_groups`, `admin_grants`) and "System Administrator" (`sysadmin_groups`).
    """

    product: Literal["confluence", "jira"]
    tier: int
    can_use: frozenset[str]  # folded; Jira: the application role's groups
    admin_groups: frozenset[str] = frozenset()  # folded; Confluence only
    grants: frozenset[str] = frozenset()  # folded usernames; Confluence only
    sysadmin_groups: frozenset[str] = frozenset()  # folded; Confluence only
    admin_grants: frozenset[str] = frozenset()  # folded usernames with an admin permission

    @property
    def licensing_groups(self) -> frozenset[str]:
        """Groups whose active members count against the tier."""
        return self.can_use | self.admin_groups | self.sysadmin_groups

    @property
    def licensed_names(self) -> frozenset[str]:
        """Users who count through an individual grant."""
        return self.grants | self.admin_grants


@dataclass(frozen=True)
class Violation:
    """A change pushed the licensed count over the tier."""

    licensed: int
    tier: int
    cause: str
    at: float  # the simulated clock, Unix seconds


@dataclass
class World:
    """Directories, licence rules and the violation record of one simulated instance."""

    directories: list[UserDirectory]
    rules: LicenceRules
    default_groups: list[str] = field(default_factory=list)  # Jira role's defaultGroups
    # Confluence's global permissions that license no one ("space create", "personal_space
    # create"): folded group -> (targetType, operationKey) pairs.
    other_permissions: dict[str, set[tuple[str, str]]] = field(default_factory=dict)
    violations: list[Violation] = field(default_factory=list)

    # -- lookups -----------------------------------------------------------------------------

    def directory_of(self, user: str) -> UserDirectory | None:
        """The first directory where `user` appears: the only one whose memberships count."""
        key = fold(user)
        for directory in self.directories:
            if key in directory.users:
                return directory
        return None

    def user(self, name: str) -> SimUser:
        directory = self.directory_of(name)
        if directory is None:
            raise NotFound("user", name)
        return directory.users[fold(name)]

    def find_user(self, name: str) -> SimUser | None:
        directory = self.directory_of(name)
        return None if directory is None else directory.users[fold(name)]

    def user_by_key(self, key: str) -> SimUser | None:
        for user in self.all_users():
            if user.key == key:
                return user
        return None

    def all_users(self) -> list[SimUser]:
        """Every visible user once (shadowed duplicates left out), sorted by name."""
        seen: dict[str, SimUser] = {}
        for directory in self.directories:
            for key, user in directory.users.items():
                seen.setdefault(key, user)
        return sorted(seen.values(), key=lambda u: fold(u.name))

    def group_names(self) -> list[str]:
        """Every group of every directory once, sorted as Confluence sorts them."""
        names: dict[str, str] = {}
        for directory in self.directories:
            for key, spelling in directory.groups.items():
                names.setdefault(key, spelling)
        return sorted(names.values(), key=fold)

    def has_group(self, group: str) -> bool:
        return any(fold(group) in d.groups for d in self.directories)

    def group_spelling(self, group: str) -> str:
        for directory in self.directories:
            spelling = directory.groups.get(fold(group))
            if spelling is not None:
                return spelling
        raise NotFound("group", group)

    def groups_of(self, user: str) -> list[str]:
        """The groups `user` belongs to directly, in their directory, sorted."""
        directory = self.directory_of(user)
        if directory is None:
            raise NotFound("user", user)
        key = fold(user)
        return sorted(
            (directory.groups[g] for g, us in directory.members.items() if key in us), key=fold
        )

    def members_of(self, group: str) -> list[SimUser]:
        """Direct members of `group` whose membership counts, sorted by name."""
        if not self.has_group(group):
            raise NotFound("group", group)
        g = fold(group)
        return [
            u
            for u in self.all_users()
            if fold(u.name) in self._directory_members(u, g)  # counts only in its directory
        ]

    def _directory_members(self, user: SimUser, group: str) -> set[str]:
        directory = self.directory_of(user.name)
        assert directory is not None
        return directory.members.get(group, set())

    # -- licence -----------------------------------------------------------------------------

    def licensed_users(self) -> list[SimUser]:
        """Users who count against the tier now, each once, sorted by name."""
        rules = self.rules
        licensing = rules.licensing_groups
        result: list[SimUser] = []
        for user in self.all_users():
            if not user.active:
                continue
            key = fold(user.name)
            if key in rules.licensed_names or any(
                key in self._directory_members(user, g) for g in licensing
            ):
                result.append(user)
        return result

    def licensed_count(self) -> int:
        return len(self.licensed_users())

    def is_licensed(self, user: str) -> bool:
        directory = self.directory_of(user)
        if directory is None:
            return False
        key = fold(user)
        if not directory.users[key].active:
            return False
        if key in self.rules.licensed_names:
            return True
        return any(key in directory.members.get(g, ()) for g in self.rules.licensing_groups)

    def over_tier(self) -> bool:
        return self.licensed_count() > self.rules.tier

    def _record(self, before: int, cause: str, now: float) -> None:
        after = self.licensed_count()
        if after > self.rules.tier and after > before:
            self.violations.append(Violation(after, self.rules.tier, cause, now))

    def set_rules(self, rules: LicenceRules, now: float, cause: str) -> None:
        before = self.licensed_count()
        self.rules = rules
        self._record(before, cause, now)

    # -- changes through the product ------------------------------------------------------------

    def add_member(self, user: str, group: str, now: float, *, read_only: bool = False) -> bool:
        """Add `user` to `group` in the user's directory; False when already a member.

        `read_only` makes the user's directory refuse the change (a fault of the run).
        """
        directory = self.directory_of(user)
        if directory is None:
            raise NotFound("user", user)
        if not self.has_group(group):
            raise NotFound("group", group)
        u, g = fold(user), fold(group)
        members = directory.members.get(g, set())
        if u in members:
            return False
        if read_only or not directory.group_writable(group):
            raise ReadOnlyDirectory("add", directory.users[u].name, self.group_spelling(group))
        before = self.licensed_count()
        directory.groups.setdefault(g, self.group_spelling(group))
        directory.members.setdefault(g, set()).add(u)
        if directory.kind == "crowd":  # the product writes through to Crowd
            directory.live_groups.setdefault(g, directory.groups[g])
            directory.live_members.setdefault(g, set()).add(u)
        self._record(before, f"{directory.users[u].name} added to {directory.groups[g]}", now)
        return True

    def remove_member(self, user: str, group: str, *, read_only: bool = False) -> bool:
        """Take `user` out of `group`; False when they were not a member."""
        directory = self.directory_of(user)
        if directory is None:
            raise NotFound("user", user)
        if not self.has_group(group):
            raise NotFound("group", group)
        u, g = fold(user), fold(group)
        if u not in directory.members.get(g, set()):
            return False
        if read_only or not directory.group_writable(group):
            raise ReadOnlyDirectory("remove", directory.users[u].name, self.group_spelling(group))
        directory.members[g].discard(u)
        if directory.kind == "crowd":
            directory.live_members.get(g, set()).discard(u)
        return True

    def create_group(self, group: str) -> bool:
        """Create `group` in the first writable directory; False when it already exists."""
        if self.has_group(group):
            return False
        target = next((d for d in self.directories if d.kind != "read_only"), None)
        if target is None:
            raise ReadOnlyDirectory("add", "-", group)
        target.groups[fold(group)] = group
        target.members.setdefault(fold(group), set())
        if target.kind == "crowd":
            target.live_groups[fold(group)] = group
            target.live_members.setdefault(fold(group), set())
        return True

    def delete_group(self, group: str) -> None:
        if not self.has_group(group):
            raise NotFound("group", group)
        g = fold(group)
        for directory in self.directories:
            if g in directory.groups and g not in directory.ldap_groups:
                if directory.kind == "read_only":
                    continue
                del directory.groups[g]
                directory.members.pop(g, None)
                directory.live_groups.pop(g, None)
                directory.live_members.pop(g, None)

    def set_active(self, user: str, active: bool, now: float) -> None:
        before = self.licensed_count()
        self.user(user).active = active
        self._record(before, f"{user} {'activated' if active else 'deactivated'}", now)

    def add_user(
        self,
        user: SimUser,
        *,
        directory: str | None = None,
        groups: Iterable[str] = (),
        now: float = 0.0,
    ) -> None:
        """Create `user` in `directory` (default: the first) with direct memberships.

        Set-up, not a product call: memberships are written even into read-only directories
        (that is where LDAP users come from).
        """
        target = self._directory(directory)
        before = self.licensed_count()
        key = fold(user.name)
        target.users[key] = user
        if target.kind == "crowd":
            target.live_users[key] = user
        for group in groups:
            g = fold(group)
            spelling = target.groups.setdefault(g, self._spelling_or(group))
            target.members.setdefault(g, set()).add(key)
            if target.kind == "crowd":
                target.live_groups.setdefault(g, spelling)
                target.live_members.setdefault(g, set()).add(key)
        self._record(before, f"{user.name} created", now)

    def _spelling_or(self, group: str) -> str:
        return self.group_spelling(group) if self.has_group(group) else group

    def _directory(self, name: str | None) -> UserDirectory:
        if name is None:
            return self.directories[0]
        for directory in self.directories:
            if directory.name == name:
                return directory
        raise NotFound("group", name)  # the REST layer never names a directory itself

    # -- Crowd ---------------------------------------------------------------------------------

    def crowd(self) -> UserDirectory | None:
        return next((d for d in self.directories if d.kind == "crowd"), None)

    def crowd_add_member(self, user: str, group: str) -> None:
        """Crowd's own add: visible to the product after `sync`."""
        u, members = self._crowd_membership(user, group)
        if u in members:
            raise AlreadyMember(f"{user} is already a member of {group}")
        members.add(u)

    def crowd_remove_member(self, user: str, group: str) -> None:
        u, members = self._crowd_membership(user, group)
        if u not in members:
            raise NotAMember(f"{user} is not a member of {group}")
        members.discard(u)

    def _crowd_membership(self, user: str, group: str) -> tuple[str, set[str]]:
        """`user` folded, and Crowd's own members of `group`; `NotFound` for either name."""
        crowd = self.require_crowd()
        u, g = fold(user), fold(group)
        if g not in crowd.live_groups:
            raise NotFound("group", group)
        if u not in crowd.live_users:
            raise NotFound("user", user)
        return u, crowd.live_members.setdefault(g, set())

    def crowd_create_group(self, group: str) -> None:
        crowd = self.require_crowd()
        if fold(group) in crowd.live_groups:
            raise AlreadyExists(f"group {group!r} already exists")
        crowd.live_groups[fold(group)] = group
        crowd.live_members.setdefault(fold(group), set())

    def sync(self, now: float) -> None:
        """The product synchronises its Crowd directory: Crowd's changes become visible."""
        crowd = self.crowd()
        if crowd is None:
            return
        before = self.licensed_count()
        crowd.users = dict(crowd.live_users)
        crowd.groups = dict(crowd.live_groups)
        crowd.members = {g: set(us) for g, us in crowd.live_members.items()}
        self._record(before, "Crowd directory synchronised", now)

    def require_crowd(self) -> UserDirectory:
        crowd = self.crowd()
        if crowd is None:
            raise NotFound("group", "crowd")
        return crowd
