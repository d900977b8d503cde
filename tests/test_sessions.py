"""The domain's sessions and concurrency against a second-by-second brute force."""

from __future__ import annotations

from collections import defaultdict

from hypothesis import given
from hypothesis import strategies as st

from floatseat.domain.sessions import (
    build_sessions,
    concurrency_steps,
    peak,
    user_sessions,
    window_peaks,
)

times_by_user = st.dictionaries(
    st.sampled_from(["ann", "bob", "carl", "dora"]),
    st.lists(st.integers(0, 300), min_size=1, max_size=12),
    max_size=4,
)


def active_seconds(times: dict[str, list[int]], timeout: int) -> dict[int, set[str]]:
    active: dict[int, set[str]] = defaultdict(set)
    for user, user_times in times.items():
        for t in user_times:
            for second in range(t, t + timeout):
                active[second].add(user)
    return active


@given(times=times_by_user, timeout=st.integers(1, 40))
def test_sessions_are_the_connected_pieces_of_activity(
    times: dict[str, list[int]], timeout: int
) -> None:
    active = active_seconds(times, timeout)
    for session in build_sessions(times, timeout):
        inside = range(session.start, session.end)
        assert all(session.user in active[s] for s in inside)
        assert session.user not in active.get(session.start - 1, set())
        assert session.user not in active.get(session.end, set())
    pieces = sum(
        1 for s, users in active.items() for u in users if u not in active.get(s - 1, set())
    )
    assert len(build_sessions(times, timeout)) == pieces


@given(times=times_by_user, timeout=st.integers(1, 40), window=st.integers(1, 50))
def test_steps_peak_and_window_peaks_match_counting_each_second(
    times: dict[str, list[int]], timeout: int, window: int
) -> None:
    active = active_seconds(times, timeout)
    concurrency = {s: len(u) for s, u in active.items()}
    steps = concurrency_steps(build_sessions(times, timeout))
    best = max(concurrency.values(), default=0)
    best_at = min((s for s, c in concurrency.items() if c == best), default=None)
    assert peak(steps) == (best, best_at if best else None)
    edges = list(range(-window, 400, window))
    expected = [
        max((concurrency.get(s, 0) for s in range(a, b)), default=0)
        for a, b in zip(edges, edges[1:], strict=False)
    ]
    assert window_peaks(steps, edges) == expected


def test_requests_exactly_the_timeout_apart_form_one_session() -> None:
    assert len(user_sessions("ann", [0, 30], 30)) == 1
    assert len(user_sessions("ann", [0, 31], 30)) == 2


def test_an_interval_ending_at_t_does_not_overlap_one_starting_at_t() -> None:
    steps = concurrency_steps(build_sessions({"ann": [0], "bob": [30]}, 30))
    assert peak(steps) == (1, 0)
