"""The outbox executor against the FakeDirectory: ordering, the licence guard, failures, crashes."""

from __future__ import annotations

import pytest

from floatseat.directory.fake import FakeDirectory
from floatseat.domain.policy import Activity, DirectoryChanged, PolicySettings, Sweep
from floatseat.service.bootstrap import Services, bootstrap
from floatseat.service.errors import DirectoryUnavailable
from floatseat.service.outbox import OutboxSettings
from floatseat.service.ports import AuditKind, Move, MoveState

USERS = ("ann", "bob", "carl", "dora")
SETTINGS = PolicySettings(
    idle_timeout_s=600, min_hold_s=60, preempt_after_s=300, warn_before_s=0, reserve=0
)
OUTBOX = OutboxSettings(backoff_base_s=5, backoff_max_s=60, lease_s=30, defer_s=5)
ENABLED, DISABLED = "IUM_Enabled", "IUM_Disabled"


class Crash(BaseException):
    """The process dies: nothing in the executor may catch this."""


def start(
    url: str, fake: FakeDirectory, opened: list[Services], *, report: bool = True
) -> Services:
    """A fresh engine and outbox from what the database holds (as after a restart)."""
    services = bootstrap(url, SETTINGS, fake, outbox=OUTBOX)
    opened.append(services)
    if report:
        services.engine.handle(DirectoryChanged(0, fake.figures()))
    return services


def directory(tier: int) -> FakeDirectory:
    return FakeDirectory(tier, groups={ENABLED: set(), DISABLED: set(USERS)})


def moves(services: Services) -> list[Move]:
    with services.ledger.transaction() as tx:
        return tx.moves()


def audit_kinds(services: Services, user: str) -> list[AuditKind]:
    with services.ledger.transaction() as tx:
        return [e.kind for e in tx.audit_log() if e.user == user]


def test_the_default_backoff_doubles_up_to_its_cap_and_honours_retry_after() -> None:
    settings = OutboxSettings(backoff_base_s=5, backoff_max_s=60)
    assert [settings.backoff(n) for n in range(1, 7)] == [5, 10, 20, 40, 60, 60]
    assert settings.backoff(1, retry_after_s=120) == 120


def test_a_granted_user_is_moved_into_the_licensed_group_and_the_move_audited(
    url: str, opened: list[Services]
) -> None:
    fake = directory(tier=2)
    services = start(url, fake, opened)
    services.engine.handle(Activity("ann", 0))
    report = services.outbox.run_once(1)
    assert len(report.applied) == 1
    assert fake.group(ENABLED) == {"ann"} and "ann" not in fake.group(DISABLED)
    assert [m.state for m in moves(services)] == [MoveState.DONE]
    assert audit_kinds(services, "ann") == [AuditKind.GRANT, AuditKind.MOVE_APPLIED]


def test_revokes_are_applied_before_grants_so_a_full_licence_is_never_exceeded(
    url: str, opened: list[Services]
) -> None:
    fake = directory(tier=1)
    services = start(url, fake, opened)
    services.engine.handle(Activity("ann", 0))
    services.outbox.run_once(0)
    services.engine.handle(Activity("bob", 400))  # pre-empts idle ann: revoke, then grant
    services.engine.handle(Sweep(401))
    services.outbox.run_once(401)
    assert fake.changes[-4:] == [
        ("add", "ann", DISABLED),
        ("remove", "ann", ENABLED),  # the seat is free here ...
        ("add", "bob", ENABLED),  # ... and taken here
        ("remove", "bob", DISABLED),
    ]
    assert fake.breaches == []


def test_a_grant_decided_before_a_revoke_still_waits_for_the_revoke(
    url: str, opened: list[Services]
) -> None:
    fake = directory(tier=2)
    services = start(url, fake, opened)
    services.engine.handle(Activity("ann", 0))
    services.outbox.run_once(0)
    services.engine.handle(Activity("bob", 100))  # grant bob: outbox id 2
    services.engine.handle(Activity("carl", 400))  # pre-empts ann: revoke id 3, grant id 4
    services.outbox.run_once(400)
    adds_to_enabled = [u for op, u, g in fake.changes if op == "add" and g == ENABLED]
    removes = [u for op, u, g in fake.changes if op == "remove" and g == ENABLED]
    assert adds_to_enabled == ["ann", "bob", "carl"] and removes == ["ann"]
    assert fake.changes.index(("remove", "ann", ENABLED)) < fake.changes.index(
        ("add", "bob", ENABLED)
    )
    assert fake.breaches == []


