"""JiraDirectory against the simulated Jira DC over real HTTP (`tests/simulator.py`).

The simulator enforces the licence and counts every moment the licensed users exceed the
tier (`licence_violations`); each test ends by asserting there was none.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from simulator import SimHandle, running_simulator

from floatseat.directory.errors import (
    GroupNotFound,
    ManualStepRequired,
    NotPermitted,
    ReadOnlyDirectory,
    UserNotFound,
)
from floatseat.directory.http import PersonalAccessToken, RetryPolicy
from floatseat.directory.jira import JiraDirectory
from floatseat.directory.port import DEFAULT_GROUPS, Licence

ENABLED, DISABLED = DEFAULT_GROUPS.enabled, DEFAULT_GROUPS.disabled
FAST = RetryPolicy(attempts=6, base_s=0.01, cap_s=5.0, max_total_wait_s=20.0)
AWKWARD = "o'brien & co/x#y%z=1 é"


@pytest.fixture(scope="module")
def sim() -> Iterator[SimHandle]:
    with running_simulator(product="jira", users=120, tier=130) as handle:
        yield handle


@pytest.fixture
def jira(sim: SimHandle) -> Iterator[JiraDirectory]:
    sim.clear_faults()
    with JiraDirectory.connect(sim.base_url, sim.admin_auth, policy=FAST) as directory:
        yield directory
    sim.clear_faults()
    assert sim.state()["licence_violations"] == 0


def members(sim: SimHandle, group: str) -> set[str]:
    return set(sim.state()["groups"].get(group, []))


def test_info_reports_the_simulated_version(jira: JiraDirectory, sim: SimHandle) -> None:
    info = jira.info()
    assert (info.product, info.version, info.api) == ("jira", "9.12.2", "REST v2")
    assert info.base_url == sim.base_url.rstrip("/")


def test_a_personal_access_token_works(sim: SimHandle) -> None:
    assert sim.admin_token is not None
    with JiraDirectory.connect(sim.base_url, PersonalAccessToken(sim.admin_token)) as jira:
        assert jira.licence().tier == 130


def test_wrong_credentials_are_not_permitted(sim: SimHandle) -> None:
    with JiraDirectory.connect(sim.base_url, ("admin", "wrong")) as jira:
        with pytest.raises(NotPermitted, match="AUTHENTICATED_FAILED"):
            jira.licence()


def test_every_member_is_listed_across_capped_pages(jira: JiraDirectory, sim: SimHandle) -> None:
    listed = jira.group_members("jira-software-users")
    assert len(listed) > 100  # more than two pages of 50
    assert set(listed) == members(sim, "jira-software-users")
    assert len(listed) == len(set(listed))


def test_the_licence_and_licensed_users_match_the_product(
    jira: JiraDirectory, sim: SimHandle
) -> None:
    state = sim.state()
    assert jira.licence() == Licence(tier=state["tier"], licensed=state["licensed"])
    assert jira.licensed_users() == set(state["licensed_users"])


def test_groups_are_created_once(jira: JiraDirectory, sim: SimHandle) -> None:
    assert jira.create_group("IUM_Created") is True
    assert jira.create_group("IUM_Created") is False
    assert "IUM_Created" in sim.state()["groups"]
    assert jira.group_members("IUM_Created") == []


def test_membership_changes_are_idempotent(jira: JiraDirectory, sim: SimHandle) -> None:
    jira.create_group(DISABLED)
    user = sim.users[0]
    jira.add_user_to_group(user, DISABLED)
    jira.add_user_to_group(user, DISABLED)
    assert user in members(sim, DISABLED)
    assert DISABLED in jira.groups_of(user)
    jira.remove_user_from_group(user, DISABLED)
    jira.remove_user_from_group(user, DISABLED)
    assert user not in members(sim, DISABLED)


def test_a_missing_user_or_group_is_named(jira: JiraDirectory, sim: SimHandle) -> None:
    jira.create_group(DISABLED)
    with pytest.raises(UserNotFound):
        jira.add_user_to_group("nobody.here", DISABLED)
    with pytest.raises(GroupNotFound):
        jira.add_user_to_group(sim.users[0], "IUM_Nowhere")
    with pytest.raises(UserNotFound):
        jira.remove_user_from_group("nobody.here", DISABLED)
    with pytest.raises(GroupNotFound):
        jira.group_members("IUM_Nowhere")
    assert jira.find_user("nobody.here") is None


def test_awkward_names_travel_intact(jira: JiraDirectory, sim: SimHandle) -> None:
    sim.add_user(AWKWARD)
    jira.create_group("IUM & co/#1")
    jira.add_user_to_group(AWKWARD, "IUM & co/#1")
    assert members(sim, "IUM & co/#1") == {AWKWARD}
    found = jira.find_user(AWKWARD)
    assert found is not None and found.name == AWKWARD
    assert jira.memberships(["IUM & co/#1"]) == {AWKWARD: frozenset({"IUM & co/#1"})}
    jira.remove_user_from_group(AWKWARD, "IUM & co/#1")
    assert members(sim, "IUM & co/#1") == set()


def test_application_access_is_granted_and_revoked(jira: JiraDirectory, sim: SimHandle) -> None:
    jira.create_group("IUM_Access")
    jira.grant_application_access("IUM_Access")
    jira.grant_application_access("IUM_Access")
    access = jira.application_access()
    assert "IUM_Access" in access.groups
    assert "jira-software-users" in access.groups  # kept
    assert "IUM_Access" not in access.default_groups
    jira.revoke_application_access("IUM_Access")
    assert "IUM_Access" not in jira.application_access().groups
    assert "jira-software-users" in sim.state()["can_use"]


def test_sessions_are_ended_on_9_11_and_later(sim: SimHandle) -> None:
    with JiraDirectory.connect(sim.base_url, sim.admin_auth, kill_sessions_on_revoke=True) as jira:
        assert jira.sessions_invalidation_available()
        jira.invalidate_sessions(sim.users[1])
        with pytest.raises(UserNotFound):
            jira.invalidate_sessions("nobody.here")


def test_before_9_11_ending_sessions_is_a_manual_step() -> None:
    with running_simulator(product="jira", users=2, tier=5, version="9.10.1") as old:
        with JiraDirectory.connect(old.base_url, old.admin_auth) as jira:
            assert jira.sessions_invalidation_available() is False
            with pytest.raises(ManualStepRequired):
                jira.invalidate_sessions(old.users[0])


def test_a_read_only_directory_refuses_in_atlassians_words() -> None:
    with running_simulator(product="jira", users=4, tier=10, read_only_users=1) as ro:
        with JiraDirectory.connect(ro.base_url, ro.admin_auth, policy=FAST) as jira:
            jira.create_group(ENABLED)
            ldap_user = ro.state()["directories"][-1]["users"][0]
            with pytest.raises(ReadOnlyDirectory, match="The user's directory is read only"):
                jira.add_user_to_group(ldap_user, ENABLED)
            assert ro.state()["licence_violations"] == 0


# -- seats rotated under faults ------------------------------------------------------------

FAULTS = [
    pytest.param({"kind": "latency", "latency_ms": 100, "times": 20}, id="latency"),
    pytest.param({"kind": "rate_limit", "retry_after_s": 1, "times": 2}, id="429-retry-after"),
    pytest.param({"kind": "error", "status": 503, "times": 3}, id="503"),
    pytest.param({"kind": "drop", "times": 2}, id="dropped-connection"),
]


def rotate(jira: JiraDirectory, users: list[str], tier: int) -> None:
    """What the engine does: a seat goes to a newcomer only once the licence has room."""
    for newcomer in users:
        licence = jira.licence()
        if licence.licensed >= licence.tier:
            holders = [u for u in jira.group_members(ENABLED) if u != "admin"]
            jira.remove_user_from_group(holders[0], ENABLED)
            jira.add_user_to_group(holders[0], DISABLED)
        jira.remove_user_from_group(newcomer, DISABLED)
        jira.add_user_to_group(newcomer, ENABLED)
    assert jira.licence().licensed <= tier


@pytest.mark.parametrize("fault", FAULTS)
def test_seats_rotate_within_the_tier_whatever_the_fault(fault: dict[str, object]) -> None:
    tier = 5
    with running_simulator(product="jira", users=12, tier=tier) as s:
        with JiraDirectory.connect(s.base_url, s.admin_auth, policy=FAST) as jira:
            # Setup as `floatseat setup` would do it, before any fault.
            for group in (ENABLED, DISABLED):
                jira.create_group(group)
            jira.add_user_to_group("admin", ENABLED)
            jira.grant_application_access(ENABLED)
            for user in s.users:
                jira.add_user_to_group(user, DISABLED)
            jira.revoke_application_access("jira-software-users")
            assert jira.licence().licensed == 1  # the admin
            kind = str(fault.pop("kind"))
            s.add_fault(kind, paths=["/rest/api/2/"], **fault)
            rotate(jira, s.users, tier)
            state = s.state()
            assert state["licence_violations"] == 0
            assert state["licensed"] == tier
            assert set(jira.group_members(ENABLED)) == set(state["groups"][ENABLED])
            assert state["faults"] == []  # each fault hit all its `times` and retired


def test_a_move_the_server_applies_after_the_client_gave_up_lands_once() -> None:
    with running_simulator(product="jira", users=3, tier=10) as s:
        with JiraDirectory.connect(s.base_url, s.admin_auth, policy=FAST, timeout=0.3) as jira:
            jira.create_group(DISABLED)
            user = s.users[0]
            # The first POST waits longer than the client does, then still applies.
            s.add_fault("latency", latency_ms=800, times=1, methods=["POST"])
            jira.add_user_to_group(user, DISABLED)
            s.add_fault("latency", latency_ms=800, times=1, methods=["DELETE"])
            jira.remove_user_from_group(user, DISABLED)
            time.sleep(1.0)  # let the slow requests finish on the server
            jira.remove_user_from_group(user, DISABLED)
            assert user not in members(s, DISABLED)
            assert s.state()["licence_violations"] == 0


def test_a_stale_role_version_is_refused_and_a_grant_keeps_the_newer_groups() -> None:
    with running_simulator(product="jira", users=4, tier=10) as handle:
        with handle.http() as admin:
            first = admin.get("/rest/api/2/applicationrole")
            stale = first.headers["ETag"]
            assert admin.post("/rest/api/2/group", json={"name": "new-team"}).status_code == 201
            body = {"groups": [*first.json()[0]["groups"], "new-team"]}
            role_url = "/rest/api/2/applicationrole/jira-software"
            changed = admin.put(role_url, json=body, headers={"If-Match": stale})
            assert changed.status_code == 200
            refused = admin.put(role_url, json=body, headers={"If-Match": stale})
            assert refused.status_code == 412
        with JiraDirectory.connect(handle.base_url, handle.admin_auth, policy=FAST) as jira:
            jira.create_group(ENABLED)
            jira.grant_application_access(ENABLED)
            groups = {g.lower() for g in jira.application_access().groups}
        assert {"new-team", ENABLED.lower()} <= groups
        assert handle.state()["licence_violations"] == 0
