"""`SqlLedger`: the seat ledger on SQLAlchemy Core. Implements `floatseat.service.ports.Ledger`.

Mapping happens here, outside the domain: rows become `PolicySnapshot` values and back.
Saving writes only what changed, so that a holder's activity costs one UPDATE, not a
rewrite of the pool: `save_changes` takes the rows the policy says it changed, `save` finds
them by comparing two whole snapshots; the directory users are compared by set and mapping
differences, so a reconciliation that moved 500 users out of 100,000 writes 500 rows.

Loading reads every directory user (a row each, its groups in JSON), which at 100,000 users
costs about a second: a `SqlLedger` keeps the directory figures of the last version it
committed or loaded, and `load` reuses them while the ledger's version is still that one.
Every commit that writes the figures bumps the version, whichever process commits, so an
unchanged version means unchanged figures.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, NamedTuple

import sqlalchemy as sa

from floatseat.domain.policy import (
    DirectoryFigures,
    Holder,
    Pin,
    PolicyChanges,
    PolicySnapshot,
    Waiter,
)
from floatseat.service.errors import LedgerDatabaseError, LedgerNotReady
from floatseat.service.ports import (
    AuditEntry,
    AuditKind,
    Flag,
    LicenceDay,
    LicenceReport,
    Move,
    MoveAction,
    MoveState,
    PolicyOverride,
    admin_entry,
)
from floatseat.store.database import create_engine, ensure_current, upgrade
from floatseat.store.schema import (
    audit_log,
    directory_users,
    feed_positions,
    holders,
    ledger_state,
    licence_days,
    outbox,
    pinned_users,
    revoke_locks,
    service_flags,
    waiters,
)
from floatseat.store.schema import (
    policy_overrides as overrides_table,
)

_CHUNK = 500  # rows per IN (...) list: far below every database's parameter limit
_UNFINISHED = (MoveState.PENDING.value, MoveState.IN_FLIGHT.value)

Row = dict[str, Any]


class SqlLedger:
    """The ledger in a SQL database; one `transaction()` per unit of work."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        # (version, the directory figures committed at it): set only once a commit (or a
        # read that saw no commit in between) has made them true; a miss just loads.
        self._figures: tuple[int, DirectoryFigures] | None = None

    @classmethod
    def open(cls, url: str | sa.URL, *, migrate: bool = True) -> SqlLedger:
        """Connect to `url`; migrate it first unless told not to (then it must be current)."""
        engine = create_engine(url)
        if migrate:
            upgrade(engine)
        else:
            ensure_current(engine)
        return cls(engine)

    @contextmanager
    def transaction(self) -> Iterator[SqlLedgerTransaction]:
        """Commits when the block ends normally; any exception rolls everything back."""
        try:
            with self.engine.begin() as connection:
                tx = SqlLedgerTransaction(connection, self._figures)
                yield tx
        except sa.exc.DBAPIError as error:
            raise LedgerDatabaseError(f"the ledger's database failed: {error.orig}") from error
        if tx.figures_seen is not None:  # committed: they are the figures at that version
            self._figures = tx.figures_seen

    def licence_days(self, since: str | None = None) -> list[LicenceDay]:
        """The daily maximum licensed count, oldest day first; from `since` (YYYY-MM-DD) on."""
        with self.transaction() as tx:
            return tx.licence_days(since)

    def flags(self) -> dict[str, Flag]:
        with self.transaction() as tx:
            return tx.flags()

    def policy_overrides(self) -> dict[str, PolicyOverride]:
        with self.transaction() as tx:
            return tx.policy_overrides()

    def record_admin(self, at: int, by: str, action: str, target: str, detail: str) -> AuditEntry:
        """Audit an admin's action (a pin, an account, a token, ...) in the one audit log:
        kind `admin`, rule `admin-<action>`; the entry written."""
        entry = admin_entry(at, by, action, target, detail)
        with self.transaction() as tx:
            tx.append_audit([entry])
        return entry

    def close(self) -> None:
        self.engine.dispose()


