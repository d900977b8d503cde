"""Leader election and fencing on a real PostgreSQL (store/leadership.py).

Each test gets a fresh database on the session's server. Time in the leadership's lease is
a manual monotonic clock; the heartbeat's staleness is the database's clock.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from postgres_server import Server

from floatseat.directory.http import AtlassianHttp, make_client
from floatseat.service.errors import Deposed
from floatseat.service.ports import MoveAction, MoveState
from floatseat.store.database import create_engine, upgrade
from floatseat.store.leadership import PostgresLeadership
from floatseat.store.ledger import SqlLedger
from floatseat.store.schema import leadership as leadership_table


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


_OPENED: list[PostgresLeadership] = []


@pytest.fixture
def engine(postgres: Server) -> Iterator[sa.Engine]:
    url = postgres.new_database()
    upgrade(url)
    engine = create_engine(url)
    yield engine
    while _OPENED:
        _OPENED.pop().resign()
    engine.dispose()


def leadership(engine: sa.Engine, name: str, clock: Clock, **kw: float) -> PostgresLeadership:
    options = {"lease_s": 5.0, "leader_timeout_s": 3.0, "takeover_grace_s": 10.0, **kw}
    made = PostgresLeadership(engine, name, monotonic=clock, **options)
    _OPENED.append(made)
    return made


def end_session_of(engine: sa.Engine, who: PostgresLeadership) -> None:
    """Cut `who`'s database connection from the server side (as a network cut would)."""
    assert who._connection is not None
    pid = who._connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
    with engine.connect() as connection:
        assert connection.execute(sa.select(sa.func.pg_terminate_backend(pid))).scalar()


def test_one_leader_at_a_time_and_each_takeover_raises_the_epoch(engine: sa.Engine) -> None:
    clock = Clock()
    a, b = leadership(engine, "a", clock), leadership(engine, "b", clock)
    assert a.campaign() and not b.campaign()
    assert (a.leading, b.leading, a.epoch) == (True, False, 1)
    info = a.info()
    assert info is not None and (info.leader, info.epoch) == ("a", 1)
    assert a.begin_term() == 1
    a.check()  # the leader may act in its term
    with pytest.raises(Deposed):
        b.check()
    a.resign()  # a clean stop hands over at once
    assert b.campaign() and b.epoch == 2
    with pytest.raises(Deposed):
        a.check()
    assert not a.campaign()  # b holds the lock now


def test_a_leader_whose_connection_is_cut_is_fenced_and_replaced(engine: sa.Engine) -> None:
    clock = Clock()
    changes: list[tuple[str, bool, int]] = []
    a = leadership(engine, "a", clock)
    a.on_change = lambda leading, epoch: changes.append(("a", leading, epoch))
    b = leadership(engine, "b", clock)
    assert a.campaign() and a.begin_term() == 1
    end_session_of(engine, a)  # the lock goes with the session
    assert b.campaign() and b.epoch == 2
    # a has not noticed yet, but its next directory call is refused before it is sent.
    assert a.epoch == 1
    with pytest.raises(Deposed):
        a.check()
    assert not a.leading and changes == [("a", True, 1), ("a", False, 1)]
    clock.now += 10.0  # b acts once the grace for a's last call is over
    assert b.campaign() and b.begin_term() == 2
    b.check()


def test_the_lease_runs_out_without_heartbeats(engine: sa.Engine) -> None:
    clock = Clock()
    a = leadership(engine, "a", clock, lease_s=5.0)
    assert a.campaign() and a.begin_term() == 1
    clock.now += 4.9
    assert a.campaign()  # renewed
    clock.now += 4.9
    a.check()
    clock.now += 0.2  # 5.1 s since the last renewal: stop, even if the database agrees
    assert not a.leading
    with pytest.raises(Deposed):
        a.check()


def test_a_hung_leader_is_ended_by_a_follower_and_cannot_act_when_it_wakes(
    engine: sa.Engine,
) -> None:
    clock = Clock()
    a = leadership(engine, "a", clock, leader_timeout_s=1.0)
    b = leadership(engine, "b", clock, leader_timeout_s=1.0)
    assert a.campaign() and a.begin_term() == 1
    assert not b.campaign()  # a's heartbeat is fresh: b leaves it alone
    time.sleep(2.2)  # a "hangs": no heartbeat, by the database's clock
    assert not b.campaign()  # b ends a's session ...
    deadline = time.monotonic() + 5
    while not b.campaign():  # ... and leads once the server has let go of the lock
        assert time.monotonic() < deadline, "b never took over"
        time.sleep(0.05)
    assert b.epoch == 2
    with pytest.raises(Deposed):  # a wakes up: its session is gone
        a.check()


