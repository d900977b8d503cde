"""The ledger on a real PostgreSQL server that the tests start themselves (the `postgres`
fixture, tests/postgres_server.py)."""

from __future__ import annotations

import multiprocessing
import random
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier

import pytest
import sqlalchemy as sa
from postgres_server import Server

from floatseat.directory.fake import FakeDirectory
from floatseat.domain.policy import Activity, DirectoryChanged, Grant, PolicySettings, Sweep
from floatseat.service.bootstrap import bootstrap
from floatseat.service.engine import SeatEngine
from floatseat.service.ports import AuditKind, MoveState
from floatseat.store.database import POSTGRES_CONNECT_DEFAULTS, create_engine
from floatseat.store.ledger import SqlLedger

USERS = tuple(f"user{i:02}" for i in range(12))
TIER = 3
SETTINGS = PolicySettings(
    idle_timeout_s=40, min_hold_s=5, preempt_after_s=20, warn_before_s=0,
    queue_timeout_s=60, reserve=0,
)  # fmt: skip
EVENTS_PER_WRITER = 150
FIGURES = FakeDirectory(TIER, groups={"IUM_Disabled": set(USERS)}).figures()


def _writer(url: str, seed: int, start: Barrier, grants: Queue[int]) -> None:
    """One engine process: random activity and sweeps; reports how many grants it decided."""
    ledger = SqlLedger.open(url)  # both migrate the empty database at once: one waits
    engine = SeatEngine(ledger, SETTINGS)
    start.wait()  # both ready: from here on they race
    engine.handle(DirectoryChanged(0, FIGURES))  # both report, as two engines starting do
    rng = random.Random(seed)
    granted = 0
    for i in range(EVENTS_PER_WRITER):
        at = i * 7  # time runs fast: holders go idle, get pre-empted, expire
        event = Sweep(at) if i % 10 == 9 else Activity(rng.choice(USERS), at)
        granted += sum(isinstance(d, Grant) for d in engine.handle(event))
    ledger.close()
    grants.put(granted)


def test_two_engine_processes_on_one_postgresql_never_grant_a_seat_twice(
    postgres: Server,
) -> None:
    url = postgres.new_database()
    context = multiprocessing.get_context("spawn")
    start, results = context.Barrier(2), context.Queue()
    writers = [context.Process(target=_writer, args=(url, seed, start, results)) for seed in (1, 2)]
    for writer in writers:
        writer.start()
    try:
        for writer in writers:
            writer.join(timeout=60)
    finally:
        for writer in writers:
            if writer.is_alive():
                writer.kill()
    assert [w.exitcode for w in writers] == [0, 0], "a writer failed: see its stderr"
    grants = [results.get(timeout=5) for _ in writers]
    ledger = SqlLedger.open(url, migrate=False)
    try:
        with ledger.transaction() as tx:
            version = tx.version()
            audit = tx.audit_log()
            holders = {h.user for h in tx.load().holders}
    finally:
        ledger.close()

    assert version == 2 * (1 + EVENTS_PER_WRITER)  # no event lost, none merged into another
    assert all(g > 0 for g in grants), "both writers must have granted seats"
    # Replay the audit log in commit order: nobody holds two seats, nobody beyond the tier.
    held: set[str] = set()
    for entry in audit:
        if entry.kind is AuditKind.GRANT:
            assert entry.user not in held, f"{entry.user} granted twice"
            held.add(entry.user)
            assert len(held) <= TIER, f"seat {len(held)} of {TIER} granted to {entry.user}"
        elif entry.kind in (AuditKind.REVOKE, AuditKind.RELEASE):
            assert entry.user in held
            held.discard(entry.user)
    assert held == holders
    assert sum(e.kind is AuditKind.GRANT for e in audit) == sum(grants)


def test_the_engine_and_the_outbox_work_the_same_on_postgresql(postgres: Server) -> None:
    fake = FakeDirectory(2, groups={"IUM_Disabled": {"ann", "bob", "carl"}})
    services = bootstrap(postgres.new_database(), SETTINGS, fake)
    try:
        services.engine.handle(DirectoryChanged(0, fake.figures()))
        services.engine.handle(Activity("ann", 0))
        services.engine.handle(Activity("bob", 1))
        services.engine.handle(Activity("carl", 30))  # pre-empts ann
        assert services.outbox.run_once(30).superseded  # ann's grant, never applied
        assert fake.group("IUM_Enabled") == {"bob", "carl"} and fake.breaches == []
        with services.ledger.transaction() as tx:
            assert {m.state for m in tx.moves()} == {MoveState.DONE, MoveState.SUPERSEDED}
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            with services.ledger.engine.begin() as connection:
                connection.exec_driver_sql("DELETE FROM audit_log")
    finally:
        services.close()


def test_ledger_connections_notice_a_vanished_server_within_seconds(postgres: Server) -> None:
    # A black-holed network cannot be made here without root; what can be checked is that
    # every connection carries libpq's keepalives and timeouts, and that a URL's own win.
    url = postgres.new_database()
    for query, expected_user_timeout in (("", "10000"), ("?tcp_user_timeout=3000", "3000")):
        engine = create_engine(url + query)
        try:
            with engine.connect() as connection:
                raw = connection.connection.dbapi_connection
                assert raw is not None
                parameters = raw.info.get_parameters()  # type: ignore[attr-defined]
        finally:
            engine.dispose()
        assert parameters["tcp_user_timeout"] == expected_user_timeout
        for name in ("keepalives_idle", "keepalives_interval", "keepalives_count"):
            assert parameters[name] == str(POSTGRES_CONNECT_DEFAULTS[name])
        assert parameters["connect_timeout"] == "10"
