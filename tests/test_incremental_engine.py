"""The engine writes only what an event changed (`SeatPolicy.take_changes()`); the ledger
must end up exactly where the old path (diff two whole snapshots) takes it.

Random event sequences go through the engine on one ledger and through the old path on
another. After every event the state saved in each (read back in a fresh transaction),
the policy's own full snapshot and the engine's `peek()` must all agree, and both
ledgers must hold the same moves and audit rows. Restarts, a second engine writing the
same ledger and transactions that fail halfway make the engine reload from the ledger.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from floatseat.domain.policy import (
    Activity,
    AdminGrant,
    AdminRevoke,
    Decision,
    DirectoryChanged,
    DirectoryFigures,
    Event,
    Grant,
    Pin,
    PinsChanged,
    PolicySettings,
    PolicySnapshot,
    PriorityClass,
    Revoke,
    RevokesPaused,
    SeatPolicy,
    Sweep,
)
from floatseat.service.engine import _KINDS, PIN_BEGAN_RULE, SeatEngine  # the same audit kinds
from floatseat.service.ports import AuditEntry, AuditKind, MoveAction
from floatseat.store.database import upgrade
from floatseat.store.ledger import SqlLedger, SqlLedgerTransaction

USERS = ("ann", "bob", "carl", "dora", "eve", "finn")
GROUPS = ("team-x", "team-y")
# Commits fsync: on a RAM disk where there is one, so that many examples run quickly.
SCRATCH = "/dev/shm" if Path("/dev/shm").is_dir() else None


class Failure(Exception):
    """A transaction that fails after the state was written: it must all roll back."""


# -- the old path, as the engine ran before it recorded changes ---------------------------


class FullDiffEngine:
    """The engine before `take_changes()`: the policy's whole snapshot after every event,
    saved by comparing it with the one before (`SqlLedgerTransaction.save`)."""

    def __init__(self, ledger: SqlLedger, settings: PolicySettings) -> None:
        self.ledger = ledger
        self.settings = settings
        self.loaded: tuple[int, SeatPolicy, PolicySnapshot] | None = None

    def handle(self, event: Event) -> list[Decision]:
        loaded, self.loaded = self.loaded, None
        with self.ledger.transaction() as tx:
            version = tx.lock()
            if loaded is not None and loaded[0] == version:
                _, policy, before = loaded
            else:
                before = tx.load()
                policy = SeatPolicy.restore(self.settings, before)
            decisions = policy.handle(event)
            after = policy.snapshot()
            new_version = tx.save(before, after)
            tx.append_audit(_old_queue_moves(tx, decisions, before, after, event.at))
        self.loaded = (new_version, policy, after)
        return decisions


def _old_queue_moves(
    tx: SqlLedgerTransaction,
    decisions: list[Decision],
    before: PolicySnapshot,
    after: PolicySnapshot,
    at: int,
) -> list[AuditEntry]:
    entries = []
    for d in decisions:
        move_id = None
        if isinstance(d, Grant | Revoke):
            action = MoveAction.GRANT if isinstance(d, Grant) else MoveAction.REVOKE
            move_id = tx.enqueue(d.user, action, d.rule.value, d.at)
        entries.append(AuditEntry(d.at, d.user, _KINDS[type(d)], d.rule.value, d.reason, move_id))
    held = {h.user for h in before.holders}
    for user in sorted(after.pinned - before.pinned - held):
        move_id = tx.enqueue(user, MoveAction.GRANT, PIN_BEGAN_RULE, at)
        reason = "pinned: holds a fixed seat"
        entries.append(AuditEntry(at, user, AuditKind.GRANT, PIN_BEGAN_RULE, reason, move_id))
    return entries


# -- a ledger that fails after the state was written ---------------------------------------


class _Tx:
    def __init__(self, tx: SqlLedgerTransaction, ledger: WrappedLedger) -> None:
        self._tx = tx
        self._ledger = ledger

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tx, name)

    def append_audit(self, entries: Any) -> None:
        self._tx.append_audit(entries)
        if self._ledger.fail_next:
            self._ledger.fail_next = False
            raise Failure("the transaction fails after the state was written")


@dataclass
class WrappedLedger:
    inner: SqlLedger
    fail_next: bool = False

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        with self.inner.transaction() as tx:
            yield _Tx(tx, self)


# -- comparing states ----------------------------------------------------------------------


def normal(snapshot: PolicySnapshot) -> PolicySnapshot:
    """`snapshot` in one order (the ledger's rows come in any), groups without empties."""
    figures = snapshot.figures
    return replace(
        snapshot,
        figures=replace(figures, groups={u: g for u, g in figures.groups.items() if g}),
        holders=tuple(sorted(snapshot.holders, key=lambda h: h.user)),
        waiters=tuple(sorted(snapshot.waiters, key=lambda w: w.user)),
        locked_until=tuple(sorted(snapshot.locked_until)),
    )


def saved(ledger: SqlLedger) -> PolicySnapshot:
    with ledger.transaction() as tx:
        return normal(tx.load())


def history(ledger: SqlLedger) -> tuple[list[Any], list[AuditEntry]]:
    with ledger.transaction() as tx:
        moves = [(m.id, m.user, m.action, m.rule, m.decided_at) for m in tx.moves()]
        return moves, tx.audit_log()


# -- random settings and events ------------------------------------------------------------

users = st.sampled_from(USERS)
group_sets = st.frozensets(st.sampled_from(GROUPS))


@st.composite
def policy_settings(draw: st.DrawFn) -> PolicySettings:
    idle = draw(st.sampled_from((120, 300, 600)))
    return PolicySettings(
        idle_timeout_s=idle,
        min_hold_s=draw(st.sampled_from((0, 60, idle))),
        preempt=draw(st.booleans()),
        preempt_after_s=draw(st.sampled_from((0, 60, idle))),
        warn_before_s=draw(st.sampled_from((0, 60, 300))),
        queue_timeout_s=draw(st.sampled_from((60, 300, 900))),
        reserve=draw(st.integers(0, 1)),
        lock_after_revoke_s=draw(st.sampled_from((0, 120))),
        queue_aging_s=draw(st.sampled_from((0, 60))),
        priority_classes=draw(
            st.sampled_from(((), (PriorityClass("x-first", 1, frozenset({"team-x"})),)))
        ),
        group_caps=draw(st.sampled_from(({}, {"team-x": 1}))),
        group_reservations=draw(st.sampled_from(({}, {"team-y": 1}))),
        max_revokes_per_sweep=draw(st.integers(0, 2)),
    )


@st.composite
def figures(draw: st.DrawFn) -> DirectoryFigures:
    # Mostly everyone in the pool: users outside it only ever get their activity ignored.
    return DirectoryFigures(
        tier=draw(st.integers(1, 6)),
        licensed_outside=draw(st.integers(0, 1)),
        pool=frozenset(USERS) - draw(st.frozensets(users, max_size=2)),
        groups=draw(st.dictionaries(users, group_sets)),
        excluded=draw(st.frozensets(users, max_size=1)),
    )


def pins(now: int) -> st.SearchStrategy[tuple[Pin, ...]]:
    until = st.one_of(st.none(), st.integers(now - 60, now + 900))
    one = st.one_of(
        st.builds(Pin, user=users, until=until),
        st.builds(Pin, group=st.sampled_from(GROUPS), until=until),
    )
    return st.lists(one, max_size=2).map(tuple)


@st.composite
def event_at(draw: st.DrawFn, now: int) -> Event:
    kind = draw(st.sampled_from("AAAAAASSSDPRGV"))
    if kind == "A":
        return Activity(draw(users), now)
    if kind == "S":
        return Sweep(now)
    if kind == "D":
        return DirectoryChanged(now, draw(figures()))
    if kind == "P":
        return PinsChanged(now, draw(pins(now)))
    if kind == "R":
        return RevokesPaused(now, draw(st.sampled_from((None, "frozen"))))
    if kind == "G":
        return AdminGrant(now, draw(users), "admin", "asked")
    return AdminRevoke(now, draw(users), "admin", "asked")


@dataclass(frozen=True)
class Step:
    event: Event
    how: str  # which engine handles it, or what happens around it


@st.composite
def steps(draw: st.DrawFn) -> list[Step]:
    now = 1_000_000
    out = [Step(DirectoryChanged(now, draw(figures())), "first")]
    for _ in range(draw(st.integers(1, 40))):
        now += draw(st.sampled_from((0, 1, 30, 60, 60, 120, 250, 700, -20)))  # -20: late
        how = draw(st.sampled_from(("first",) * 6 + ("second", "restart", "fail")))
        out.append(Step(draw(event_at(now)), how))
    return out


@contextmanager
def ledgers(count: int) -> Iterator[list[SqlLedger]]:
    home = Path(tempfile.mkdtemp(prefix="floatseat-incremental-", dir=SCRATCH))
    opened = []
    try:
        for k in range(count):
            url = f"sqlite:///{home / f'ledger{k}.db'}"
            if k == 0:
                upgrade(url)
            else:  # a copy of the migrated file: migrating again costs most of an example
                shutil.copy(home / "ledger0.db", home / f"ledger{k}.db")
            opened.append(SqlLedger.open(url, migrate=False))
        yield opened
    finally:
        for ledger in opened:
            ledger.close()
        shutil.rmtree(home, ignore_errors=True)


# -- the property --------------------------------------------------------------------------


def drive(settings: PolicySettings, plan: list[Step]) -> None:
    with ledgers(2) as (incremental, full):
        wrapped = WrappedLedger(incremental)
        engines = [SeatEngine(wrapped, settings), SeatEngine(wrapped, settings)]
        reference = FullDiffEngine(full, settings)
        last: SeatEngine | None = None  # the engine that committed last
        for step in plan:
            engine = engines[1 if step.how == "second" else 0]
            if step.how == "restart":
                engines = [SeatEngine(wrapped, settings), SeatEngine(wrapped, settings)]
                engine = engines[0]
            if engine is not last:
                # This engine reloads from the ledger; the old path does too, as it would
                # have: a restored policy may order holders with equal activity otherwise.
                reference.loaded = None
            if step.how == "fail":
                wrapped.fail_next = True
                with pytest.raises(Failure):
                    engine.handle(step.event)
                assert engine.peek() is None  # it forgot the policy it changed
                last = None
                continue  # nothing of it was committed: the old path never sees it
            decisions = engine.handle(step.event)
            assert decisions == reference.handle(step.event), step
            last = engine

            state = saved(incremental)
            assert reference.loaded is not None
            assert state == normal(reference.loaded[1].snapshot()), step  # the full snapshot
            assert state == saved(full), step
            peeked = engine.peek()
            assert peeked is not None and engine.peek() is peeked  # one object per commit
            assert normal(peeked) == state, step
            assert history(incremental) == history(full), step


@hypothesis_settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(settings=policy_settings(), plan=steps())
def test_the_engine_saves_what_the_old_full_diff_saved_after_every_event(
    settings: PolicySettings, plan: list[Step]
) -> None:
    drive(settings, plan)


def test_a_holders_activity_writes_one_row_whatever_the_size_of_the_pool() -> None:
    names = [f"user{k:04d}" for k in range(2000)]
    settings = PolicySettings(idle_timeout_s=1800, min_hold_s=60, warn_before_s=0, reserve=0)
    figures = DirectoryFigures(tier=500, pool=frozenset(names))
    with ledgers(1) as (ledger,):
        engine = SeatEngine(ledger, settings)
        engine.handle(DirectoryChanged(0, figures))
        for name in names:
            engine.handle(Activity(name, 1))
        statements: list[str] = []

        def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            statements.append(statement.split()[0])

        sa.event.listen(ledger.engine, "before_cursor_execute", count)
        engine.handle(Activity(names[0], 2))  # a holder's activity
        engine.handle(Activity(names[-1], 2))  # a waiter's: still waiting
        sa.event.remove(ledger.engine, "before_cursor_execute", count)
    # Per event: the lock, one UPDATE of the holder (none for the waiter), the version.
    assert statements.count("SELECT") == 2
    assert statements.count("UPDATE") == 3
    assert "DELETE" not in statements and "INSERT" not in statements
