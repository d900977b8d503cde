"""`FakeDirectory`: a small working directory in memory, for tests and demos.

It counts the licence as the products do (members of the licensed groups, plus users
licensed outside any group, such as administrators), accepts a change that goes over the
tier as the products do (Confluence then turns read-only), and records every such breach so
that a test can assert there was none. Failures are injected with `fail()`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from floatseat.directory.port import DEFAULT_GROUPS, Licence, PoolGroups
from floatseat.domain.policy import DirectoryFigures
from floatseat.service.errors import DirectoryUnavailable

ALL_OPERATIONS = frozenset({"licence", "groups_of", "add", "remove"})


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
    """Groups, a licence and injectable failures; implements `Directory`."""

    def __init__(
        self,
        tier: int,
        *,
        groups: Mapping[str, Iterable[str]] | None = None,
        licensed_groups: Iterable[str] = (DEFAULT_GROUPS.enabled,),
        licensed_directly: Iterable[str] = (),
    ) -> None:
        self.tier = tier
        self.members: dict[str, set[str]] = {g: set(us) for g, us in (groups or {}).items()}
        self.licensed_groups = frozenset(licensed_groups)
        # Administrators and individual "Can use" grants: licensed without a group.
        self.licensed_directly = set(licensed_directly)
        self.breaches: list[Breach] = []
        self.changes: list[tuple[str, str, str]] = []  # (add|remove, user, group) that changed
        self.calls = 0
        self._fault: _Fault | None = None
        self._check("initial state")

    # -- the Directory port ----------------------------------------------------------------

    def licence(self) -> Licence:
        self._before("licence")
        return Licence(self.tier, len(self.licensed_users()))

    def groups_of(self, user: str) -> frozenset[str]:
        self._before("groups_of")
        return frozenset(g for g, us in self.members.items() if user in us)

    def add_user_to_group(self, user: str, group: str) -> None:
        after = self._before("add")
        members = self.members.setdefault(group, set())
        if user not in members:
            members.add(user)
            self.changes.append(("add", user, group))
            self._check(f"{user} added to {group}")
        self._after(after)

    def remove_user_from_group(self, user: str, group: str) -> None:
        after = self._before("remove")
        members = self.members.get(group, set())
        if user in members:
            members.discard(user)
            self.changes.append(("remove", user, group))
        self._after(after)

    # -- what tests read and change --------------------------------------------------------

    def licensed_users(self) -> set[str]:
        users = set(self.licensed_directly)
        for group in self.licensed_groups:
            users |= self.members.get(group, set())
        return users

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
            licensed_outside=len(self.licensed_users() - managed),
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

    def _check(self, cause: str) -> None:
        licensed = len(self.licensed_users())
        if licensed > self.tier:
            self.breaches.append(Breach(licensed, self.tier, cause))
