"""The serve loop on a FakeDirectory and real log files, driven step by step with our own clock."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from floatseat.directory.fake import FakeDirectory
from floatseat.domain.policy import Activity
from floatseat.service.bootstrap import Served, build_service
from floatseat.service.feeds import Seen
from floatseat.service.ports import AuditKind, MoveState
from floatseat.service.runner import Coalescer
from floatseat.service.settings import SettingsError, load_settings

E, D = "IUM_Enabled", "IUM_Disabled"
T0 = 1_767_600_000  # 2026-01-05 08:00 UTC
USERS = ("ann", "bob", "carl", "dora", "eve")


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def clf(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%d/%b/%Y:%H:%M:%S +0000")


def access(user: str, at: float, target: str = "/display/DOC/Home") -> str:
    return (
        f"[{clf(at)}] {user} http-nio-8090-exec-1 10.0.0.1 GET {target} HTTP/1.1 200 12ms 100 "
        "- Mozilla/5.0"
    )


def refusal(user: str, at: float) -> str:
    stamp = datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S,000")
    return (
        f"{stamp} WARN [http-nio-8090-exec-3] [atlassian.seraph.auth.DefaultAuthenticator] login "
        f"login : '{user}' tried to login but they do not have USE permission or weren't found. "
        "Deleting remember me cookie."
    )


def append(path: Path, *lines: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as out:
        out.write("".join(line + "\n" for line in lines))


class World:
    """A service over a FakeDirectory, one node's logs under tmp_path, and a manual clock."""

    def __init__(self, tmp_path: Path, *, tier: int = 5, shadow: bool = False, **policy: int):
        self.logs = tmp_path / "logs"
        self.access_log = self.logs / "conf_access_log.2026-01-05.log"
        self.app_log = self.logs / "atlassian-confluence.log"
        append(self.access_log)  # the node's log exists from the start
        self.clock = Clock()
        self.fake = FakeDirectory(
            tier, groups={E: set(), D: set(USERS), "confluence-users": set(USERS)}
        )
        knobs = {
            "idle_timeout_s": 600,
            "min_hold_s": 60,
            "reserve": 0,
            "warn_before_s": 0,
            "preempt": False,
            "sweep_interval_s": 30,
            "max_revokes_per_sweep": 0,
            **policy,
        }
        self.settings = load_settings(
            None,
            state_dir=tmp_path / "state",
            shadow=shadow,
            users_group="confluence-users",
            policy=knobs,
            nodes=[
                {
                    "name": "node1",
                    "access_logs": [str(self.logs / "conf_access_log.*")],
                    "security_logs": [str(self.app_log) + "*"],
                    "format": "confluence",
                }
            ],
            feed_min_quiet_s=120,
            feed_max_quiet_s=300,
            coalesce_s=5,
        )
        self.served = self.build()

    def build(self) -> Served:
        served = build_service(self.settings, self.fake, clock=self.clock)
        served.service.directory.step(self.clock())  # the first reconciliation
        served.service.activity.step(self.clock())  # the first read: to the logs' end
        return served

    def step(self, seconds: float = 0.25) -> None:
        self.clock.now += seconds
        self.served.service.activity.step(self.clock())
        self.served.service.directory.step(self.clock())

    def restart(self) -> None:
        self.served.service.activity.close(int(self.clock()))
        self.served.services.close()
        self.served = self.build()

    def audit(self) -> list[tuple[str, AuditKind, str]]:
        with self.served.services.ledger.transaction() as tx:
            return [(e.user, e.kind, e.rule) for e in tx.audit_log()]

    def close(self) -> None:
        self.served.service.activity.close(int(self.clock()))
        self.served.services.close()


@pytest.fixture
def world(tmp_path: Path) -> World:
    w = World(tmp_path)
    yield w
    w.close()


def test_a_refused_login_puts_the_user_in_the_licensed_group_in_one_step(world: World) -> None:
    append(world.app_log, refusal("Ann", world.clock.now))
    world.step()
    assert world.fake.group(E) == {"ann"}
    assert world.fake.breaches == []


def test_counted_requests_refresh_a_holder_and_an_idle_holder_is_revoked(world: World) -> None:
    append(world.app_log, refusal("bob", world.clock.now))
    world.step()
    assert "bob" in world.fake.group(E)
    # Works for 5 minutes (polling requests do not count), then goes quiet.
    for _ in range(5):
        append(world.access_log, access("bob", world.clock.now))
        append(world.access_log, access("bob", world.clock.now, "/rest/quickreload/latest/1"))
        world.step(60)
    last = world.served.runtime.state().holders[0].last_activity
    assert last >= T0 + 4 * 60
    while world.clock.now < last + 600 + 60:
        append(world.access_log, access("carl-is-not-here", world.clock.now, "/x"))  # node alive
        world.step(30)
    assert world.fake.group(E) == set()
    assert ("bob", AuditKind.REVOKE, "revoke-idle") in world.audit()