class SqlLedgerTransaction:
    """The ledger's reads and writes inside one database transaction."""

    def __init__(
        self, connection: sa.Connection, figures: tuple[int, DirectoryFigures] | None = None
    ) -> None:
        self._c = connection
        self._figures = figures  # the ledger's figures at a version, to reuse in `load`
        # The figures at a version this transaction read or wrote, for the ledger to keep
        # once it commits (never before: a rolled-back version is used again).
        self.figures_seen: tuple[int, DirectoryFigures] | None = None

    # -- the policy's state ----------------------------------------------------------------

    def lock(self) -> int:
        # FOR UPDATE on PostgreSQL; SQLite already holds the write lock (BEGIN IMMEDIATE).
        query = sa.select(ledger_state.c.version).where(ledger_state.c.id == 1).with_for_update()
        version = self._c.execute(query).scalar_one_or_none()
        if version is None:
            raise LedgerNotReady("the ledger has no state row: was it migrated?")
        return int(version)

    def version(self) -> int:
        query = sa.select(ledger_state.c.version).where(ledger_state.c.id == 1)
        return int(self._c.execute(query).scalar_one())

    def load(self) -> PolicySnapshot:
        state = self._c.execute(sa.select(ledger_state).where(ledger_state.c.id == 1)).one()
        known = self.figures_seen or self._figures  # this transaction's own write first
        if known is not None and known[0] == state.version:
            figures = known[1]
        else:
            figures = self._load_figures(state.tier, state.licensed_outside)
            # Cached only if no commit came between the two reads (READ COMMITTED reads
            # each statement at its own moment; a locked transaction always qualifies).
            if self.version() == state.version:
                self.figures_seen = (state.version, figures)
        return PolicySnapshot(
            figures=figures,
            pins=tuple(Pin(user=p["user"], group=p["group"], until=p["until"]) for p in state.pins),
            holders=tuple(
                Holder(r.username, r.granted_at, r.last_activity, r.warned)
                for r in self._c.execute(sa.select(holders))
            ),
            waiters=tuple(
                Waiter(r.username, r.queued_at, r.rank) for r in self._c.execute(sa.select(waiters))
            ),
            locked_until=tuple(
                sorted((r.username, r.until) for r in self._c.execute(sa.select(revoke_locks)))
            ),
            pinned=frozenset(self._c.execute(sa.select(pinned_users.c.username)).scalars()),
            revokes_paused=state.revokes_paused,
        )

    def _load_figures(self, tier: int, licensed_outside: int) -> DirectoryFigures:
        pool: list[str] = []
        excluded: list[str] = []
        groups: dict[str, frozenset[str]] = {}
        query = sa.select(
            directory_users.c.username,
            directory_users.c.in_pool,
            directory_users.c.excluded,
            directory_users.c.groups,
        )
        for username, in_pool, is_excluded, user_groups in self._c.execute(query):
            if in_pool:
                pool.append(username)
            if is_excluded:
                excluded.append(username)
            if user_groups:
                groups[username] = frozenset(user_groups)
        return DirectoryFigures(
            tier=tier,
            licensed_outside=licensed_outside,
            pool=frozenset(pool),
            groups=groups,
            excluded=frozenset(excluded),
        )

    def save(self, before: PolicySnapshot, after: PolicySnapshot) -> int:
        return self._write(_rows_of(before), _rows_of(after))

    def save_changes(self, changes: PolicyChanges) -> int:
        """`save` from what the policy says it changed (`SeatPolicy.take_changes()`): only
        the rows of the users it names are compared and written. The new version."""
        # Row maps over the changed users only: `_sync` leaves everyone else alone. New
        # rows go in in a snapshot's order (longest idle, first queued), as `save`'s do.
        users = changes.users.items()
        before = _Rows(
            changes.figures_before,
            changes.pins_before,
            changes.pinned_before,
            changes.revokes_paused_before,
            _holder_rows(h for _, (b, _a) in users if (h := b.holder) is not None),
            _waiter_rows(w for _, (b, _a) in users if (w := b.waiter) is not None),
            _lock_rows((u, b.locked_until) for u, (b, _a) in users),
        )
        after = _Rows(
            changes.figures,
            changes.pins,
            changes.pinned,
            changes.revokes_paused,
            _holder_rows(
                sorted(
                    (h for _, (_b, a) in users if (h := a.holder) is not None),
                    key=lambda h: (h.last_activity, h.granted_at, h.user),
                )
            ),
            _waiter_rows(
                sorted(
                    (w for _, (_b, a) in users if (w := a.waiter) is not None),
                    key=lambda w: (w.queued_at, w.user),
                )
            ),
            _lock_rows((u, a.locked_until) for u, (_b, a) in users),
        )
        return self._write(before, after)

    def _write(self, before: _Rows, after: _Rows) -> int:
        """Write what differs from `before` to `after`; bump the version and return it."""
        values: Row = {"version": ledger_state.c.version + 1}
        if after.figures is not before.figures and after.figures != before.figures:
            values["tier"] = after.figures.tier
            values["licensed_outside"] = after.figures.licensed_outside
            self._sync(directory_users, *_directory_changes(before.figures, after.figures))
        if after.revokes_paused != before.revokes_paused:
            values["revokes_paused"] = after.revokes_paused
        if after.pins != before.pins:
            values["pins"] = [
                {"user": p.user, "group": p.group, "until": p.until} for p in after.pins
            ]
        self._sync(holders, before.holders, after.holders)
        self._sync(waiters, before.waiters, after.waiters)
        self._sync(revoke_locks, before.locks, after.locks)
        if after.pinned is not before.pinned:
            self._sync(pinned_users, {u: {} for u in before.pinned}, {u: {} for u in after.pinned})
        update = (
            sa.update(ledger_state)
            .where(ledger_state.c.id == 1)
            .values(values)
            .returning(ledger_state.c.version)
        )
        version = int(self._c.execute(update).scalar_one())
        self.figures_seen = (version, after.figures)
        return version

    def _sync(self, table: sa.Table, before: Mapping[str, Row], after: Mapping[str, Row]) -> None:
        """Make `table` (keyed by username) go from `before` to `after` with few statements."""
        gone = [u for u in before if u not in after]
        for i in range(0, len(gone), _CHUNK):
            self._c.execute(sa.delete(table).where(table.c.username.in_(gone[i : i + _CHUNK])))
        new = [{"username": u, **row} for u, row in after.items() if u not in before]
        if new:
            self._c.execute(sa.insert(table), new)
        changed = [
            {"key": u, **row} for u, row in after.items() if u in before and before[u] != row
        ]
        if changed:
            where = table.c.username == sa.bindparam("key")
            self._c.execute(sa.update(table).where(where), changed)

    def enqueue(self, user: str, action: MoveAction, rule: str, at: int) -> int:
        result = self._c.execute(
            sa.insert(outbox).values(
                username=user,
                action=action.value,
                rule=rule,
                decided_at=at,
                state=MoveState.PENDING.value,
                attempts=0,
                next_try_at=at,
                adds_seat=False,
            )
        )
        assert result.inserted_primary_key is not None
        return int(result.inserted_primary_key[0])

    def append_audit(self, entries: Iterable[AuditEntry]) -> None:
        rows = [
            {
                "at": e.at,
                "username": e.user,
                "kind": e.kind.value,
                "rule": e.rule,
                "reason": e.reason,
                "move_id": e.move_id,
            }
            for e in entries
        ]
        if rows:
            self._c.execute(sa.insert(audit_log), rows)

    # -- the outbox ------------------------------------------------------------------------

    def due_moves(self, now: int, limit: int) -> list[Move]:
        revokes_first = sa.case((outbox.c.action == MoveAction.REVOKE.value, 0), else_=1)
        query = (
            sa.select(outbox)
            .where(outbox.c.state.in_(_UNFINISHED), outbox.c.next_try_at <= now)
            .order_by(revokes_first, outbox.c.id)
            .limit(limit)
        )
        return [_move(row) for row in self._c.execute(query)]

    def move(self, move_id: int) -> Move:
        return _move(self._c.execute(sa.select(outbox).where(outbox.c.id == move_id)).one())

    def seat_wanted(self, user: str) -> bool | None:
        query = sa.select(directory_users.c.in_pool, directory_users.c.excluded).where(
            directory_users.c.username == user
        )
        row = self._c.execute(query).one_or_none()
        if row is None or not row.in_pool or row.excluded:
            return None
        for table in (holders, pinned_users):
            query = sa.select(table.c.username).where(table.c.username == user)
            if self._c.execute(query).first() is not None:
                return True
        return False

    def other_move_in_flight(self, user: str, move_id: int, now: int) -> bool:
        query = sa.select(outbox.c.id).where(
            outbox.c.username == user,
            outbox.c.id != move_id,
            outbox.c.state == MoveState.IN_FLIGHT.value,
            outbox.c.lease_until > now,
        )
        return self._c.execute(query.limit(1)).first() is not None

    def claim(self, move_id: int, *, lease_until: int, adds_seat: bool) -> None:
        self._update_move(
            move_id,
            state=MoveState.IN_FLIGHT.value,
            next_try_at=lease_until,
            lease_until=lease_until,
            adds_seat=adds_seat,
        )

    def finish(self, move_id: int, now: int) -> None:
        self._update_move(
            move_id,
            state=MoveState.DONE.value,
            finished_seq=self._next_seq(),
            finished_at=now,
            lease_until=None,
        )

    def retry_later(self, move_id: int, *, next_try_at: int, error: str, attempt: bool) -> None:
        self._update_move(
            move_id,
            next_try_at=next_try_at,
            last_error=error,
            lease_until=None,
            attempts=outbox.c.attempts + (1 if attempt else 0),
        )

    def supersede(self, move_id: int, now: int) -> None:
        self._update_move(
            move_id, state=MoveState.SUPERSEDED.value, finished_at=now, lease_until=None
        )

    def _update_move(self, move_id: int, **values: object) -> None:
        self._c.execute(sa.update(outbox).where(outbox.c.id == move_id).values(**values))

    def move_seq(self) -> int:
        query = sa.select(ledger_state.c.move_seq).where(ledger_state.c.id == 1)
        return int(self._c.execute(query).scalar_one())

    def _next_seq(self) -> int:
        update = (
            sa.update(ledger_state)
            .where(ledger_state.c.id == 1)
            .values(move_seq=ledger_state.c.move_seq + 1)
            .returning(ledger_state.c.move_seq)
        )
        return int(self._c.execute(update).scalar_one())

    def licence_report(self) -> LicenceReport | None:
        row = self._c.execute(sa.select(ledger_state).where(ledger_state.c.id == 1)).one()
        if row.licence_tier is None:
            return None
        return LicenceReport(
            row.licence_tier, row.licence_licensed, row.licence_reported_at, row.licence_watermark
        )

    def record_licence(self, report: LicenceReport) -> None:
        watermark = ledger_state.c.licence_watermark
        self._c.execute(
            sa.update(ledger_state)
            .where(
                ledger_state.c.id == 1, sa.or_(watermark.is_(None), watermark <= report.watermark)
            )
            .values(
                licence_tier=report.tier,
                licence_licensed=report.licensed,
                licence_reported_at=report.reported_at,
                licence_watermark=report.watermark,
            )
        )
        self._raise_licence_day(report)

    def _raise_licence_day(self, report: LicenceReport) -> None:
        day = utc_day(report.reported_at)
        row = self._c.execute(
            sa.select(licence_days.c.max_licensed, licence_days.c.tier).where(
                licence_days.c.day == day
            )
        ).one_or_none()
        if row is None:
            self._c.execute(
                sa.insert(licence_days).values(
                    day=day,
                    max_licensed=report.licensed,
                    tier=report.tier,
                    max_at=report.reported_at,
                )
            )
        elif report.licensed > row.max_licensed or report.tier != row.tier:
            values: Row = {"tier": report.tier}
            if report.licensed > row.max_licensed:
                values.update(max_licensed=report.licensed, max_at=report.reported_at)
            self._c.execute(sa.update(licence_days).where(licence_days.c.day == day).values(values))

    def licence_days(self, since: str | None = None) -> list[LicenceDay]:
        query = sa.select(licence_days).order_by(licence_days.c.day)
        if since is not None:
            query = query.where(licence_days.c.day >= since)
        return [LicenceDay(r.day, r.max_licensed, r.tier) for r in self._c.execute(query)]

    def seats_in_flight(self, watermark: int, except_move: int) -> int:
        query = sa.select(sa.func.count()).where(
            outbox.c.action == MoveAction.GRANT.value,
            outbox.c.adds_seat.is_(True),
            outbox.c.id != except_move,
            sa.or_(
                outbox.c.state == MoveState.IN_FLIGHT.value,
                sa.and_(outbox.c.state == MoveState.DONE.value, outbox.c.finished_seq > watermark),
            ),
        )
        return int(self._c.execute(query).scalar_one())

    def shadow(self, move_id: int, now: int) -> None:
        """Shadow mode: the move is recorded as decided and never applied."""
        self._update_move(
            move_id, state=MoveState.SHADOWED.value, finished_at=now, lease_until=None
        )

    def users_with_unfinished_moves(self) -> frozenset[str]:
        query = sa.select(outbox.c.username).where(outbox.c.state.in_(_UNFINISHED)).distinct()
        return frozenset(self._c.execute(query).scalars())

    def backlog(self, now: int) -> tuple[int, int | None]:
        """Unfinished moves, and when the oldest of them was decided (None if none)."""
        query = sa.select(sa.func.count(), sa.func.min(outbox.c.decided_at)).where(
            outbox.c.state.in_(_UNFINISHED)
        )
        count, oldest = self._c.execute(query).one()
        return int(count), None if oldest is None else int(oldest)

    # -- the service's flags and feed positions ----------------------------------------------

    def flags(self) -> dict[str, Flag]:
        rows = self._c.execute(sa.select(service_flags).order_by(service_flags.c.name))
        return {r.name: Flag(r.name, r.reason, r.set_by, r.set_at) for r in rows}

    def set_flag(self, flag: Flag) -> None:
        self._c.execute(sa.delete(service_flags).where(service_flags.c.name == flag.name))
        self._c.execute(
            sa.insert(service_flags).values(
                name=flag.name, reason=flag.reason[:500], set_by=flag.set_by, set_at=flag.set_at
            )
        )

    def clear_flag(self, name: str) -> bool:
        result = self._c.execute(sa.delete(service_flags).where(service_flags.c.name == name))
        return bool(result.rowcount)

    def feed_positions(self) -> dict[str, Any]:
        """What each feed saved last (its followers' positions, or other JSON), by feed."""
        rows = self._c.execute(sa.select(feed_positions.c.feed, feed_positions.c.positions))
        return {r.feed: r.positions for r in rows}

    def save_feed_positions(self, saved: Mapping[str, Any], at: int) -> None:
        if not saved:
            return
        keys = list(saved)
        self._c.execute(sa.delete(feed_positions).where(feed_positions.c.feed.in_(keys)))
        self._c.execute(
            sa.insert(feed_positions),
            [{"feed": k, "positions": v, "saved_at": at} for k, v in saved.items()],
        )

    def policy_overrides(self) -> dict[str, PolicyOverride]:
        """The admin's policy overrides, by setting name."""
        rows = self._c.execute(sa.select(overrides_table).order_by(overrides_table.c.name))
        return {r.name: PolicyOverride(r.name, r.value, r.set_by, r.set_at) for r in rows}

    def set_policy_overrides(self, overrides: Iterable[PolicyOverride]) -> None:
        """Replace every override with `overrides`."""
        rows = [
            {"name": o.name, "value": o.value, "set_by": o.set_by, "set_at": o.set_at}
            for o in overrides
        ]
        self._c.execute(sa.delete(overrides_table))
        if rows:
            self._c.execute(sa.insert(overrides_table), rows)

    # -- reading ---------------------------------------------------------------------------

    def moves(self) -> list[Move]:
        return [_move(row) for row in self._c.execute(sa.select(outbox).order_by(outbox.c.id))]

    def audit_log(self) -> list[AuditEntry]:
        query = sa.select(audit_log).order_by(audit_log.c.id)
        return [
            AuditEntry(r.at, r.username, AuditKind(r.kind), r.rule, r.reason, r.move_id)
            for r in self._c.execute(query)
        ]


