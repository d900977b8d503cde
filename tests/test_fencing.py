"""Fencing, deterministically: a deposed leader's late grant never reaches the directory.

Two `floatseat serve` services (in this process, stepped by hand) share one real PostgreSQL
ledger and the simulated Jira. Leader A claims a grant for alice and pauses just before its
directory call (a GC pause, a stalled VM). Meanwhile A's database session is cut, B takes
over, applies that grant itself, revokes alice on an admin's word and gives the last free
seat to bob. Then A wakes up and would add alice to IUM_Enabled: one seat over the licence,
and the admin's revoke undone. The fence refuses the call before it is sent.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from postgres_server import Server
from simulator import running_simulator
from test_serve_sim import D, E, prepare, settings_for

from floatseat.directory.http import AtlassianHttp
from floatseat.domain.policy import Activity, AdminRevoke
from floatseat.service.bootstrap import build_service, connect_directory
from floatseat.service.outbox import PassReport
from floatseat.service.ports import AuditKind
from floatseat.store.leadership import PostgresLeadership


def test_a_deposed_leaders_late_grant_is_refused_before_it_is_sent(
    tmp_path: Path, postgres: Server, caplog: pytest.LogCaptureFixture
) -> None:
    url = postgres.new_database()
    with running_simulator(product="jira", users=4, tier=10, active_people=False) as sim:
        prepare(sim, tmp_path / "setup")
        alice, bob = sim.users[0], sim.users[1]
        # A lease far longer than the test: A is deposed by its cut session, not by time.
        common = {"database_url": url, "ha_takeover_grace_s": 0.0, "ha_lease_s": 600.0}
        a_settings = settings_for(
            sim, tmp_path / "a", tmp_path / "logs", instance_name="a", **common
        )
        b_settings = settings_for(
            sim, tmp_path / "b", tmp_path / "logs", instance_name="b", **common
        )
        a = build_service(a_settings, connect_directory(a_settings))
        b = build_service(b_settings, connect_directory(b_settings))
        try:
            lead_a = a.runtime.leadership
            lead_b = b.runtime.leadership
            assert isinstance(lead_a, PostgresLeadership)
            assert lead_a.campaign() and lead_a.acting() and not lead_b.campaign()
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
            gate, paused = threading.Event(), threading.Event()
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
            assert lead_a._connection is not None
            pid = lead_a._connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
            with a.services.ledger.engine.connect() as connection:
                connection.execute(sa.select(sa.func.pg_terminate_backend(pid)))
            deadline = time.monotonic() + 5
            while not lead_b.campaign():
                assert time.monotonic() < deadline, "B never took over"
                time.sleep(0.05)
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

            gate.set()  # A wakes up, and would add alice to IUM_Enabled now
            worker.join(30)
            groups = sim.state()["groups"]
            assert alice not in groups[E], "the deposed leader's late grant went through"
            assert passes == [None]  # the pass failed: A was deposed (and said so in the log)
            assert "a lost its database connection" in caplog.text
            assert bob in groups[E]
            assert sim.state()["licence_violations"] == 0
            with b.services.ledger.transaction() as tx:
                moves = [m for m in tx.moves() if m.user == alice]
                applied = [e.move_id for e in tx.audit_log() if e.kind is AuditKind.MOVE_APPLIED]
            grant, revoke = moves[-2:]  # the grant A claimed, the admin's revoke
            assert applied.count(grant.id) == 1  # by B only
            assert applied.count(revoke.id) == 1
        finally:
            a.close()
            b.close()
