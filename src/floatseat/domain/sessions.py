"""Activity intervals, sessions and concurrency: the semantics of DESIGN.md in plain Python.

User U is active on the union of [t, t + T) over the times t of U's counted requests (whole
seconds, UTC). A session is one connected piece of that union, so two requests exactly T apart
make one session. concurrent(t) counts the users active at t; an interval ending at t does not
overlap one starting at t.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Session:
    """One connected piece of a user's activity: active on [start, end)."""

    user: str
    start: int
    end: int

    @property
    def seconds(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class Step:
    """From `at` until the next step, `level` users are active."""

    at: int
    level: int


def user_sessions(user: str, times: Iterable[int], idle_timeout_s: int) -> list[Session]:
    """The sessions of one user, given the times of the user's counted requests (any order)."""
    if idle_timeout_s <= 0:
        raise ValueError("the idle timeout must be positive")
    ordered = sorted(set(times))
    sessions: list[Session] = []
    if not ordered:
        return sessions
    start = last = ordered[0]
    for t in ordered[1:]:
        if t - last > idle_timeout_s:
            sessions.append(Session(user, start, last + idle_timeout_s))
            start = t
        last = t
    sessions.append(Session(user, start, last + idle_timeout_s))
    return sessions


def build_sessions(
    times_by_user: Mapping[str, Iterable[int]], idle_timeout_s: int
) -> list[Session]:
    """Every user's sessions, ordered by user then start."""
    sessions: list[Session] = []
    for user in sorted(times_by_user):
        sessions.extend(user_sessions(user, times_by_user[user], idle_timeout_s))
    return sessions


def concurrency_steps(sessions: Iterable[Session]) -> list[Step]:
    """concurrent(t) as a step function: one step per instant where the count changes.

    Before the first step and after the last, nobody is active.
    """
    delta: dict[int, int] = {}
    for session in sessions:
        delta[session.start] = delta.get(session.start, 0) + 1
        delta[session.end] = delta.get(session.end, 0) - 1
    steps: list[Step] = []
    level = 0
    for at in sorted(delta):
        change = delta[at]
        if change == 0:
            continue
        level += change
        steps.append(Step(at, level))
    return steps


def peak(steps: Sequence[Step]) -> tuple[int, int | None]:
    """The maximum of concurrent(t) and the earliest instant reaching it (None if 0)."""
    best, best_at = 0, None
    for step in steps:
        if step.level > best:
            best, best_at = step.level, step.at
    return best, best_at


def window_peaks(steps: Sequence[Step], edges: Sequence[int]) -> list[int]:
    """The maximum of concurrent(t) over each window [edges[i], edges[i+1]).

    `edges` must be increasing; the result has len(edges) - 1 values.
    """
    peaks: list[int] = []
    index = 0
    level = 0  # concurrent(t) at the current window's start
    for window, start in enumerate(edges[:-1]):
        end = edges[window + 1]
        while index < len(steps) and steps[index].at <= start:
            level = steps[index].level
            index += 1
        best = level
        while index < len(steps) and steps[index].at < end:
            level = steps[index].level
            best = max(best, level)
            index += 1
        peaks.append(best)
    return peaks


def overlap_seconds(session: Session, window_start: int, window_end: int) -> int:
    """How long the session is active within [window_start, window_end)."""
    return max(0, min(session.end, window_end) - max(session.start, window_start))
