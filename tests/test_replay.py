"""The what-if replay in the domain: hand-made cases with a known answer, then properties."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from floatseat.domain.policy import (
    Decision,
    Denied,
    DirectoryFigures,
    Grant,
    Pin,
    PolicySettings,
    Queued,
    Revoke,
    Rule,
    SeatPolicy,
    Sweep,
    Warn,
)
from floatseat.domain.replay import ReplayResult, nearest_rank, replay
from floatseat.domain.sessions import build_sessions, concurrency_steps, peak

USERS = ("ann", "bob", "carl", "dora", "eve", "finn")
T = 1800


def figures(seats: int, users: tuple[str, ...] = USERS) -> DirectoryFigures:
    return DirectoryFigures(tier=seats, pool=frozenset(users))


def quiet(**overrides: object) -> PolicySettings:
    """The policy's defaults with no reserve and no warnings, then `overrides`."""
    base: dict[str, object] = {"reserve": 0, "warn_before_s": 0}
    base.update(overrides)
    return PolicySettings(**base)  # type: ignore[arg-type]


def ordered(requests: list[tuple[int, str]]) -> list[tuple[int, str]]:
    return sorted(set(requests))


# -- nearest rank --------------------------------------------------------------------------------


def test_the_p95_of_twenty_values_is_the_nineteenth_smallest() -> None:
    values = list(range(100, 0, -5))  # 20 values, unsorted
    assert nearest_rank(values, 95) == sorted(values)[18]


def test_the_p95_of_one_to_a_hundred_is_ninety_five_and_of_one_value_that_value() -> None:
    assert nearest_rank(list(range(1, 101)), 95) == 95
    assert nearest_rank([42], 95) == 42
    assert nearest_rank([3, 1, 2], 100) == 3


def test_the_p95_of_no_values_is_zero() -> None:
    assert nearest_rank([], 95) == 0


def test_a_percentile_outside_one_to_a_hundred_is_refused() -> None:
    with pytest.raises(ValueError, match="percent"):
        nearest_rank([1], 0)


# -- hand-made replays ---------------------------------------------------------------------------


def test_waits_are_counted_per_entry_and_p95_is_the_nearest_rank_of_served_waits() -> None:
    # One seat, no pre-emption, sweeps every 60 s. ann works from 0 to 100; bob, carl and dora
    # queue at 10, 20 and 30. ann's seat expires at 100 + T = 1900, but the sweep at 1860 has
    # already dropped all three entries, 30 minutes old.
    requests = ordered([(0, "ann"), (100, "ann"), (10, "bob"), (20, "carl"), (30, "dora")])
    result = replay(requests, quiet(preempt=False, min_hold_s=0), figures(1))
    assert (result.waits, result.queued, result.denied, result.served) == (3, 3, 3, 0)
    assert result.wait_seconds_p95 == 0  # over served entries only: none

    # With a longer queue timeout they are served one after the other as each holder expires:
    # bob by the sweep at 1920, then idle since, carl at 1920 + T = 3720, dora at 5520.
    longer = replay(
        requests, quiet(preempt=False, min_hold_s=0, queue_timeout_s=10 * T), figures(1)
    )
    assert (longer.served, longer.denied) == (3, 0)
    waits = [1920 - 10, 3720 - 20, 5520 - 30]
    assert longer.wait_seconds_total == sum(waits)
    assert longer.wait_seconds_p95 == nearest_rank(waits, 95) == 5490
    assert longer.wait_seconds_max == 5490


def test_a_denied_users_wait_counts_in_the_total_but_not_in_the_p95() -> None:
    requests = ordered([(0, "ann"), (1000, "ann"), (10, "bob"), (500, "carl")])
    result = replay(requests, quiet(preempt=False, queue_timeout_s=600), figures(1))
    # bob and carl queue; the sweep at 660 drops bob (waited 650 s), the one at 1140 carl.
    assert result.denied == 2
    assert result.served == 0
    assert result.wait_seconds_total == (660 - 10) + (1140 - 500)
    assert result.wait_seconds_p95 == 0


def test_a_queued_user_who_keeps_working_waits_once() -> None:
    requests = ordered([(0, "ann"), *((t, "bob") for t in range(10, 600, 30))])
    result = replay(requests, quiet(preempt=False), figures(1))
    assert result.waits == 1
    assert result.queued == 1


def test_a_user_denied_and_still_working_queues_again() -> None:
    requests = ordered([(t, "ann") for t in range(0, 3000, 60)] + [(10, "bob"), (700, "bob")])
    result = replay(requests, quiet(preempt=False, queue_timeout_s=600), figures(1))
    # bob's entry of 10 is dropped by the sweep at 660; his request at 700 opens a second one,
    # dropped at 1320 in turn, while ann keeps working.
    assert result.waits == 2
    assert result.queued == 1
    assert result.denied == 2


