"""Reconciliation: the ledger against the directory's real groups and licence.

Every few minutes (and at start) the service reads the pool groups, the licence and who is
licensed, tells the policy (`DirectoryChanged`), and repairs what an admin changed by hand.
The rules, each repair audited:

1. **New users.** A member of the product's users group (`users_group`) who is in neither
   pool group, not excluded, active and not licensed otherwise, is put in the unlicensed
   group: from then on they float like everyone else. It takes no seat.
2. **Licensed by hand** (in the licensed group, managed, but the ledger seats nobody of that
   name and no move of theirs is pending): they already take a seat in the product, so
   *adopting* them costs nothing; they are adopted as a holder while the policy has a
   floating seat free, else moved out (revoked). Never above the tier: adoption only fills
   a free floating seat, and a revoke frees one. A deactivated user is never adopted. At
   the first start (the ledger never reconciled) these are `floatseat setup`'s first seats:
   adopted the same way, audited as such, and not counted as drift repairs.
3. **A holder outside the licensed group** (a holder or pinned user found only in the
   unlicensed group, no move pending): granted again, through the outbox and its licence
   guard.
4. **Deactivated holders** (when the product lists who is licensed: a holder in the
   licensed group who no longer counts, and the directory confirms them inactive): their
   floating seat goes back to the pool.

Users with an unfinished move are left alone: the outbox is about to settle them. The
reconciler runs on the directory worker's thread, the only one that applies moves, so no
move lands between its reads. In shadow mode it reports the figures and repairs nothing.

**Renamed users.** A rename keeps the user's memberships under the new name, and the old
name disappears: the old name leaves the pool (its floating seat is released first, in the
same run), and a holder's new name, found in the licensed group, is adopted into that seat;
a renamed user without a seat simply floats under the new name. Pins and the ledger's
history stay under the old name (an admin re-pins a renamed pinned user).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from floatseat.directory.port import DEFAULT_GROUPS, ManagedDirectory, PoolGroups
from floatseat.domain.policy import (
    AdminGrant,
    AdminRevoke,
    Decision,
    DirectoryChanged,
    DirectoryFigures,
    Grant,
    SeatPolicy,
)
from floatseat.service.ports import AuditEntry, AuditKind, LicenceReport, MoveAction
from floatseat.service.runtime import Runtime

__all__ = ["RECONCILER", "ReconcileReport", "ReconcileSettings", "Reconciler"]

RECONCILER = "floatseat-reconcile"  # the "admin" named in the reconciler's own grants
REPAIR_RULE = "repair-drift"
PLACE_RULE = "place-new-user"


@dataclass(frozen=True)
class ReconcileSettings:
    groups: PoolGroups = DEFAULT_GROUPS
    users_group: str | None = None  # the product's users group: where new users appear
    excluded: frozenset[str] = frozenset()  # never touched (case-insensitive)
    extra_groups: tuple[str, ...] = ()  # read too: priority classes, group pins, caps
    repair: bool = True  # False in shadow mode: figures only
    max_placements: int = 500  # new users placed per run


@dataclass(frozen=True)
class ReconcileReport:
    at: int
    figures: DirectoryFigures
    licensed: int
    adopted: tuple[str, ...] = ()
    revoked: tuple[str, ...] = ()
    regranted: tuple[str, ...] = ()
    placed: tuple[str, ...] = ()
    deactivated: tuple[str, ...] = ()
    decisions: tuple[Decision, ...] = field(default=(), repr=False)

    @property
    def repairs(self) -> int:
        return sum(
            map(len, (self.adopted, self.revoked, self.regranted, self.placed, self.deactivated))
        )


class Reconciler:
    """Compares and repairs; `run(now)` once per reconciliation."""

    def __init__(
        self, runtime: Runtime, directory: ManagedDirectory, settings: ReconcileSettings
    ) -> None:
        self.runtime = runtime
        self.directory = directory
        self.settings = settings
        self._excluded = frozenset(u.casefold() for u in settings.excluded)

    def run(self, now: int) -> ReconcileReport:
        """One reconciliation at `now`; `DirectoryError` if the directory fails (retried
        at the next run; nothing half-done matters, every step is idempotent)."""
        s, groups = self.settings, self.settings.groups
        read = [groups.enabled, groups.disabled, *s.extra_groups]
        if s.users_group is not None:
            read.append(s.users_group)
        # The directory's own sets, unchanged (a placed user's is replaced, never changed).
        memberships = {u: frozenset(gs) for u, gs in self.directory.memberships(read).items()}
        licensed_users = self.directory.licensed_users()
        licensed_folded = (
            None if licensed_users is None else frozenset(u.casefold() for u in licensed_users)
        )
        with self.runtime.ledger.transaction() as tx:
            # Never reconciled: the licensed group holds `floatseat setup`'s first seats.
            first_start = tx.licence_report() is None
        placed: list[str] = []
        if s.repair and s.users_group is not None:
            placed = self._place_new_users(memberships, licensed_folded, now)
        licence = self._read_licence(now)
        figures = self._figures(memberships, licence.tier, licence.licensed, licensed_folded)
        decisions = list(self.runtime.submit(DirectoryChanged(now, figures)))
        report = ReconcileReport(now, figures, licence.licensed, placed=tuple(placed))
        if s.repair:
            report = self._repair(
                report, memberships, licensed_folded, decisions, now, first_start=first_start
            )
        counters = self.runtime.counters
        counters.last_reconciliation_at = now
        # Taking over setup's first seats is no drift: only the rest counts as repairs.
        counters.drift_repairs += report.repairs - (len(report.adopted) if first_start else 0)
        return report

    # -- reading -------------------------------------------------------------------------

    def _read_licence(self, now: int) -> LicenceReport:
        ledger = self.runtime.ledger
        with ledger.transaction() as tx:
            watermark = tx.move_seq()
        licence = self.directory.licence()
        report = LicenceReport(licence.tier, licence.licensed, now, watermark)
        with ledger.transaction() as tx:
            tx.lock()
            tx.record_licence(report)
        return report

    def _figures(
        self,
        memberships: Mapping[str, frozenset[str]],
        tier: int,
        licensed: int,
        licensed_folded: frozenset[str] | None,
    ) -> DirectoryFigures:
        groups = self.settings.groups
        pool_groups = {groups.enabled, groups.disabled}
        pool = frozenset(u for u, gs in memberships.items() if not gs.isdisjoint(pool_groups))
        excluded = frozenset(u for u in pool if u.casefold() in self._excluded)
        holding = {u.casefold() for u in pool - excluded if groups.enabled in memberships[u]}
        if licensed_folded is not None:
            outside = len(licensed_folded - holding)
        else:
            outside = max(0, licensed - len(holding))
        return DirectoryFigures(
            tier=tier,
            licensed_outside=outside,
            pool=pool,
            groups=dict(memberships),
            excluded=excluded,
        )

    # -- repairs -------------------------------------------------------------------------

    def _place_new_users(
        self,
        memberships: dict[str, frozenset[str]],
        licensed_folded: frozenset[str] | None,
        now: int,
    ) -> list[str]:
        groups, users_group = self.settings.groups, self.settings.users_group
        pool_groups = {groups.enabled, groups.disabled}
        candidates = sorted(
            u
            for u, gs in memberships.items()
            if users_group in gs
            and gs.isdisjoint(pool_groups)
            and u.casefold() not in self._excluded
            and (licensed_folded is None or u.casefold() not in licensed_folded)
        )[: self.settings.max_placements]
        placed = []
        for user in candidates:
            found = self.directory.find_user(user)
            if found is None or not found.active:
                continue
            self.directory.add_user_to_group(user, groups.disabled)
            memberships[user] = memberships[user] | {groups.disabled}
            placed.append(user)
        if placed:
            self._audit(
                [
                    AuditEntry(
                        now,
                        user,
                        AuditKind.USER_PLACED,
                        PLACE_RULE,
                        f"new user: put in {groups.disabled}",
                    )
                    for user in placed
                ]
            )
        return placed

    def _repair(
        self,
        report: ReconcileReport,
        memberships: Mapping[str, frozenset[str]],
        licensed_folded: frozenset[str] | None,
        decisions: list[Decision],
        now: int,
        *,
        first_start: bool = False,
    ) -> ReconcileReport:
        groups = self.settings.groups
        figures = report.figures
        managed = figures.pool - figures.excluded
        with self.runtime.ledger.transaction() as tx:
            busy = tx.users_with_unfinished_moves()
        state = self.runtime.engine.state()
        seated = {h.user for h in state.holders} | set(state.pinned)
        enabled = {u for u in managed if groups.enabled in memberships[u]}
        adopted: list[str] = []
        revoked: list[str] = []
        regranted: list[str] = []
        deactivated: list[str] = []
        # 4. Deactivated holders: their seat back to the pool (confirmed one by one).
        if licensed_folded is not None:
            for holder in sorted(h.user for h in state.holders):
                if holder in enabled and holder.casefold() not in licensed_folded:
                    found = self.directory.find_user(holder)
                    if found is not None and not found.active:
                        deactivated.append(holder)
                        decisions += self.runtime.submit(
                            AdminRevoke(now, holder, RECONCILER, "deactivated in the directory")
                        )
        # 2. Licensed by hand: adopt while a floating seat is free, else move out.
        for user in sorted(enabled - seated - busy - set(deactivated)):
            inactive = licensed_folded is not None and user.casefold() not in licensed_folded
            if not inactive and self._free_seats() > 0:
                got = self.runtime.submit(
                    AdminGrant(now, user, RECONCILER, f"found in {groups.enabled}: adopted")
                )
                decisions += got
                if any(isinstance(d, Grant) for d in got):
                    adopted.append(user)
                    continue
            revoked.append(user)
        # 3. Seated but outside the licensed group: grant again (the outbox guards the tier).
        for user in sorted(seated & managed - enabled - busy):
            regranted.append(user)
        entries = []
        with self.runtime.ledger.transaction() as tx:
            tx.lock()
            for user in revoked:
                move = tx.enqueue(user, MoveAction.REVOKE, REPAIR_RULE, now)
                why = (
                    f"found in {groups.enabled} without a seat in the ledger, "
                    "and no floating seat is free: moved out"
                )
                entries.append(
                    AuditEntry(now, user, AuditKind.DRIFT_REVOKED, REPAIR_RULE, why, move)
                )
            for user in regranted:
                move = tx.enqueue(user, MoveAction.GRANT, REPAIR_RULE, now)
                why = f"holds a seat in the ledger but was not in {groups.enabled}: granted again"
                entries.append(
                    AuditEntry(now, user, AuditKind.DRIFT_REGRANTED, REPAIR_RULE, why, move)
                )
            for user in adopted:
                why = (
                    f"in {groups.enabled} at floatseat's first start (a first seat from "
                    "floatseat setup): adopted as holder"
                    if first_start
                    else f"found in {groups.enabled} without a seat in the ledger: adopted as "
                    "holder"
                )
                entries.append(AuditEntry(now, user, AuditKind.DRIFT_ADOPTED, REPAIR_RULE, why))
            for user in deactivated:
                why = "deactivated in the directory: the floating seat goes back to the pool"
                entries.append(AuditEntry(now, user, AuditKind.USER_DEACTIVATED, REPAIR_RULE, why))
            tx.append_audit(entries)
        if revoked or regranted:
            self.runtime.wake_directory()
        return ReconcileReport(
            report.at,
            figures,
            report.licensed,
            adopted=tuple(adopted),
            revoked=tuple(revoked),
            regranted=tuple(regranted),
            placed=report.placed,
            deactivated=tuple(deactivated),
            decisions=tuple(decisions),
        )

    def _free_seats(self) -> int:
        policy = SeatPolicy.restore(self.runtime.policy_settings, self.runtime.engine.state())
        return policy.free_seats()

    def _audit(self, entries: Iterable[AuditEntry]) -> None:
        with self.runtime.ledger.transaction() as tx:
            tx.append_audit(entries)
