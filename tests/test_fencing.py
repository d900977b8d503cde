"""Fencing, deterministically: a deposed leader's late grant never reaches the directory.

Two `floatseat serve` services (in this process, stepped by hand) share one real PostgreSQL
ledger and the simulated Jira. Leader A claims a grant for alice and pauses just before its
directory call (a GC pause, a stalled VM). Meanwhile A's database session is cut, B takes
over, applies that grant itself, revokes alice on an admin's word and gives the last free
seat to bob. Then A wakes up and would add alice to IUM_Enabled: one seat over the licence,
and the admin's revoke undone. The fence refuses the call before it is sent, also when A
has been elected again in the meantime (B died too): the call belongs to A's earlier term.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from postgres_server import Server
from simulator import SimHandle, running_simulator
from test_serve_sim import D, E, prepare, settings_for

from floatseat.directory.http import AtlassianHttp
from floatseat.domain.policy import Activity, AdminRevoke
from floatseat.service.bootstrap import Served, build_service, connect_directory
from floatseat.service.errors import Deposed
from floatseat.service.outbox import PassReport
from floatseat.service.ports import AuditKind
from floatseat.store.leadership import PostgresLeadership


@dataclass
class Overtaken:
    """A paused in the middle of its grant for alice; B took over and acted since."""

    sim: SimHandle
    a: Served
    b: Served
    lead_a: PostgresLeadership
    lead_b: PostgresLeadership
    alice: str
    bob: str
    gate: threading.Event  # set: A wakes up and goes on with its call
    worker: threading.Thread  # A's directory step
    passes: list[PassReport | None]  # what A's step returned


def end_session(leadership: PostgresLeadership, via: sa.Engine) -> None:
    """Cut `leadership`'s database session from the server side (as a network cut would)."""
    assert leadership._connection is not None
    pid = leadership._connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
    with via.connect() as connection:
        assert connection.execute(sa.select(sa.func.pg_terminate_backend(pid))).scalar()


TIMEOUT_S = 1.0  # directory_timeout_s
GRACE_S = 1.2  # the takeover grace, just longer


def wait_until_acting(leadership: PostgresLeadership) -> None:
    """Campaign until `leadership` leads and its takeover grace is over."""
    deadline = time.monotonic() + 5 + leadership.takeover_grace_s
    while not (leadership.campaign() and leadership.acting()):
        assert time.monotonic() < deadline, f"{leadership.instance} never took over"
        time.sleep(0.05)


@contextmanager
def overtaken(tmp_path: Path, postgres: Server, *, a_grace_s: float) -> Iterator[Overtaken]:
    """The scenario up to A's wake-up; A's takeover grace is `a_grace_s` (B's `GRACE_S`)."""
    url = postgres.new_database()
    with running_simulator(product="jira", users=4, tier=10, active_people=False) as sim:
        prepare(sim, tmp_path / "setup")
        alice, bob = sim.users[0], sim.users[1]
        # A lease far longer than the test: A is deposed by its cut session, not by time.
        common = {"database_url": url, "ha_lease_s": 600.0, "directory_timeout_s": TIMEOUT_S}
        a_settings = settings_for(
            sim,
            tmp_path / "a",
            tmp_path / "logs",
            instance_name="a",
            ha_takeover_grace_s=a_grace_s,
            **common,
        )
        b_settings = settings_for(
            sim,
            tmp_path / "b",
            tmp_path / "logs",
            instance_name="b",
            ha_takeover_grace_s=GRACE_S,
            **common,
        )
        a = build_service(a_settings, connect_directory(a_settings))
        b = build_service(b_settings, connect_directory(b_settings))
        gate = threading.Event()
        worker: threading.Thread | None = None
        try:
            lead_a = a.runtime.leadership
            lead_b = b.runtime.leadership
            assert isinstance(lead_a, PostgresLeadership)
            assert isinstance(lead_b, PostgresLeadership)
            # A new ledger: A acts at once, whatever its grace.
            assert lead_a.campaign() and lead_a.acting() and not lead_b.campaign()
            a.service.directory.begin_term()
            a.service.directory.step(time.time())  # reconciles: setup's holders adopted
            for user in sim.users:  # everyone idle, then exactly one seat free
                a.runtime.submit(AdminRevoke(int(time.time()), user, "admin", "start empty"))
            a.service.directory.step(time.time())
            assert sim.state()["groups"][E] == []
            sim.set_licence(tier=sim.state()["licensed"] + 1)
            a.runtime.reconcile_now()
            decided = a.runtime.submit(Activity(alice, int(time.time())))
            assert [type(d).__name__ for d in decided] == ["Grant"]

            # A pauses right before its first write to the directory.
            http = a.directory.http
            assert isinstance(http, AtlassianHttp)
            paused = threading.Event()
            fenced = http.fence

            def pausing_fence(what: str) -> None:
                if not what.startswith("GET"):
                    paused.set()
                    gate.wait(30)
                fenced(what)

            http.fence = pausing_fence
            passes: list[PassReport | None] = []

            def run_a() -> None:
                passes.append(a.service.directory.step(time.time()))

            worker = threading.Thread(target=run_a)
            worker.start()
            assert paused.wait(10), "A never got to its directory write"

            # A's session is cut; B leads, takes over the move in flight, and acts.
            end_session(lead_a, a.services.ledger.engine)
            wait_until_acting(lead_b)
            b.service.directory.begin_term()
            report = b.service.directory.step(time.time())  # applies alice's grant itself
            assert report is not None and report.applied
            assert alice in sim.state()["groups"][E]
            b.runtime.submit(AdminRevoke(int(time.time()), alice, "admin", "needs no seat"))
            b.service.directory.step(time.time())
            b.runtime.submit(Activity(bob, int(time.time())))
            b.service.directory.step(time.time())
            groups = sim.state()["groups"]
            assert alice in groups[D] and alice not in groups[E] and bob in groups[E]
            yield Overtaken(sim, a, b, lead_a, lead_b, alice, bob, gate, worker, passes)
        finally:
            gate.set()
            if worker is not None:
                worker.join(30)
            a.close()
            b.close()


