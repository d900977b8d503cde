"""Is each node's activity feed alive? Learnt from how long each node usually stays quiet.

A follower whose node goes silent must not make everyone look idle: while any feed is
stalled, idle revokes stop. A node is stalled when its log has not grown for longer than
that node usually stays quiet at that hour of the week, or when its log cannot be read.

"Usually" is learnt per node and per hour of the week (UTC): the longest quiet spell seen
in that hour in each of the last few weeks. Quiet spells that reach across hours count in
every hour they touch. A spell is stalled when it lasts longer than `margin` times the
usual one, never before `min_quiet_s` and always after `max_quiet_s`. A node with no
history for the hour gets `max_quiet_s`: a new node is trusted to be quiet for that long,
and the first weeks err on the side of not revoking.

Pure: the caller passes every observation and `now`; `snapshot()`/`restore()` keep the
history across restarts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["FeedHealth", "Stall"]

HOUR = 3600
WEEK = 7 * 24 * HOUR
_BUCKETS = WEEK // HOUR


def _bucket(at: int) -> int:
    """The hour of the week of Unix time `at`, 0 = Thursday 00:00 UTC (the epoch's weekday)."""
    return (at % WEEK) // HOUR


def _week(at: int) -> int:
    return at // WEEK


@dataclass(frozen=True)
class Stall:
    """A stalled feed, and why."""

    node: str
    quiet_s: int  # how long since it last grew (0 when unreadable)
    allowed_s: int  # how long it may usually stay quiet now
    reason: str


@dataclass
class _Node:
    last_growth: int | None = None
    unreadable: str | None = None  # why, while the log cannot be read
    # hour of week -> {week number -> longest quiet spell (s) touching that hour that week}
    quiet: dict[int, dict[int, int]] = field(default_factory=dict)


@dataclass
class FeedHealth:
    """Feed health of every node: `observe` what each poll saw, ask `stalls(now)`."""

    margin: float = 2.0
    min_quiet_s: int = 10 * 60
    max_quiet_s: int = 4 * HOUR
    weeks: int = 4  # of history kept per hour
    _nodes: dict[str, _Node] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        if not 0 < self.min_quiet_s <= self.max_quiet_s:
            raise ValueError("need 0 < min_quiet_s <= max_quiet_s")
        if self.margin < 1:
            raise ValueError("margin must be at least 1")

    def watch(self, node: str, at: int) -> None:
        """Start (or resume) watching `node` at `at`: it counts as having just grown.

        The quiet spell before it is floatseat's own downtime, not the node's, so it is
        not learnt.
        """
        self._nodes.setdefault(node, _Node()).last_growth = at

    def grew(self, node: str, at: int) -> None:
        """`node`'s log grew at `at` (new lines were read)."""
        state = self._nodes.setdefault(node, _Node())
        state.unreadable = None
        if state.last_growth is not None and at > state.last_growth:
            # A spell longer than allowed was a stall, not a habit: learn only its allowed
            # part, so that an outage does not teach the model to wait longer next week.
            learnt = min(at - state.last_growth, self.allowed_quiet(node, state.last_growth, at))
            self._learn(state, state.last_growth, state.last_growth + learnt, learnt)
        if state.last_growth is None or at > state.last_growth:
            state.last_growth = at

    def unreadable(self, node: str, why: str) -> None:
        """`node`'s log cannot be read now."""
        self._nodes.setdefault(node, _Node()).unreadable = why

    def readable(self, node: str) -> None:
        self._nodes.setdefault(node, _Node()).unreadable = None

    def allowed_quiet(self, node: str, since: int, now: int) -> int:
        """How long `node` may stay quiet in a spell from `since` to `now`."""
        state = self._nodes.get(node)
        usual: int | None = None
        if state is not None:
            for hour in range(since - since % HOUR, now + 1, HOUR):
                seen = state.quiet.get(_bucket(hour))
                if seen:
                    longest = max(seen.values())
                    usual = longest if usual is None else max(usual, longest)
                if now - since > WEEK:
                    break
        if usual is None:
            return self.max_quiet_s
        return min(self.max_quiet_s, max(self.min_quiet_s, int(usual * self.margin)))

    def stalls(self, now: int) -> list[Stall]:
        """The nodes whose feeds are stalled at `now`, by name."""
        found: list[Stall] = []
        for node in sorted(self._nodes):
            state = self._nodes[node]
            if state.unreadable is not None:
                found.append(Stall(node, 0, 0, f"its log cannot be read: {state.unreadable}"))
                continue
            if state.last_growth is None:
                continue
            quiet = now - state.last_growth
            allowed = self.allowed_quiet(node, state.last_growth, now)
            if quiet > allowed:
                found.append(
                    Stall(
                        node,
                        quiet,
                        allowed,
                        f"its log has not grown for {quiet // 60} min; "
                        f"it usually stays quiet at most {allowed // 60} min at this hour",
                    )
                )
        return found

    def _learn(self, state: _Node, start: int, end: int, spell: int) -> None:
        week = _week(end)
        hour = start - start % HOUR
        while hour <= end:
            bucket = state.quiet.setdefault(_bucket(hour), {})
            bucket[week] = max(bucket.get(week, 0), spell)
            for old in [w for w in bucket if w <= week - self.weeks]:
                del bucket[old]
            hour += HOUR
            if hour - start > WEEK:
                break

    # -- persistence -----------------------------------------------------------------------

    def snapshot(self) -> dict[str, object]:
        """A JSON-able copy of what was learnt."""
        return {
            node: {
                "last_growth": state.last_growth,
                "quiet": {
                    str(h): {str(w): s for w, s in ws.items()} for h, ws in state.quiet.items()
                },
            }
            for node, state in self._nodes.items()
        }

    def restore(self, saved: Mapping[str, object]) -> None:
        """Take back what `snapshot()` gave (read back from JSON)."""
        for node, data in saved.items():
            if not isinstance(data, Mapping):
                raise ValueError(f"feed health of {node!r}: expected an object")
            last = data.get("last_growth")
            quiet = data.get("quiet", {})
            if last is not None and not isinstance(last, int):
                raise ValueError(f"feed health of {node!r}: last_growth must be an integer")
            if not isinstance(quiet, Mapping):
                raise ValueError(f"feed health of {node!r}: quiet must be an object")
            learnt: dict[int, dict[int, int]] = {}
            for hour, weeks in quiet.items():
                if not isinstance(weeks, Mapping) or not 0 <= int(hour) < _BUCKETS:
                    raise ValueError(f"feed health of {node!r}: bad hour {hour!r}")
                learnt[int(hour)] = {int(w): int(s) for w, s in weeks.items()}
            self._nodes[node] = _Node(last_growth=last, quiet=learnt)