def test_a_deposed_leaders_http_call_is_never_sent(engine: sa.Engine) -> None:
    clock = Clock()
    a, b = leadership(engine, "a", clock), leadership(engine, "b", clock)
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(f"{request.method} {request.url.path}")
        return httpx.Response(201)

    client = make_client("http://jira.test", ("admin", "x"), transport=httpx.MockTransport(handler))
    with AtlassianHttp(client, sleep=lambda _s: None) as http:
        http.fence = lambda _what: a.check()
        assert a.campaign() and a.begin_term() == 1
        http.request("POST", "/rest/api/2/group/user", expected=(201,))
        end_session_of(engine, a)
        assert b.campaign()
        with pytest.raises(Deposed):
            http.request("POST", "/rest/api/2/group/user", expected=(201,))
    assert sent == ["POST /rest/api/2/group/user"]


def test_after_a_takeover_moves_left_in_flight_are_due_again(engine: sa.Engine) -> None:
    clock = Clock()
    ledger = SqlLedger(engine)
    now = int(time.time())
    with ledger.transaction() as tx:
        tx.lock()
        move_id = tx.enqueue("alice", MoveAction.GRANT, "test", now)
        tx.claim(move_id, lease_until=now + 600, adds_seat=True)  # its leader then died
    b = leadership(engine, "b", clock, takeover_grace_s=0.0)
    with pytest.raises(Deposed):
        b.release_in_flight()  # only a leader may
    assert b.campaign() and b.acting() and b.begin_term() == 1
    assert b.release_in_flight() == 1
    with ledger.transaction() as tx:
        move = tx.move(move_id)
        due = [m.id for m in tx.due_moves(now + 2, 10)]
    # Still counted as in flight (it may have added a seat), but due for a retry now.
    assert move.state is MoveState.IN_FLIGHT and due == [move_id]


def test_a_new_leader_waits_out_the_grace_only_after_a_leader_died(engine: sa.Engine) -> None:
    clock = Clock()
    first = leadership(engine, "first", clock, takeover_grace_s=10.0)
    assert first.campaign() and first.acting()  # a new ledger: nobody could be calling
    end_session_of(engine, first)  # dies: it may have a call under way
    a = leadership(engine, "a", clock, takeover_grace_s=10.0)
    assert a.campaign() and a.leading and not a.acting()
    clock.now += 4.0
    assert a.campaign() and not a.acting()
    clock.now += 4.0
    assert a.campaign()
    clock.now += 2.0
    assert a.acting()


def test_a_clean_handover_needs_no_grace(engine: sa.Engine) -> None:
    clock = Clock()
    a = leadership(engine, "a", clock, takeover_grace_s=10.0)
    b = leadership(engine, "b", clock, takeover_grace_s=10.0)
    assert a.campaign()
    a.resign(calls_over=True)
    assert b.campaign() and b.acting()
    b.resign(calls_over=False)  # its directory worker did not stop in time
    assert a.campaign() and not a.acting()


def test_a_re_elected_leader_refuses_the_calls_of_its_earlier_term(engine: sa.Engine) -> None:
    clock = Clock()
    a = leadership(engine, "a", clock, takeover_grace_s=10.0)
    b = leadership(engine, "b", clock, takeover_grace_s=10.0)
    assert a.campaign() and a.begin_term() == 1  # a new ledger: a acts at once
    a.check()  # a call of epoch 1 passes ... and is held up before it is sent
    end_session_of(engine, a)
    assert b.campaign() and b.epoch == 2
    end_session_of(engine, b)  # b dies too
    assert not a.campaign()  # a finds its session gone and steps down ...
    assert a.campaign() and a.epoch == 3  # ... and is elected again, in a new grace
    with pytest.raises(Deposed, match="no term under epoch 3"):
        a.check()  # the held-up call of epoch 1 is not sent
    with pytest.raises(Deposed):
        a.begin_term()  # b's last call may still land: no term during the grace
    clock.now += 10.0
    assert a.campaign() and a.begin_term() == 3
    a.check()
    end_session_of(engine, a)
    with pytest.raises(Deposed):
        a.check()  # stepping down ends the term ...
    assert a.campaign() and a.epoch == 4
    with pytest.raises(Deposed, match="no term under epoch 4"):
        a.check()  # ... and a new leadership needs a term of its own


