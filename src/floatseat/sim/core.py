"""`Simulator`: one simulated Confluence or Jira instance, shared by its REST app and tests.

It holds the `World` (directories, groups, licence), the faults, the clock, the log sink and
the virtual users, behind one lock, so that the HTTP threads, the ticker and a test that
pokes the state in-process see one consistent instance.
"""

from __future__ import annotations

import base64
import binascii
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from floatseat.sim.clock import AcceleratedClock, Clock, ManualClock
from floatseat.sim.faults import Fault, FaultSet, Hit
from floatseat.sim.logs import AccessRecord, LogSink
from floatseat.sim.model import (
    DirectoryKind,
    LicenceRules,
    SimError,
    SimUser,
    UserDirectory,
    World,
    fold,
)
from floatseat.sim.people import VirtualUsers, make_people

__all__ = ["DEFAULT_VERSIONS", "Auth", "SimConfig", "Simulator", "parse_version"]

Product = Literal["confluence", "jira"]
DEFAULT_VERSIONS: dict[str, str] = {"confluence": "8.5.4", "jira": "9.12.2"}
DEFAULT_START = 1_767_600_000.0  # 2026-01-05 08:00:00 UTC, a Monday morning
USERS_GROUP = {"confluence": "confluence-users", "jira": "jira-software-users"}
ADMINS_GROUP = {"confluence": "confluence-administrators", "jira": "jira-administrators"}


def parse_version(text: str) -> tuple[int, ...]:
    """(8, 5, 4) from "8.5.4"; ValueError on anything else."""
    parts = tuple(int(p) for p in text.split("."))
    if not parts or len(parts) > 4:
        raise ValueError(f"not a version: {text!r}")
    return parts


@dataclass
class SimConfig:
    """Everything that shapes a simulated instance. Defaults give a small Confluence 8.5."""

    product: Product = "confluence"
    version: str | None = None  # default DEFAULT_VERSIONS[product]
    users: int = 10  # virtual users, members of the product's users group
    tier: int = 25
    admin_user: str = "admin"
    admin_password: str = "admin"
    user_password: str = "password"  # every virtual user's password
    tokens: dict[str, str] = field(default_factory=lambda: {"sim-admin-token": "admin"})  # PATs
    # Directories after the first: virtual users moved into plain "Read Only" LDAP and
    # "Read Only, with Local Groups" LDAP (the last ones of the list).
    read_only_users: int = 0
    local_groups_users: int = 0
    crowd: bool = False  # the first directory is a Crowd directory (with sync lag)
    crowd_app: str = "floatseat"
    crowd_password: str = "floatseat"
    crowd_sync_interval_s: float | None = None  # sync on this simulated period; None: manual
    # Confluence's "Remote API (XML-RPC & SOAP)" switch, which also gates JSON-RPC. None: on
    # for 7.x, off for 8+ (see `remote_api_enabled`).
    remote_api: bool | None = None
    member_page_cap: int = 200  # Confluence caps `limit` of group members
    jira_page_cap: int = 50
    user_search_cap: int = 1000
    nodes: int = 2
    log_dir: Path | None = None  # None: no logs written
    seed: int = 0
    start: float = DEFAULT_START
    speed: float | None = None  # None: a manual clock; K: K simulated seconds a second
    active_people: bool = True  # virtual users work on their own when the clock ticks

    def __post_init__(self) -> None:
        if self.product not in ("confluence", "jira"):
            raise ValueError(f"product must be confluence or jira, not {self.product!r}")
        if self.version is None:
            self.version = DEFAULT_VERSIONS[self.product]
        parse_version(self.version)
        if self.users < 0 or self.tier < 0:
            raise ValueError("users and tier must be 0 or more")
        if self.read_only_users + self.local_groups_users > self.users:
            raise ValueError("more LDAP users than users")

    @property
    def version_tuple(self) -> tuple[int, ...]:
        assert self.version is not None
        return parse_version(self.version)

    def at_least(self, *version: int) -> bool:
        return self.version_tuple >= version

    @property
    def remote_api_enabled(self) -> bool:
        """Whether the Remote API is on.

        Confluence itself ships it off in every version: `Settings.allowRemoteApi = false`
        (decompiled `com.atlassian.confluence.setup.settings.Settings`), and "Enabling the
        Remote API" says "you need to enable the APIs from the Administration Console". So
        8.x/9.x default to off, as a fresh instance is. 7.x defaults to on only because the
        simulated 7.x instance stands for one prepared for floatseat (before 8.2 the Remote
        API is the only way to change groups, so its admin has turned it on); pass
        `remote_api=False` for an untouched 7.x.
        """
        if self.remote_api is not None:
            return self.remote_api
        return self.version_tuple < (8,)