def test_a_grant_waits_while_the_directory_has_no_free_seat_whatever_the_ledger_says(
    url: str, opened: list[Services]
) -> None:
    fake = directory(tier=2)
    services = start(url, fake, opened)
    fake.license_directly("admin")  # the ledger has not heard of this one yet
    services.engine.handle(Activity("ann", 0))
    services.engine.handle(Activity("bob", 1))
    report = services.outbox.run_once(2)
    assert len(report.applied) == 1 and len(report.deferred) == 1
    assert fake.licensed_users() == {"admin", "ann"} and fake.breaches == []
    services.outbox.run_once(10)
    assert audit_kinds(services, "bob") == [AuditKind.GRANT, AuditKind.MOVE_DEFERRED]

    fake.license_directly("admin", licensed=False)
    services.outbox.run_once(20)
    assert fake.licensed_users() == {"ann", "bob"}
    assert [m.state for m in moves(services)] == [MoveState.DONE, MoveState.DONE]


def test_a_grant_whose_outcome_is_unknown_counts_against_the_free_seats(
    url: str, opened: list[Services]
) -> None:
    fake = directory(tier=2)
    services = start(url, fake, opened)
    services.engine.handle(Activity("ann", 0))
    services.engine.handle(Activity("bob", 1))
    fake.license_directly("admin")  # one seat left, which the ledger has not heard of
    # ann's add lands, but the call times out: the executor cannot know it landed.
    fake.fail(1, after_apply=True, operations=["add"])
    report = services.outbox.run_once(2)
    assert report.failed and report.deferred  # bob is not granted on a stale count
    assert fake.breaches == []
    services.outbox.run_once(20)  # ann's retry finds her in the group: done, nothing added
    assert fake.changes.count(("add", "ann", ENABLED)) == 1
    assert fake.licensed_users() == {"admin", "ann"} and fake.breaches == []


def test_failed_moves_back_off_exponentially_and_are_retried_until_they_succeed(
    url: str, opened: list[Services]
) -> None:
    fake = directory(tier=2)
    services = start(url, fake, opened)
    services.engine.handle(Activity("ann", 0))
    fake.fail(None)  # everything fails until healed
    tries = []
    now = 0
    for _ in range(4):
        assert services.outbox.run_once(now).failed
        assert services.outbox.run_once(now).failed == []  # not due again yet
        (move,) = moves(services)
        tries.append(move.next_try_at - now)
        now = move.next_try_at
    assert tries == [5, 10, 20, 40]
    assert move.attempts == 4 and move.last_error
    fake.heal()
    assert services.outbox.run_once(now).applied
    assert fake.group(ENABLED) == {"ann"}
    assert audit_kinds(services, "ann").count(AuditKind.MOVE_FAILED) == 4


def test_a_retry_after_from_the_directory_is_honoured(url: str, opened: list[Services]) -> None:
    fake = directory(tier=2)
    services = start(url, fake, opened)
    services.engine.handle(Activity("ann", 0))
    fake.fail(1, error=DirectoryUnavailable("429", retry_after_s=120))
    services.outbox.run_once(0)
    assert moves(services)[0].next_try_at == 120


def test_without_fresh_licence_figures_no_grant_is_applied(
    url: str, opened: list[Services]
) -> None:
    fake = directory(tier=2)
    services = start(url, fake, opened)
    services.engine.handle(Activity("ann", 0))
    fake.fail(1, operations=["licence"])
    report = services.outbox.run_once(0)
    assert report.failed and fake.group(ENABLED) == set()
    assert services.outbox.run_once(5).applied


def test_a_move_the_ledger_no_longer_wants_is_superseded_without_a_directory_change(
    url: str, opened: list[Services]
) -> None:
    fake = directory(tier=1)
    services = start(url, fake, opened)
    services.engine.handle(Activity("ann", 0))
    services.engine.handle(Activity("bob", 400))  # ann pre-empted before her grant was applied
    report = services.outbox.run_once(400)
    assert len(report.superseded) == 1 and len(report.applied) == 2
    assert fake.group(ENABLED) == {"bob"}
    assert ("add", "ann", ENABLED) not in fake.changes
    assert audit_kinds(services, "ann")[-1] is AuditKind.MOVE_SUPERSEDED


