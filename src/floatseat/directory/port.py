"""The port through which the engine moves users between the pool groups.

Every implementation keeps the contract the outbox relies on:
- adding a member who is already in the group, or removing one who is not, succeeds and
  changes nothing (a move applied twice is harmless);
- a failure raises `DirectoryError` (`DirectoryUnavailable` when a retry may succeed),
  never a transport's own exception.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


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
