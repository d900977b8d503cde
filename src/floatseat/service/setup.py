"""`floatseat setup`: read the directory, snapshot it, carry out a plan, roll back, freeze.

The decisions are pure and live in `floatseat.domain.onboarding`; this module is the shell
around them:

- `observe` reads what the plan needs from a `ManagedDirectory` (the licence, the
  application access and the groups licensed through an administrator permission, the
  members of every relevant group, who is licensed directly and who is deactivated) as a
  `DirectoryState`;
- `Snapshot` is that state written to a JSON file before any change, once: a re-run after a
  crash keeps the original, so that `--rollback` always restores what was there first;
- `execute` carries out a `Plan` step by step. Every action is idempotent, so a run that
  stopped half-way (a crash, a read-only directory, a manual step not done yet) is resumed
  by running `floatseat setup` again: the new plan starts from where the directory is;
- `freeze` pins the current holders of the licensed group in the ledger.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from floatseat.directory.errors import GroupNotFound, ManualStepRequired, ReadOnlyDirectory
from floatseat.directory.port import ConnectionInfo, Licence, ManagedDirectory, PoolGroups
from floatseat.domain.onboarding import (
    Action,
    AddMember,
    CreateGroup,
    DirectoryState,
    GrantAccess,
    Plan,
    PlanRefused,
    RemoveMember,
    SetupOptions,
    Step,
    describe,
    licensed_count,
    plan_rollback,
    plan_setup,
)
from floatseat.domain.policy import DirectoryChanged, DirectoryFigures, Pin, PinsChanged
from floatseat.service.errors import DirectoryError

__all__ = [
    "CROWD_LAG_WARNING",
    "SNAPSHOT_FORMAT",
    "ExecutionResult",
    "FreezeResult",
    "Observed",
    "RollbackRun",
    "SetupRefused",
    "SetupRun",
    "Snapshot",
    "archive_snapshot",
    "execute",
    "freeze",
    "last_seen_from_pairs",
    "observe",
    "prepare_rollback",
    "prepare_setup",
    "snapshot_path",
]

SNAPSHOT_FORMAT = 1
CROWD_LAG_WARNING = (
    "the users live in Crowd: Confluence and Jira see a membership change only at their next "
    "directory synchronisation, so the licensed count they show lags behind these steps"
)


class SetupRefused(Exception):
    """Setup cannot go on safely; the message says why and what to do."""

    def __init__(self, message: str, *, steps: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.steps = steps


@dataclass(frozen=True)
class Observed:
    """The directory as `observe` found it."""

    info: ConnectionInfo
    licence: Licence
    state: DirectoryState
    access_from_api: bool  # False: the admin named the access groups (no API read them)
    warnings: tuple[str, ...] = ()


def observe(
    directory: ManagedDirectory,
    groups: PoolGroups,
    *,
    also: Iterable[str] = (),
    optional: Iterable[str] = (),
    access_groups: Iterable[str] | None = None,
) -> Observed:
    """Read the licence, the application access and every relevant group's members.

    `access_groups` names the groups with application access when the product has no API
    that reads them (Confluence's "Can use" before 9.2.5); without it, that case is refused
    with the steps to look them up. Nor can such a product say which groups hold an
    administrator permission: name those among `access_groups` and keep their access
    (`--keep-access`), or their members count as licensed directly. `also` adds groups to
    read (e.g. the groups that keep access); `optional` adds groups that may be missing.
    """
    info = directory.info()
    licence = directory.licence()
    warnings: list[str] = []
    if info.product == "crowd":
        warnings.append(CROWD_LAG_WARNING)
    named = None if access_groups is None else frozenset(access_groups)
    try:
        access = directory.application_access()
        access_set, defaults, from_api = access.groups, access.default_groups, True
        admins = access.admin_groups
        if named is not None and named != access_set:
            warnings.append(
                "the API reports other groups with application access than --access-group "
                f"names; using the API's: {', '.join(sorted(access_set))}"
            )
    except ManualStepRequired as error:
        if named is None:
            raise SetupRefused(
                f"{error}: name every group with application access with --access-group",
                steps=error.steps,
            ) from None
        access_set, defaults, from_api = named, frozenset(), False
        admins = frozenset()
    pool_groups = {groups.enabled, groups.disabled}
    # Group names compare case-insensitively (Confluence reports them in lower case): spell
    # the access groups as setup and the admin name them.
    spelling = {g.casefold(): g for g in (*pool_groups, *also, *optional)}
    access_set = frozenset(spelling.get(g.casefold(), g) for g in access_set)
    defaults = frozenset(spelling.get(g.casefold(), g) for g in defaults)
    admins = frozenset(spelling.get(g.casefold(), g) for g in admins)
    relevant = sorted(access_set | defaults | admins | pool_groups | set(also) | set(optional))
    members: dict[str, frozenset[str]] = {}
    for group in relevant:
        try:
            members[group] = frozenset(directory.group_members(group))
        except GroupNotFound:
            if group in access_set or group in admins or group in also:
                raise SetupRefused(f"the group {group} does not exist") from None
    licensed_groups_members: set[str] = set()
    for group in access_set | admins:
        licensed_groups_members |= members.get(group, frozenset())
    named_licensed = directory.licensed_users()
    unnamed = 0
    if named_licensed is not None:
        directly = frozenset(named_licensed - licensed_groups_members)
        inactive = frozenset(licensed_groups_members - named_licensed)
    else:
        directly = frozenset()
        inactive = frozenset()
        if licensed_groups_members:
            # The product cannot list who counts: look every member up for deactivated ones
            # (one call each; a count alone cannot tell them from direct grants).
            inactive = frozenset(
                u
                for u in sorted(licensed_groups_members)
                if (found := directory.find_user(u)) is not None and not found.active
            )
        unnamed = max(0, licence.licensed - len(licensed_groups_members - inactive))
    state = DirectoryState(
        tier=licence.tier,
        members=members,
        access=frozenset(access_set),
        default_groups=frozenset(defaults),
        licensed_directly=directly,
        admin_groups=admins,
        unnamed_licensed=unnamed,
        inactive=inactive,
    )
    counted = licensed_count(state)
    if counted != licence.licensed:
        warnings.append(
            f"the product reports {licence.licensed} licensed users and the groups give "
            f"{counted}; the product's figure may lag (Confluence reads it from its search "
            "index), or access comes from somewhere setup cannot see"
        )
    return Observed(info, licence, state, from_api, tuple(warnings))


# -- the snapshot ----------------------------------------------------------------------------


def snapshot_path(state_dir: Path, product: str) -> Path:
    return state_dir / f"{product}-snapshot.json"


@dataclass(frozen=True)
class Snapshot:
    """The original memberships and access, written before setup changes anything."""

    product: str
    base_url: str
    taken_at: str  # ISO 8601, UTC
    state: DirectoryState
    pool_groups: PoolGroups
    access_from_api: bool
    licensed: int  # as the product reported it
    format: int = SNAPSHOT_FORMAT
    missing_groups: tuple[str, ...] = field(default=())  # pool groups setup will create

    @classmethod
    def of(cls, observed: Observed, groups: PoolGroups, taken_at: datetime) -> Snapshot:
        state = observed.state
        return cls(
            product=observed.info.product,
            base_url=_without_credentials(observed.info.base_url),
            taken_at=taken_at.astimezone(UTC).isoformat(timespec="seconds"),
            state=state,
            pool_groups=groups,
            access_from_api=observed.access_from_api,
            licensed=observed.licence.licensed,
            missing_groups=tuple(
                g for g in (groups.enabled, groups.disabled) if g not in state.members
            ),
        )

    def groups(self) -> tuple[str, ...]:
        """Every group whose memberships the snapshot holds, created ones included."""
        return tuple(sorted(set(self.state.members) | set(self.missing_groups)))

    def to_json(self) -> dict[str, Any]:
        s = self.state
        return {
            "format": self.format,
            "product": self.product,
            "base_url": self.base_url,
            "taken_at": self.taken_at,
            "tier": s.tier,
            "licensed": self.licensed,
            "pool_groups": {
                "enabled": self.pool_groups.enabled,
                "disabled": self.pool_groups.disabled,
            },
            "application_access": {
                "groups": sorted(s.access),
                "default_groups": sorted(s.default_groups),
                "admin_groups": sorted(s.admin_groups),
                "source": "api" if self.access_from_api else "admin",
            },
            "memberships": {g: sorted(us) for g, us in sorted(s.members.items())},
            "missing_groups": list(self.missing_groups),
            "licensed_directly": sorted(s.licensed_directly),
            "unnamed_licensed": s.unnamed_licensed,
            "inactive": sorted(s.inactive),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Snapshot:
        if data.get("format") != SNAPSHOT_FORMAT:
            raise ValueError(f"unknown snapshot format {data.get('format')!r}")
        access = data["application_access"]
        state = DirectoryState(
            tier=int(data["tier"]),
            members={g: frozenset(us) for g, us in data["memberships"].items()},
            access=frozenset(access["groups"]),
            default_groups=frozenset(access["default_groups"]),
            # Absent from snapshots taken before setup knew of administrator groups.
            admin_groups=frozenset(access.get("admin_groups", ())),
            licensed_directly=frozenset(data["licensed_directly"]),
            unnamed_licensed=int(data["unnamed_licensed"]),
            inactive=frozenset(data["inactive"]),
        )
        return cls(
            product=data["product"],
            base_url=data["base_url"],
            taken_at=data["taken_at"],
            state=state,
            pool_groups=PoolGroups(data["pool_groups"]["enabled"], data["pool_groups"]["disabled"]),
            access_from_api=access["source"] == "api",
            licensed=int(data["licensed"]),
            missing_groups=tuple(data["missing_groups"]),
        )

    def save(self, path: Path) -> None:
        """Write atomically: a crash leaves the old file or the new one, never half of one."""
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.to_json(), indent=2, ensure_ascii=False) + "\n"
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: Path) -> Snapshot:
        try:
            return cls.from_json(json.loads(path.read_text(encoding="utf-8")))
        except (KeyError, TypeError, ValueError) as error:
            raise SetupRefused(f"{path}: not a floatseat setup snapshot ({error})") from None


def _without_credentials(url: str) -> str:
    """The URL without any user:password@ part."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    host, slash, path = rest.partition("/")
    return f"{scheme}://{host.rpartition('@')[2]}{slash}{path}"


# -- preparing a run ------------------------------------------------------------------------


@dataclass(frozen=True)
class SetupRun:
    """A setup plan and the snapshot to write before carrying it out."""

    observed: Observed
    plan: Plan
    snapshot: Snapshot
    snapshot_path: Path
    resuming: bool  # a snapshot from an earlier run exists; it is kept, not overwritten


def prepare_setup(
    directory: ManagedDirectory,
    options: SetupOptions,
    last_seen: Mapping[str, int],
    state_dir: Path,
    *,
    access_groups: Iterable[str] | None = None,
    now: datetime | None = None,
) -> SetupRun:
    """Observe the directory and plan setup; changes nothing, writes nothing."""
    groups = PoolGroups(options.enabled_group, options.disabled_group)
    observed = observe(
        directory, groups, also=sorted(options.keep_access), access_groups=access_groups
    )
    path = snapshot_path(state_dir, observed.info.product)
    resuming = path.exists()
    if resuming:
        snapshot = Snapshot.load(path)
        url = _without_credentials(observed.info.base_url)
        if snapshot.base_url.rstrip("/") != url.rstrip("/"):
            raise SetupRefused(
                f"{path} holds the snapshot of {snapshot.base_url}, not of {url}; use another "
                "--state-dir for this instance"
            )
    else:
        snapshot = Snapshot.of(observed, groups, now or now_utc())
    try:
        plan = plan_setup(observed.state, last_seen, options)
    except PlanRefused as error:
        raise SetupRefused(str(error)) from None
    return SetupRun(observed, plan, snapshot, path, resuming)


@dataclass(frozen=True)
class RollbackRun:
    """A restore plan and the snapshot it restores."""

    observed: Observed
    plan: Plan
    snapshot: Snapshot
    snapshot_path: Path
    would_license: int
    drift: tuple[str, ...]  # groups changed since the snapshot that the restore leaves alone


def prepare_rollback(
    directory: ManagedDirectory,
    state_dir: Path,
    product: str,
    *,
    force: bool = False,
    exact: bool = False,
    access_groups: Iterable[str] | None = None,
) -> RollbackRun:
    """Plan the restore of the snapshot; refused over the current tier unless `force`.

    The pool groups' memberships and every recorded group's application access are
    restored. The memberships of the other recorded groups (the old licensed groups), which
    setup never changes, are restored too only with `exact`: otherwise a user who joined
    one since the snapshot would be taken out of it.
    """
    path = snapshot_path(state_dir, product)
    if not path.exists():
        raise SetupRefused(f"no setup snapshot at {path}: nothing to roll back")
    snapshot = Snapshot.load(path)
    info = directory.info()
    url = _without_credentials(info.base_url)
    if snapshot.base_url.rstrip("/") != url.rstrip("/"):
        raise SetupRefused(f"{path} holds the snapshot of {snapshot.base_url}, not of {url}")
    groups = snapshot.pool_groups
    recorded = snapshot.groups()
    observed = observe(directory, groups, optional=recorded, access_groups=access_groups)
    pool = (groups.enabled, groups.disabled)
    restored = recorded if exact else tuple(g for g in recorded if g in pool)
    drift = tuple(
        g
        for g in recorded
        if g not in restored and observed.state.group(g) != snapshot.state.group(g)
    )
    try:
        plan = plan_rollback(
            observed.state, snapshot.state, restored, access_groups=recorded, force=force
        )
    except PlanRefused as error:
        raise SetupRefused(str(error)) from None
    return RollbackRun(observed, plan, snapshot, path, plan.licensed_after, drift)


def archive_snapshot(path: Path, now: datetime | None = None) -> Path:
    """Set a restored snapshot aside, so that the next setup takes a fresh one."""
    stamp = (now or now_utc()).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.stem}.rolled-back-{stamp}.json")
    os.replace(path, target)
    return target


