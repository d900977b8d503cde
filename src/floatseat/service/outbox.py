"""`OutboxExecutor`: applies the ledger's pending moves to the directory, safely.

Separate from deciding, so that a slow or failing directory never holds up a decision.
Each pass:

1. applies the due revokes, which free seats;
2. reads the licence from the directory (the licensed count now);
3. applies the due grants, each only if the ledger still wants it and the directory has a
   seat free: tier - reported licensed count - grants that may be missing from that count.

A move is claimed in a locked ledger transaction before the directory is called and marked
done in another after, so a crash anywhere leaves it in flight: counted against free seats
until a later attempt finds out where the user is. Every directory call is idempotent, so
applying a move again is harmless. Failures wait with exponential backoff (at least the
server's Retry-After) and are retried for as long as it takes; every attempt is audited.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from floatseat.directory.port import DEFAULT_GROUPS, Directory, PoolGroups
from floatseat.service.errors import DirectoryError
from floatseat.service.ports import (
    AuditEntry,
    AuditKind,
    Ledger,
    LedgerTransaction,
    LicenceReport,
    Move,
    MoveAction,
    MoveState,
)


@dataclass(frozen=True)
class OutboxSettings:
    """Timing of the outbox, in seconds."""

    backoff_base_s: int = 5  # wait after the first failure; doubles with each one after
    backoff_max_s: int = 900
    lease_s: int = 60  # how long a claimed move is left alone; longer than any call's timeout
    defer_s: int = 5  # wait before trying again a grant the directory had no seat for
    batch: int = 200  # moves per pass

    def __post_init__(self) -> None:
        if min(self.backoff_base_s, self.backoff_max_s, self.lease_s, self.defer_s) < 1:
            raise ValueError("outbox delays must be at least one second")
        if self.batch < 1:
            raise ValueError("the outbox batch must hold at least one move")

    def backoff(self, failures: int, retry_after_s: int | None = None) -> int:
        """Seconds to wait after the `failures`-th failure in a row."""
        delay = min(self.backoff_max_s, self.backoff_base_s << max(0, failures - 1))
        return max(delay, retry_after_s or 0)


DEFAULT_OUTBOX = OutboxSettings()


@dataclass
class PassReport:
    """What one pass did, by move id."""

    applied: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    deferred: list[int] = field(default_factory=list)
    superseded: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)  # another executor has it right now
    shadowed: list[int] = field(default_factory=list)  # shadow mode: recorded, not applied


class OutboxExecutor:
    """Applies the outbox through a `Directory`; run `run_once(now)` every few seconds."""

    def __init__(
        self,
        ledger: Ledger,
        directory: Directory,
        groups: PoolGroups = DEFAULT_GROUPS,
        settings: OutboxSettings = DEFAULT_OUTBOX,
    ) -> None:
        self.ledger = ledger
        self.directory = directory
        self.groups = groups
        self.settings = settings

    def run_once(self, now: int) -> PassReport:
        report = PassReport()
        with self.ledger.transaction() as tx:
            due = tx.due_moves(now, self.settings.batch)
        grants = [m for m in due if m.action is MoveAction.GRANT]
        for move in due:
            if move.action is MoveAction.REVOKE:
                self._apply(move, now, report)
        if not grants:
            return report
        try:
            self._read_licence(now)
        except DirectoryError as error:
            for move in grants:  # no grant without fresh figures: the count may have grown
                self._failed(move, now, error, report, what="reading the licence")
            return report
        for move in grants:
            self._apply(move, now, report)
        return report

    def _read_licence(self, now: int) -> None:
        with self.ledger.transaction() as tx:
            watermark = tx.move_seq()  # grants finished by now are in the count read next
        licence = self.directory.licence()
        with self.ledger.transaction() as tx:
            tx.lock()
            tx.record_licence(LicenceReport(licence.tier, licence.licensed, now, watermark))

    def _apply(self, move: Move, now: int, report: PassReport) -> None:
        try:
            groups = self.directory.groups_of(move.user)
        except DirectoryError as error:
            self._failed(move, now, error, report, what="reading the user's groups")
            return
        grant = move.action is MoveAction.GRANT
        adds_seat = grant and self.groups.enabled not in groups
        with self.ledger.transaction() as tx:
            tx.lock()
            current = tx.move(move.id)
            if (
                current.state not in (MoveState.PENDING, MoveState.IN_FLIGHT)
                or current.next_try_at > now
                or tx.other_move_in_flight(move.user, move.id, now)
            ):
                report.skipped.append(move.id)
                return
            unwanted = self._unwanted(tx, current, groups)
            if unwanted is not None:
                tx.supersede(move.id, now)
                tx.append_audit([_entry(now, current, AuditKind.MOVE_SUPERSEDED, unwanted)])
                report.superseded.append(move.id)
                return
            if adds_seat:
                full = _no_free_seat(tx, move.id)
                if full is not None:
                    if current.last_error != full:  # audit a change, not every pass
                        tx.append_audit([_entry(now, current, AuditKind.MOVE_DEFERRED, full)])
                    tx.retry_later(
                        move.id, next_try_at=now + self.settings.defer_s, error=full, attempt=False
                    )
                    report.deferred.append(move.id)
                    return
            tx.claim(move.id, lease_until=now + self.settings.lease_s, adds_seat=adds_seat)
        try:
            # Read the groups again now that the move is claimed: the first read may predate
            # another executor's move for this user, and calls planned from it could skip one.
            groups = self.directory.groups_of(move.user)
            if grant and not adds_seat and self.groups.enabled not in groups:
                # Planned as taking no seat, but it would take one: back to the guard.
                raise DirectoryError("the user's groups changed while the move was claimed")
            for call, group in self._calls(grant, groups):
                call(move.user, group)
        except DirectoryError as error:
            self._failed(current, now, error, report, what="moving the user")
            return
        with self.ledger.transaction() as tx:
            tx.finish(move.id, now)
            done = "into the licensed group" if grant else "out of the licensed group"
            tx.append_audit([_entry(now, current, AuditKind.MOVE_APPLIED, f"moved {done}")])
        report.applied.append(move.id)

    def _unwanted(self, tx: LedgerTransaction, move: Move, groups: frozenset[str]) -> str | None:
        """Why the move is no longer wanted, or None if it still is."""
        wanted = tx.seat_wanted(move.user)
        if wanted is None:
            return "no longer managed by floatseat (left the pool, or excluded)"
        if wanted != (move.action is MoveAction.GRANT):
            return "a later decision undid it" if wanted else "the user no longer holds a seat"
        if self.groups.enabled not in groups and self.groups.disabled not in groups:
            return "the user is in neither pool group in the directory"
        return None

    def _calls(
        self, grant: bool, groups: frozenset[str]
    ) -> list[tuple[Callable[[str, str], None], str]]:
        """The directory calls that make the move, in a safe order.

        Add first, then remove: in between the user is in both groups, so they never drop
        out of the pool; only the licensed group grants access, so a revoke frees the seat at
        its second call and a grant takes one at its first, after the guard.
        """
        take, give = (
            (self.groups.enabled, self.groups.disabled)
            if grant
            else (self.groups.disabled, self.groups.enabled)
        )
        calls: list[tuple[Callable[[str, str], None], str]] = []
        if take not in groups:
            calls.append((self.directory.add_user_to_group, take))
        if give in groups:
            calls.append((self.directory.remove_user_from_group, give))
        return calls

    def _failed(
        self, move: Move, now: int, error: DirectoryError, report: PassReport, *, what: str
    ) -> None:
        delay = self.settings.backoff(move.attempts + 1, error.retry_after_s)
        reason = f"{what}: {error}; next try in {delay} s"
        with self.ledger.transaction() as tx:
            tx.retry_later(move.id, next_try_at=now + delay, error=str(error), attempt=True)
            tx.append_audit([_entry(now, move, AuditKind.MOVE_FAILED, reason)])
        report.failed.append(move.id)


class ShadowOutbox:
    """Shadow mode's outbox: every due move is recorded as what would have been done, and
    the directory is never changed. Same `run_once(now)` as `OutboxExecutor`."""

    def __init__(self, ledger: Ledger, settings: OutboxSettings = DEFAULT_OUTBOX) -> None:
        self.ledger = ledger
        self.settings = settings

    def run_once(self, now: int) -> PassReport:
        report = PassReport()
        with self.ledger.transaction() as tx:
            tx.lock()
            for move in tx.due_moves(now, self.settings.batch):
                done = "into" if move.action is MoveAction.GRANT else "out of"
                reason = f"shadow mode: would have moved the user {done} the licensed group"
                tx.shadow(move.id, now)
                tx.append_audit([_entry(now, move, AuditKind.MOVE_SHADOWED, reason)])
                report.shadowed.append(move.id)
        return report


def _no_free_seat(tx: LedgerTransaction, move_id: int) -> str | None:
    """Why the directory has no seat for one more user, or None if it has one."""
    licence = tx.licence_report()
    if licence is None:
        return "the directory has not reported its licence yet"
    in_flight = tx.seats_in_flight(licence.watermark, except_move=move_id)
    if licence.licensed + in_flight < licence.tier:
        return None
    # Worded without the changing counts, so that the audit gets it once per wait.
    return f"no free seat in the directory: all {licence.tier} of its tier are taken"


def _entry(now: int, move: Move, kind: AuditKind, reason: str) -> AuditEntry:
    return AuditEntry(now, move.user, kind, move.rule, reason, move.id)
