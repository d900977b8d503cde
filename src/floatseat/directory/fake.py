"""`FakeDirectory`: a small working directory in memory, for tests and demos.

It counts the licence as the products do (active members of the licensed groups, plus users
licensed outside any group, such as administrators), accepts a change that goes over the
tier as the products do (Confluence then turns read-only), and records every such breach so
that a test can assert there was none. Failures are injected with `fail()`.

It implements `ManagedDirectory` too: groups exist once created (or named in `groups`),
`licensed_groups` is the application access and can be granted and revoked, the members of
`admin_groups` are licensed through an administrator permission (as in Confluence, with or
without application access; setup never changes that permission), users in
`read_only_users` live in a read-only directory (every write for them is refused as the
products refuse it), and with `manual_access` no API reads or changes the application access,
as in Confluence before 9.2.5, whose "Can use" permission no REST call reads there.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from floatseat.directory.errors import GroupNotFound, ManualStepRequired, ReadOnlyDirectory
from floatseat.directory.port import (
    DEFAULT_GROUPS,
    ApplicationAccess,
    ConnectionInfo,
    Licence,
    ManagedDirectory,
    PoolGroups,
    Product,
    User,
)
from floatseat.domain.policy import DirectoryFigures
from floatseat.service.errors import DirectoryUnavailable

ALL_OPERATIONS = frozenset(
    {"licence", "groups_of", "add", "remove", "read", "create", "grant", "revoke"}
)


@dataclass
class _Fault:
    remaining: int | None  # calls left to fail; None: until `heal()`
    after_apply: bool
    error: BaseException
    operations: frozenset[str]


@dataclass(frozen=True)
class Breach:
    """The licensed count went over the tier: the product would be read-only now."""

    licensed: int
    tier: int
    cause: str


class FakeDirectory:
    """Groups, a licence and injectable failures; implements `ManagedDirectory`."""

    def __init__(
        self,
        tier: int,
        *,
        groups: Mapping[str, Iterable[str]] | None = None,
        licensed_groups: Iterable[str] = (DEFAULT_GROUPS.enabled,),
        licensed_directly: Iterable[str] = (),
        admin_groups: Iterable[str] = (),
        default_groups: Iterable[str] = (),
        inactive: Iterable[str] = (),
        read_only_users: Iterable[str] = (),
        manual_access: bool = False,
        lists_licensed_users: bool = True,
        product: Product = "confluence",
        base_url: str = "https://fake.example.com",
    ) -> None:
        self.tier = tier
        self.members: dict[str, set[str]] = {g: set(us) for g, us in (groups or {}).items()}
        self.licensed_groups = frozenset(licensed_groups)
        # Administrators and individual "Can use" grants: licensed without a group.
        self.licensed_directly = set(licensed_directly)
        # Groups with an administrator permission: their members are licensed regardless.
        self.admin_groups = frozenset(admin_groups)
        self.default_groups = set(default_groups)
        self.inactive = set(inactive)  # deactivated users: they never count
        self.read_only_users = set(read_only_users)
        self.manual_access = manual_access
        self.lists_licensed_users = lists_licensed_users
        self.product: Product = product
        self.base_url = base_url
        self.breaches: list[Breach] = []
        self.changes: list[tuple[str, str, str]] = []  # (add|remove, user, group) that changed
        self.calls = 0
        self._fault: _Fault | None = None
        self._check("initial state")

    # -- the Directory port ----------------------------------------------------------------

    def licence(self) -> Licence:
        self._before("licence")
        return Licence(self.tier, len(self.licensed()))

    def groups_of(self, user: str) -> frozenset[str]:
        self._before("groups_of")
        return frozenset(g for g, us in self.members.items() if user in us)

    def add_user_to_group(self, user: str, group: str) -> None:
        after = self._before("add")
        self._writable(user, group, "add")
        members = self.members.setdefault(group, set())
        if user not in members:
            members.add(user)
            self.changes.append(("add", user, group))
            self._check(f"{user} added to {group}")
        self._after(after)

    def remove_user_from_group(self, user: str, group: str) -> None:
        after = self._before("remove")
        self._writable(user, group, "remove")
        members = self.members.get(group, set())
        if user in members:
            members.discard(user)
            self.changes.append(("remove", user, group))
        self._after(after)

    # -- the ManagedDirectory port ---------------------------------------------------------

    def info(self) -> ConnectionInfo:
        self._before("read")
        return ConnectionInfo(self.product, "9.2.0", "fake", self.base_url)

    def group_members(self, group: str) -> list[str]:
        self._before("read")
        if group not in self.members:
            raise GroupNotFound(f"group {group!r} does not exist", status=404)
        return sorted(self.members[group])

    def create_group(self, group: str) -> bool:
        after = self._before("create")
        created = group not in self.members
        if created:
            self.members[group] = set()
            self.changes.append(("create", "", group))
        self._after(after)
        return created

    def find_user(self, name: str) -> User | None:
        self._before("read")
        # Not `known_users()`: building that set per call costs seconds at 100,000 users.
        known = (
            name in self.licensed_directly
            or name in self.inactive
            or any(name in members for members in self.members.values())
        )
        if not known:
            return None
        return User(name, key=name, display_name=name.title(), active=name not in self.inactive)

    def memberships(self, groups: Iterable[str]) -> Mapping[str, frozenset[str]]:
        self._before("read")
        found: dict[str, set[str]] = {}
        for group in groups:
            for user in self.members.get(group, ()):
                found.setdefault(user, set()).add(group)
        return {u: frozenset(gs) for u, gs in found.items()}

    def licensed_users(self) -> frozenset[str] | None:
        # Not counted nor faulted: tests read it to assert on the licence.
        return self.licensed() if self.lists_licensed_users else None

    def application_access(self) -> ApplicationAccess:
        self._before("read")
        if self.manual_access:
            raise ManualStepRequired(
                "no API reads the application access",
                steps=("Open General configuration > Global permissions",),
            )
        return ApplicationAccess(
            self.licensed_groups, frozenset(self.default_groups), self.admin_groups
        )

    def grant_application_access(self, group: str) -> None:
        after = self._before("grant")
        if self.manual_access:
            raise ManualStepRequired(
                f"no API grants application access to {group}",
                steps=(
                    "Open General configuration > Global permissions > Edit Permissions",
                    f"Add the group {group} and tick Can use",
                ),
            )
        if group not in self.members:
            raise GroupNotFound(f"group {group!r} does not exist", status=404)
        if group not in self.licensed_groups:
            self.licensed_groups = self.licensed_groups | {group}
            self.changes.append(("grant", "", group))
            self._check(f"application access granted to {group}")
        self._after(after)

    def revoke_application_access(self, group: str, *, default_group: bool = True) -> None:
        after = self._before("revoke")
        if self.manual_access:
            raise ManualStepRequired(
                f"no API takes application access away from {group}",
                steps=(
                    "Open General configuration > Global permissions > Edit Permissions",
                    f"Untick Can use for the group {group}",
                ),
            )
        if group in self.licensed_groups:
            self.licensed_groups = self.licensed_groups - {group}
            self.changes.append(("revoke", "", group))
        if default_group:
            self.default_groups.discard(group)
        self._after(after)

    # -- what tests read and change --------------------------------------------------------

    def licensed(self) -> frozenset[str]:
        """Every user who counts against the licence now."""
        users = set(self.licensed_directly)
        for group in self.licensed_groups | self.admin_groups:
            users |= self.members.get(group, set())
        return frozenset(users - self.inactive)

    def known_users(self) -> frozenset[str]:
        users = set(self.licensed_directly) | self.inactive
        for members in self.members.values():
            users |= members
        return frozenset(users)

    def state(self) -> dict[str, object]:
        """Everything a change could touch, as plain sorted values (to compare before/after)."""
        return {
            "tier": self.tier,
            "members": {g: sorted(us) for g, us in sorted(self.members.items())},
            "licensed_groups": sorted(self.licensed_groups),
            "admin_groups": sorted(self.admin_groups),
            "default_groups": sorted(self.default_groups),
            "licensed_directly": sorted(self.licensed_directly),
            "inactive": sorted(self.inactive),
        }

    def group(self, name: str) -> frozenset[str]:
        return frozenset(self.members.get(name, set()))

    def set_tier(self, tier: int) -> None:
        """A new licence; going below the licensed count is recorded as a breach."""
        self.tier = tier
        self._check(f"tier set to {tier}")

    def license_directly(self, user: str, licensed: bool = True) -> None:
        """An administrator grants (or withdraws) application access outside the pool."""
        if licensed:
            self.licensed_directly.add(user)
        else:
            self.licensed_directly.discard(user)
        self._check(f"{user} licensed directly")

    def figures(
        self, groups: PoolGroups = DEFAULT_GROUPS, excluded: Iterable[str] = ()
    ) -> DirectoryFigures:
        """What a directory reader reports to the policy.

        Licensed outside the pool means licensed but not a managed pool member: an excluded
        pool member in the licensed group counts there too, since floatseat never moves them.
        """
        pool = frozenset(self.group(groups.enabled) | self.group(groups.disabled))
        excluded_ = frozenset(excluded)
        managed = pool - excluded_
        memberships: dict[str, set[str]] = {}
        for name, users in self.members.items():
            for user in users:
                memberships.setdefault(user, set()).add(name)
        return DirectoryFigures(
            tier=self.tier,
            licensed_outside=len(self.licensed() - managed),
            pool=pool,
            groups={u: frozenset(gs) for u, gs in memberships.items()},
            excluded=excluded_,
        )

    # -- faults ----------------------------------------------------------------------------

    def fail(
        self,
        times: int | None = 1,
        *,
        after_apply: bool = False,
        error: BaseException | None = None,
        operations: Iterable[str] = ALL_OPERATIONS,
    ) -> None:
        """Make the next `times` calls (None: every call until `heal()`) raise `error`.

        With `after_apply`, a change lands before the error, as when a request times out
        after the server acted on it. `operations` picks among licence, groups_of, add and
        remove. `error` may be any exception, including a BaseException that stands for the
        process dying mid-call.
        """
        ops = frozenset(operations)
        if not ops <= ALL_OPERATIONS:
            raise ValueError(f"unknown operations: {sorted(ops - ALL_OPERATIONS)}")
        if error is None:
            error = DirectoryUnavailable("the fake directory is failing on purpose")
        self._fault = _Fault(times, after_apply, error, ops)

    def heal(self) -> None:
        self._fault = None

    def _before(self, operation: str) -> BaseException | None:
        """Count the call; raise now, or return the error to raise once the change landed."""
        self.calls += 1
        fault = self._fault
        if fault is None or operation not in fault.operations:
            return None
        if fault.remaining is not None:
            fault.remaining -= 1
            if fault.remaining <= 0:
                self._fault = None
        if fault.after_apply and operation in ("add", "remove"):
            return fault.error
        raise fault.error

    @staticmethod
    def _after(error: BaseException | None) -> None:
        if error is not None:
            raise error

    def _writable(self, user: str, group: str, operation: str) -> None:
        if user in self.read_only_users:
            verb = "add user" if operation == "add" else "remove user"
            where = "to" if operation == "add" else "from"
            raise ReadOnlyDirectory(
                f"You cannot {verb} '{user}' {where} group '{group}'. "
                "The user's directory is read only.",
                status=400,
            )

    def _check(self, cause: str) -> None:
        licensed = len(self.licensed())
        if licensed > self.tier:
            self.breaches.append(Breach(licensed, self.tier, cause))


if TYPE_CHECKING:
    _IMPLEMENTS: ManagedDirectory = FakeDirectory(0)
