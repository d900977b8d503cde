"""The setup and rollback planners, against a brute-force licence count of every move."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from floatseat.domain.onboarding import (
    Action,
    AddMember,
    CreateGroup,
    DirectoryState,
    GrantAccess,
    Plan,
    PlanRefused,
    RemoveMember,
    RevokeAccess,
    SetupOptions,
    licensed_count,
    plan_rollback,
    plan_setup,
    rank_users,
)

E, D = "IUM_Enabled", "IUM_Disabled"
USERS = [f"u{i}" for i in range(10)] + ["Ann", "ann2"]
OTHER_GROUPS = ["confluence-users", "jira-software-users", "admins"]


class World:
    """A directory as plain sets, changed by actions and counted by brute force."""

    def __init__(self, state: DirectoryState) -> None:
        self.tier = state.tier
        self.members = {g: set(us) for g, us in state.members.items()}
        self.access = set(state.access)
        self.direct = set(state.licensed_directly)
        self.admin_groups = set(state.admin_groups)  # Confluence: licensed as administrators
        self.inactive = set(state.inactive)
        self.unnamed = state.unnamed_licensed

    def count(self) -> int:
        counted = set()
        for user in {u for us in self.members.values() for u in us} | self.direct:
            if user in self.inactive:
                continue
            if user in self.direct or any(
                user in self.members[g]
                for g in self.access | self.admin_groups
                if g in self.members
            ):
                counted.add(user)
        return len(counted) + self.unnamed

    def do(self, action: Action) -> None:
        if isinstance(action, CreateGroup):
            assert action.group not in self.members, "creates an existing group"
            self.members[action.group] = set()
        elif isinstance(action, AddMember):
            assert action.group in self.members, "adds to a missing group"
            self.members[action.group].add(action.user)
        elif isinstance(action, RemoveMember):
            self.members[action.group].discard(action.user)
        elif isinstance(action, GrantAccess):
            assert action.group in self.members
            self.access.add(action.group)
        elif isinstance(action, RevokeAccess):
            self.access.discard(action.group)


def replay(state: DirectoryState, plan: Plan) -> World:
    """Run the plan move by move; assert the safety rule and the announced counts."""
    world = World(state)
    count = world.count()
    assert plan.licensed_before == count
    for step in plan.steps:
        for action in step.actions:
            world.do(action)
            after = world.count()
            assert after <= world.tier or after <= count, (action, count, after, world.tier)
            count = after
        assert step.licensed_after == count, step.key
    return world


@st.composite
def states(draw: st.DrawFn) -> tuple[DirectoryState, dict[str, int], SetupOptions]:
    names = [E, D, *OTHER_GROUPS]
    members = {
        g: frozenset(draw(st.sets(st.sampled_from(USERS), max_size=8)))
        for g in names
        if draw(st.booleans()) or g == "confluence-users"
    }
    access = frozenset(
        draw(st.sets(st.sampled_from([g for g in members if g != D]), min_size=1, max_size=3))
    )
    keep = frozenset(g for g in access if g == "admins" and draw(st.booleans()))
    # Groups with an administrator permission, with application access or without.
    admin_groups = frozenset(
        draw(st.sets(st.sampled_from([g for g in members if g in OTHER_GROUPS]), max_size=2))
    )
    state = DirectoryState(
        tier=draw(st.integers(0, 14)),
        members=members,
        access=access,
        admin_groups=admin_groups,
        licensed_directly=frozenset(draw(st.sets(st.sampled_from(USERS), max_size=2))),
        unnamed_licensed=draw(st.integers(0, 2)),
        inactive=frozenset(draw(st.sets(st.sampled_from(USERS), max_size=2))),
    )
    seen = draw(st.dictionaries(st.sampled_from(USERS), st.integers(0, 5), max_size=12))
    options = SetupOptions(
        reserve=draw(st.integers(0, 3)),
        keep_access=keep,
        excluded=frozenset(draw(st.sets(st.sampled_from(USERS), max_size=2))),
    )
    return state, {u.lower(): t for u, t in seen.items()}, options


@settings(max_examples=400, deadline=None)
@given(states())
def test_no_move_of_a_setup_plan_raises_the_count_over_the_tier(
    case: tuple[DirectoryState, dict[str, int], SetupOptions],
) -> None:
    state, seen, options = case
    try:
        plan = plan_setup(state, seen, options)
    except PlanRefused:
        # The one state with no safe order: excluded users sit unlicensed in the licensed
        # group, which has no access yet, and granting it would license them over the tier.
        stuck = state.group(E) & options.excluded
        assert E not in state.access and stuck - state.inactive
        return
    world = replay(state, plan)

    # Administrator groups are kept like --keep-access groups: their members hold a seat
    # anyway, and they never lose their access.
    keep = options.keep_access | state.admin_groups
    kept = {u for g in keep for u in state.group(g)}
    pool = (
        (
            ({u for g in state.access - keep for u in state.group(g)} | state.group(E))
            | state.group(D)
        )
        - state.licensed_directly
        - kept
        - options.excluded
    )
    assert set(plan.enabled) | set(plan.disabled) == pool
    assert world.access == (set(state.access) & keep) | {E}
    assert world.admin_groups == set(state.admin_groups)
    assert world.members[E] & pool == set(plan.enabled)
    assert world.members[D] & pool == set(plan.disabled)
    assert not set(plan.enabled) & state.inactive
    assert len(plan.enabled) <= plan.capacity
    # Afterwards: the users licensed outside the pool, plus one seat per chosen user.
    outside = World(state)
    outside.access = set(options.keep_access)  # the admin groups count through admin_groups
    outside.members[E] = (state.group(E) - pool) if E in state.members else set()
    outside.access.add(E)
    assert world.count() == outside.count() + len(plan.enabled)
    if outside.count() + options.reserve <= state.tier:
        assert world.count() <= state.tier - options.reserve
    # The chosen are the most recent: nobody left out was seen later than someone chosen.
    eligible = pool - state.inactive
    if len(plan.enabled) < len(eligible):
        assert list(plan.enabled) == rank_users(eligible, seen, state.group(E))[: plan.capacity]


@settings(max_examples=300, deadline=None)
@given(states(), st.integers(0, 14), st.booleans())
def test_rollback_restores_the_original_exactly_or_refuses_over_the_tier(
    case: tuple[DirectoryState, dict[str, int], SetupOptions], new_tier: int, force: bool
) -> None:
    original, seen, options = case
    try:
        plan = plan_setup(original, seen, options)
    except PlanRefused:
        return
    world = replay(original, plan)
    current = DirectoryState(
        tier=new_tier,
        members={g: frozenset(us) for g, us in world.members.items()},
        access=frozenset(world.access),
        admin_groups=original.admin_groups,
        licensed_directly=original.licensed_directly,
        unnamed_licensed=original.unnamed_licensed,
        inactive=original.inactive,
    )
    groups = sorted(set(original.members) | {E, D})
    restored = World(original)
    would_license = restored.count()
    try:
        back = plan_rollback(current, original, groups, force=force)
    except PlanRefused as refusal:
        assert would_license > new_tier and not force
        assert str(would_license) in str(refusal)
        return
    assert would_license <= new_tier or force
    world = World(current)
    count = world.count()
    for step in back.steps:
        for action in step.actions:
            world.do(action)
            after = world.count()
            if not force:
                assert after <= new_tier or after <= count
            count = after
        assert step.licensed_after == count
    assert count == would_license == back.licensed_after
    assert world.access == set(original.access)
    for group in groups:
        assert world.members.get(group, set()) == set(original.group(group)), group


def test_users_never_seen_come_after_everyone_seen_then_holders_then_by_name() -> None:
    seen = {"carl": 5, "bob": 9}
    ranked = rank_users(["dora", "Bob", "carl", "ann", "eve"], seen, holding=["eve"])
    assert ranked == ["Bob", "carl", "eve", "ann", "dora"]


def _state(**members: set[str]) -> Mapping[str, frozenset[str]]:
    return {
        g if g.startswith("IUM") else g.replace("_", "-"): frozenset(us)
        for g, us in members.items()
    }


def test_a_fresh_confluence_gets_the_steps_of_the_issue_in_order() -> None:
    state = DirectoryState(
        tier=4,
        members=_state(confluence_users={"ann", "bob", "carl", "dora", "eve"}),
        access=frozenset({"confluence-users"}),
        licensed_directly=frozenset({"admin"}),
        inactive=frozenset({"eve"}),
    )
    seen = {"dora": 30, "bob": 20, "ann": 10}
    plan = plan_setup(state, seen, SetupOptions(reserve=1))
    # tier 4 - admin - reserve 1 = 2 seats, to the two most recent.
    assert plan.capacity == 2 and plan.enabled == ("dora", "bob")
    assert plan.disabled == ("ann", "carl", "eve")
    steps = {s.key: s for s in plan.steps}
    assert [s.key for s in plan.steps] == [
        "check",
        "create",
        "fill-disabled",
        "make-room",
        "fill-enabled",
        "grant",
        "revoke",
        "fill-rest",
        "tidy",
    ]
    assert steps["create"].actions == (CreateGroup(E), CreateGroup(D))
    assert steps["fill-enabled"].actions == (AddMember("dora", E), AddMember("bob", E))
    assert steps["grant"].actions == (GrantAccess(E),)
    assert steps["revoke"].actions == (RevokeAccess("confluence-users"),)
    # Before: admin + ann, bob, carl, dora (eve is deactivated) = 5, over the tier of 4.
    assert [s.licensed_after for s in plan.steps] == [5, 5, 5, 5, 5, 5, 3, 3, 3]
    assert any("already over its tier" in w for w in plan.warnings)


def test_unlicensed_users_chosen_for_a_seat_join_only_after_the_old_groups_made_room() -> None:
    # A re-run: the two most recent users sit unlicensed in IUM_Disabled, and the old group
    # fills the tier. Granting them a seat first would put the instance over its tier.
    state = DirectoryState(
        tier=3,
        members=_state(confluence_users={"ann", "bob", "carl"}, IUM_Disabled={"dora", "eve"}),
        access=frozenset({"confluence-users"}),
    )
    plan = plan_setup(state, {"dora": 9, "eve": 8}, SetupOptions(reserve=0))
    steps = {s.key: s for s in plan.steps}
    assert plan.enabled == ("dora", "eve", "ann")
    assert steps["fill-rest"].actions == (AddMember("dora", E), AddMember("eve", E))
    assert [s.licensed_after for s in plan.steps] == [3, 3, 3, 3, 3, 3, 1, 3, 3]
    assert steps["tidy"].actions == (RemoveMember("dora", D), RemoveMember("eve", D))


def test_a_capacity_that_does_not_fit_the_tier_is_refused() -> None:
    state = DirectoryState(
        tier=3,
        members=_state(confluence_users={"ann", "bob", "carl"}),
        access=frozenset({"confluence-users"}),
        licensed_directly=frozenset({"admin"}),
    )
    with pytest.raises(PlanRefused, match="capacity of 3 does not fit"):
        plan_setup(state, {}, SetupOptions(capacity=3))
    assert plan_setup(state, {}, SetupOptions(capacity=2)).capacity == 2


def test_the_unlicensed_group_must_not_have_access() -> None:
    state = DirectoryState(tier=3, members=_state(IUM_Disabled={"ann"}), access=frozenset({D}))
    with pytest.raises(PlanRefused, match="IUM_Disabled has application access"):
        plan_setup(state, {}, SetupOptions())


def test_administrators_hold_a_seat_outside_the_pool_and_keep_their_access() -> None:
    # Confluence: confluence-administrators has "Can use" and the administrator permissions;
    # "sysadmins" has System Administrator only. Both license their members.
    state = DirectoryState(
        tier=6,
        members=_state(
            confluence_users={"admin", "ann", "bob", "carl", "ops"},
            confluence_administrators={"admin"},
            sysadmins={"ops"},
        ),
        access=frozenset({"confluence-users", "confluence-administrators"}),
        admin_groups=frozenset({"confluence-administrators", "sysadmins"}),
    )
    assert licensed_count(state) == 5
    plan = plan_setup(state, {}, SetupOptions(reserve=1))
    # tier 6 - admin - ops - reserve 1 = 3 seats, for the three users who are not admins.
    assert plan.capacity == 3 and plan.enabled == ("ann", "bob", "carl")
    revoked = [a for a in plan.actions if isinstance(a, RevokeAccess)]
    assert revoked == [RevokeAccess("confluence-users")]  # never the administrators' group
    assert plan.licensed_after == 5
    assert any("confluence-administrators" in w for w in plan.warnings)


@pytest.mark.parametrize("group", [E, D])
def test_a_pool_group_with_an_administrator_permission_is_refused(group: str) -> None:
    state = DirectoryState(
        tier=5,
        members=_state(confluence_users={"ann"}, IUM_Enabled=set(), IUM_Disabled=set()),
        access=frozenset({"confluence-users"}),
        admin_groups=frozenset({group}),
    )
    with pytest.raises(PlanRefused, match=f"{group} holds an administrator permission"):
        plan_setup(state, {}, SetupOptions())
