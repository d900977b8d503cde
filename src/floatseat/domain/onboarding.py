"""Planning `floatseat setup` and its rollback: pure, no I/O, no clock.

The shell reads a `DirectoryState` (who is in which group, which groups have application
access or an administrator permission, who is licensed outside any group) and the users'
last activity; the planner returns a `Plan`: ordered steps of `Action`s, each step with the
licensed count the product will show once it is done. The executor in
`floatseat.service.setup` only carries it out.

The licence is counted as the products count it (`licensed_count`): every active user who
is licensed directly (administrators, individual grants) or is a member of a group with
application access or, in Confluence, with an administrator permission (Confluence
Administrator, System Administrator), plus any licensed users the product cannot name.

The members of such administrator groups hold a seat whatever setup does: they stay out of
the pool, and a group of them keeps its application access (taking "Can use" away would
free no seat, and over Confluence's REST API it would take the administrator permissions
with it). Setup never changes an administrator permission.

The safety rule every plan keeps, checked move by move (`check_moves`): **no move raises the
licensed count above the tier.** Confluence turns read-only the moment it does. So removes
that make room come before the adds that use it, and a plan for an instance that is already
over its tier never makes it worse. A plan that cannot keep the rule is refused.

Setup runs in this order (the steps' keys):

1. ``check``          nothing moves; the figures as found.
2. ``create``         the pool groups, where missing.
3. ``fill-disabled``  every pool user who will not hold a seat joins the unlicensed group:
                      it never has access, so this probes each user's directory for
                      writability without any licence risk.
4. ``make-room``      pool users who should not hold a seat leave the licensed group.
5. ``fill-enabled``   chosen users who are licensed already (through the old groups) join
                      the licensed group: this costs nothing.
6. ``grant``          the licensed group gets application access.
7. ``revoke``         the old groups lose application access (and, in Jira, their
                      default-group status): the count drops to the pool's seats plus the
                      users licensed outside the pool.
8. ``fill-rest``      chosen users who were not licensed before join the licensed group,
                      now that the old groups have made room.
9. ``tidy``           the chosen users leave the unlicensed group.

Who gets a seat: the most recently active pool users, up to capacity. The order is the
last counted request, newest first; users never seen in the logs come after everyone seen;
among equals, a user who already holds a seat comes first (so that a re-run without logs
keeps the choice), then the username compared case-insensitively, then as spelled.
Deactivated users never get a seat (they would not count, and would waste one).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

__all__ = [
    "Action",
    "AddMember",
    "CreateGroup",
    "DirectoryState",
    "GrantAccess",
    "Plan",
    "PlanRefused",
    "RemoveMember",
    "RevokeAccess",
    "SetupOptions",
    "Step",
    "apply",
    "check_moves",
    "describe",
    "licensed_count",
    "licensed_users",
    "plan_rollback",
    "plan_setup",
    "rank_users",
]


class PlanRefused(Exception):
    """No safe plan exists for this state and these options; the message says why."""


@dataclass(frozen=True)
class DirectoryState:
    """What setup knows about the directory, enough to count the licence exactly.

    `members` holds every group setup looks at and that exists; a group missing from it
    does not exist.
    """

    tier: int
    members: Mapping[str, frozenset[str]]
    access: frozenset[str]  # groups with application access now
    default_groups: frozenset[str] = frozenset()  # Jira: where new users land
    licensed_directly: frozenset[str] = frozenset()  # administrators, individual grants
    # Confluence: groups licensed through an administrator permission, access or not.
    admin_groups: frozenset[str] = frozenset()
    unnamed_licensed: int = 0  # licensed outside any group, when the product cannot name them
    inactive: frozenset[str] = frozenset()  # deactivated users: never counted

    def group(self, name: str) -> frozenset[str]:
        return self.members.get(name, frozenset())


@dataclass(frozen=True)
class CreateGroup:
    group: str


@dataclass(frozen=True)
class AddMember:
    user: str
    group: str


@dataclass(frozen=True)
class RemoveMember:
    user: str
    group: str


@dataclass(frozen=True)
class GrantAccess:
    group: str


@dataclass(frozen=True)
class RevokeAccess:
    group: str
    default_group: bool = True  # also take away its default-group status (Jira)


Action = CreateGroup | AddMember | RemoveMember | GrantAccess | RevokeAccess


@dataclass(frozen=True)
class Step:
    key: str
    title: str
    actions: tuple[Action, ...]
    licensed_after: int


@dataclass(frozen=True)
class Plan:
    """The ordered steps, and what the admin should know before they run."""

    steps: tuple[Step, ...]
    tier: int
    licensed_before: int
    capacity: int = 0
    enabled: tuple[str, ...] = ()  # who holds a seat afterwards, in rank order
    disabled: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    manual: tuple[str, ...] = ()  # changes no API makes; the admin does them by hand

    @property
    def licensed_after(self) -> int:
        return self.steps[-1].licensed_after if self.steps else self.licensed_before

    @property
    def peak(self) -> int:
        return max([self.licensed_before, *(s.licensed_after for s in self.steps)])

    @property
    def actions(self) -> tuple[Action, ...]:
        return tuple(a for s in self.steps for a in s.actions)


@dataclass(frozen=True)
class SetupOptions:
    """How setup chooses. `capacity` None: tier - licensed outside the pool - reserve."""

    enabled_group: str = "IUM_Enabled"
    disabled_group: str = "IUM_Disabled"
    reserve: int = 3
    capacity: int | None = None
    keep_access: frozenset[str] = frozenset()  # groups that keep application access
    excluded: frozenset[str] = frozenset()  # users setup never moves

    def __post_init__(self) -> None:
        if self.enabled_group == self.disabled_group:
            raise ValueError("the licensed and the unlicensed pool groups must differ")
        if self.reserve < 0:
            raise ValueError("the reserve must not be negative")
        if self.capacity is not None and self.capacity < 0:
            raise ValueError("the capacity must not be negative")
        pool_groups = {self.enabled_group, self.disabled_group}
        if self.keep_access & pool_groups:
            raise ValueError("a pool group cannot also be a group that keeps its access")


# -- the licence, counted as the products count it -------------------------------------------


def licensed_users(state: DirectoryState) -> frozenset[str]:
    """The named users who count against the licence."""
    users = set(state.licensed_directly)
    for group in state.access | state.admin_groups:
        users |= state.group(group)
    return frozenset(users - state.inactive)


def licensed_count(state: DirectoryState) -> int:
    return len(licensed_users(state)) + state.unnamed_licensed


def apply(state: DirectoryState, action: Action) -> DirectoryState:
    """The state after `action`; every action is idempotent, as the port's calls are."""
    if isinstance(action, CreateGroup):
        if action.group in state.members:
            return state
        return replace(state, members={**state.members, action.group: frozenset()})
    if isinstance(action, AddMember | RemoveMember):
        members = set(state.group(action.group))
        if isinstance(action, AddMember):
            members.add(action.user)
        else:
            members.discard(action.user)
        return replace(state, members={**state.members, action.group: frozenset(members)})
    if isinstance(action, GrantAccess):
        return replace(state, access=state.access | {action.group})
    defaults = state.default_groups - {action.group} if action.default_group else None
    return replace(
        state,
        access=state.access - {action.group},
        default_groups=state.default_groups if defaults is None else defaults,
    )