def utc_day(at: int) -> str:
    """The UTC day of an instant (seconds since the epoch), as YYYY-MM-DD."""
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d")


def _move(row: sa.Row[Any]) -> Move:
    return Move(
        id=row.id,
        user=row.username,
        action=MoveAction(row.action),
        rule=row.rule,
        decided_at=row.decided_at,
        state=MoveState(row.state),
        attempts=row.attempts,
        next_try_at=row.next_try_at,
        last_error=row.last_error,
        finished_at=row.finished_at,
    )


def _directory_rows(
    figures: DirectoryFigures, users: Iterable[str] | None = None
) -> dict[str, Row]:
    """The `directory_users` rows of `users` (default: everyone the figures name); a user
    the figures name nowhere (no pool, not excluded, no group) has no row."""
    pool, excluded, groups = figures.pool, figures.excluded, figures.groups
    if users is None:
        users = set(pool) | set(excluded) | {u for u, g in groups.items() if g}
    rows: dict[str, Row] = {}
    for u in users:
        in_pool, is_excluded, user_groups = u in pool, u in excluded, groups.get(u)
        if in_pool or is_excluded or user_groups:
            rows[u] = {
                "in_pool": in_pool,
                "excluded": is_excluded,
                "groups": sorted(user_groups or ()),
            }
    return rows


