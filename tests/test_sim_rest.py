"""The simulator over real HTTP: shapes, paging, idempotence, licence, faults, auth."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from simulator import SimHandle, running_simulator

# Recorded shapes: the keys and value types of the reference's examples
# (shared/reference/atlassian.md §1-§3).
CONFLUENCE_USER = {
    "type": str,
    "username": str,
    "userKey": str,
    "profilePicture": dict,
    "displayName": str,
    "_links": dict,
}
JIRA_USER = {
    "self": str,
    "key": str,
    "name": str,
    "emailAddress": str,
    "avatarUrls": dict,
    "displayName": str,
    "active": bool,
    "timeZone": str,
}
JIRA_ROLE = {
    "key": str,
    "name": str,
    "groups": list,
    "defaultGroups": list,
    "selectedByDefault": bool,
    "defined": bool,
    "numberOfSeats": int,
    "remainingSeats": int,
    "userCount": int,
    "userCountDescription": str,
    "hasUnlimitedSeats": bool,
    "platform": bool,
}


def assert_shape(data: dict[str, Any], shape: dict[str, type]) -> None:
    for key, kind in shape.items():
        assert key in data, f"missing {key}"
        assert isinstance(data[key], kind), f"{key}: {data[key]!r} is not {kind.__name__}"


@pytest.fixture
def confluence() -> Iterator[SimHandle]:
    with running_simulator(product="confluence", users=12, tier=20) as sim:
        yield sim


@pytest.fixture
def jira() -> Iterator[SimHandle]:
    with running_simulator(product="jira", users=12, tier=20) as sim:
        yield sim


# -- Confluence ---------------------------------------------------------------------------


def test_confluence_user_has_the_recorded_shape_and_status_on_expand(
    confluence: SimHandle,
) -> None:
    name = confluence.users[0]
    with confluence.http() as http:
        r = http.get("/rest/api/user", params={"username": name, "expand": "status,bogus"})
        by_key = http.get("/rest/api/user", params={"key": r.json()["userKey"]})
        missing = http.get("/rest/api/user", params={"username": "nobody"})
    assert r.status_code == 200
    assert_shape(r.json(), CONFLUENCE_USER)
    assert r.json()["type"] == "known"
    assert r.json()["status"] == "Active"
    assert by_key.json()["username"] == name
    assert missing.status_code == 404
    body = missing.json()
    assert body["statusCode"] == 404 and isinstance(body["message"], str)
    assert set(body["data"]) == {"authorized", "valid", "errors", "successful"}


def test_confluence_group_members_page_with_next_links_until_a_short_last_page(
    confluence: SimHandle,
) -> None:
    seen: list[str] = []
    sizes: list[int] = []
    with confluence.http() as http:
        url: str | None = "/rest/api/group/confluence-users/member?limit=5&start=0&extra=1"
        while url is not None:
            page = http.get(url).json()
            assert set(page) >= {"results", "start", "limit", "size", "_links"}
            assert page["_links"]["base"] == confluence.base_url
            seen += [u["username"] for u in page["results"]]
            sizes.append(page["size"])
            url = page["_links"].get("next")
    assert seen == sorted([*confluence.users, "admin"], key=str.casefold)
    assert sizes == [5, 5, 3]  # 13 members: full pages, then the short last one


def test_confluence_caps_the_member_limit(confluence: SimHandle) -> None:
    confluence.sim.config.member_page_cap = 4
    with confluence.http() as http:
        page = http.get("/rest/api/group/confluence-users/member", params={"limit": 1000}).json()
    assert page["limit"] == 4 and page["size"] == 4 and "next" in page["_links"]


def test_confluence_membership_is_idempotent_and_counts_the_licence(
    confluence: SimHandle,
) -> None:
    user = confluence.users[0]
    with confluence.http() as http:
        assert http.post("/rest/api/admin/group", json={"name": "IUM_Enabled"}).status_code == 201
        assert http.get("/rest/license/1.0/license/userCount").json() == {"count": 13}
        # Take everyone's "Can use" from confluence-users; IUM_Enabled licenses instead.
        confluence.set_licence(can_use=["IUM_Enabled"])
        assert http.get("/rest/license/1.0/license/userCount").json() == {"count": 1}
        for _ in range(2):
            assert http.put(f"/rest/api/user/{user}/group/IUM_Enabled").status_code == 204
        assert http.get("/rest/license/1.0/license/userCount").json() == {"count": 2}
        assert http.get("/rest/license/1.0/license/remainingSeats").json() == {"count": 18}
        assert http.get("/rest/license/1.0/license/maxUsers").json() == {"count": 20}
        for _ in range(2):
            assert http.delete(f"/rest/api/user/{user}/group/IUM_Enabled").status_code == 204
        assert http.put("/rest/api/user/nobody/group/IUM_Enabled").status_code == 404
        assert http.put(f"/rest/api/user/{user}/group/nogroup").status_code == 404
        assert http.delete("/rest/api/admin/group/IUM_Enabled").status_code == 204
        groups = http.get("/rest/api/group").json()["results"]
    assert [g["name"] for g in groups] == ["confluence-administrators", "confluence-users"]
    assert all(g["type"] == "group" for g in groups)
    assert confluence.state()["licence_violations"] == 0


def test_going_over_the_tier_is_a_violation_and_makes_confluence_read_only() -> None:
    with running_simulator(users=3, tier=4) as sim, sim.http() as http:
        http.post("/rest/api/admin/group", json={"name": "extra"})
        sim.set_licence(can_use=["confluence-users", "extra"])
        sim.add_user("newcomer", groups=["extra"])  # 5 licensed now
        assert http.post("/rest/api/content", json={"type": "page"}).status_code == 403
        state = sim.state()
        assert state["licence_violations"] == 1 and state["read_only"]
        assert "newcomer" in state["violations"][0]["cause"]
        # Group management keeps working, so that an admin can fix it.
        assert (
            http.delete(f"/rest/api/user/{sim.users[0]}/group/confluence-users").status_code == 204
        )
        assert http.post("/rest/api/content", json={"type": "page"}).status_code == 200
        assert not sim.state()["read_only"]


def test_confluence_before_8_2_has_no_rest_membership_but_json_rpc_works() -> None:
    with running_simulator(version="7.19.0", users=3) as sim, sim.http() as http:
        user = sim.users[0]
        assert http.put(f"/rest/api/user/{user}/group/confluence-users").status_code == 404
        assert http.post("/rest/api/admin/group", json={"name": "x"}).status_code == 404

        def rpc(method: str, *params: Any) -> Any:
            body = {"jsonrpc": "2.0", "method": method, "params": list(params), "id": 7}
            r = http.post("/rpc/json-rpc/confluenceservice-v2", json=body)
            assert r.status_code == 200 and r.json()["id"] == 7
            return r.json()

        assert rpc("addGroup", "IUM_Enabled")["result"] is True
        assert rpc("hasGroup", "IUM_Enabled")["result"] is True
        assert rpc("addUserToGroup", user, "IUM_Enabled")["result"] is True
        assert rpc("getUserGroups", user)["result"] == ["confluence-users", "IUM_Enabled"]
        assert rpc("removeUserFromGroup", user, "IUM_Enabled")["result"] is True
        assert "IUM_Enabled" in rpc("getGroups")["result"]
        assert "error" in rpc("addUserToGroup", "nobody", "IUM_Enabled")
        assert rpc("noSuchMethod")["error"]["code"] == -32601


def test_json_rpc_is_off_by_default_on_8_x(confluence: SimHandle) -> None:
    with confluence.http() as http:
        body = {"jsonrpc": "2.0", "method": "getGroups", "params": [], "id": 1}
        r = http.post("/rpc/json-rpc/confluenceservice-v2", json=body)
    assert "not enabled" in r.json()["error"]["message"]


def test_licensed_users_list_exists_from_9_3_only() -> None:
    with running_simulator(version="9.3.1", users=3, tier=10) as sim, sim.http() as http:
        page = http.get("/rest/api/admin/users/list/active", params={"limit": 2}).json()
        assert page["size"] == 2 and "next" in page["_links"]
    with running_simulator(version="8.5.4", users=3) as sim, sim.http() as http:
        assert http.get("/rest/api/admin/users/list/active").status_code == 404


def test_manifest_names_product_and_version() -> None:
    with running_simulator(version="8.5.4", users=1) as sim:
        text = httpx.get(sim.base_url + "/rest/applinks/1.0/manifest").text
    assert "<typeId>confluence</typeId>" in text and "<version>8.5.4</version>" in text
    assert "<buildNumber>" in text


# -- Jira ---------------------------------------------------------------------------------


def test_jira_group_members_page_by_50_with_is_last_and_next_page() -> None:
    with running_simulator(product="jira", users=120, tier=200) as sim, sim.http() as http:
        names: list[str] = []
        start = 0
        pages = []
        while True:
            page = http.get(
                "/rest/api/2/group/member",
                params={"groupname": "jira-software-users", "startAt": start, "maxResults": 500},
            ).json()
            pages.append(page)
            names += [v["name"] for v in page["values"]]
            if page["isLast"]:
                assert "nextPage" not in page
                break
            assert page["nextPage"].endswith(f"startAt={start + 50}&maxResults=50")
            start += page["maxResults"]
    assert [len(p["values"]) for p in pages] == [50, 50, 21]
    assert all(p["total"] == 121 and p["maxResults"] == 50 for p in pages)
    assert_shape(pages[0]["values"][0], JIRA_USER)
    assert sorted(names, key=str.casefold) == names and len(set(names)) == 121


def test_jira_membership_changes_and_their_refusals(jira: SimHandle) -> None:
    user = jira.users[0]
    with jira.http() as http:
        created = http.post("/rest/api/2/group", json={"name": "IUM_Enabled"})
        assert created.status_code == 201 and created.json()["name"] == "IUM_Enabled"
        added = http.post("/rest/api/2/group/user?groupname=IUM_Enabled", json={"name": user})
        assert added.status_code == 201
        assert added.json()["name"] == "IUM_Enabled" and added.json()["users"]["size"] == 1
        again = http.post("/rest/api/2/group/user?groupname=IUM_Enabled", json={"name": user})
        assert again.status_code == 400 and again.json()["errorMessages"]
        assert set(again.json()) == {"errorMessages", "errors"}
        nobody = http.post("/rest/api/2/group/user?groupname=IUM_Enabled", json={"name": "x"})
        assert nobody.status_code == 404
        params = {"groupname": "IUM_Enabled", "username": user}
        assert http.delete("/rest/api/2/group/user", params=params).status_code == 200
        assert http.delete("/rest/api/2/group/user", params=params).status_code == 400
        assert (
            http.delete("/rest/api/2/group", params={"groupname": "IUM_Enabled"}).status_code == 200
        )
        assert (
            http.delete("/rest/api/2/group", params={"groupname": "IUM_Enabled"}).status_code == 404
        )


def test_jira_application_role_licenses_its_groups(jira: SimHandle) -> None:
    with jira.http() as http:
        role = http.get("/rest/api/2/applicationrole/jira-software").json()
        assert_shape(role, JIRA_ROLE)
        assert (role["numberOfSeats"], role["userCount"], role["remainingSeats"]) == (20, 13, 7)
        http.post("/rest/api/2/group", json={"name": "IUM_Enabled"})
        http.post("/rest/api/2/group/user?groupname=IUM_Enabled", json={"name": jira.users[0]})
        r = http.put(
            "/rest/api/2/applicationrole/jira-software",
            json={"groups": ["IUM_Enabled"], "defaultGroups": [], "name": "ignored"},
        )
        assert r.status_code == 200 and r.json()["groups"] == ["IUM_Enabled"]
        assert r.json()["userCount"] == 1 and r.json()["name"] == "Jira Software"
        assert http.get("/rest/api/2/applicationrole").json()[0]["userCount"] == 1
        user = http.get(
            "/rest/api/2/user",
            params={"username": jira.users[0], "expand": "groups,applicationRoles"},
        ).json()
        assert_shape(user, JIRA_USER)
        assert {g["name"] for g in user["groups"]["items"]} == {
            "IUM_Enabled",
            "jira-software-users",
        }
        assert user["applicationRoles"]["items"] == [
            {"key": "jira-software", "name": "Jira Software"}
        ]


def test_jira_user_search_stops_at_the_thousandth_user(jira: SimHandle) -> None:
    jira.sim.config.user_search_cap = 5
    with jira.http() as http:
        first = http.get("/rest/api/2/user/search", params={"username": ".", "maxResults": 3})
        rest = http.get(
            "/rest/api/2/user/search", params={"username": ".", "startAt": 3, "maxResults": 100}
        )
    assert len(first.json()) == 3 and len(rest.json()) == 2  # nothing past the cap
    assert_shape(first.json()[0], JIRA_USER)


def test_jira_server_info_and_session_kill_by_version() -> None:
    with running_simulator(product="jira", version="9.4.0", users=1) as sim:
        info = httpx.get(sim.base_url + "/rest/api/2/serverInfo").json()
        assert info["version"] == "9.4.0" and info["versionNumbers"] == [9, 4, 0]
        assert info["buildNumber"] == 904000
        with sim.http() as http:
            assert http.delete(f"/rest/api/2/user/session/{sim.users[0]}").status_code == 404
    with running_simulator(product="jira", version="9.12.2", users=1) as sim, sim.http() as http:
        assert http.delete(f"/rest/api/2/user/session/{sim.users[0]}").status_code == 204


# -- auth ---------------------------------------------------------------------------------


@pytest.mark.parametrize("product", ["confluence", "jira"])
def test_wrong_credentials_401_non_admin_403_token_ok(product: str) -> None:
    path = "/rest/api/group" if product == "confluence" else "/rest/api/2/applicationrole"
    write = "/rest/api/admin/group" if product == "confluence" else "/rest/api/2/group"
    with running_simulator(product=product, users=2, admin_password="s3cret") as sim:
        with httpx.Client(base_url=sim.base_url) as http:
            bad = http.get(path, auth=("admin", "admin"))
            assert bad.status_code == 401
            assert bad.headers["X-Seraph-LoginReason"] == "AUTHENTICATED_FAILED"
            assert http.get(path).status_code == 401
            user = http.post(write, json={"name": "g"}, auth=(sim.users[0], "password"))
            assert user.status_code == 403
            token = {"Authorization": f"Bearer {sim.admin_token}"}
            assert http.get(path, headers=token).status_code == 200
            assert http.get(path, headers={"Authorization": "Bearer nope"}).status_code == 401
            assert http.get(path, auth=("admin", "s3cret")).status_code == 200


# -- faults -------------------------------------------------------------------------------


def test_faults_hit_their_paths_and_methods_a_given_number_of_times(
    confluence: SimHandle,
) -> None:
    with confluence.http() as http:
        confluence.add_fault(
            "error", status=500, times=2, paths=["/rest/api/group"], methods=["GET"]
        )
        assert http.get("/rest/license/1.0/license/userCount").status_code == 200
        assert [http.get("/rest/api/group").status_code for _ in range(3)] == [500, 500, 200]
        fault = confluence.add_fault("error", status=503, paths=["/rest/*/group"])
        assert http.get("/rest/api/group").status_code == 503
        assert http.get("/rest/api/group").json()["statusCode"] == 503
        confluence.remove_fault(fault)
        assert http.get("/rest/api/group").status_code == 200


def test_rate_limit_fault_answers_429_with_the_dc_headers(jira: SimHandle) -> None:
    jira.add_fault("rate_limit", times=1, retry_after_s=3)
    with jira.http() as http:
        r = http.get("/rest/api/2/applicationrole")
        assert http.get("/rest/api/2/applicationrole").status_code == 200
    assert r.status_code == 429
    assert r.headers["Retry-After"] == "3"
    for header in ("Limit", "Remaining", "Interval-Seconds", "FillRate"):
        assert f"X-RateLimit-{header}" in r.headers
    assert r.json()["errorMessages"]


def test_dropped_connection_gets_no_response(confluence: SimHandle) -> None:
    confluence.add_fault("drop", times=1)
    with confluence.http() as http:
        with pytest.raises(httpx.TransportError):
            http.get("/rest/api/group")
        assert http.get("/rest/api/group").status_code == 200


def test_latency_fault_delays_the_answer(confluence: SimHandle) -> None:
    import time

    confluence.add_fault("latency", latency_ms=300, times=1)
    with confluence.http() as http:
        began = time.perf_counter()
        assert http.get("/rest/api/group").status_code == 200
        assert time.perf_counter() - began >= 0.3


def test_faults_are_listed_in_the_state_and_cleared(confluence: SimHandle) -> None:
    confluence.add_fault("error", times=5)
    assert confluence.state()["faults"][0]["kind"] == "error"
    confluence.clear_faults()
    assert confluence.state()["faults"] == []
    with httpx.Client(base_url=confluence.base_url) as http:
        assert http.post("/_sim/faults", json={"kind": "meteor"}).status_code == 400
