"""`floatseat setup` against the FakeDirectory: snapshot, execution, resume, rollback, freeze."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from floatseat.cli import app
from floatseat.directory.errors import ManualStepRequired
from floatseat.directory.fake import FakeDirectory
from floatseat.directory.port import PoolGroups
from floatseat.domain.onboarding import SetupOptions, Step
from floatseat.domain.policy import PolicySettings
from floatseat.service.bootstrap import bootstrap
from floatseat.service.errors import DirectoryUnavailable
from floatseat.service.setup import (
    SetupRefused,
    Snapshot,
    archive_snapshot,
    execute,
    freeze,
    last_seen_from_pairs,
    prepare_rollback,
    prepare_setup,
)

E, D, OLD = "IUM_Enabled", "IUM_Disabled", "confluence-users"
PEOPLE = ("ann", "bob", "carl", "dora", "eve", "fred")
SEEN = {"fred": 60, "eve": 50, "dora": 40, "carl": 30}  # ann and bob were never seen


class Crash(BaseException):
    """The process dies mid-call."""


def confluence(tier: int = 6, **kwargs: object) -> FakeDirectory:
    """Six users licensed through confluence-users, plus an administrator licensed directly."""
    return FakeDirectory(
        tier,
        groups={OLD: set(PEOPLE), "confluence-administrators": {"admin"}},
        licensed_groups=(OLD,),
        licensed_directly=("admin",),
        **kwargs,  # type: ignore[arg-type]
    )


def refuse_manual(step: Step, error: ManualStepRequired) -> bool:
    return False


def run_setup(fake: FakeDirectory, state_dir: Path, **options: object) -> None:
    run = prepare_setup(fake, SetupOptions(reserve=1, **options), SEEN, state_dir)  # type: ignore[arg-type]
    if not run.resuming:
        run.snapshot.save(run.snapshot_path)
    result = execute(fake, run.plan, on_manual=refuse_manual)
    assert result.finished, result.stopped


def test_setup_gives_the_seats_to_the_most_recent_and_never_goes_over_the_tier(
    tmp_path: Path,
) -> None:
    fake = confluence(tier=5)  # 7 licensed now: already over
    run_setup(fake, tmp_path)
    # tier 5 - admin - reserve 1 = 3 seats, to the three most recently active.
    assert fake.group(E) == {"fred", "eve", "dora"}
    assert fake.group(D) == {"ann", "bob", "carl"}
    assert fake.licensed_groups == {E}
    assert fake.licensed() == {"admin", "fred", "eve", "dora"}
    assert fake.group(OLD) == set(PEOPLE)  # memberships kept, only the access is gone
    # It was over the tier before (7 of 5), and no change made it worse.
    assert fake.breaches[0].cause == "initial state"
    assert max(b.licensed for b in fake.breaches) == 7


def test_a_dry_run_changes_nothing_at_all(tmp_path: Path) -> None:
    fake = confluence()
    before = json.dumps(fake.state(), sort_keys=True)
    run = prepare_setup(fake, SetupOptions(), SEEN, tmp_path)
    assert run.plan.actions  # there was work to do
    assert json.dumps(fake.state(), sort_keys=True) == before
    assert fake.changes == [] and not list(tmp_path.iterdir())


def test_rollback_restores_the_exact_original_memberships_and_access(tmp_path: Path) -> None:
    fake = confluence(tier=10, default_groups=(OLD,))
    original = fake.state()
    run_setup(fake, tmp_path)
    assert fake.state() != original
    back = prepare_rollback(fake, tmp_path, "confluence")
    assert back.would_license == 7
    assert execute(fake, back.plan, on_manual=refuse_manual).finished
    restored = fake.state()
    # Exact, except that the created pool groups are left empty, not deleted, and that no
    # API makes a group a default group again (the plan says so).
    assert restored["members"] == {**original["members"], E: [], D: []}  # type: ignore[dict-item]
    assert restored["licensed_groups"] == original["licensed_groups"]
    assert back.plan.manual == (f"make {OLD} a default group of the application again",)
    assert fake.breaches == []


def test_administrators_keep_their_seat_and_their_group_its_access(tmp_path: Path) -> None:
    # Confluence: confluence-administrators has "Can use" and the administrator permissions,
    # sysadmins only System Administrator; both license their members. The product cannot
    # list who is licensed, so nobody is counted twice only if setup knows the groups.
    fake = FakeDirectory(
        8,
        groups={
            OLD: {*PEOPLE, "admin", "ops"},
            "confluence-administrators": {"admin"},
            "sysadmins": {"ops"},
        },
        licensed_groups=(OLD, "confluence-administrators"),
        admin_groups=("confluence-administrators", "sysadmins"),
        lists_licensed_users=False,
    )
    original = fake.state()
    run = prepare_setup(fake, SetupOptions(reserve=1), SEEN, tmp_path)
    state = run.observed.state
    assert state.admin_groups == {"confluence-administrators", "sysadmins"}
    assert state.unnamed_licensed == 0  # admin and ops are named, through their groups
    # tier 8 - admin - ops - reserve 1 = 5 seats; admin and ops are not in the pool.
    assert run.plan.capacity == 5 and run.plan.licensed_before == 8
    assert set(run.plan.enabled) | set(run.plan.disabled) == set(PEOPLE)
    run.snapshot.save(run.snapshot_path)
    assert Snapshot.load(run.snapshot_path) == run.snapshot
    assert execute(fake, run.plan, on_manual=refuse_manual).finished
    assert fake.licensed_groups == {E, "confluence-administrators"}
    assert fake.licensed() == {"admin", "ops", "fred", "eve", "dora", "carl", "ann"}
    assert fake.group(D) == {"bob"} and fake.breaches == []

    back = prepare_rollback(fake, tmp_path, "confluence")
    assert back.would_license == 8
    assert execute(fake, back.plan, on_manual=refuse_manual).finished
    assert fake.breaches == []
    restored = fake.state()
    assert restored["members"] == {**original["members"], E: [], D: []}  # type: ignore[dict-item]
    assert restored["licensed_groups"] == original["licensed_groups"]


def test_a_snapshot_from_before_administrator_groups_still_loads(tmp_path: Path) -> None:
    fake = confluence()
    run = prepare_setup(fake, SetupOptions(), SEEN, tmp_path)
    data = run.snapshot.to_json()
    del data["application_access"]["admin_groups"]
    assert Snapshot.from_json(data) == run.snapshot


def test_rollback_refuses_over_the_current_tier_and_force_overrides(tmp_path: Path) -> None:
    fake = confluence(tier=7)
    run_setup(fake, tmp_path)
    fake.set_tier(5)  # a downgrade at renewal
    before = fake.state()
    with pytest.raises(SetupRefused, match="would license 7 users, over the current tier of 5"):
        prepare_rollback(fake, tmp_path, "confluence")
    assert fake.state() == before
    forced = prepare_rollback(fake, tmp_path, "confluence", force=True)
    assert forced.would_license == 7
    assert execute(fake, forced.plan, on_manual=refuse_manual, allow_over_tier=True).finished
    assert fake.group(E) == set() and fake.licensed_groups == {OLD}


def test_a_read_only_directory_stops_setup_before_any_licence_change(tmp_path: Path) -> None:
    fake = confluence(tier=5, read_only_users=("ann",))
    run = prepare_setup(fake, SetupOptions(reserve=1), SEEN, tmp_path)
    result = execute(fake, run.plan, on_manual=refuse_manual)
    assert result.stopped is not None
    assert "ann is read only" in result.stopped and "Read Only, with Local Groups" in result.stopped
    assert fake.licensed_groups == {OLD} and fake.group(E) == set()
    assert len(fake.licensed()) == 7


def test_a_crash_mid_way_is_resumed_by_running_setup_again(tmp_path: Path) -> None:
    fake = confluence(tier=5)
    original = fake.state()
    run = prepare_setup(fake, SetupOptions(reserve=1), SEEN, tmp_path)
    run.snapshot.save(run.snapshot_path)
    fake.fail(1, after_apply=True, error=Crash(), operations=("grant",))
    with pytest.raises(Crash):
        execute(fake, run.plan, on_manual=refuse_manual)
    # The second run keeps the original snapshot and finishes the work.
    again = prepare_setup(fake, SetupOptions(reserve=1), SEEN, tmp_path)
    assert again.resuming and again.snapshot.state.members[OLD] == frozenset(PEOPLE)
    assert execute(fake, again.plan, on_manual=refuse_manual).finished
    assert fake.group(E) == {"fred", "eve", "dora"} and fake.licensed_groups == {E}
    # And the rollback still knows the original.
    back = prepare_rollback(fake, tmp_path, "confluence", force=True)
    execute(fake, back.plan, on_manual=refuse_manual, allow_over_tier=True)
    assert fake.state()["members"] == {**original["members"], E: [], D: []}  # type: ignore[dict-item]


def test_a_failing_directory_stops_with_a_reason_and_loses_nothing(tmp_path: Path) -> None:
    fake = confluence(tier=5)
    run = prepare_setup(fake, SetupOptions(reserve=1), SEEN, tmp_path)
    fake.fail(None, error=DirectoryUnavailable("503 from the server"), operations=("revoke",))
    result = execute(fake, run.plan, on_manual=refuse_manual)
    assert result.stopped is not None and "503 from the server" in result.stopped
    assert "revoke" not in result.done_steps and "grant" in result.done_steps
    assert max(b.licensed for b in fake.breaches) == 7


def test_no_api_for_the_access_asks_for_the_groups_and_the_manual_steps(tmp_path: Path) -> None:
    fake = confluence(tier=5, manual_access=True)
    with pytest.raises(SetupRefused, match="--access-group") as refused:
        prepare_setup(fake, SetupOptions(), SEEN, tmp_path)
    assert refused.value.steps
    run = prepare_setup(fake, SetupOptions(reserve=1), SEEN, tmp_path, access_groups=[OLD])
    stopped = execute(fake, run.plan, on_manual=refuse_manual)
    assert stopped.manual_steps and "Can use" in stopped.manual_steps[-1]
    assert fake.licensed_groups == {OLD}

    def admin_clicks(step: Step, error: ManualStepRequired) -> bool:
        # What the admin does by hand in Global permissions.
        if step.key == "grant":
            fake.licensed_groups |= {E}
        else:
            fake.licensed_groups -= {OLD}
        return True

    again = prepare_setup(fake, SetupOptions(reserve=1), SEEN, tmp_path, access_groups=[OLD])
    assert execute(fake, again.plan, on_manual=admin_clicks).finished
    assert fake.licensed() == {"admin", "fred", "eve", "dora"}


def test_a_snapshot_survives_a_round_trip_through_its_file(tmp_path: Path) -> None:
    fake = confluence(inactive=("bob",), lists_licensed_users=False)
    run = prepare_setup(fake, SetupOptions(), SEEN, tmp_path)
    run.snapshot.save(run.snapshot_path)
    assert Snapshot.load(run.snapshot_path) == run.snapshot
    assert run.snapshot.state.inactive == {"bob"}  # found by looking the users up
    data = json.loads(run.snapshot_path.read_text())
    assert data["memberships"][OLD] == sorted(PEOPLE) and data["missing_groups"] == [E, D]
    archived = archive_snapshot(run.snapshot_path)
    assert archived.exists() and not run.snapshot_path.exists()


def test_the_snapshot_of_another_instance_is_not_overwritten(tmp_path: Path) -> None:
    fake = confluence()
    run = prepare_setup(fake, SetupOptions(), SEEN, tmp_path)
    run.snapshot.save(run.snapshot_path)
    other = confluence(base_url="https://other.example.com")
    with pytest.raises(SetupRefused, match="another --state-dir"):
        prepare_setup(other, SetupOptions(), SEEN, tmp_path)


def test_freeze_pins_every_holder_of_the_licensed_group(tmp_path: Path) -> None:
    fake = confluence(tier=5)
    run_setup(fake, tmp_path)
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    result = freeze(fake, url, PoolGroups(), at=1000)
    assert result.pinned == ("dora", "eve", "fred")
    services = bootstrap(url, PolicySettings(), fake)
    try:
        state = services.engine.state()
        assert state.pinned == {"dora", "eve", "fred"}
        assert {p.user for p in state.pins} == {"dora", "eve", "fred"}
    finally:
        services.close()
    again = freeze(fake, url, PoolGroups(), at=2000)
    assert again.pinned == () and again.already == ("dora", "eve", "fred")
    assert fake.group(E) == {"fred", "eve", "dora"}  # nobody moved


def test_last_activity_is_the_latest_request_of_each_user_in_any_case() -> None:
    assert last_seen_from_pairs([("Ann", 5), ("ann", 9), ("bob", 3), ("ANN", 7)]) == {
        "ann": 9,
        "bob": 3,
    }


def test_the_cli_refuses_without_credentials_and_never_echoes_a_password(tmp_path: Path) -> None:
    runner = CliRunner()
    args = ["setup", "--product", "confluence", "--url", "http://127.0.0.1:9"]
    result = runner.invoke(app, [*args, "--state-dir", str(tmp_path)])
    assert result.exit_code == 2 and "--user" in result.stderr
    result = runner.invoke(app, ["setup", "--product", "bamboo", "--url", "http://x"])
    assert result.exit_code == 2 and "confluence or jira" in result.stderr
    result = runner.invoke(
        app,
        [*args, "--user", "admin", "--state-dir", str(tmp_path)],
        env={"FLOATSEAT_PASSWORD": "s3cret-pw"},
    )
    assert result.exit_code == 2  # nothing listens on port 9
    assert "s3cret-pw" not in result.stdout + result.stderr