def _directory_changes(
    before: DirectoryFigures, after: DirectoryFigures
) -> tuple[dict[str, Row], dict[str, Row]]:
    """The `directory_users` rows, before and after, of the users whose row may differ: in
    or out of the pool or the excluded, or with other groups. `_sync` writes what differs."""
    touched = set(before.pool ^ after.pool)
    touched |= before.excluded ^ after.excluded
    groups_before, groups_after = before.groups, after.groups
    if groups_before is not groups_after:
        touched.update(u for u, g in groups_after.items() if groups_before.get(u) != g)
        touched.update(u for u in groups_before if u not in groups_after)
    return _directory_rows(before, touched), _directory_rows(after, touched)


class _Rows(NamedTuple):
    """The policy's state as the ledger stores it; the row maps may cover only some users."""

    figures: DirectoryFigures
    pins: tuple[Pin, ...]
    pinned: frozenset[str]
    revokes_paused: str | None
    holders: dict[str, Row]
    waiters: dict[str, Row]
    locks: dict[str, Row]


def _rows_of(snapshot: PolicySnapshot) -> _Rows:
    return _Rows(
        snapshot.figures,
        snapshot.pins,
        snapshot.pinned,
        snapshot.revokes_paused,
        _holder_rows(snapshot.holders),
        _waiter_rows(snapshot.waiters),
        _lock_rows(snapshot.locked_until),
    )


def _holder_rows(rows: Iterable[Holder]) -> dict[str, Row]:
    return {
        h.user: {"granted_at": h.granted_at, "last_activity": h.last_activity, "warned": h.warned}
        for h in rows
    }


def _waiter_rows(rows: Iterable[Waiter]) -> dict[str, Row]:
    return {w.user: {"queued_at": w.queued_at, "rank": w.rank} for w in rows}


def _lock_rows(rows: Iterable[tuple[str, int | None]]) -> dict[str, Row]:
    return {u: {"until": t} for u, t in rows if t is not None}