def check_moves(state: DirectoryState, actions: Iterable[Action]) -> DirectoryState:
    """Apply `actions` one by one; PlanRefused at the first that raises the count over the tier."""
    count = licensed_count(state)
    for action in actions:
        state = apply(state, action)
        after = licensed_count(state)
        if after > state.tier and after > count:
            raise PlanRefused(
                f"{describe(action)} would raise the licensed count to {after}, over the "
                f"tier of {state.tier}"
            )
        count = after
    return state


def describe(action: Action) -> str:
    """`action` in words, for the plan's refusals and the executor's failures."""
    if isinstance(action, CreateGroup):
        return f"creating group {action.group}"
    if isinstance(action, AddMember):
        return f"adding {action.user} to {action.group}"
    if isinstance(action, RemoveMember):
        return f"removing {action.user} from {action.group}"
    if isinstance(action, GrantAccess):
        return f"granting application access to {action.group}"
    return f"revoking application access from {action.group}"


def _steps(state: DirectoryState, parts: Iterable[tuple[str, str, list[Action]]]) -> list[Step]:
    """Steps with their licensed count afterwards; refused if any move breaks the rule."""
    steps = []
    for key, title, actions in parts:
        state = check_moves(state, actions)
        steps.append(Step(key, title, tuple(actions), licensed_count(state)))
    return steps