@dataclass(frozen=True)
class Auth:
    """Who a request is: `user` None when the credentials failed or were missing."""

    user: str | None
    failed: bool  # credentials given but wrong: 401 with X-Seraph-LoginReason
    admin: bool = False
    refused: bool = False  # right password, no application access


class Simulator:
    """A running simulated instance. All methods are thread-safe."""

    def __init__(self, config: SimConfig | None = None, *, clock: Clock | None = None) -> None:
        self.config = config = config or SimConfig()
        self.product: Product = config.product
        if clock is None:
            clock = (
                ManualClock(config.start)
                if config.speed is None
                else AcceleratedClock(config.start, config.speed)
            )
        self.clock = clock
        self.lock = threading.RLock()
        self.faults = FaultSet()
        self.logs = (
            LogSink(config.log_dir, config.product, config.nodes) if config.log_dir else None
        )
        self.world = self._build_world()
        self.people = VirtualUsers(
            make_people(config.users, config.seed),
            seed=config.seed,
            nodes=config.nodes,
            start=config.start,
        )
        self.requests = 0
        self.last_sync = config.start
        self._node = 0  # round robin of REST calls over nodes

    # -- construction ------------------------------------------------------------------------

    def _build_world(self) -> World:
        c = self.config
        first: DirectoryKind = "crowd" if c.crowd else "internal"
        directories = [UserDirectory("Crowd Server" if c.crowd else "Confluence Internal", first)]
        if c.product == "jira" and not c.crowd:
            directories[0].name = "Jira Internal Directory"
        if c.read_only_users:
            directories.append(UserDirectory("LDAP (Read Only)", "read_only"))
        if c.local_groups_users:
            directories.append(
                UserDirectory("LDAP (Read Only, with Local Groups)", "read_only_local_groups")
            )
        users_group, admins_group = USERS_GROUP[c.product], ADMINS_GROUP[c.product]
        if c.product == "confluence":
            # A fresh Confluence's Global Permissions (UNVERIFIED, from the screen as commonly
            # seen): confluence-users "Can use"; confluence-administrators "Can use",
            # Confluence Administrator and System Administrator.
            admins = frozenset({fold(admins_group)})
            rules = LicenceRules(
                product=c.product,
                tier=c.tier,
                can_use=frozenset({fold(users_group)}) | admins,
                admin_groups=admins,
                sysadmin_groups=admins,
            )
        else:
            rules = LicenceRules(
                product=c.product, tier=c.tier, can_use=frozenset({fold(users_group)})
            )
        world = World(directories, rules, default_groups=[users_group])
        for group in (users_group, admins_group):
            world.create_group(group)
        jira = c.product == "jira"
        admin = SimUser(
            c.admin_user,
            "Administrator",
            f"{c.admin_user}@example.com",
            password=c.admin_password,
            key=c.admin_user if jira else "",  # Jira keeps the old key of early users
        )
        world.add_user(admin, groups=[users_group, admins_group], now=c.start)
        people = make_people(c.users, c.seed)
        ldap_from = c.users - c.read_only_users - c.local_groups_users
        local_from = c.users - c.local_groups_users
        for index, person in enumerate(people):
            user = SimUser(
                person.name,
                person.display_name,
                person.email,
                password=c.user_password,
                key=f"JIRAUSER{10100 + index}" if jira else "",  # Jira 8+ keys
            )
            directory = None
            if index >= local_from:
                directory = "LDAP (Read Only, with Local Groups)"
            elif index >= ldap_from:
                directory = "LDAP (Read Only)"
            world.add_user(user, directory=directory, groups=[users_group], now=c.start)
            if directory == "LDAP (Read Only, with Local Groups)":
                world.directories[-1].ldap_groups.add(fold(users_group))
        world.violations.clear()  # the starting point is not a change
        return world

    # -- helpers for the REST layer -----------------------------------------------------------

    @contextmanager
    def locked(self) -> Iterator[World]:
        with self.lock:
            yield self.world

    def now(self) -> float:
        return self.clock.now()

    def authenticate(self, authorization: str | None) -> Auth:
        """Basic (username:password) or Bearer (a personal access token)."""
        if not authorization:
            return Auth(None, failed=False)
        scheme, _, value = authorization.partition(" ")
        with self.lock:
            if scheme.lower() == "bearer":
                owner = self.config.tokens.get(value.strip())
                if owner is None:
                    return Auth(None, failed=True)
                return self._auth_of(owner)
            if scheme.lower() != "basic":
                return Auth(None, failed=True)
            try:
                username, _, password = base64.b64decode(value).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return Auth(None, failed=True)
            user = self.world.find_user(username)
            if user is None or user.password is None or user.password != password:
                return Auth(None, failed=True)
            if not user.active:
                return Auth(None, failed=True)
            return self._auth_of(user.name)

    def _auth_of(self, name: str) -> Auth:
        user = self.world.find_user(name)
        if user is None:
            return Auth(None, failed=True)
        admin = self.is_admin(user.name)
        if not admin and not self.world.is_licensed(user.name):
            return Auth(user.name, failed=False, refused=True)
        return Auth(user.name, failed=False, admin=admin)

    def is_admin(self, name: str) -> bool:
        if fold(name) == fold(self.config.admin_user):
            return True
        try:
            groups = {fold(g) for g in self.world.groups_of(name)}
        except SimError:
            return False
        return fold(ADMINS_GROUP[self.product]) in groups

    def hit_faults(self, method: str, path: str) -> Hit:
        with self.lock:
            return self.faults.hit(method, path)

    def next_node(self) -> int:
        with self.lock:
            self._node = (self._node + 1) % self.config.nodes
            return self._node

    def log_access(self, node: int, record: AccessRecord) -> None:
        with self.lock:
            self.requests += 1
        if self.logs is not None:
            self.logs.access(node, record)

    def log_refusal(self, node: int, at: float, user: str, *, ip: str, url: str = "") -> None:
        if self.logs is not None:
            self.logs.refusal(node, at, user, ip=ip, url=url)

    # -- run-time control -------------------------------------------------------------------

    def add_fault(self, fault: Fault) -> Fault:
        with self.lock:
            return self.faults.add(fault)

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()

    def sync_crowd(self) -> None:
        with self.lock:
            self.world.sync(self.now())
            self.last_sync = self.now()

    def set_licence(
        self,
        *,
        tier: int | None = None,
        can_use: list[str] | None = None,
        grants: list[str] | None = None,
        admin_groups: list[str] | None = None,
        sysadmin_groups: list[str] | None = None,
    ) -> None:
        """Change the licence or who it covers (Confluence's Global Permissions screen)."""
        with self.lock:
            r = self.world.rules

            def folded(new: list[str] | None, old: frozenset[str]) -> frozenset[str]:
                return old if new is None else frozenset(map(fold, new))

            new = replace(
                r,
                tier=r.tier if tier is None else tier,
                can_use=folded(can_use, r.can_use),
                admin_groups=folded(admin_groups, r.admin_groups),
                grants=folded(grants, r.grants),
                sysadmin_groups=folded(sysadmin_groups, r.sysadmin_groups),
            )
            self.world.set_rules(new, self.now(), "licence or permissions changed")

    def tick(self) -> int:
        """Run the clock's due work: Crowd sync, virtual users. Returns requests made."""
        with self.lock:
            now = self.now()
            interval = self.config.crowd_sync_interval_s
            if interval is not None and now - self.last_sync >= interval:
                self.world.sync(now)
                self.last_sync = now
            if not self.config.active_people:
                return 0
            return self.people.run_until(now, self)

    def advance(self, seconds: float) -> int:
        """Move a manual (or accelerated) clock ahead and run what fell due."""
        clock = self.clock
        if not isinstance(clock, ManualClock | AcceleratedClock):
            raise TypeError("this clock cannot be advanced")
        clock.advance(seconds)
        return self.tick()

    # -- what the state looks like ----------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The JSON of `GET /_sim/state`."""
        with self.lock:
            w = self.world
            licensed = w.licensed_users()
            return {
                "product": self.product,
                "version": self.config.version,
                "now": self.now(),
                "tier": w.rules.tier,
                "licensed": len(licensed),
                "licensed_users": [u.name for u in licensed],
                "over_tier": len(licensed) > w.rules.tier,
                "read_only": self.product == "confluence" and len(licensed) > w.rules.tier,
                "licence_violations": len(w.violations),
                "violations": [
                    {"licensed": v.licensed, "tier": v.tier, "cause": v.cause, "at": v.at}
                    for v in w.violations
                ],
                "licensing_groups": sorted(w.rules.licensing_groups),
                "can_use": sorted(w.rules.can_use),
                "admin_groups": sorted(w.rules.admin_groups),
                "sysadmin_groups": sorted(w.rules.sysadmin_groups),
                "grants": sorted(w.rules.grants),
                "admin_grants": sorted(w.rules.admin_grants),
                "groups": {g: [u.name for u in w.members_of(g)] for g in w.group_names()},
                "directories": [
                    {
                        "name": d.name,
                        "kind": d.kind,
                        "users": sorted(u.name for u in d.users.values()),
                    }
                    for d in w.directories
                ],
                "crowd_pending": self._crowd_pending(),
                "faults": [f.as_json() for f in self.faults.faults],
                "requests": self.requests,
                "remote_api": self.config.remote_api_enabled,
                "people": self.people.summary(),
            }

    def _crowd_pending(self) -> bool:
        crowd = self.world.crowd()
        if crowd is None:
            return False
        return crowd.members != crowd.live_members or crowd.groups != crowd.live_groups
