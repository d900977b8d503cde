"""Feed health: a node is stalled when it stays quiet longer than it usually does."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from floatseat.domain.feeds import HOUR, WEEK, FeedHealth

MONDAY = 4 * 24 * HOUR  # 1970-01-05 00:00 UTC, a Monday; the epoch was a Thursday
MIN = 60


def _busy(health: FeedHealth, node: str, start: int, end: int, every: int) -> None:
    health.watch(node, start)
    for at in range(start, end + 1, every):
        health.grew(node, at)


def test_a_new_node_may_stay_quiet_up_to_the_maximum() -> None:
    health = FeedHealth(min_quiet_s=10 * MIN, max_quiet_s=4 * HOUR)
    health.watch("node1", MONDAY)
    assert health.stalls(MONDAY + 4 * HOUR) == []
    [stall] = health.stalls(MONDAY + 4 * HOUR + 1)
    assert stall.node == "node1"
    assert stall.allowed_s == 4 * HOUR


def test_a_busy_hour_learns_to_expect_lines_every_minute() -> None:
    health = FeedHealth(min_quiet_s=10 * MIN, margin=2.0)
    _busy(health, "node1", MONDAY + 9 * HOUR, MONDAY + 10 * HOUR, MIN)  # week 1, 9-10h
    next_week = MONDAY + WEEK + 9 * HOUR
    health.watch("node1", next_week)
    assert health.stalls(next_week + 10 * MIN) == []  # never before the minimum
    [stall] = health.stalls(next_week + 10 * MIN + 1)
    assert (stall.quiet_s, stall.allowed_s) == (10 * MIN + 1, 10 * MIN)
    assert "has not grown for 10 min" in stall.reason


def test_quiet_nights_are_learnt_per_hour() -> None:
    health = FeedHealth(min_quiet_s=10 * MIN, max_quiet_s=6 * HOUR, margin=1.5)
    night = MONDAY + 1 * HOUR
    health.watch("node1", night)
    health.grew("node1", night + 2 * HOUR)  # a 2 h quiet spell at 1-3h
    _busy(health, "node1", MONDAY + 9 * HOUR, MONDAY + 10 * HOUR, MIN)
    week2 = MONDAY + WEEK
    health.watch("node1", week2 + 1 * HOUR)
    assert health.stalls(week2 + 4 * HOUR) == []  # 3 h <= 1.5 x 2 h
    assert [s.node for s in health.stalls(week2 + 4 * HOUR + 1)] == ["node1"]
    health.grew("node1", week2 + 9 * HOUR)
    assert [s.node for s in health.stalls(week2 + 9 * HOUR + 11 * MIN)] == ["node1"]


def test_an_outage_does_not_teach_the_model_to_wait_longer() -> None:
    health = FeedHealth(min_quiet_s=10 * MIN, max_quiet_s=4 * HOUR)
    _busy(health, "node1", MONDAY + 9 * HOUR, MONDAY + 10 * HOUR, MIN)
    outage_start = MONDAY + WEEK + 9 * HOUR
    health.watch("node1", outage_start)
    health.grew("node1", outage_start + 3 * HOUR)  # down for 3 h, then back
    week3 = MONDAY + 2 * WEEK + 9 * HOUR
    health.watch("node1", week3)
    assert health.allowed_quiet("node1", week3, week3 + 11 * MIN) <= 20 * MIN


def test_history_older_than_the_window_is_forgotten() -> None:
    health = FeedHealth(min_quiet_s=10 * MIN, max_quiet_s=4 * HOUR, weeks=2)
    health.watch("node1", MONDAY + 9 * HOUR)
    health.grew("node1", MONDAY + 9 * HOUR + 3 * HOUR)  # a long quiet spell, week 1
    _busy(health, "node1", MONDAY + 2 * WEEK + 9 * HOUR, MONDAY + 2 * WEEK + 10 * HOUR, MIN)
    late = MONDAY + 2 * WEEK + 9 * HOUR + 30 * MIN
    assert health.allowed_quiet("node1", late, late + MIN) == 10 * MIN


def test_an_unreadable_log_is_a_stall_at_once_until_it_reads_again() -> None:
    health = FeedHealth()
    health.watch("node2", MONDAY)
    health.unreadable("node2", "Permission denied")
    [stall] = health.stalls(MONDAY)
    assert "cannot be read: Permission denied" in stall.reason
    health.readable("node2")
    assert health.stalls(MONDAY + 1) == []


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError):
        FeedHealth(min_quiet_s=0)
    with pytest.raises(ValueError):
        FeedHealth(min_quiet_s=100, max_quiet_s=50)
    with pytest.raises(ValueError):
        FeedHealth(margin=0.5)


@given(
    st.lists(
        st.tuples(st.sampled_from(["n1", "n2"]), st.integers(0, 3 * WEEK)),
        max_size=60,
    ),
    st.integers(0, 4 * WEEK),
)
def test_a_restored_snapshot_decides_the_same(growths: list[tuple[str, int]], now: int) -> None:
    health = FeedHealth(min_quiet_s=5 * MIN, max_quiet_s=3 * HOUR)
    for node, at in sorted(growths, key=lambda g: g[1]):
        health.grew(node, at)
    copy = FeedHealth(min_quiet_s=5 * MIN, max_quiet_s=3 * HOUR)
    copy.restore(json.loads(json.dumps(health.snapshot())))
    assert copy.stalls(now) == health.stalls(now)
    for node in ("n1", "n2"):
        assert copy.allowed_quiet(node, max(0, now - HOUR), now) == health.allowed_quiet(
            node, max(0, now - HOUR), now
        )