# -- setup -----------------------------------------------------------------------------------


def rank_users(
    users: Iterable[str], last_seen: Mapping[str, int], holding: Iterable[str] = ()
) -> list[str]:
    """`users` best first: most recent activity, then already holding a seat, then by name.

    `last_seen` is keyed by the username in lower case (as the log reader reports it).
    """
    held = frozenset(holding)

    def key(user: str) -> tuple[int, int, int, str, str]:
        seen = last_seen.get(user.lower())
        return (
            0 if seen is not None else 1,
            -(seen or 0),
            0 if user in held else 1,
            user.casefold(),
            user,
        )

    return sorted(users, key=key)


def plan_setup(state: DirectoryState, last_seen: Mapping[str, int], options: SetupOptions) -> Plan:
    """The steps that put every managed user into the pool groups; see the module's docstring."""
    enabled, disabled = options.enabled_group, options.disabled_group
    if disabled in state.access:
        raise PlanRefused(
            f"{disabled} has application access, so its members count against the licence; "
            f"take its access away first (it must never have any)"
        )
    for group in (disabled, enabled):
        if group in state.admin_groups:
            raise PlanRefused(
                f"{group} holds an administrator permission, so its members are licensed (and "
                "administrators) whatever setup does; take that permission away first"
            )
    missing_keep = sorted(options.keep_access - state.access)
    if missing_keep:
        raise PlanRefused(
            f"--keep-access names groups without application access: {', '.join(missing_keep)}"
        )
    # Administrator groups keep their access: their members stay licensed without it.
    admins_with_access = sorted((state.access & state.admin_groups) - options.keep_access)
    old = sorted(state.access - {enabled} - options.keep_access - state.admin_groups)
    kept_members: set[str] = set()
    for group in options.keep_access | state.admin_groups:
        kept_members |= state.group(group)
    candidates: set[str] = set(state.group(enabled)) | state.group(disabled)
    for group in old:
        candidates |= state.group(group)
    not_pool = set(state.licensed_directly) | kept_members | options.excluded
    pool = frozenset(candidates - not_pool)

    # Licensed after setup without a pool seat: direct grants, kept groups, and members of
    # the licensed group that setup does not manage (it leaves them where they are).
    outside_users = (
        set(state.licensed_directly) | kept_members | (state.group(enabled) - pool)
    ) - state.inactive
    outside = len(outside_users) + state.unnamed_licensed
    room = state.tier - outside
    warnings: list[str] = []
    if admins_with_access:
        warnings.append(
            "groups with an administrator permission keep their application access; their "
            "members hold a seat outside the pool: " + ", ".join(admins_with_access)
        )
    licensed_before = licensed_count(state)
    if licensed_before > state.tier:
        warnings.append(
            f"the instance is already over its tier: {licensed_before} licensed users for a "
            f"tier of {state.tier}; no step of this plan raises the count"
        )
    if room < 0:
        warnings.append(
            f"{outside} users are licensed outside the pool, more than the tier of "
            f"{state.tier}: the pool gets no seat, and the instance stays over its tier"
        )
    if options.capacity is None:
        capacity = max(0, room - options.reserve)
    else:
        if options.capacity > max(0, room):
            raise PlanRefused(
                f"a capacity of {options.capacity} does not fit: the tier is {state.tier} and "
                f"{outside} users are licensed outside the pool, which leaves {max(0, room)}"
            )
        capacity = options.capacity
        if capacity > room - options.reserve:
            warnings.append(
                f"a capacity of {capacity} leaves fewer than the {options.reserve} reserve seats"
            )

    ranked = rank_users(pool - state.inactive, last_seen, holding=state.group(enabled))
    chosen = ranked[:capacity]
    chosen_set = frozenset(chosen)
    rest = sorted(pool - chosen_set, key=lambda u: (u.casefold(), u))
    if not last_seen and len(pool - state.inactive) > capacity:
        warnings.append(
            "no activity data: seats go to current seat holders, then by username; "
            "pass --logs to give them to the most recently active users"
        )
    excluded_in_pool_groups = sorted(
        options.excluded & (state.group(enabled) | state.group(disabled))
    )
    if excluded_in_pool_groups:
        warnings.append(
            "excluded users stay where they are in the pool groups: "
            + ", ".join(excluded_in_pool_groups)
        )
    losing = sorted(
        (options.excluded & candidates) - outside_users - state.inactive - pool,
        key=str.casefold,
    )
    if old and losing:
        warnings.append(
            "excluded users who are licensed only through the old groups lose application "
            "access when those groups do: " + ", ".join(losing)
        )

    now = licensed_users(state)
    enabled_now = state.group(enabled)
    has_access = enabled in state.access
    # With no access yet, a chosen member of the licensed group who is not licensed now
    # would be licensed by the grant; take them out until the old groups have made room.
    make_room = sorted(
        (u for u in enabled_now & pool if u not in chosen_set or (not has_access and u not in now)),
        key=lambda u: (u.casefold(), u),
    )
    enabled_after_room = enabled_now - set(make_room)
    licensed_now = [u for u in chosen if u in now and u not in enabled_after_room]
    unlicensed = [u for u in chosen if u not in now and u not in enabled_after_room]

    parts: list[tuple[str, str, list[Action]]] = [
        ("check", "check the connection, the licence and the groups", []),
        (
            "create",
            "create the pool groups where missing",
            [CreateGroup(g) for g in (enabled, disabled) if g not in state.members],
        ),
        (
            "fill-disabled",
            f"put everyone who gets no seat in {disabled}",
            [AddMember(u, disabled) for u in rest if u not in state.group(disabled)],
        ),
        (
            "make-room",
            f"take users who get no seat out of {enabled}",
            [RemoveMember(u, enabled) for u in make_room],
        ),
        (
            "fill-enabled",
            f"put the chosen users who are licensed already in {enabled}",
            [AddMember(u, enabled) for u in licensed_now],
        ),
        (
            "grant",
            f"grant application access to {enabled}",
            [] if has_access else [GrantAccess(enabled)],
        ),
        (
            "revoke",
            "take application access away from the old groups",
            [RevokeAccess(g) for g in old],
        ),
        (
            "fill-rest",
            f"put the chosen users who were not licensed in {enabled}",
            [AddMember(u, enabled) for u in unlicensed],
        ),
        (
            "tidy",
            f"take the chosen users out of {disabled}",
            [
                RemoveMember(u, disabled)
                for u in sorted(chosen_set & state.group(disabled), key=lambda u: (u.casefold(), u))
            ],
        ),
    ]
    steps = _steps(state, parts)

    manual = []
    keeps_default = sorted(state.default_groups & options.keep_access)
    if keeps_default:
        warnings.append(
            "new users still land in a group with application access: " + ", ".join(keeps_default)
        )
    if enabled in state.default_groups:
        manual.append(
            f"{enabled} is a default group, so every new user would take a seat: remove it "
            "from the application's default groups"
        )
    manual.append(
        f"make new users land in {disabled}: add it to the default group memberships of the "
        "user directory (LDAP and Crowd directories have that setting); floatseat's "
        "reconciliation otherwise picks up new users who are in no pool group"
    )
    return Plan(
        steps=tuple(steps),
        tier=state.tier,
        licensed_before=licensed_before,
        capacity=capacity,
        enabled=tuple(chosen),
        disabled=tuple(rest),
        warnings=tuple(warnings),
        manual=tuple(manual),
    )


