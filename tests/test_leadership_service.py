"""The serve loops' side of leadership (service/runner.py), under an election decided by hand.

The service of test_serve_loop's world (SQLite ledger, FakeDirectory, one node's logs) runs
its three threads; a `HandElection` in the place of PostgreSQL's says whether it leads and
under which epoch, and holds the fence as PostgresLeadership does: calls pass only in the
term of the current epoch.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import sqlalchemy as sa
from test_serve_loop import World
from test_serve_sim import wait_for

from floatseat.service import runner
from floatseat.service.bootstrap import Served
from floatseat.service.errors import Deposed
from floatseat.service.feeds import Feeds
from floatseat.service.ports import LeaderInfo
from floatseat.service.reconcile import ReconcileReport


@dataclass
class HandElection:
    """Leads under `epoch` (None: follows), with no takeover grace."""

    epoch: int | None = None
    instance: str = "alpha"
    takeover_grace_s: float = 0.0
    campaigns: int = 0
    terms: list[int] = field(default_factory=list)  # begun, in order
    released: int = 0  # release_in_flight calls

    @property
    def leading(self) -> bool:
        return self.epoch is not None

    def acting(self) -> bool:
        return self.leading

    def campaign(self) -> bool:
        self.campaigns += 1
        return self.leading

    def begin_term(self) -> int:
        if self.epoch is None:
            raise Deposed("not leading")
        self.terms.append(self.epoch)
        return self.epoch

    def check(self) -> None:
        if self.epoch is None or self.terms[-1:] != [self.epoch]:
            raise Deposed("not in the term of the current epoch")

    def release_in_flight(self) -> int:
        self.check()
        self.released += 1
        return 0

    def info(self) -> LeaderInfo | None:
        return LeaderInfo(self.epoch or 0, self.instance if self.leading else None, None, None)

    def resign(self, *, calls_over: bool = True) -> None:
        self.epoch = None


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path)
    yield w
    w.served.service.stop()
    w.served.services.close()


def run(served: Served, election: HandElection) -> None:
    """Start `served`'s threads, turning fast, under `election`."""
    served.runtime.leadership = election
    service = served.service
    service.poll_interval_s = service.outbox_interval_s = service.heartbeat_s = 0.02
    service.start()


def test_a_re_election_the_loops_never_saw_as_a_loss_begins_a_new_term(world: World) -> None:
    """Deposed and elected again between two turns (or during one long step): the loops
    compare epochs, so the new leadership gets a term of its own: moves left in flight are
    taken over, the directory reconciled, the feeds read on from the saved positions."""
    served = world.served
    reconciler = served.service.directory.reconciler
    assert reconciler is not None
    reconciled: list[int] = []
    reconcile = reconciler.run

    def counted_reconcile(now: int) -> ReconcileReport:
        reconciled.append(now)
        return reconcile(now)

    activity_terms: list[Feeds | None] = []
    begin_activity = served.service.activity.begin_term

    def counted_activity_term(feeds: Feeds | None, now: float) -> None:
        activity_terms.append(feeds)
        begin_activity(feeds, now)

    reconciler.run = counted_reconcile  # type: ignore[method-assign]
    served.service.activity.begin_term = counted_activity_term  # type: ignore[method-assign]
    election = HandElection(epoch=1)
    run(served, election)
    wait_for(lambda: len(reconciled) == 1, timeout=5)
    assert (election.terms, election.released) == ([1], 1)
    assert activity_terms == []  # the feeds were built for the start

    election.epoch = 3  # lost and won again: acting() never said False
    served.service.directory.wake()
    wait_for(lambda: len(reconciled) == 2 and len(activity_terms) == 1, timeout=5)
    assert (election.terms, election.released) == ([1, 3], 2)
    assert activity_terms[0] is not None  # built from the positions the last leader saved


def test_a_failed_or_stuck_policy_refresh_leaves_the_heartbeat_going(
    world: World, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Reading the policy overrides fails with something other than an EngineError (the
    connection pool is exhausted), then hangs (waiting for a connection): the instance logs
    the failure and goes on campaigning at every heartbeat all the while."""
    monkeypatch.setattr(runner, "POLICY_CHECK_INTERVAL_S", 0.05)
    refreshes: list[int] = []
    released = threading.Event()

    def exhausted_then_stuck() -> bool:
        refreshes.append(1)
        if len(refreshes) == 1:
            raise sa.exc.TimeoutError("QueuePool limit of size 5 overflow 10 reached")
        released.wait(30)
        return False

    monkeypatch.setattr(world.served.runtime, "refresh_policy", exhausted_then_stuck)
    election = HandElection()  # a follower: it campaigns at every heartbeat
    try:
        run(world.served, election)
        wait_for(lambda: len(refreshes) >= 2, timeout=5)  # failed once, now stuck
        campaigns = election.campaigns
        wait_for(lambda: election.campaigns > campaigns + 2, timeout=5)
        assert world.served.service.alive()
        assert "reading the policy overrides failed" in caplog.text
    finally:
        released.set()