def test_a_clean_stop_within_the_grace_leaves_the_next_leader_the_grace(
    engine: sa.Engine,
) -> None:
    clock = Clock()
    a, b, c = (leadership(engine, name, clock, takeover_grace_s=35.0) for name in "abc")
    assert a.campaign()
    end_session_of(engine, a)  # a dies, maybe in the middle of a directory call
    assert b.campaign() and not b.acting()
    clock.now += 5.0
    b.resign(calls_over=True)  # b stops cleanly, but a's call may land for 30 s more
    assert c.campaign() and not c.acting()
    clock.now += 35.0
    assert c.campaign() and c.acting()
    c.resign(calls_over=True)  # past its grace: nothing can land any more
    assert b.campaign() and b.acting()


def test_ending_a_hung_leader_spares_the_leaders_of_other_databases(
    engine: sa.Engine, postgres: Server
) -> None:
    """Two ledgers on one server (Jira's and Confluence's, say) elect their leaders under
    the same lock key; a follower of one ends its own hung leader, not the other's."""
    url = postgres.new_database()
    upgrade(url)
    other = create_engine(url)
    clock = Clock()
    try:
        hung = leadership(engine, "jira-a", clock, leader_timeout_s=1.0)
        follower = leadership(engine, "jira-b", clock, leader_timeout_s=1.0)
        healthy = leadership(other, "confluence-a", clock, leader_timeout_s=1.0)
        assert hung.campaign() and healthy.campaign()
        assert healthy.begin_term() == 1
        time.sleep(2.2)  # the Jira leader hangs; the Confluence leader goes on renewing
        assert healthy.campaign()
        assert not follower.campaign()  # ends the hung leader's session
        deadline = time.monotonic() + 5
        while not follower.campaign():
            assert time.monotonic() < deadline, "the follower never took over"
            time.sleep(0.05)
        healthy.check()  # its session is alive: it still leads its own ledger
    finally:
        while _OPENED:
            _OPENED.pop().resign()
        other.dispose()


def test_a_leader_is_not_ended_for_an_old_heartbeat_it_has_not_replaced_yet(
    engine: sa.Engine,
) -> None:
    """The row still shows the heartbeat of a hung leader that died, while a new leader
    already holds the lock (between its lock and its first write): a follower that finds
    the old heartbeat must not end the new leader's session."""
    clock = Clock()
    a = leadership(engine, "a", clock, leader_timeout_s=1.0)
    b = leadership(engine, "b", clock, leader_timeout_s=1.0)
    assert a.campaign() and a.begin_term() == 1
    with engine.begin() as connection:
        connection.execute(
            sa.update(leadership_table).values(heartbeat_at=leadership_table.c.heartbeat_at - 60)
        )
    assert not b.campaign()
    time.sleep(0.3)  # a terminated session would be gone by now
    a.check()


def test_doctor_reads_who_leads_and_finds_a_stale_heartbeat(
    engine: sa.Engine, tmp_path: Path
) -> None:
    from floatseat.doctor import Level, run_doctor
    from floatseat.service.settings import load_settings

    url = engine.url.render_as_string(hide_password=False)
    settings = load_settings(
        None, database_url=url, state_dir=tmp_path, ha_leader_timeout_s=1.0, ha_heartbeat_s=0.5
    )

    def cluster() -> tuple[Level, str]:
        [found] = [f for f in run_doctor(settings).findings if f.check == "cluster"]
        return found.level, found.message

    assert cluster()[0] is Level.WARN  # nobody ever led
    clock = Clock()
    a = leadership(engine, "a", clock)
    assert a.campaign()
    level, message = cluster()
    assert level is Level.OK and message.startswith("a leads (epoch 1)")
    time.sleep(2.1)  # no heartbeat for longer than the timeout
    assert cluster()[0] is Level.FAIL


def test_a_hung_leader_that_cannot_be_ended_is_reported_once(
    engine: sa.Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """A follower connected as another database role sees no `state_change` of the leader's
    session and may not end it: it says so, with the fix, instead of waiting in silence."""
    role = f"follower_{uuid.uuid4().hex[:8]}"
    with engine.connect() as connection:
        connection.exec_driver_sql(f"CREATE ROLE {role} LOGIN")
        connection.exec_driver_sql(f"GRANT SELECT ON leadership TO {role}")
        connection.commit()
    other = create_engine(engine.url.set(username=role))
    try:
        clock = Clock()
        a = leadership(engine, "a", clock, leader_timeout_s=0.5)
        b = leadership(other, "b", clock, leader_timeout_s=0.5)
        assert a.campaign()
        time.sleep(2.2)  # a "hangs": its heartbeat (whole seconds) is older than twice 0.5 s
        assert not b.campaign() and not b.campaign()
        assert a.leading  # its session was not ended
        warnings = [r for r in caplog.records if "cannot end its session" in r.getMessage()]
        assert len(warnings) == 1  # once per epoch, not at every heartbeat
        assert "same database role" in warnings[0].getMessage()
        b.resign()
    finally:
        other.dispose()