# -- rollback --------------------------------------------------------------------------------


def plan_rollback(
    current: DirectoryState,
    original: DirectoryState,
    groups: Iterable[str],
    *,
    access_groups: Iterable[str] | None = None,
    force: bool = False,
) -> Plan:
    """The steps that restore `original`'s memberships of `groups` and the application access
    of `access_groups` (default: `groups`).

    Removes come first, then adds, so the count goes down before it goes up to what the
    restore produces. A group that did not exist in `original` is emptied (not deleted).
    Without `force`, refused when the restore would license more users than the current
    tier allows: after a downgrade, an exact restore would turn Confluence read-only.
    """
    relevant = sorted(set(groups), key=_name_key)
    access_relevant = set(relevant if access_groups is None else access_groups)
    target_access = (current.access - access_relevant) | (original.access & access_relevant)
    target = replace(
        current,
        members={**current.members, **{g: original.group(g) for g in relevant}},
        access=target_access,
    )
    would_license = licensed_count(target)
    if would_license > current.tier and not force:
        raise PlanRefused(
            f"the restore would license {would_license} users, over the current tier of "
            f"{current.tier}; after a downgrade an exact restore would turn Confluence "
            f"read-only and stop issue creation in Jira. Free seats first, or use --force"
        )

    def extra(group: str) -> list[str]:
        return sorted(current.group(group) - original.group(group), key=_name_key)

    def missing(group: str) -> list[str]:
        return sorted(original.group(group) - current.group(group), key=_name_key)

    licensed_groups = [g for g in relevant if g in current.access]
    other_groups = [g for g in relevant if g not in current.access]
    revoke = sorted(current.access - target_access, key=_name_key)
    grant = sorted(target_access - current.access, key=_name_key)
    # After the revokes, a group has access only if it had it and keeps it.
    keeps_access = [g for g in licensed_groups if g not in revoke]
    no_access = [g for g in relevant if g not in keeps_access]
    parts: list[tuple[str, str, list[Action]]] = [
        ("check", "read the snapshot and the licence", []),
        (
            "remove-licensed",
            "remove the memberships setup added to groups with application access",
            [RemoveMember(u, g) for g in licensed_groups for u in extra(g)],
        ),
        (
            "revoke",
            "take application access away from groups that did not have it",
            [RevokeAccess(g) for g in revoke],
        ),
        (
            "remove-other",
            "remove the other memberships setup added",
            [RemoveMember(u, g) for g in other_groups for u in extra(g)],
        ),
        (
            "create",
            "create the groups that existed then and are missing now",
            [
                CreateGroup(g)
                for g in relevant
                if g in original.members and g not in current.members
            ],
        ),
        (
            "add-unlicensed",
            "restore the memberships of groups without application access now",
            [AddMember(u, g) for g in no_access for u in missing(g)],
        ),
        (
            "add-licensed",
            "restore the memberships of groups with application access",
            [AddMember(u, g) for g in keeps_access for u in missing(g)],
        ),
        (
            "grant",
            "give application access back to the groups that had it",
            [GrantAccess(g) for g in grant],
        ),
    ]
    if force:
        steps = []
        state = current
        for key, title, actions in parts:
            for action in actions:
                state = apply(state, action)
            steps.append(Step(key, title, tuple(actions), licensed_count(state)))
    else:
        steps = _steps(current, parts)
    warnings = []
    before = licensed_count(current)
    if would_license > current.tier:
        warnings.append(
            f"forced: the restore licenses {would_license} users, over the tier of {current.tier}"
        )
    manual = [
        f"make {g} a default group of the application again"
        for g in sorted(original.default_groups - current.default_groups)
        if g in access_relevant
    ]
    return Plan(
        steps=tuple(steps),
        tier=current.tier,
        licensed_before=before,
        warnings=tuple(warnings),
        manual=tuple(manual),
    )


def _name_key(user: str) -> tuple[str, str]:
    return (user.casefold(), user)
