"""The leader reads the activity inbox like one more feed: agents' batches, followers' reports.

The service runs on a FakeDirectory, stepped by hand (test_serve_loop.World); batches go in
through `Inbox.accept_batch` as POST /api/v1/agent/batches puts them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from test_serve_loop import D, E, World, append, clf, refusal

from floatseat.service.ports import InboxItem
from floatseat.store.inbox import Inbox


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path)
    yield w
    w.close()


def inbox(world: World) -> Inbox:
    return Inbox(world.served.services.ledger.engine)


def test_an_agents_refused_login_gets_the_user_a_seat_in_one_step(world: World) -> None:
    now = int(world.clock())
    receipt = inbox(world).accept_batch(
        "agent-1", "node7", 1, [InboxItem("node7", "Ann", now, urgent=True, refused=True)], now=now
    )
    assert (receipt.accepted, receipt.duplicate) == (1, False)
    world.step()
    assert world.fake.group(E) == {"ann"}  # spelled as the directory spells it
    assert inbox(world).take() == []  # taken once the engine committed it
    assert world.fake.breaches == []


def test_a_batch_sent_twice_is_counted_once(world: World) -> None:
    now = int(world.clock())
    items = [InboxItem("node7", "bob", now, urgent=True, refused=True)]
    assert not inbox(world).accept_batch("agent-1", "node7", 1, items, now=now).duplicate
    again = inbox(world).accept_batch("agent-1", "node7", 1, items, now=now)
    assert (again.duplicate, again.accepted, again.last_seq) == (True, 0, 1)
    assert len(inbox(world).take()) == 1


def test_followers_reports_and_agents_activity_refresh_holders(world: World) -> None:
    append(world.app_log, refusal("carl", world.clock.now))
    world.step()
    assert "carl" in world.fake.group(E)
    granted_at = world.served.runtime.state().holders[0].last_activity
    world.step(120)
    later = int(world.clock())
    inbox(world).add([InboxItem("api", "carl", later, urgent=True)], source="api:b", now=later)
    world.step()
    assert world.served.runtime.state().holders[0].last_activity == later > granted_at


def test_activity_of_someone_outside_the_pool_is_dropped_not_kept(world: World) -> None:
    now = int(world.clock())
    inbox(world).add([InboxItem("node7", "mallory", now)], source="agent:x", now=now)
    world.step()
    assert inbox(world).take() == []
    assert world.fake.group(E) == set() and "mallory" not in world.fake.group(D)


def test_an_agent_that_stops_reporting_stalls_its_node_and_pauses_revokes(world: World) -> None:
    # The node's local feed stays alive; only the agent's node goes quiet.
    now = int(world.clock())
    inbox(world).accept_batch("agent-1", "node7", 1, [], now=now, log_at=now)
    world.step(5)
    assert "node7" in world.served.runtime.status().feed_lag_s
    for _ in range(8):  # 8 minutes: longer than feed_max_quiet_s (300 s)
        alive = f"[{clf(world.clock.now)}] - x 10.0.0.1 GET /x HTTP/1.1 200 1ms 1 - -"
        append(world.access_log, alive)
        world.step(60)
    status = world.served.runtime.status()
    assert [s.node for s in status.stalled_feeds] == ["node7"]
    assert status.revokes_paused is not None
    # The agent is back, and its logs grew: the stall ends.
    now = int(world.clock())
    inbox(world).accept_batch("agent-1", "node7", 2, [], now=now, log_at=now)
    world.step(6)
    status = world.served.runtime.status()
    assert status.stalled_feeds == () and status.revokes_paused is None


def test_a_policy_change_made_on_another_instance_is_adopted(world: World) -> None:
    from dataclasses import replace

    from floatseat.service.bootstrap import build_service

    other = build_service(world.settings, world.fake, clock=world.clock)  # the same ledger
    try:
        here = world.served.runtime
        changed = replace(here.policy_settings, idle_timeout_s=100, reserve=1)
        other.runtime.update_policy(changed, "root")
        assert here.policy_settings != changed
        assert here.refresh_policy()
        assert here.policy_settings == changed
        assert here.engine.settings == changed  # decisions from now on use it
        assert not here.refresh_policy()  # nothing new
    finally:
        other.close()