def assert_only_b_moved_alice(world: Overtaken) -> None:
    """A's late grant did not reach the directory: B's revoke and bob's seat stand."""
    world.gate.set()  # A wakes up, and would add alice to IUM_Enabled now
    world.worker.join(30)
    groups = world.sim.state()["groups"]
    assert world.alice not in groups[E], "the deposed leader's late grant went through"
    assert world.passes == [None]  # the pass failed: A was deposed (and said so in the log)
    assert world.bob in groups[E]
    assert world.sim.state()["licence_violations"] == 0
    with world.b.services.ledger.transaction() as tx:
        moves = [m for m in tx.moves() if m.user == world.alice]
        applied = [e.move_id for e in tx.audit_log() if e.kind is AuditKind.MOVE_APPLIED]
    grant, revoke = moves[-2:]  # the grant A claimed, the admin's revoke
    assert applied.count(grant.id) == 1  # by B only
    assert applied.count(revoke.id) == 1


def test_a_deposed_leaders_late_grant_is_refused_before_it_is_sent(
    tmp_path: Path, postgres: Server, caplog: pytest.LogCaptureFixture
) -> None:
    with overtaken(tmp_path, postgres, a_grace_s=GRACE_S) as world:
        assert_only_b_moved_alice(world)
        assert "a lost its database connection" in caplog.text


@pytest.mark.parametrize("past_its_grace", [False, True], ids=["in-its-grace", "past-it"])
def test_a_re_elected_leaders_late_grant_of_its_earlier_term_is_refused(
    tmp_path: Path, postgres: Server, caplog: pytest.LogCaptureFixture, past_its_grace: bool
) -> None:
    """B dies after it acted; A is elected again (epoch 3) before its paused call goes on.
    That call belongs to A's first term: the fence refuses it, whether A is still in the
    grace of its new leadership or may already act."""
    with overtaken(tmp_path, postgres, a_grace_s=GRACE_S if past_its_grace else 600.0) as world:
        end_session(world.lead_b, world.a.services.ledger.engine)  # B dies
        with pytest.raises(Deposed, match="lost its database connection"):
            world.lead_b.check()  # (B's own view: it no longer leads)
        assert not world.lead_a.campaign()  # A finds its session gone: steps down
        assert world.lead_a.campaign() and world.lead_a.epoch == 3  # and leads again
        assert not world.lead_a.acting()
        if past_its_grace:
            wait_until_acting(world.lead_a)
        assert_only_b_moved_alice(world)
        assert "a has begun no term under epoch 3" in caplog.text
