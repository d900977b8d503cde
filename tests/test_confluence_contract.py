"""`ConfluenceDirectory` over real HTTP against the simulated Confluence (`tests/simulator.py`).

8.x goes through REST, 7.x through JSON-RPC; every fault the simulator offers is switched on
once, and the simulator's licence-violation record must stay empty throughout.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from simulator import SimHandle, running_simulator

from floatseat.directory.confluence import API_JSON_RPC, API_REST, ConfluenceDirectory
from floatseat.directory.errors import (
    GroupNotFound,
    ManualStepRequired,
    ReadOnlyDirectory,
    UserNotFound,
)
from floatseat.directory.http import (
    AtlassianHttp,
    PersonalAccessToken,
    RetryPolicy,
    make_client,
)
from floatseat.directory.port import Licence

ENABLED, DISABLED = "IUM_Enabled", "IUM_Disabled"
AWKWARD = "o'brien ä?x#y%41 +&=@corp"  # no "/": Tomcat (and the simulator) refuse %2F


@contextmanager
def confluence(
    version: str | None = None, **options: Any
) -> Iterator[tuple[SimHandle, ConfluenceDirectory, list[float]]]:
    """A simulator, a directory on it (admin PAT), and the waits the HTTP layer asked for."""
    options.setdefault("users", 6)
    options.setdefault("tier", 10)
    with running_simulator(version=version, **options) as sim:
        sleeps: list[float] = []
        token = sim.admin_token
        assert token is not None
        client = make_client(sim.base_url, PersonalAccessToken(token), timeout=5.0)
        http = AtlassianHttp(
            client, policy=RetryPolicy(attempts=4), sleep=sleeps.append, random=lambda: 0.0
        )
        with ConfluenceDirectory(http) as directory:
            yield sim, directory, sleeps
        assert sim.state()["licence_violations"] == 0, sim.state()["violations"]


def members(sim: SimHandle, group: str) -> set[str]:
    groups = {g.casefold(): us for g, us in sim.state()["groups"].items()}
    return set(groups.get(group.casefold(), []))


def pool(sim: SimHandle, directory: ConfluenceDirectory) -> None:
    """The pool groups, with "Can use" on IUM_Enabled only (as `floatseat setup` leaves it)."""
    assert directory.create_group(ENABLED) is True
    assert directory.create_group(DISABLED) is True
    sim.set_licence(can_use=[ENABLED])


# -- Confluence 8.x: REST ------------------------------------------------------------------


def test_rest_info_and_licence() -> None:
    with confluence() as (sim, directory, _):
        info = directory.info()
        assert (info.product, info.version, info.api) == ("confluence", "8.5.4", API_REST)
        assert info.base_url == sim.base_url.rstrip("/")
        state = sim.state()
        assert directory.licence() == Licence(tier=state["tier"], licensed=state["licensed"])
        assert directory.licensed_users() is None  # 8.5 has no list of licensed users
        with pytest.raises(ManualStepRequired):
            directory.application_access()


def test_rest_moves_are_idempotent_and_keep_the_tier() -> None:
    with confluence() as (sim, directory, _):
        pool(sim, directory)
        assert directory.create_group(ENABLED) is False
        alice, bob = sim.users[:2]
        for user in (alice, bob):
            directory.add_user_to_group(user, DISABLED)
        directory.add_user_to_group(alice, ENABLED)
        directory.add_user_to_group(alice, ENABLED)  # twice: nothing changes
        assert members(sim, ENABLED) == {alice}
        # a floating swap: take the seat back first, then give it
        directory.remove_user_from_group(alice, ENABLED)
        directory.remove_user_from_group(alice, ENABLED)
        directory.add_user_to_group(bob, ENABLED)
        assert members(sim, ENABLED) == {bob}
        assert directory.licence().licensed == sim.state()["licensed"] == 2  # bob + admin
        assert directory.memberships([ENABLED, DISABLED]) == {
            alice: frozenset({DISABLED}),
            bob: frozenset({ENABLED, DISABLED}),
        }


def test_rest_pages_through_capped_member_lists() -> None:
    with confluence(users=23, tier=30, member_page_cap=5) as (sim, directory, _):
        listed = directory.group_members("confluence-users")
        assert len(listed) == len(set(listed)) == 24  # the users and the admin
        assert set(listed) == members(sim, "confluence-users")


def test_rest_awkward_names_reach_the_right_user_and_group() -> None:
    with confluence() as (sim, directory, _):
        sim.add_user(AWKWARD)
        assert directory.create_group("pool #1 ?&") is True
        directory.add_user_to_group(AWKWARD, "pool #1 ?&")
        assert members(sim, "pool #1 ?&") == {AWKWARD}
        assert directory.group_members("pool #1 ?&") == [AWKWARD]
        user = directory.find_user(AWKWARD)
        assert user is not None and user.name == AWKWARD and user.active
        directory.remove_user_from_group(AWKWARD, "pool #1 ?&")
        assert members(sim, "pool #1 ?&") == set()


def test_rest_missing_names_and_deactivated_users() -> None:
    with confluence() as (sim, directory, _):
        pool(sim, directory)
        with pytest.raises(UserNotFound):
            directory.add_user_to_group("ghost", ENABLED)
        with pytest.raises(GroupNotFound):
            directory.add_user_to_group(sim.users[0], "no-such-group")
        with pytest.raises(GroupNotFound):
            directory.group_members("no-such-group")
        assert directory.find_user("ghost") is None
        sim.set_active(sim.users[1], False)
        user = directory.find_user(sim.users[1])
        assert user is not None and not user.active


def test_rest_groups_of_uses_memberof() -> None:
    with confluence() as (sim, directory, _):
        assert "confluence-users" in directory.groups_of(sim.users[0])


def test_rest_licensed_users_on_9_3() -> None:
    with confluence(version="9.3.1") as (sim, directory, _):
        assert directory.licensed_users() == frozenset(sim.state()["licensed_users"])


def test_rest_read_only_ldap_directory_is_reported_with_its_text() -> None:
    with confluence(read_only_users=1) as (sim, directory, _):
        pool(sim, directory)
        ldap_user = next(
            d["users"][0] for d in sim.state()["directories"] if d["kind"] == "read_only"
        )
        with pytest.raises(ReadOnlyDirectory) as raised:
            directory.add_user_to_group(ldap_user, ENABLED)
        assert "read only" in raised.value.server_message
        assert members(sim, ENABLED) == set()


# -- faults --------------------------------------------------------------------------------


def test_fault_latency_is_waited_out() -> None:
    with confluence() as (sim, directory, _):
        pool(sim, directory)
        sim.add_fault("latency", latency_ms=300, paths=["/rest/api/user/"])
        directory.add_user_to_group(sim.users[0], ENABLED)
        assert members(sim, ENABLED) == {sim.users[0]}


def test_fault_429_honours_retry_after() -> None:
    with confluence() as (sim, directory, sleeps):
        pool(sim, directory)
        sim.add_fault("rate_limit", times=2, retry_after_s=2, methods=["PUT"])
        directory.add_user_to_group(sim.users[0], ENABLED)
        assert sleeps == [2.0, 2.0]
        assert members(sim, ENABLED) == {sim.users[0]}


def test_fault_503_is_retried() -> None:
    with confluence() as (sim, directory, sleeps):
        pool(sim, directory)
        sim.add_fault("error", status=503, times=2, methods=["DELETE"])
        directory.add_user_to_group(sim.users[0], ENABLED)
        directory.remove_user_from_group(sim.users[0], ENABLED)
        assert len(sleeps) == 2
        assert members(sim, ENABLED) == set()


def test_fault_dropped_connection_is_retried() -> None:
    with confluence() as (sim, directory, sleeps):
        pool(sim, directory)
        sim.add_fault("drop", times=1, paths=["/rest/api/group/"])
        assert directory.group_members(ENABLED) == []
        assert len(sleeps) == 1


def test_fault_read_only_directory() -> None:
    with confluence() as (sim, directory, sleeps):
        pool(sim, directory)
        fault = sim.add_fault("read_only", methods=["PUT"])
        with pytest.raises(ReadOnlyDirectory):
            directory.add_user_to_group(sim.users[0], ENABLED)
        assert sleeps == []  # not retried: the outbox and the admin deal with it
        sim.remove_fault(fault)
        directory.add_user_to_group(sim.users[0], ENABLED)
        assert members(sim, ENABLED) == {sim.users[0]}


# -- Confluence 7.x: JSON-RPC --------------------------------------------------------------


def test_json_rpc_info_moves_and_groups() -> None:
    with confluence(version="7.19.14") as (sim, directory, _):
        info = directory.info()
        assert (info.version, info.api) == ("7.19.14", API_JSON_RPC)
        pool(sim, directory)
        assert directory.create_group(ENABLED) is False
        alice, bob = sim.users[:2]
        directory.add_user_to_group(alice, ENABLED)
        directory.add_user_to_group(alice, ENABLED)
        assert members(sim, ENABLED) == {alice}
        assert {g.casefold() for g in directory.groups_of(alice)} >= {
            "confluence-users",
            ENABLED.casefold(),
        }
        directory.remove_user_from_group(alice, ENABLED)
        directory.remove_user_from_group(alice, ENABLED)
        directory.add_user_to_group(bob, ENABLED)
        assert members(sim, ENABLED) == {bob}
        assert directory.licence() == Licence(tier=10, licensed=2)


def test_json_rpc_awkward_names_and_missing_ones() -> None:
    with confluence(version="7.19.14") as (sim, directory, _):
        sim.add_user(AWKWARD)
        assert directory.create_group("pool #1 ?&") is True
        directory.add_user_to_group(AWKWARD, "pool #1 ?&")
        assert members(sim, "pool #1 ?&") == {AWKWARD}
        with pytest.raises(UserNotFound):
            directory.add_user_to_group("ghost", "pool #1 ?&")
        with pytest.raises(GroupNotFound):
            directory.add_user_to_group(AWKWARD, "no-such-group")


def test_json_rpc_faults_and_read_only() -> None:
    with confluence(version="7.19.14", read_only_users=1) as (sim, directory, sleeps):
        pool(sim, directory)
        sim.add_fault("rate_limit", times=1, retry_after_s=1, paths=["/rpc/"])
        sim.add_fault("error", status=503, times=1, paths=["/rpc/"])
        sim.add_fault("latency", latency_ms=200, times=3, paths=["/rpc/"])
        directory.add_user_to_group(sim.users[0], ENABLED)
        assert 1.0 in sleeps and len(sleeps) == 2
        sim.add_fault("drop", times=1, paths=["/rpc/"])
        directory.remove_user_from_group(sim.users[0], ENABLED)
        assert members(sim, ENABLED) == set()
        ldap_user = next(
            d["users"][0] for d in sim.state()["directories"] if d["kind"] == "read_only"
        )
        with pytest.raises(ReadOnlyDirectory):
            directory.add_user_to_group(ldap_user, ENABLED)
        fault = sim.add_fault("read_only")
        with pytest.raises(ReadOnlyDirectory):
            directory.add_user_to_group(sim.users[1], ENABLED)
        sim.remove_fault(fault)
        directory.add_user_to_group(sim.users[1], ENABLED)
        assert members(sim, ENABLED) == {sim.users[1]}


def test_json_rpc_disabled_says_what_to_enable() -> None:
    with confluence(version="7.19.14", remote_api=False) as (sim, directory, _):
        with pytest.raises(ManualStepRequired) as raised:
            directory.info()
        assert any("Remote API (XML-RPC & SOAP)" in s for s in raised.value.steps)
        with pytest.raises(ManualStepRequired):
            directory.add_user_to_group(sim.users[0], "confluence-users")


# -- global permissions ----------------------------------------------------------------------


def test_rest_application_access_names_the_administrator_groups() -> None:
    with confluence(version="9.3.1") as (sim, directory, _):
        pool(sim, directory)
        sim.set_licence(sysadmin_groups=["confluence-administrators", "ops"])
        assert directory.create_group("ops") is True
        access = directory.application_access()
        assert access.groups == {ENABLED}
        assert {g.casefold() for g in access.admin_groups} == {"confluence-administrators", "ops"}


def test_json_rpc_will_not_grant_a_user_named_like_the_group() -> None:
    with confluence(version="8.5.4", remote_api=True) as (sim, directory, _):
        assert directory.create_group("clash") is True
        sim.add_user("clash")
        before = sim.state()
        with pytest.raises(ManualStepRequired, match="a user 'clash'") as raised:
            directory.grant_application_access("clash")
        assert any("Tick 'Can use' for 'clash'" in s for s in raised.value.steps)
        after = sim.state()
        assert (after["grants"], after["can_use"]) == (before["grants"], before["can_use"])