def test_a_holders_refreshes_are_coalesced_but_a_newcomer_goes_at_once() -> None:
    coalescer = Coalescer(window_s=5)
    holders = frozenset({"ann"})
    seen = [
        Seen("ann", 100, False, "n"),
        Seen("ann", 101, False, "n"),
        Seen("bob", 101, False, "n"),
    ]
    assert coalescer.offer(seen, 1000.0, holders) == [Activity("bob", 101)]
    assert coalescer.due(1000.0) == [Activity("ann", 101)]  # never sent: its window is open
    coalescer.offer([Seen("ann", 102, False, "n")], 1001.0, holders)
    assert coalescer.due(1002.0) == []  # sent 2 s ago
    assert coalescer.due(1005.0) == [Activity("ann", 102)]
    # Urgent activity (a seat path, a refused login) never waits.
    assert coalescer.offer([Seen("ann", 103, True, "n")], 1006.0, holders) == [Activity("ann", 103)]


def test_a_stalled_feed_pauses_revokes_and_its_recovery_resumes_them(world: World) -> None:
    append(world.app_log, refusal("ann", world.clock.now))
    world.step()
    assert world.fake.group(E) == {"ann"}
    # The node goes silent for longer than it may (300 s at most): revokes stop.
    world.step(400)
    status = world.served.runtime.status()
    assert status.stalled_feeds and status.stalled_feeds[0].node == "node1"
    assert status.revokes_paused == "stalled feeds: node1"
    world.step(700)  # ann is long idle, but nobody is revoked while the feed is stalled
    assert world.fake.group(E) == {"ann"}
    append(world.access_log, access("bob-not-pool", world.clock.now))
    world.step(10)
    assert world.served.runtime.status().revokes_paused is None
    world.step(30)
    assert world.fake.group(E) == set()
    kinds = [k for _, k, _ in world.audit()]
    assert AuditKind.FEED_STALLED in kinds and AuditKind.FEED_RECOVERED in kinds


def test_an_unreadable_log_is_a_stall_at_once(world: World) -> None:
    world.access_log.unlink()
    world.step()
    world.step(6)
    assert world.served.runtime.status().revokes_paused == "stalled feeds: node1"


def test_a_freeze_and_a_stall_are_separate_reasons(world: World) -> None:
    runtime = world.served.runtime
    runtime.freeze("root", "upgrade tonight")
    assert runtime.status().revokes_paused == "frozen by root: upgrade tonight"
    world.step(400)  # the feed stalls too
    assert (
        runtime.status().revokes_paused == "frozen by root: upgrade tonight; stalled feeds: node1"
    )
    assert runtime.unfreeze("root")
    assert runtime.status().revokes_paused == "stalled feeds: node1"
    assert not runtime.status().frozen
    kinds = [(u, k) for u, k, _ in world.audit()]
    assert ("root", AuditKind.FREEZE) in kinds and ("root", AuditKind.UNFREEZE) in kinds
    # The freeze survives a restart.
    runtime.freeze("root", "again")
    world.restart()
    assert world.served.runtime.status().frozen


def test_reconciliation_adopts_hand_made_holders_while_seats_are_free_then_revokes(
    tmp_path: Path,
) -> None:
    world = World(tmp_path, tier=2)
    try:
        # An admin puts three users in the licensed group by hand (the fake allows the breach
        # of a tier of 2 to be staged: we only check that floatseat makes it right).
        for user in ("ann", "bob", "carl"):
            world.fake.members[D].discard(user)
            world.fake.members[E].add(user)
        world.fake.breaches.clear()
        report = world.served.runtime.reconcile_now()
        assert report.adopted == ("ann", "bob")
        assert report.revoked == ("carl",)
        world.step()
        assert world.fake.group(E) == {"ann", "bob"}
        assert {h.user for h in world.served.runtime.state().holders} == {"ann", "bob"}
        audit = world.audit()
        assert ("carl", AuditKind.DRIFT_REVOKED, "repair-drift") in audit
        assert ("ann", AuditKind.DRIFT_ADOPTED, "repair-drift") in audit
        # A holder taken out of the licensed group by hand is granted again.
        world.fake.members[E].discard("bob")
        world.fake.members[D].add("bob")
        report = world.served.runtime.reconcile_now()
        assert report.regranted == ("bob",)
        world.step()
        assert "bob" in world.fake.group(E)
        assert world.served.runtime.status().drift_repairs == 4
    finally:
        world.close()


