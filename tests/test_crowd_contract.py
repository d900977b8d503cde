"""CrowdDirectory against the simulator's Crowd API over real HTTP, licence from its Jira.

The simulated Jira reads its first directory from Crowd and sees Crowd's changes only when
it synchronises (`sim.sync()`), as the real products do.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from simulator import SimHandle, running_simulator

from floatseat.directory.crowd import CrowdDirectory
from floatseat.directory.errors import (
    GroupNotFound,
    NotPermitted,
    ReadOnlyDirectory,
    UserNotFound,
)
from floatseat.directory.http import RetryPolicy
from floatseat.directory.jira import JiraDirectory
from floatseat.directory.port import DEFAULT_GROUPS

ENABLED, DISABLED = DEFAULT_GROUPS.enabled, DEFAULT_GROUPS.disabled
FAST = RetryPolicy(attempts=6, base_s=0.01, cap_s=5.0, max_total_wait_s=20.0)
CROWD_PATHS = ["/rest/usermanagement/"]


@pytest.fixture(scope="module")
def sim() -> Iterator[SimHandle]:
    with running_simulator(product="jira", users=8, tier=12, crowd=True) as handle:
        yield handle


@pytest.fixture
def crowd(sim: SimHandle) -> Iterator[CrowdDirectory]:
    sim.clear_faults()
    jira = JiraDirectory.connect(sim.base_url, sim.admin_auth, policy=FAST)
    with (
        jira,
        CrowdDirectory.connect(
            sim.base_url, sim.crowd_auth, licence_source=jira, policy=FAST
        ) as directory,
    ):
        directory.create_group(DISABLED)
        yield directory
    sim.clear_faults()
    assert sim.state()["licence_violations"] == 0


def test_info_and_application_credentials(crowd: CrowdDirectory, sim: SimHandle) -> None:
    assert crowd.info().product == "crowd"
    with CrowdDirectory.connect(sim.base_url, ("floatseat", "wrong")) as wrong:
        with pytest.raises(NotPermitted):
            wrong.info()
    with CrowdDirectory.connect(sim.base_url, sim.admin_auth) as user_not_app:
        with pytest.raises(NotPermitted):
            user_not_app.group_members(DISABLED)


def test_groups_are_created_once(crowd: CrowdDirectory) -> None:
    assert crowd.create_group("IUM_Crowd") is True
    assert crowd.create_group("IUM_Crowd") is False
    assert crowd.group_members("IUM_Crowd") == []


def test_membership_changes_are_idempotent(crowd: CrowdDirectory, sim: SimHandle) -> None:
    user = sim.users[0]
    crowd.add_user_to_group(user, DISABLED)
    crowd.add_user_to_group(user, DISABLED)
    assert user in crowd.group_members(DISABLED)
    assert DISABLED in crowd.groups_of(user)
    assert crowd.memberships([DISABLED])[user] == {DISABLED}
    crowd.remove_user_from_group(user, DISABLED)
    crowd.remove_user_from_group(user, DISABLED)
    assert user not in crowd.group_members(DISABLED)


def test_a_missing_user_or_group_is_named(crowd: CrowdDirectory, sim: SimHandle) -> None:
    with pytest.raises(UserNotFound):
        crowd.add_user_to_group("nobody.here", DISABLED)
    with pytest.raises(GroupNotFound):
        crowd.add_user_to_group(sim.users[0], "IUM_Nowhere")
    with pytest.raises(UserNotFound):
        crowd.remove_user_from_group("nobody.here", DISABLED)
    with pytest.raises(GroupNotFound):
        crowd.remove_user_from_group(sim.users[0], "IUM_Nowhere")
    with pytest.raises(GroupNotFound):
        crowd.group_members("IUM_Nowhere")
    assert crowd.find_user("nobody.here") is None
    found = crowd.find_user(sim.users[0])
    assert found is not None and found.name == sim.users[0]


def test_the_product_sees_a_crowd_change_only_after_its_sync(
    crowd: CrowdDirectory, sim: SimHandle
) -> None:
    user = sim.users[1]
    before = crowd.licence()
    crowd.remove_user_from_group(user, "jira-software-users")
    assert crowd.licence() == before  # Jira has not synchronised yet
    assert user in crowd.licensed_users()
    sim.sync()
    assert crowd.licence().licensed == before.licensed - 1
    assert user not in crowd.licensed_users()
    crowd.add_user_to_group(user, "jira-software-users")
    sim.sync()
    assert crowd.licence() == before


def test_application_access_goes_to_the_product(crowd: CrowdDirectory, sim: SimHandle) -> None:
    crowd.create_group(ENABLED)
    sim.sync()  # the product must know the group before its role can list it
    crowd.grant_application_access(ENABLED)
    assert ENABLED in crowd.application_access().groups
    crowd.revoke_application_access(ENABLED)
    assert ENABLED not in crowd.application_access().groups


FAULTS = [
    pytest.param({"kind": "latency", "latency_ms": 100, "times": 5}, id="latency"),
    pytest.param({"kind": "rate_limit", "retry_after_s": 1, "times": 1}, id="429-retry-after"),
    pytest.param({"kind": "error", "status": 503, "times": 3}, id="503"),
    pytest.param({"kind": "drop", "times": 2}, id="dropped-connection"),
]


@pytest.mark.parametrize("fault", FAULTS)
def test_moves_land_whatever_the_fault(
    crowd: CrowdDirectory, sim: SimHandle, fault: dict[str, object]
) -> None:
    kind = str(fault.pop("kind"))
    sim.add_fault(kind, paths=CROWD_PATHS, **fault)
    for user in sim.users[:3]:
        crowd.add_user_to_group(user, DISABLED)
    assert set(sim.users[:3]) <= set(crowd.group_members(DISABLED))
    for user in sim.users[:3]:
        crowd.remove_user_from_group(user, DISABLED)
    state = sim.state()
    assert state["faults"] == []  # the fault hit all its `times` and retired
    assert state["licence_violations"] == 0


def test_a_read_only_fault_is_reported(crowd: CrowdDirectory, sim: SimHandle) -> None:
    sim.add_fault("read_only", paths=CROWD_PATHS)
    with pytest.raises(ReadOnlyDirectory):
        crowd.add_user_to_group(sim.users[2], DISABLED)
