"""A stalled feed stops idle revokes: `floatseat serve` against the simulated Jira, stepped by
hand on the simulator's manual clock.

One node's access log stops growing: the simulator no longer writes that node's logs (its
`LogSink` is wrapped to drop them), as when a node's log shipping breaks or its disk is
mounted elsewhere. Its users then look idle, but they are not: no idle revoke may happen
until the node's log grows again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from simulator import SimHandle, running_simulator
from test_serve_sim import Stepper, enabled, node_alive, prepare, refuse, settings_for

from floatseat.service.ports import AuditKind


class SilencedSink:
    """The simulator's log sink, minus the nodes in `silent` (their files stop growing)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.silent: set[int] = set()

    def access(self, node: int, record: Any) -> None:
        if node not in self.silent:
            self.inner.access(node, record)

    def refusal(self, node: int, *args: Any, **kwargs: Any) -> None:
        if node not in self.silent:
            self.inner.refusal(node, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def silence(sim: SimHandle) -> SilencedSink:
    sink = SilencedSink(sim.sim.logs)
    sim.sim.logs = sink  # type: ignore[assignment]
    return sink


def idle_revokes(stepper: Stepper) -> set[str]:
    return {u for u, k, r in stepper.audit() if k is AuditKind.REVOKE and "idle" in r}


def test_a_stalled_feed_stops_idle_revokes_until_it_grows_again(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    with running_simulator(
        product="jira", users=6, tier=6, log_dir=logs, active_people=False
    ) as sim:
        prepare(sim, tmp_path / "setup")
        sink = silence(sim)
        settings = settings_for(
            sim,
            tmp_path,
            logs,
            feed_min_quiet_s=60,
            feed_max_quiet_s=300,  # no history yet: a node may stay quiet 5 min
            stall_check_interval_s=1,
            policy={"idle_timeout_s": 600, "min_hold_s": 60, "sweep_interval_s": 30},
        )
        node_alive(sim, 0)
        node_alive(sim, 1)
        stepper = Stepper(sim, settings)
        try:
            ann, bob = sorted(set(sim.users) - enabled(sim))[:2]
            refuse(sim, ann, node=0)
            refuse(sim, bob, node=1)
            stepper.step(1)
            assert {ann, bob} <= enabled(sim)
            runtime = stepper.served.runtime
            assert runtime.status().stalled_feeds == ()

            # node2's log stops growing; node1 keeps serving anonymous requests.
            sink.silent.add(1)
            for _ in range(40):  # 20 minutes: twice the idle timeout
                node_alive(sim, 0)
                node_alive(sim, 1)  # dropped: node2 is silent
                stepper.step(30)
            status = runtime.status()
            assert [s.node for s in status.stalled_feeds] == ["node2"]
            assert status.revokes_paused == "stalled feeds: node2"
            assert status.feed_lag_s["node2"] >= 1200 - 30
            assert not idle_revokes(stepper)  # both long idle, neither revoked
            assert {ann, bob} <= enabled(sim) == stepper.holders()
            kinds = [(k, r) for _, k, r in stepper.audit()]
            assert (AuditKind.FEED_STALLED, "feed-stall") in kinds

            # node2's log grows again: the stall ends and the idle holders are revoked.
            sink.silent.clear()
            node_alive(sim, 1)
            stepper.step(1)
            stepper.step(30)  # the next sweep
            status = runtime.status()
            assert status.stalled_feeds == () and status.revokes_paused is None
            assert {ann, bob} <= idle_revokes(stepper)
            assert not {ann, bob} & enabled(sim)
            assert (AuditKind.FEED_RECOVERED, "feed-stall") in [
                (k, r) for _, k, r in stepper.audit()
            ]
            assert sim.state()["licence_violations"] == 0
        finally:
            stepper.close()