def test_reconciliation_places_new_users_and_follows_deactivated_holders(world: World) -> None:
    world.fake.members["confluence-users"].add("zed")
    append(world.app_log, refusal("zed", world.clock.now))
    world.step(30)  # zed is unknown: the refusal asks for a reconciliation (at most every 30 s)
    world.step()
    assert "zed" in world.fake.group(E)  # placed, then the kept refusal got them a seat
    assert ("zed", AuditKind.USER_PLACED, "place-new-user") in world.audit()
    world.fake.inactive.add("zed")
    report = world.served.runtime.reconcile_now()
    assert report.deactivated == ("zed",)
    world.step()
    assert "zed" not in world.fake.group(E)


def test_a_renamed_holder_keeps_the_seat_under_the_new_name(world: World) -> None:
    append(world.app_log, refusal("ann", world.clock.now))
    world.step()
    assert [h.user for h in world.served.runtime.state().holders] == ["ann"]
    # The product renames ann to anne: her memberships follow her, the old name is gone.
    for members in world.fake.members.values():
        if "ann" in members:
            members.discard("ann")
            members.add("anne")
    report = world.served.runtime.reconcile_now()
    world.step()
    # The old name left the pool (its seat freed), the new one was found in the licensed
    # group and adopted into that seat: nobody was locked out, the count never rose.
    assert [h.user for h in world.served.runtime.state().holders] == ["anne"]
    assert report.adopted == ("anne",)
    assert "anne" in world.fake.group(E) and "ann" not in world.fake.group(E)
    assert world.fake.breaches == []


def test_shadow_mode_decides_and_audits_but_moves_nobody(tmp_path: Path) -> None:
    world = World(tmp_path, shadow=True)
    try:
        before = world.fake.state()
        append(world.app_log, refusal("ann", world.clock.now))
        world.step()
        assert world.fake.state() == before
        assert [h.user for h in world.served.runtime.state().holders] == ["ann"]
        with world.served.services.ledger.transaction() as tx:
            moves = tx.moves()
        assert [(m.user, m.state) for m in moves] == [("ann", MoveState.SHADOWED)]
        assert ("ann", AuditKind.MOVE_SHADOWED, "grant-free-seat") in world.audit()
        assert world.served.runtime.status().shadow
    finally:
        world.close()


def test_after_a_restart_the_feeds_resume_without_replay_or_skip(world: World) -> None:
    append(world.app_log, refusal("ann", world.clock.now))
    world.step()
    world.restart()
    append(world.app_log, refusal("bob", world.clock.now))
    world.step()
    grants = [u for u, k, r in world.audit() if k is AuditKind.GRANT]
    assert grants == ["ann", "bob"]  # ann's refusal was not read again


def test_malformed_lines_are_counted_and_never_fatal(world: World) -> None:
    append(world.access_log, "this is not an access log line", access("ann", world.clock.now))
    world.step()
    assert world.served.runtime.status().malformed_lines == 1
    node = world.served.service.activity.feeds.nodes[0]
    assert node.malformed_at[-1].endswith("conf_access_log.2026-01-05.log:1")


def test_secrets_are_refused_in_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "floatseat.toml"
    config.write_text('product = "jira"\npassword = "hunter2"\n')
    with pytest.raises(SettingsError, match="FLOATSEAT_PASSWORD"):
        load_settings(config)
    config.write_text('product = "jira"\n[policy]\nmin_hold_s = 9999\n')
    with pytest.raises(SettingsError, match="min_hold_s"):
        load_settings(config)


def test_a_policy_change_applies_at_once_and_is_audited(world: World) -> None:
    from dataclasses import replace

    append(world.app_log, refusal("ann", world.clock.now))
    world.step()
    world.step(120)
    append(world.access_log, access("nobody", world.clock.now))  # the node is alive
    runtime = world.served.runtime
    runtime.update_policy(replace(runtime.policy_settings, idle_timeout_s=100), "root")
    world.step()
    assert world.fake.group(E) == set()  # idle for 120 s > 100 s: revoked by the sweep
    # One entry, in the admin's rule; the user acted on is none ("-"), the reason names root.
    changes = [(u, k, r) for u, k, r in world.audit() if k is AuditKind.POLICY_CHANGED]
    assert changes == [("-", AuditKind.POLICY_CHANGED, "admin-policy")]