# -- recency ---------------------------------------------------------------------------------


def last_seen_from_pairs(pairs: Iterable[tuple[str, int]]) -> dict[str, int]:
    """Each user's last counted request, from (user, UTC second) pairs, keyed in lower case."""
    last: dict[str, int] = {}
    for user, ts in pairs:
        key = user.lower()
        if ts > last.get(key, ts - 1):
            last[key] = ts
    return last


# -- execution -------------------------------------------------------------------------------


@dataclass
class ExecutionResult:
    """How far `execute` got; `stopped` says why it stopped early, None when it finished."""

    done_steps: list[str] = field(default_factory=list)
    actions_done: int = 0
    observed: dict[str, int] = field(default_factory=dict)  # step -> licensed, as reported
    stopped: str | None = None
    manual_steps: tuple[str, ...] = ()

    @property
    def finished(self) -> bool:
        return self.stopped is None


StepListener = Callable[[Step, int], None]  # (step, actions done in it so far)
ManualHandler = Callable[[Step, ManualStepRequired], bool]  # True: the admin did it


def execute(
    directory: ManagedDirectory,
    plan: Plan,
    *,
    on_manual: ManualHandler,
    on_progress: StepListener | None = None,
    allow_over_tier: bool = False,
) -> ExecutionResult:
    """Carry out `plan`, step by step, stopping at the first thing that is not safe.

    - a `ReadOnlyDirectory` stops at once: the plan fills the unlicensed group first, so
      this happens before any step that changes the licence;
    - a `ManualStepRequired` asks `on_manual`; unless the admin says they did it, execution
      stops there (the steps are in `manual_steps`);
    - after each step that changed something the licence is read again; a count over the
      tier that the plan did not predict stops execution (unless `allow_over_tier`);
    - any other `DirectoryError` stops with its message; re-running resumes.
    """
    result = ExecutionResult()
    for step in plan.steps:
        for done, action in enumerate(step.actions):
            try:
                _do(directory, action)
            except ReadOnlyDirectory as error:
                user = getattr(action, "user", "")
                result.stopped = (
                    f"{error.server_message or error}: the directory of {user} is read only. "
                    "The pool groups must be in a writable directory: the internal directory, "
                    'or an LDAP directory set to "Read Only, with Local Groups". Nothing that '
                    "changes the licence has been done past this point; fix it and re-run"
                )
                return result
            except ManualStepRequired as error:
                if on_manual(step, error):
                    result.actions_done += 1
                    continue
                result.stopped = f"{error}; do it by hand, then run floatseat setup again"
                result.manual_steps = error.steps
                return result
            except DirectoryError as error:
                result.stopped = f"{describe(action)} failed: {error}; run it again to resume"
                return result
            result.actions_done += 1
            if on_progress is not None:
                on_progress(step, done + 1)
        result.done_steps.append(step.key)
        if step.actions:
            try:
                licence = directory.licence()
            except DirectoryError as error:
                result.stopped = f"cannot read the licence after {step.key}: {error}"
                return result
            result.observed[step.key] = licence.licensed
            unexpected = licence.licensed > step.licensed_after
            if licence.licensed > licence.tier and unexpected and not allow_over_tier:
                result.stopped = (
                    f"after {step.key} the product reports {licence.licensed} licensed users, "
                    f"over the tier of {licence.tier} and more than the {step.licensed_after} "
                    "planned; stopping before anything else changes"
                )
                return result
    return result


