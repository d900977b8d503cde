"""Licence counting, directories and Crowd: the pure model, and the same rules over HTTP."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from simulator import running_simulator

from floatseat.sim.model import LicenceRules, SimUser, UserDirectory, World, fold

USERS = ["ann", "Bob", "cy", "dee", "eve"]
GROUPS = ["can-use", "admins", "other"]

operations = st.lists(
    st.tuples(
        st.sampled_from(["add", "remove", "deactivate", "activate"]),
        st.sampled_from(USERS),
        st.sampled_from(GROUPS),
    ),
    max_size=40,
)


def _world(tier: int) -> World:
    internal = UserDirectory("internal", "internal")
    ldap = UserDirectory("ldap", "read_only_local_groups")
    rules = LicenceRules(
        "confluence", tier, frozenset({"can-use"}), frozenset({"admins"}), frozenset({"eve"})
    )
    world = World([internal, ldap], rules)
    for g in GROUPS:
        world.create_group(g)
    for name in USERS[:3]:
        world.add_user(SimUser(name, name, f"{name}@x"))
    for name in USERS[2:]:  # "cy" is in both: the internal one shadows the LDAP one
        world.add_user(SimUser(name, name, f"{name}@x"), directory="ldap", groups=["can-use"])
    world.violations.clear()
    return world


@settings(max_examples=150, deadline=None)
@given(ops=operations, tier=st.integers(0, 5))
def test_licensed_count_matches_a_brute_force_count_and_violations_are_recorded(
    ops: list[tuple[str, str, str]], tier: int
) -> None:
    world = _world(tier)
    # The model of the truth: (user, group) pairs in the user's own directory.
    members = {("dee", "can-use"), ("eve", "can-use")}
    active = {fold(u): True for u in USERS}
    expected_violations = 0

    def brute() -> int:
        return sum(
            1
            for u in USERS
            if active[fold(u)]
            and (fold(u) == "eve" or any((fold(u), g) in members for g in ("can-use", "admins")))
        )

    for op, user, group in ops:
        before = brute()
        if op == "add":
            world.add_member(user, group, 0.0)
            members.add((fold(user), group))
        elif op == "remove":
            world.remove_member(user, group)
            members.discard((fold(user), group))
        else:
            world.set_active(user, op == "activate", 0.0)
            active[fold(user)] = op == "activate"
        after = brute()
        if after > tier and after > before:
            expected_violations += 1
        assert world.licensed_count() == after
    assert len(world.violations) == expected_violations


def test_membership_counts_only_in_the_first_directory_of_the_username() -> None:
    world = _world(10)
    assert not world.is_licensed("cy")  # the LDAP "cy" is in can-use, but is shadowed
    world.add_member("CY", "can-use", 0.0)
    assert world.is_licensed("cy") and world.groups_of("cy") == ["can-use"]


def test_read_only_directories_refuse_membership_changes_over_http() -> None:
    with (
        running_simulator(product="jira", users=6, read_only_users=2, local_groups_users=2) as sim,
        sim.http() as http,
    ):
        users = [p.name for p in sim.sim.people.people]
        internal, read_only, local = users[0], users[2], users[4]
        http.post("/rest/api/2/group", json={"name": "IUM_Enabled"})
        for user, status in ((internal, 201), (local, 201), (read_only, 400)):
            r = http.post("/rest/api/2/group/user?groupname=IUM_Enabled", json={"name": user})
            assert r.status_code == status, (user, r.text)
        assert r.json()["errorMessages"] == [
            f"You cannot add user '{read_only}' to group 'IUM_Enabled'. "
            "The user's directory is read only."
        ]
        # "Read Only, with Local Groups": the LDAP group itself stays read-only.
        params = {"groupname": "jira-software-users", "username": local}
        assert http.delete("/rest/api/2/group/user", params=params).status_code == 400
        # A read-only fault turns the internal directory read-only too, for its hits.
        sim.add_fault("read_only", times=1, methods=["POST"])
        r = http.post("/rest/api/2/group/user?groupname=IUM_Enabled", json={"name": users[1]})
        assert r.status_code == 400 and "read only" in r.json()["errorMessages"][0]
        r = http.post("/rest/api/2/group/user?groupname=IUM_Enabled", json={"name": users[1]})
        assert r.status_code == 201


def test_confluence_read_only_directory_error_body() -> None:
    with running_simulator(users=2, read_only_users=1) as sim, sim.http() as http:
        ldap_user = sim.sim.people.people[1].name
        http.post("/rest/api/admin/group", json={"name": "IUM_Enabled"})
        r = http.put(f"/rest/api/user/{ldap_user}/group/IUM_Enabled")
    assert r.status_code == 403
    assert r.json()["message"].endswith("The user's directory is read only.")


def test_crowd_changes_reach_the_product_only_after_a_sync() -> None:
    with running_simulator(product="jira", users=3, crowd=True) as sim:
        user = sim.users[0]
        with sim.http() as http:
            http.post("/rest/api/2/group", json={"name": "IUM_Enabled"})  # writes through
        import httpx

        with httpx.Client(base_url=sim.base_url, auth=sim.crowd_auth) as crowd:
            base = "/rest/usermanagement/1"
            assert (
                crowd.get(f"{base}/group", params={"groupname": "IUM_Enabled"}).status_code == 200
            )
            add = crowd.post(f"{base}/group/user/direct?groupname=IUM_Enabled", json={"name": user})
            assert add.status_code == 201
            again = crowd.post(
                f"{base}/group/user/direct?groupname=IUM_Enabled", json={"name": user}
            )
            assert again.status_code == 409
            assert (
                crowd.post(
                    f"{base}/group/user/direct?groupname=nope", json={"name": user}
                ).status_code
                == 400
            )
            assert (
                crowd.post(
                    f"{base}/user/group/direct?username=nobody", json={"name": "IUM_Enabled"}
                ).status_code
                == 404
            )
            members = crowd.get(
                "/rest/usermanagement/latest/group/user/direct", params={"groupname": "IUM_Enabled"}
            ).json()
            assert [u["name"] for u in members["users"]] == [user]
            assert sim.state()["groups"]["IUM_Enabled"] == []  # not synchronised yet
            assert sim.state()["crowd_pending"]
            sim.sync()
            assert sim.state()["groups"]["IUM_Enabled"] == [user]
            params = {"username": user, "groupname": "IUM_Enabled"}
            assert crowd.delete(f"{base}/user/group/direct", params=params).status_code == 204
            assert crowd.delete(f"{base}/user/group/direct", params=params).status_code == 404
            bad = httpx.get(sim.base_url + f"{base}/group?groupname=x", auth=("admin", "admin"))
            assert bad.status_code == 401


def test_crowd_sync_runs_on_its_interval_of_simulated_time() -> None:
    with running_simulator(
        product="confluence", users=2, crowd=True, crowd_sync_interval_s=600, active_people=False
    ) as sim:
        world = sim.sim.world
        with sim.sim.lock:
            world.crowd_create_group("late")
            world.crowd_add_member(sim.users[0], "late")
        sim.advance(300)
        assert "late" not in sim.state()["groups"]
        sim.advance(300)
        assert sim.state()["groups"]["late"] == [sim.users[0]]
