"""Reconciling a large directory cheaply, without hiding a change.

The ledger writes only the directory rows that differ and reuses the figures it committed
or loaded while its version stays; the reconciler sends the figures every run. These tests
show that neither shortcut can hide a real change: one user's groups among thousands, a
change committed by another process, a write that rolled back.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from floatseat.directory.fake import FakeDirectory
from floatseat.domain.policy import (
    DirectoryFigures,
    Holder,
    PolicySettings,
    PolicySnapshot,
    Release,
)
from floatseat.service.engine import SeatEngine
from floatseat.service.reconcile import Reconciler, ReconcileSettings
from floatseat.service.runtime import Runtime
from floatseat.store.ledger import SqlLedger, _directory_rows
from floatseat.store.schema import directory_users

E, D, USERS, VIP = "IUM_Enabled", "IUM_Disabled", "confluence-users", "vip"
NOW = 1_750_000_000
SETTINGS = PolicySettings(
    idle_timeout_s=1800, min_hold_s=60, reserve=0, warn_before_s=0, max_revokes_per_sweep=0
)


@pytest.fixture
def ledgers(tmp_path: Path) -> Iterator[list[SqlLedger]]:
    """Ledgers on one SQLite file, as several processes would open it; closed at the end."""
    opened: list[SqlLedger] = []
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    opened.append(SqlLedger.open(url))
    opened.append(SqlLedger.open(url, migrate=False))
    yield opened
    for ledger in opened:
        ledger.close()


def fresh(ledger: SqlLedger) -> SqlLedger:
    """Another ledger on the same database: nothing cached, it reads every row."""
    return SqlLedger(sa.create_engine(ledger.engine.url))


def figures_of(ledger: SqlLedger) -> DirectoryFigures:
    with ledger.transaction() as tx:
        return tx.load().figures


def stored(ledger: SqlLedger) -> dict[str, dict[str, object]]:
    """The `directory_users` rows as they are in the database."""
    with ledger.engine.connect() as connection:
        return {
            r.username: {"in_pool": r.in_pool, "excluded": r.excluded, "groups": r.groups}
            for r in connection.execute(sa.select(directory_users))
        }


def normal(figures: DirectoryFigures) -> tuple[object, ...]:
    """What the ledger keeps of figures: no entry for a user without groups."""
    groups = {u: g for u, g in figures.groups.items() if g}
    return (figures.tier, figures.licensed_outside, figures.pool, groups, figures.excluded)


def save_figures(ledger: SqlLedger, figures: DirectoryFigures) -> int:
    with ledger.transaction() as tx:
        tx.lock()
        before = tx.load()
        after = PolicySnapshot(
            figures,
            before.pins,
            before.holders,
            before.waiters,
            before.locked_until,
            before.pinned,
            before.revokes_paused,
        )
        return tx.save(before, after)


def many(n: int) -> DirectoryFigures:
    users = [f"user{k:05d}" for k in range(n)]
    return DirectoryFigures(
        tier=n,
        pool=frozenset(users),
        groups={u: frozenset({D, USERS}) for u in users},
        excluded=frozenset({users[0]}),
    )


names = st.sampled_from([f"u{k}" for k in range(12)])
group_sets = st.frozensets(st.sampled_from([E, D, USERS, VIP]), max_size=3)
random_figures = st.builds(
    DirectoryFigures,
    tier=st.integers(0, 5),
    licensed_outside=st.integers(0, 2),
    pool=st.frozensets(names),
    groups=st.dictionaries(names, group_sets),
    excluded=st.frozensets(names, max_size=3),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=st.lists(random_figures, min_size=1, max_size=4))
def test_writing_only_the_rows_that_differ_leaves_what_a_full_rewrite_leaves(
    ledgers: list[SqlLedger], steps: list[DirectoryFigures]
) -> None:
    writer, other = ledgers
    for figures in steps:
        save_figures(writer, figures)
        # Row for row what the old full comparison made of the figures, and loaded back
        # the same from the cache, by another ledger and by a ledger that never cached.
        assert stored(writer) == _directory_rows(figures)
        cold = fresh(writer)
        try:
            for ledger in (writer, other, cold):
                assert normal(figures_of(ledger)) == normal(figures)
        finally:
            cold.close()


def test_a_change_committed_by_another_process_is_loaded_not_the_cached_figures(
    ledgers: list[SqlLedger],
) -> None:
    mine, theirs = ledgers
    start = many(2000)
    save_figures(mine, start)
    assert figures_of(mine) is figures_of(mine)  # cached: the same figures, not read again
    # Another process moves one user of 2,000 into a group.
    changed = dict(start.groups)
    changed["user01234"] = frozenset({D, USERS, VIP})
    save_figures(theirs, DirectoryFigures(start.tier, 0, start.pool, changed, start.excluded))
    assert figures_of(mine).groups["user01234"] == {D, USERS, VIP}
    assert stored(mine)["user01234"]["groups"] == sorted({D, USERS, VIP})


def test_a_write_that_rolled_back_never_becomes_the_cached_figures(
    ledgers: list[SqlLedger],
) -> None:
    mine, theirs = ledgers
    start = many(50)
    save_figures(mine, start)
    gone = DirectoryFigures(start.tier, 0, start.pool - {"user00007"}, start.groups)
    with pytest.raises(RuntimeError), mine.transaction() as tx:
        tx.lock()
        before = tx.load()
        tx.save(before, PolicySnapshot(gone, (), (), (), (), frozenset()))
        assert "user00007" not in tx.load().figures.pool  # its own write, inside
        raise RuntimeError("the commit never happens")
    assert "user00007" in figures_of(mine).pool
    # Another process then commits the very version number the rolled-back write had.
    other = DirectoryFigures(start.tier, 0, start.pool - {"user00009"}, start.groups)
    save_figures(theirs, other)
    loaded = figures_of(mine)
    assert "user00007" in loaded.pool and "user00009" not in loaded.pool


class Scene:
    """A reconciler over a FakeDirectory of `n` pool users, five of them holders."""

    def __init__(self, tmp_path: Path, n: int) -> None:
        users = [f"user{k:05d}" for k in range(n)]
        self.holders = users[:5]
        self.fake = FakeDirectory(
            tier=n,
            groups={
                E: set(self.holders),
                D: set(users[5:]),
                USERS: set(users),
                VIP: set(),
            },
        )
        self.ledger = SqlLedger.open(f"sqlite:///{tmp_path / 'ledger.db'}")
        seed = PolicySnapshot(
            DirectoryFigures(tier=n, pool=frozenset(users)),
            (),
            tuple(Holder(u, NOW - 600, NOW - 60) for u in self.holders),
            (),
            (),
            frozenset(),
        )
        with self.ledger.transaction() as tx:
            tx.lock()
            tx.save(tx.load(), seed)
        self.engine = SeatEngine(self.ledger, SETTINGS)
        self.runtime = Runtime(
            ledger=self.ledger, engine=self.engine, policy_settings=SETTINGS, clock=lambda: NOW
        )
        self.reconciler = Reconciler(
            self.runtime,
            self.fake,
            ReconcileSettings(users_group=USERS, extra_groups=(VIP,)),
        )
        self.written: list[str] = []
        sa.event.listen(self.ledger.engine, "before_cursor_execute", self._note)

    def _note(self, conn: object, cursor: object, statement: str, *args: object) -> None:
        if "directory_users" in statement and not statement.lstrip().startswith("SELECT"):
            self.written.append(statement)

    def close(self) -> None:
        self.ledger.close()


def test_one_membership_change_among_thousands_is_saved_and_seen_by_the_policy(
    tmp_path: Path,
) -> None:
    scene = Scene(tmp_path, 3000)
    try:
        first = scene.reconciler.run(NOW)
        assert first.figures.groups["user00042"] == {D, USERS}
        assert scene.written  # the seed had no groups: the first run writes them
        scene.written.clear()
        again = scene.reconciler.run(NOW + 60)
        assert scene.written == []  # nothing changed: no directory row written
        assert again.repairs == 0
        # One user joins a group; one holder leaves the product (every group) by hand.
        scene.fake.members[VIP].add("user00042")
        scene.fake.members[E].discard("user00003")
        scene.fake.members[USERS].discard("user00003")
        report = scene.reconciler.run(NOW + 120)
        assert scene.written
        released = [d.user for d in report.decisions if isinstance(d, Release)]
        assert released == ["user00003"]
        # The policy, the engine's committed state and a ledger that never cached agree.
        cold = fresh(scene.ledger)
        try:
            for figures in (
                figures_of(cold),
                scene.engine.state().figures,
                scene.runtime.state().figures,
            ):
                assert figures.groups["user00042"] == {D, USERS, VIP}
                assert "user00003" not in figures.pool
                assert "user00003" not in figures.groups
            with cold.transaction() as tx:
                holders = {h.user for h in tx.load().holders}
            assert holders == set(scene.holders) - {"user00003"}
            assert normal(figures_of(cold)) == normal(report.figures)
            assert stored(cold) == _directory_rows(report.figures)
        finally:
            cold.close()
    finally:
        scene.close()