def _do(directory: ManagedDirectory, action: Action) -> None:
    if isinstance(action, CreateGroup):
        directory.create_group(action.group)
    elif isinstance(action, AddMember):
        directory.add_user_to_group(action.user, action.group)
    elif isinstance(action, RemoveMember):
        directory.remove_user_from_group(action.user, action.group)
    elif isinstance(action, GrantAccess):
        directory.grant_application_access(action.group)
    else:
        directory.revoke_application_access(action.group, default_group=action.default_group)


# -- freeze ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FreezeResult:
    pinned: tuple[str, ...]  # newly pinned
    already: tuple[str, ...]  # pinned before
    holders: tuple[str, ...]  # every member of the licensed group


def freeze(
    directory: ManagedDirectory,
    database_url: str,
    groups: PoolGroups,
    *,
    at: int,
    excluded: Iterable[str] = (),
    dry_run: bool = False,
) -> FreezeResult:
    """Pin every member of the licensed group in the ledger, so that no seat floats.

    A pin is the policy's own way to keep a seat: the engine stops revoking those users, and
    the users it had counted as floating holders become fixed. Existing pins stay. On a
    ledger that has never seen the directory, the directory's figures are recorded first so
    that the pins apply at once.
    """
    from floatseat.domain.policy import PolicySettings
    from floatseat.service.bootstrap import bootstrap

    holders = tuple(sorted(directory.group_members(groups.enabled), key=str.casefold))
    services = bootstrap(database_url, PolicySettings(), directory, groups=groups)
    try:
        snapshot = services.engine.state()
        pinned_users = {p.user for p in snapshot.pins if p.user is not None and p.until is None}
        new = tuple(u for u in holders if u not in pinned_users)
        already = tuple(u for u in holders if u in pinned_users)
        if dry_run or not new:
            return FreezeResult(new, already, holders)
        if not snapshot.figures.pool:
            services.engine.handle(DirectoryChanged(at, _figures(directory, groups, excluded)))
        pins = snapshot.pins + tuple(Pin(user=u) for u in new)
        services.engine.handle(PinsChanged(at, pins))
        return FreezeResult(new, already, holders)
    finally:
        services.close()


def _figures(
    directory: ManagedDirectory, groups: PoolGroups, excluded: Iterable[str]
) -> DirectoryFigures:
    licence = directory.licence()
    memberships = directory.memberships((groups.enabled, groups.disabled))
    excluded_ = frozenset(excluded)
    pool = frozenset(memberships)
    holding = {u for u, gs in memberships.items() if groups.enabled in gs and u not in excluded_}
    return DirectoryFigures(
        tier=licence.tier,
        licensed_outside=max(0, licence.licensed - len(holding)),
        pool=pool,
        groups=dict(memberships),
        excluded=excluded_,
    )


def now_utc() -> datetime:
    return datetime.now(UTC)
