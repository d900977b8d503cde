"""Confluence's global permissions and group lookups in the simulator, driven by the real
`ConfluenceDirectory` over HTTP: REST on 9.2.5+, JSON-RPC before (`floatseat.sim.permissions`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from simulator import SimHandle, running_simulator

from floatseat.directory.confluence import API_JSON_RPC, API_REST, ConfluenceDirectory
from floatseat.directory.errors import GroupNotFound, ManualStepRequired
from floatseat.directory.port import Licence

ENABLED = "IUM_Enabled"
USERS, ADMINS = "confluence-users", "confluence-administrators"
RPC = "/rpc/json-rpc/confluenceservice-v2"
USE = [{"targetType": "application", "operationKey": "use"}]


@contextmanager
def confluence(version: str, **options: Any) -> Iterator[tuple[SimHandle, ConfluenceDirectory]]:
    """A simulated Confluence `version` and the connector on it (admin basic auth)."""
    options.setdefault("users", 6)
    options.setdefault("tier", 10)
    with running_simulator(product="confluence", version=version, **options) as sim:
        with ConfluenceDirectory.connect(sim.base_url, sim.admin_auth, timeout=5.0) as wiki:
            yield sim, wiki


def pool(sim: SimHandle, wiki: ConfluenceDirectory, members: list[str]) -> None:
    assert wiki.create_group(ENABLED) is True
    for user in members:
        wiki.add_user_to_group(user, ENABLED)


def can_use(sim: SimHandle) -> set[str]:
    """The "Can use" groups besides confluence-administrators (which has it from the start)."""
    held = set(sim.state()["can_use"])
    assert ADMINS in held
    return held - {ADMINS}


def rpc(sim: SimHandle, method: str, *params: object) -> dict[str, Any]:
    with sim.http() as http:
        body = {"jsonrpc": "2.0", "method": method, "params": list(params), "id": 1}
        reply = http.post(RPC, json=body)
    assert reply.status_code == 200, reply.text
    data = reply.json()
    assert isinstance(data, dict)
    return data


# -- 9.3.1: REST ---------------------------------------------------------------------------


def test_grant_and_revoke_can_use_over_rest_on_9_3_1() -> None:
    with confluence("9.3.1") as (sim, wiki):
        assert wiki.info().api == API_REST
        assert sim.state()["remote_api"] is False  # Confluence's own default
        floating = sim.users[:3]
        pool(sim, wiki, floating)
        assert wiki.application_access().groups == frozenset({USERS, ADMINS})

        wiki.grant_application_access(ENABLED)
        assert can_use(sim) == {USERS, ENABLED.casefold()}
        assert wiki.application_access().groups == frozenset({USERS, ADMINS, ENABLED})
        before = sim.state()["licensed"]
        assert before == 7  # everyone is still in confluence-users

        wiki.revoke_application_access(USERS)
        state = sim.state()
        assert can_use(sim) == {ENABLED.casefold()}
        assert wiki.application_access().groups == frozenset({ADMINS, ENABLED})
        assert set(state["licensed_users"]) == set(floating) | {"admin"}  # admin: admins group
        assert wiki.licence() == Licence(tier=10, licensed=4)
        assert wiki.licensed_users() == frozenset(state["licensed_users"])

        wiki.grant_application_access(ENABLED)  # "doesn't override existing permissions"
        assert can_use(sim) == {ENABLED.casefold()}
        assert sim.state()["licence_violations"] == 0


def test_grant_to_a_missing_group_is_group_not_found() -> None:
    with confluence("9.3.1") as (sim, wiki):
        with pytest.raises(GroupNotFound):
            wiki.grant_application_access("no-such-group")
        assert can_use(sim) == {USERS}


def test_rest_permissions_shapes_and_revoking_use_removes_everything() -> None:
    with confluence("9.3.1") as (sim, wiki), sim.http() as http:
        pool(sim, wiki, sim.users[:1])
        path = f"/rest/api/permissions/group/{ENABLED}"
        admin = [
            {"targetType": "application", "operationKey": "use"},
            {"targetType": "application", "operationKey": "administer"},
            {"targetType": "space", "operationKey": "create"},
        ]
        assert http.put(f"{path}/grant", json=admin).status_code == 204
        held = http.get(path).json()
        assert {(g["operation"]["targetType"], g["operation"]["operationKey"]) for g in held} == {
            ("application", "use"),
            ("application", "administer"),
            ("space", "create"),
        }
        assert all(g["subject"]["type"] == "group" for g in held)
        assert all(g["subject"]["name"] == ENABLED for g in held)
        assert set(sim.state()["admin_groups"]) == {ENABLED.casefold(), ADMINS}

        admins = http.get(f"/rest/api/permissions/group/{ADMINS}").json()
        assert [g["operation"]["targetType"] for g in admins] == ["application"] * 2 + ["system"]
        everything = http.get("/rest/api/permissions").json()
        assert {"operation", "subject"} <= set(everything[0])
        users = [g for g in everything if g["subject"]["name"] == USERS]
        assert [g["operation"] for g in users] == USE

        # Revoking only the administrator permission leaves "Can use".
        no_admin = [{"targetType": "application", "operationKey": "administer"}]
        assert http.put(f"{path}/revoke", json=no_admin).status_code == 204
        assert len(http.get(path).json()) == 2
        # "When 'application use' is revoked, all granted permissions will be removed".
        assert http.put(f"{path}/revoke", json=USE).status_code == 204
        assert http.get(path).json() == []
        assert ENABLED.casefold() not in sim.state()["licensing_groups"]

        wrong = [{"targetType": "application", "operationKey": "fly"}]
        assert http.put(f"{path}/grant", json=wrong).status_code == 400
        assert http.put("/rest/api/permissions/group/nobody/grant", json=USE).status_code == 404
        assert http.get("/rest/api/permissions/group/nobody").status_code == 404
    with confluence("9.3.1") as (sim, _):
        sim.add_user("bob")
        sim.set_licence(grants=["bob"])  # may log in, is no administrator
        with httpx.Client(base_url=sim.base_url, auth=("bob", "password"), timeout=5) as bob:
            assert bob.get("/rest/api/permissions").status_code == 403
            assert (
                bob.put(f"/rest/api/permissions/group/{USERS}/revoke", json=USE).status_code == 403
            )


@pytest.mark.parametrize(("version", "status"), [("9.2.4", 404), ("9.2.5", 200), ("8.5.4", 404)])
def test_the_rest_resource_arrives_in_9_2_5(version: str, status: int) -> None:
    with confluence(version) as (sim, _), sim.http() as http:
        assert http.get("/rest/api/permissions").status_code == status


def test_a_grant_over_the_tier_is_a_licence_violation() -> None:
    with confluence("9.3.1", users=6, tier=5) as (sim, wiki):
        pool(sim, wiki, sim.users)
        wiki.revoke_application_access(USERS)
        assert sim.state()["licensed"] == 1  # admin
        wiki.grant_application_access(ENABLED)  # 6 + admin on a tier of 5
        state = sim.state()
        assert (state["licensed"], state["licence_violations"]) == (7, 1)
        assert ENABLED in state["violations"][0]["cause"]


# -- 8.1: JSON-RPC -------------------------------------------------------------------------


def test_grant_and_revoke_can_use_over_json_rpc_on_8_1() -> None:
    with confluence("8.1.4", remote_api=True) as (sim, wiki):
        assert wiki.info().api == API_JSON_RPC
        floating = sim.users[:2]
        pool(sim, wiki, floating)
        wiki.grant_application_access(ENABLED)
        assert can_use(sim) == {USERS, ENABLED.casefold()}
        wiki.revoke_application_access(USERS)
        state = sim.state()
        assert can_use(sim) == {ENABLED.casefold()}
        assert set(state["licensed_users"]) == set(floating) | {"admin"}
        assert wiki.licence() == Licence(tier=10, licensed=3)
        with pytest.raises(ManualStepRequired):  # no API reads global permissions before 9.2.5
            wiki.application_access()
        assert state["licence_violations"] == 0


def test_json_rpc_is_off_by_default_on_8_x_and_the_connector_says_what_to_enable() -> None:
    with confluence("8.1.4") as (sim, wiki):
        assert sim.state()["remote_api"] is False
        with pytest.raises(ManualStepRequired) as raised:
            wiki.grant_application_access(ENABLED)
        assert any("Remote API (XML-RPC & SOAP)" in step for step in raised.value.steps)
        error = rpc(sim, "getServerInfo")["error"]
        assert "Remote API is not enabled" in error["message"]
        assert can_use(sim) == {USERS}


def test_json_rpc_server_info_and_global_permission_methods() -> None:
    with confluence("9.3.1", remote_api=True) as (sim, _):
        info = rpc(sim, "getServerInfo")["result"]
        assert (info["majorVersion"], info["minorVersion"], info["patchLevel"]) == (9, 3, 1)
        assert info["baseUrl"] == sim.base_url.rstrip("/")
        assert isinstance(info["buildId"], str) and info["developmentBuild"] is False

        missing = rpc(sim, "addGlobalPermission", "USECONFLUENCE", "nobody")["error"]
        assert "No user or group with the name 'nobody' exists." in missing["message"]

        # An administrator permission licenses its holders; removing it takes only it away.
        sim.set_licence(can_use=[ADMINS])
        assert sim.state()["licensed"] == 1  # admin, through confluence-administrators
        assert rpc(sim, "addGlobalPermission", "ADMINISTRATECONFLUENCE", USERS)["result"] is True
        assert sim.state()["licensed"] == 7
        assert rpc(sim, "addGlobalPermissions", ["USECONFLUENCE"], USERS)["result"] is True
        assert rpc(sim, "removeGlobalPermission", "ADMINISTRATECONFLUENCE", USERS)["result"]
        assert can_use(sim) == {USERS} and sim.state()["licensed"] == 7
        assert rpc(sim, "removeGlobalPermission", "SYSTEMADMINISTRATOR", USERS)["result"] is True

        # A name is a user before it is a group: the grant is individual.
        user = sim.users[0]
        rpc(sim, "removeGlobalPermission", "USECONFLUENCE", USERS)
        assert rpc(sim, "addGlobalPermission", "USECONFLUENCE", user)["result"] is True
        assert sim.state()["grants"] == [user.casefold()]
        assert set(sim.state()["licensed_users"]) == {"admin", user}
        assert sim.state()["licence_violations"] == 0


# -- GET /rest/api/user/memberof -------------------------------------------------------------


def test_memberof_pages_and_404s() -> None:
    with confluence("8.5.4") as (sim, wiki), sim.http() as http:
        user = sim.users[0]
        wiki.create_group(ENABLED)
        wiki.add_user_to_group(user, ENABLED)
        first = http.get("/rest/api/user/memberof", params={"username": user, "limit": 1}).json()
        assert (first["start"], first["limit"], first["size"]) == (0, 1, 1)
        assert first["results"][0]["type"] == "group"
        assert f"username={user}" in first["_links"]["next"]
        assert wiki.groups_of(user) == frozenset({ENABLED, USERS})
        missing = http.get("/rest/api/user/memberof", params={"username": "nobody"})
        assert missing.status_code == 404