def test_a_user_no_longer_in_either_pool_group_is_not_put_back(
    url: str, opened: list[Services]
) -> None:
    fake = directory(tier=2)
    services = start(url, fake, opened)
    services.engine.handle(Activity("ann", 0))
    fake.members[DISABLED].discard("ann")  # an administrator took her out of the pool
    report = services.outbox.run_once(0)
    assert report.superseded and fake.groups_of("ann") == frozenset()


@pytest.mark.parametrize("after_apply", [False, True], ids=["before-the-call", "after-the-call"])
def test_after_a_crash_mid_move_the_outbox_resumes_from_the_database(
    url: str, opened: list[Services], after_apply: bool
) -> None:
    fake = directory(tier=1)
    services = start(url, fake, opened)
    services.engine.handle(Activity("ann", 0))
    fake.fail(1, after_apply=after_apply, error=Crash(), operations=["add"])
    with pytest.raises(Crash):
        services.outbox.run_once(0)
    (move,) = moves(services)
    assert move.state is MoveState.IN_FLIGHT

    restarted = start(url, fake, opened, report=False)
    assert restarted.outbox.run_once(10).skipped == []  # the lease holds: not due yet
    assert restarted.outbox.run_once(OUTBOX.lease_s).applied == [move.id]
    assert fake.group(ENABLED) == {"ann"} and fake.breaches == []
    assert fake.changes.count(("add", "ann", ENABLED)) == 1
    assert [m.state for m in moves(restarted)] == [MoveState.DONE]


def test_a_move_applied_twice_changes_nothing_the_second_time() -> None:
    fake = directory(tier=2)
    for _ in range(2):
        fake.add_user_to_group("ann", ENABLED)
        fake.remove_user_from_group("ann", DISABLED)
    assert fake.changes == [("add", "ann", ENABLED), ("remove", "ann", DISABLED)]


def test_a_revoke_planned_while_another_executor_grants_still_removes_the_user(
    url: str, opened: list[Services]
) -> None:
    """Two executors: E1 reads ann's groups while E2's grant of ann is still under way."""
    import dataclasses
    import threading

    from floatseat.domain.policy import Activity, DirectoryChanged
    from floatseat.service.outbox import OutboxExecutor, OutboxSettings

    enabled, disabled = "IUM_Enabled", "IUM_Disabled"
    fake = FakeDirectory(2, groups={enabled: set(), disabled: {"ann", "bob"}})
    services = bootstrap(url, PolicySettings(warn_before_s=0, reserve=0, min_hold_s=60), fake)
    opened.append(services)
    services.engine.handle(DirectoryChanged(0, fake.figures()))
    services.engine.handle(Activity("ann", 0))
    in_call, go, e1_read, e2_done = (threading.Event() for _ in range(4))

    class SlowAdd:  # E2's directory: the add of ann takes a while
        def __getattr__(self, name: str) -> object:
            return getattr(fake, name)

        def add_user_to_group(self, user: str, group: str) -> None:
            if (user, group) == ("ann", enabled):
                in_call.set()
                go.wait(10)
            fake.add_user_to_group(user, group)

    class StaleRead:  # E1's directory: its read of ann's groups predates E2's add
        def __getattr__(self, name: str) -> object:
            return getattr(fake, name)

        def groups_of(self, user: str) -> frozenset[str]:
            groups = fake.groups_of(user)
            e1_read.set()
            e2_done.wait(10)
            return groups

    e2 = OutboxExecutor(services.ledger, SlowAdd(), settings=OutboxSettings())  # type: ignore[arg-type]
    e1 = OutboxExecutor(services.ledger, StaleRead(), settings=OutboxSettings())  # type: ignore[arg-type]
    t2 = threading.Thread(target=e2.run_once, args=(1,))
    t2.start()
    assert in_call.wait(10)
    shrunk = dataclasses.replace(fake.figures(), tier=0)
    services.engine.handle(DirectoryChanged(2, shrunk))  # the policy revokes ann
    t1 = threading.Thread(target=e1.run_once, args=(3,))
    t1.start()
    assert e1_read.wait(10)
    go.set()
    t2.join(10)
    e2_done.set()
    t1.join(10)
    assert "ann" not in fake.group(enabled)
