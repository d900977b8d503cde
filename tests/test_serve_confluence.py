"""`floatseat serve` end to end against the simulated Confluence 9.3.1, over real HTTP.

Confluence 9.3 reads and changes "Can use" over REST, so `floatseat setup` prepares it with
no step by hand. Its refused logins go to `<home>/logs/atlassian-confluence.log`, whose
times carry no offset: the node's `timezone` from the settings says which zone they are in
(the simulator writes UTC). The simulator's licence-violation counter must stay 0.
"""

from __future__ import annotations

import time
from pathlib import Path

from simulator import SimHandle, running_simulator
from test_serve_sim import Stepper, enabled, node_alive, running_service, settings_for, wait_for
from typer.testing import CliRunner

from floatseat.cli import app
from floatseat.service.bootstrap import build_service, connect_directory
from floatseat.service.ports import AuditKind

E, D = "IUM_Enabled", "IUM_Disabled"
VERSION = "9.3.1"


def prepare(sim: SimHandle, state_dir: Path, *extra: str) -> None:
    """`floatseat setup` over REST: the pool groups, "Can use", everyone in IUM_Disabled."""
    result = CliRunner().invoke(
        app,
        [
            "setup",
            "--product=confluence",
            f"--url={sim.base_url}",
            f"--user={sim.admin_user}",
            f"--state-dir={state_dir}",
            "--exclude=admin",
            *extra,
        ],
        env={"FLOATSEAT_PASSWORD": sim.admin_password},
    )
    assert result.exit_code == 0, result.stdout + result.stderr
    state = sim.state()
    assert set(state["groups"][D]) | set(state["groups"][E]) == set(sim.users)
    assert E.casefold() in {g.casefold() for g in state["can_use"]}
    assert state["licence_violations"] == 0


def test_seats_float_on_confluence(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    with running_simulator(
        product="confluence", version=VERSION, users=10, tier=7, log_dir=logs
    ) as sim:
        prepare(sim, tmp_path / "setup")
        stepper = Stepper(sim, settings_for(sim, tmp_path, logs))
        try:
            most = 0
            for _ in range(120):  # three simulated hours in steps of 90 s
                stepper.step(90)
                most = max(most, len(enabled(sim)))
                assert sim.state()["licence_violations"] == 0
            state = sim.state()
            # The administrators' group keeps admin licensed outside the pool: 6 float.
            assert most == 6
            assert state["licensed"] <= state["tier"]
            audit = stepper.audit()
            granted = {u for u, k, _ in audit if k is AuditKind.GRANT}
            revoked = {u for u, k, r in audit if k is AuditKind.REVOKE}
            assert len(granted) >= 7 and revoked
            assert {u for u, k, _ in audit if k is AuditKind.QUEUED}
            assert enabled(sim) == stepper.holders()
            assert stepper.served.runtime.status().licensed_outside == 1
        finally:
            stepper.close()


def test_a_refused_confluence_login_is_answered_within_a_second(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    with running_simulator(
        product="confluence",
        version=VERSION,
        users=6,
        tier=8,  # admin is licensed outside the pool: 7 floating seats for 6 users
        log_dir=logs,
        active_people=False,
        start=time.time(),
        speed=1,
    ) as sim:
        prepare(sim, tmp_path / "setup", "--capacity=1")  # one first seat
        node_alive(sim, 0)
        node_alive(sim, 1)
        settings = settings_for(sim, tmp_path, logs, poll_interval_s=0.1)
        served = build_service(settings, connect_directory(settings))
        with running_service(served):
            first_seats = enabled(sim)  # setup's, adopted at the first start
            waiting = sorted(set(sim.users) - first_seats)
            assert len(waiting) >= 4
            latencies = []
            for k, user in enumerate(waiting[:4]):
                # The line goes to atlassian-confluence.log in the node's home, no offset.
                sim.sim.log_refusal(k % 2, time.time(), user, ip="10.9.9.9")
                latencies.append(wait_for(lambda u=user: sim.sim.world.is_licensed(u), 5))
            print("confluence: refused login -> IUM_Enabled:", [f"{t:.3f}s" for t in latencies])
            assert max(latencies) < 1.5
            security = logs / "node1" / "home" / "logs" / "atlassian-confluence.log"
            assert "do not have USE permission" in security.read_text()
            state = sim.state()
            assert state["licence_violations"] == 0
            assert state["licensed"] <= state["tier"]
            assert served.runtime.status().seats_held == len(first_seats) + 4