def test_the_clock_runs_on_after_the_last_request_until_the_queue_is_empty() -> None:
    requests = ordered([(0, "ann"), (10, "bob")])
    result = replay(requests, quiet(preempt=False, min_hold_s=0), figures(1))
    # ann expires at 1800; the sweep at 1800 revokes her and serves bob.
    assert result.served == 1
    assert result.wait_seconds_total == 1800 - 10
    assert result.last_at == 10
    assert result.end_at == 1800


def test_a_holder_whose_next_request_comes_exactly_idle_timeout_later_keeps_the_seat() -> None:
    # The analyzer counts requests exactly T apart as one session; the sweep due at T runs
    # after the requests of that second, so it finds ann active, not expired.
    # bob, who comes a second later, waits until ann's seat expires at 2T.
    policy_settings = quiet(preempt=False, min_hold_s=0, queue_timeout_s=10 * T)
    requests = ordered([(0, "ann"), (T, "ann"), (T + 1, "bob")])
    result = replay(requests, policy_settings, figures(1))
    assert (result.grants, result.revokes, result.waits) == (2, 1, 1)
    assert result.wait_seconds_total == 2 * T - (T + 1)


def test_preemptions_are_counted_among_the_revokes() -> None:
    requests = ordered([(0, "ann"), (1000, "bob")])
    result = replay(requests, quiet(preempt=True, preempt_after_s=900), figures(1))
    assert (result.revokes, result.preemptions, result.waits) == (1, 1, 0)


def test_seats_held_never_exceed_the_seats_and_count_pinned_users() -> None:
    requests = ordered([(0, "ann"), (5, "bob"), (6, "carl"), (7, "dora")])
    result = replay(requests, quiet(), figures(3), [Pin(user="ann")])
    assert result.capacity == 2
    assert result.max_seats_held == 3  # ann (pinned), bob, carl
    assert result.waits == 1  # dora, served after the drain pre-empts bob, idle 15 minutes
    assert (result.grants, result.preemptions) == (3, 1)  # never one for ann, who is pinned


def test_a_day_holds_the_entries_that_began_in_it_and_the_grants_made_in_it() -> None:
    day = 86_400
    requests = ordered([(day - 100, "ann"), (day - 50, "bob"), (day + 10, "carl")])
    result = replay(
        requests,
        quiet(preempt=False, min_hold_s=0, queue_timeout_s=10 * T),
        figures(1),
        day_starts=[0, day, 2 * day],
    )
    # ann's seat expires at day + 1700: the sweep at day + 1740 serves bob, whose seat expires
    # at day + 3540, when carl is served.
    first, second = result.daily
    assert (first.start, second.start) == (0, day)
    assert (first.grants, first.waits, first.wait_seconds_total) == (1, 1, 1740 + 50)
    assert (second.grants, second.waits, second.wait_seconds_total) == (2, 1, 3540 - 10)
    assert result.wait_seconds_total == 1790 + 3530


def test_without_day_starts_days_are_utc_days_and_every_day_between_is_listed() -> None:
    day = 86_400
    result = replay(ordered([(10, "ann"), (3 * day + 10, "ann")]), quiet(), figures(1))
    assert [d.start for d in result.daily] == [0, day, 2 * day, 3 * day]
    assert [d.grants for d in result.daily] == [1, 0, 0, 1]


def test_the_timeline_follows_the_seats_held_and_the_queue() -> None:
    requests = ordered([(0, "ann"), (10, "bob"), (20, "carl")])
    result = replay(requests, quiet(preempt=False, min_hold_s=0), figures(1), timeline=True)
    # ann's seat goes to bob at T (revoked and granted in one second: no step down); carl's
    # entry is dropped by the sweep at 1860, 30 minutes after he queued.
    assert [(s.at, s.level) for s in result.held] == [(0, 1)]
    assert [(s.at, s.level) for s in result.queue] == [(10, 1), (20, 2), (T, 1), (1860, 0)]


def test_an_empty_input_replays_to_zeros() -> None:
    result = replay([], quiet(), figures(3))
    assert (result.waits, result.grants, result.max_seats_held, result.daily) == (0, 0, 0, ())
    assert result.first_at is None


# -- properties against the analyzer's semantics and the policy itself ---------------------------

