"""The seat ledger and the engine on SQLite: one transaction per event, rollback, restarts."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from floatseat.directory.fake import FakeDirectory
from floatseat.domain.policy import (
    Activity,
    AdminGrant,
    AdminRevoke,
    DirectoryChanged,
    Pin,
    PinsChanged,
    PolicySettings,
    RevokesPaused,
    Rule,
    Sweep,
)
from floatseat.service.bootstrap import Services, bootstrap
from floatseat.service.engine import PIN_BEGAN_RULE, SeatEngine
from floatseat.service.errors import LedgerDatabaseError, LedgerError, LedgerNotReady
from floatseat.service.ports import AuditKind, MoveAction, MoveState
from floatseat.store.database import create_engine, normalise_url, upgrade
from floatseat.store.ledger import SqlLedger
from floatseat.store.schema import metadata

USERS = ("ann", "bob", "carl", "dora")
SETTINGS = PolicySettings(
    idle_timeout_s=600,
    min_hold_s=60,
    preempt_after_s=300,
    warn_before_s=0,
    queue_timeout_s=900,
    reserve=0,
)


def directory(tier: int = 2) -> FakeDirectory:
    return FakeDirectory(tier, groups={"IUM_Enabled": set(), "IUM_Disabled": set(USERS)})


def start(
    url: str, fake: FakeDirectory, opened: list[Services], settings: PolicySettings = SETTINGS
) -> Services:
    services = bootstrap(url, settings, fake)
    opened.append(services)
    if services.engine.state().figures.tier == 0:
        services.engine.handle(DirectoryChanged(0, fake.figures()))
    return services


def version(services: Services) -> int:
    with services.ledger.transaction() as tx:
        return tx.version()


def test_the_migrations_create_exactly_the_schema_the_code_declares(url: str) -> None:
    upgrade(url)
    engine = create_engine(url)
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), metadata)
    engine.dispose()
    assert diff == []


def test_upgrading_twice_changes_nothing_and_a_new_ledger_grants_no_seat(
    url: str, opened: list[Services]
) -> None:
    upgrade(url)
    upgrade(url)
    services = bootstrap(url, SETTINGS, directory())
    opened.append(services)
    # Until the directory first reports, the pool is empty and the tier 0.
    decisions = services.engine.handle(Activity("ann", 0))
    assert [type(d).__name__ for d in decisions] == ["Ignored"]
    assert services.engine.state().holders == ()


def test_a_ledger_that_was_never_migrated_is_refused_with_a_clear_error(url: str) -> None:
    with pytest.raises(LedgerNotReady, match="upgrade"):
        SqlLedger.open(url, migrate=False)


def test_an_in_memory_sqlite_ledger_is_refused() -> None:
    with pytest.raises(LedgerError, match="needs a file"):
        create_engine("sqlite://")


def test_postgresql_urls_use_psycopg_3() -> None:
    assert normalise_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert normalise_url("sqlite:///x.db").drivername == "sqlite"


def test_an_event_commits_its_state_moves_and_audit_rows_in_one_transaction(
    url: str, opened: list[Services]
) -> None:
    services = start(url, directory(tier=1), opened)
    services.engine.handle(Activity("ann", 0))
    commits: list[int] = []
    sa.event.listen(services.ledger.engine, "commit", lambda _conn: commits.append(1))
    # bob pre-empts idle ann: a revoke and a grant, two moves, two audit rows.
    decisions = services.engine.handle(Activity("bob", 400))
    assert [(type(d).__name__, d.user) for d in decisions] == [("Revoke", "ann"), ("Grant", "bob")]
    assert commits == [1]
    with services.ledger.transaction() as tx:
        moves = [(m.user, m.action) for m in tx.moves()]
        audit = [(e.user, e.kind, e.rule) for e in tx.audit_log()]
    assert moves[-2:] == [("ann", MoveAction.REVOKE), ("bob", MoveAction.GRANT)]
    assert audit[-2:] == [
        ("ann", AuditKind.REVOKE, Rule.REVOKE_PREEMPTED.value),
        ("bob", AuditKind.GRANT, Rule.GRANT_AFTER_PREEMPTION.value),
    ]
    assert [h.user for h in services.engine.state().holders] == ["bob"]


def test_a_failure_before_commit_leaves_the_ledger_exactly_as_it_was(
    url: str, opened: list[Services]
) -> None:
    services = start(url, directory(), opened)
    services.engine.handle(Activity("ann", 0))
    with services.ledger.engine.begin() as connection:
        # The database fails the audit insert of bob's grant: after the state was written.
        connection.exec_driver_sql(
            "CREATE TRIGGER fail_bob BEFORE INSERT ON audit_log WHEN NEW.username = 'bob' "
            "BEGIN SELECT RAISE(ABORT, 'disk full'); END"
        )
    before = (services.engine.state(), version(services))
    with services.ledger.transaction() as tx:
        moves_before, audit_before = tx.moves(), tx.audit_log()

    with pytest.raises(LedgerDatabaseError, match="disk full"):
        services.engine.handle(Activity("bob", 10))

    assert (services.engine.state(), version(services)) == before
    with services.ledger.transaction() as tx:
        assert (tx.moves(), tx.audit_log()) == (moves_before, audit_before)
    with services.ledger.engine.begin() as connection:
        connection.exec_driver_sql("DROP TRIGGER fail_bob")
    # The engine did not keep the rolled-back decision in memory: bob is granted now.
    assert [type(d).__name__ for d in services.engine.handle(Activity("bob", 20))] == ["Grant"]


def test_a_restarted_engine_decides_exactly_as_one_that_never_stopped(
    tmp_path: Path, opened: list[Services]
) -> None:
    events = [
        Activity("ann", 0),
        Activity("bob", 5),
        Activity("carl", 10),  # queued: two seats
        Activity("ann", 100),
        Sweep(400),
        Activity("dora", 420),  # pre-empts bob
        PinsChanged(500, (Pin(user="carl", until=2000),)),
        Sweep(700),
        Activity("bob", 800),
        Sweep(2100),  # the pin ended
        Activity("ann", 2200),
        RevokesPaused(2300, "frozen by admin"),  # kept in the ledger: survives the restart
        Sweep(9000),  # everyone expired, nobody revoked
        AdminRevoke(9010, "ann", "root", "leaves the company"),
        AdminGrant(9020, "carl", "root", "incident"),
        RevokesPaused(9030, None),
        Sweep(9040),
    ]
    steady = start(f"sqlite:///{tmp_path / 'steady.db'}", directory(), opened)
    restarted_url = f"sqlite:///{tmp_path / 'restarted.db'}"
    start(restarted_url, directory(), opened)
    for event in events:
        # Drop every in-memory object and rebuild from the database before each event.
        services = bootstrap(restarted_url, SETTINGS, directory())
        opened.append(services)
        assert services.engine.handle(event) == steady.engine.handle(event)
        assert services.engine.state() == steady.engine.state()


def test_two_engines_on_one_ledger_see_each_others_decisions(
    url: str, opened: list[Services]
) -> None:
    first = start(url, directory(tier=1), opened)
    second = SeatEngine(first.ledger, SETTINGS)
    assert [type(d).__name__ for d in first.engine.handle(Activity("ann", 0))] == ["Grant"]
    # The second engine must not hand out the seat the first one just gave away.
    assert [type(d).__name__ for d in second.handle(Activity("bob", 1))] == ["Queued"]
    assert [type(d).__name__ for d in first.engine.handle(Activity("carl", 2))] == ["Queued"]
    assert [h.user for h in first.engine.state().holders] == ["ann"]
    assert [w.user for w in first.engine.state().waiters] == ["bob", "carl"]


def test_every_decision_is_audited_with_who_when_the_rule_and_the_reason(
    url: str, opened: list[Services]
) -> None:
    settings = PolicySettings(
        idle_timeout_s=600, min_hold_s=60, preempt=False, warn_before_s=60,
        queue_timeout_s=100, reserve=0,
    )  # fmt: skip
    services = start(url, directory(tier=1), opened, settings)
    engine = services.engine
    engine.handle(Activity("ann", 0))  # grant
    engine.handle(Activity("bob", 10))  # queued
    engine.handle(Activity("mallory", 20))  # ignored: not in the pool
    engine.handle(Sweep(200))  # bob denied after 100 s in the queue
    engine.handle(Sweep(550))  # ann warned
    engine.handle(Sweep(600))  # ann revoked
    with services.ledger.transaction() as tx:
        audit = [(e.at, e.user, e.kind) for e in tx.audit_log()]
        reasons = [e.reason for e in tx.audit_log()]
    assert audit == [
        (0, "ann", AuditKind.GRANT),
        (10, "bob", AuditKind.QUEUED),
        (20, "mallory", AuditKind.IGNORED),
        (200, "bob", AuditKind.DENIED),
        (550, "ann", AuditKind.WARN),
        (600, "ann", AuditKind.REVOKE),
    ]
    assert all(reasons)


def test_the_audit_log_cannot_be_changed_or_deleted(url: str, opened: list[Services]) -> None:
    services = start(url, directory(), opened)
    services.engine.handle(Activity("ann", 0))
    for statement in ("UPDATE audit_log SET reason = 'nothing'", "DELETE FROM audit_log"):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            with services.ledger.engine.begin() as connection:
                connection.exec_driver_sql(statement)


def test_a_pinned_user_without_a_seat_is_moved_into_the_licensed_group(
    url: str, opened: list[Services]
) -> None:
    fake = directory(tier=3)
    services = start(url, fake, opened)
    services.engine.handle(Activity("ann", 0))  # a holder: pinning her moves nothing
    services.engine.handle(PinsChanged(10, (Pin(user="ann"), Pin(user="bob"))))
    with services.ledger.transaction() as tx:
        grants = [(m.user, m.rule) for m in tx.moves() if m.action is MoveAction.GRANT]
    assert grants == [("ann", Rule.GRANT_FREE_SEAT.value), ("bob", PIN_BEGAN_RULE)]
    services.outbox.run_once(10)
    assert fake.group("IUM_Enabled") == {"ann", "bob"}
    with services.ledger.transaction() as tx:
        assert {m.state for m in tx.moves()} == {MoveState.DONE}