requests_strategy = st.lists(
    st.tuples(st.integers(0, 6 * 3600), st.sampled_from(USERS)), min_size=1, max_size=60
)
settings_strategy = st.builds(
    lambda idle, hold_share, preempt, after, sweep, queue, warn: PolicySettings(
        idle_timeout_s=idle,
        min_hold_s=idle * hold_share // 4,
        preempt=preempt,
        preempt_after_s=after,
        sweep_interval_s=sweep,
        queue_timeout_s=queue,
        warn_before_s=warn,
        reserve=0,
    ),
    st.sampled_from((60, 600, 1800)),
    st.integers(0, 4),
    st.booleans(),
    st.sampled_from((0, 300, 900)),
    st.sampled_from((1, 60, 300)),
    st.sampled_from((0, 600, 1800)),
    st.sampled_from((0, 60)),
)


def analyzer_peak(requests: list[tuple[int, str]], idle_timeout_s: int) -> int:
    times: dict[str, list[int]] = {}
    for ts, user in requests:
        times.setdefault(user, []).append(ts)
    return peak(concurrency_steps(build_sessions(times, idle_timeout_s)))[0]


@settings(max_examples=300, deadline=None)
@given(requests=requests_strategy, policy_settings=settings_strategy, extra=st.integers(0, 2))
def test_with_seats_at_or_above_the_analyzers_peak_nobody_waits(
    requests: list[tuple[int, str]], policy_settings: PolicySettings, extra: int
) -> None:
    requests = ordered(requests)
    seats = analyzer_peak(requests, policy_settings.idle_timeout_s) + extra
    result = replay(requests, policy_settings, figures(seats))
    assert result.waits == 0
    assert result.max_seats_held <= seats


@settings(max_examples=300, deadline=None)
@given(requests=requests_strategy, policy_settings=settings_strategy)
def test_without_preemption_one_seat_fewer_than_the_peak_makes_someone_wait(
    requests: list[tuple[int, str]], policy_settings: PolicySettings
) -> None:
    requests = ordered(requests)
    seats = analyzer_peak(requests, policy_settings.idle_timeout_s) - 1
    if seats < 1:
        return
    no_preemption = replace(policy_settings, preempt=False)
    result = replay(requests, no_preemption, figures(seats))
    assert result.waits > 0
    assert result.max_seats_held == seats


@settings(max_examples=300, deadline=None)
@given(requests=requests_strategy, policy_settings=settings_strategy, fewer=st.integers(1, 5))
def test_with_fewer_seats_than_the_peak_every_seat_gets_held(
    requests: list[tuple[int, str]], policy_settings: PolicySettings, fewer: int
) -> None:
    requests = ordered(requests)
    seats = analyzer_peak(requests, policy_settings.idle_timeout_s) - fewer
    if seats < 1:
        return
    assert replay(requests, policy_settings, figures(seats)).max_seats_held == seats


def reference(
    requests: list[tuple[int, str]], policy_settings: PolicySettings, seats: int
) -> Counter[str]:
    """The replay written plainly: every event through `handle`, every sweep run, tallied."""
    policy = SeatPolicy(policy_settings, figures(seats))
    interval = policy_settings.sweep_interval_s
    decisions: list[Decision] = []
    next_sweep = -(-requests[0][0] // interval) * interval
    for ts, user in requests:
        while next_sweep < ts:
            decisions += policy.handle(Sweep(next_sweep))
            next_sweep += interval
        decisions += policy.activity(user, ts)
    while policy.waiters:
        decisions += policy.handle(Sweep(next_sweep))
        next_sweep += interval
    counts: Counter[str] = Counter()
    for d in decisions:
        counts[type(d).__name__] += 1
        counts["preemptions"] += d.rule is Rule.REVOKE_PREEMPTED
    return counts


def tallied(result: ReplayResult) -> Counter[str]:
    counts = Counter(
        {
            Grant.__name__: result.grants,
            Revoke.__name__: result.revokes,
            Queued.__name__: result.waits,
            Denied.__name__: result.denied,
            Warn.__name__: result.idle_warnings,
            "preemptions": result.preemptions,
        }
    )
    return +counts  # drops zeros


@settings(max_examples=300, deadline=None)
@given(requests=requests_strategy, policy_settings=settings_strategy, seats=st.integers(1, 6))
def test_the_replay_counts_the_decisions_the_policy_takes_event_by_event(
    requests: list[tuple[int, str]], policy_settings: PolicySettings, seats: int
) -> None:
    # The replay skips sweeps while nobody holds or waits; that must change nothing.
    requests = ordered(requests)
    result = replay(requests, policy_settings, figures(seats))
    assert tallied(result) == +reference(requests, policy_settings, seats)
    assert result.served + result.denied == result.waits
    for name in ("grants", "waits", "wait_seconds_total", "denied"):
        assert sum(getattr(day, name) for day in result.daily) == getattr(result, name)
