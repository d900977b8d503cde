"""`floatseat serve` end to end against the simulated Jira, over real HTTP.

The simulator writes its nodes' access and security logs into a tmp folder; the service's
followers read them. `floatseat setup` prepares the instance first, as an admin would.
Some tests step the service by hand on the simulator's manual clock (deterministic); the
others run it on its threads in real time (latency, faults) or as a `floatseat serve`
subprocess that is SIGKILLed and restarted. The simulator's licence-violation counter must
stay 0 throughout.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from simulator import SimHandle, running_simulator
from typer.testing import CliRunner

from floatseat.cli import app
from floatseat.domain.policy import AdminRevoke
from floatseat.service.bootstrap import Served, build_service, connect_directory
from floatseat.service.ports import AuditKind
from floatseat.service.settings import ServeSettings, load_settings
from floatseat.sim.logs import AccessRecord, LogSink

E, D = "IUM_Enabled", "IUM_Disabled"
USERS_GROUP = "jira-software-users"
USERS_GROUPS = {"jira": USERS_GROUP, "confluence": "confluence-users"}  # the products' own


def prepare(sim: SimHandle, state_dir: Path) -> None:
    """`floatseat setup`: the pool groups, application access, everyone in IUM_Disabled."""
    result = CliRunner().invoke(
        app,
        [
            "setup",
            "--product=jira",
            f"--url={sim.base_url}",
            f"--user={sim.admin_user}",
            f"--state-dir={state_dir}",
            "--exclude=admin",
        ],
        env={"FLOATSEAT_PASSWORD": sim.admin_password},
    )
    assert result.exit_code == 0, result.stdout + result.stderr
    groups = sim.state()["groups"]
    assert set(groups[D]) | set(groups[E]) == set(sim.users)


def settings_for(sim: SimHandle, tmp_path: Path, logs: Path, **extra: Any) -> ServeSettings:
    """`floatseat serve`'s settings for `sim` (Jira or Confluence) and the logs it writes."""
    nodes = LogSink(logs, sim.product, 2).followed_nodes()
    policy = {
        "idle_timeout_s": 900,
        "min_hold_s": 60,
        "reserve": 0,
        "warn_before_s": 0,
        "preempt": False,
        "sweep_interval_s": 30,
        "queue_timeout_s": 7200,
        "max_revokes_per_sweep": 0,
        **extra.pop("policy", {}),
    }
    return load_settings(
        None,
        product=sim.product,
        base_url=sim.base_url,
        username=sim.admin_user,
        password=sim.admin_password,
        state_dir=tmp_path / "state",
        users_group=USERS_GROUPS[sim.product],
        excluded_users=["admin"],
        nodes=nodes,
        policy=policy,
        **extra,
    )


def live_jira(logs: Path, *, users: int, tier: int) -> AbstractContextManager[SimHandle]:
    """The simulated Jira on the real clock (no virtual users), writing two nodes' logs."""
    return running_simulator(
        product="jira",
        users=users,
        tier=tier,
        log_dir=logs,
        active_people=False,
        start=time.time(),
        speed=1,
    )


def jira_nodes_toml(logs: Path) -> str:
    """The simulated Jira's two nodes' logs under `logs`, as floatseat.toml [[nodes]] tables."""
    return "".join(
        f'[[nodes]]\nname = "node{k}"\naccess_logs = ["{logs}/node{k}/access_log.*"]\n'
        f'security_logs = ["{logs}/node{k}/home/log/atlassian-jira-security.log*"]\n'
        'format = "jira"\n'
        for k in (1, 2)
    )


def refuse(sim: SimHandle, user: str, at: float | None = None, node: int = 0) -> None:
    """`user` tries to log in without application access: the refusal is logged."""
    sim.sim.log_refusal(node, sim.sim.now() if at is None else at, user, ip="10.9.9.9")


def node_alive(sim: SimHandle, node: int) -> None:
    """An anonymous request on `node`: its access log exists and grows."""
    sim.sim.log_access(
        node,
        AccessRecord(at=sim.sim.now(), method="GET", uri="/status", status=200, size=0, took_ms=1),
    )


def enabled(sim: SimHandle) -> set[str]:
    return set(sim.state()["groups"][E])


def wait_for(check: Callable[[], bool], timeout: float, every: float = 0.02) -> float:
    """Seconds until `check()` held; fails after `timeout`."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not within {timeout} s")
        time.sleep(every)
    return time.monotonic() - started


class Stepper:
    """The service stepped by hand on the simulator's manual clock."""

    def __init__(self, sim: SimHandle, settings: ServeSettings) -> None:
        self.sim = sim
        self.served: Served = build_service(
            settings, connect_directory(settings), clock=sim.sim.now
        )
        self.served.runtime.apply_flags(int(sim.sim.now()))
        self.step(0)

    def step(self, seconds: float) -> None:
        if seconds:
            self.sim.advance(seconds)
        now = self.sim.sim.now()
        self.served.service.directory.step(now)
        self.served.service.activity.step(now)
        self.served.service.directory.step(now)

    def audit(self) -> list[tuple[str, AuditKind, str]]:
        with self.served.services.ledger.transaction() as tx:
            return [(e.user, e.kind, e.rule) for e in tx.audit_log()]

    def holders(self) -> set[str]:
        return {h.user for h in self.served.runtime.state().holders}

    def close(self) -> None:
        self.served.service.activity.close(int(self.sim.sim.now()))
        self.served.close()


def test_virtual_users_get_seats_as_they_come_and_idle_ones_are_revoked(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    with running_simulator(product="jira", users=10, tier=6, log_dir=logs) as sim:
        prepare(sim, tmp_path / "setup")
        stepper = Stepper(sim, settings_for(sim, tmp_path, logs))
        try:
            most = 0
            for _ in range(120):  # 08:00 to 11:00 in steps of 90 s
                stepper.step(90)
                most = max(most, len(enabled(sim)))
            state = sim.state()
            assert state["licence_violations"] == 0
            assert most == 6  # demand filled every seat at some point
            audit = stepper.audit()
            granted = {u for u, k, _ in audit if k is AuditKind.GRANT}
            revoked = {
                u for u, k, r in audit if k is AuditKind.REVOKE and ("idle" in r or "expiry" in r)
            }
            assert len(granted) >= 7 and revoked  # seats floated from the idle to others
            assert {u for u, k, _ in audit if k is AuditKind.QUEUED}  # some had to wait
            assert state["people"]["logins"] >= 7
            # The directory and the ledger agree.
            assert enabled(sim) == stepper.holders()
        finally:
            stepper.close()


def test_more_demand_than_seats_queues_users_and_serves_them_in_order(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    with running_simulator(
        product="jira", users=6, tier=2, log_dir=logs, active_people=False
    ) as sim:
        prepare(sim, tmp_path / "setup")
        stepper = Stepper(sim, settings_for(sim, tmp_path, logs))
        try:
            first, second, third, fourth = sim.users[:4]
            for user in (first, second, third, fourth):
                refuse(sim, user)
                stepper.step(1)
            assert enabled(sim) == {first, second}
            state = stepper.served.runtime.state()
            assert [w.user for w in state.waiters] == [third, fourth]
            assert stepper.served.runtime.status().queue_length == 2
            now = int(sim.sim.now())
            stepper.served.runtime.submit(AdminRevoke(now, second, "root", "test"))
            stepper.step(1)
            assert enabled(sim) == {first, third}  # the first in line got the seat
            stepper.step(900 + 60)  # both holders go idle: the sweep serves the line
            assert fourth in enabled(sim) and len(enabled(sim)) <= 2
            assert sim.state()["licence_violations"] == 0
        finally:
            stepper.close()


def test_reconciliation_repairs_a_hand_edit_and_audits_it(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    with running_simulator(
        product="jira", users=5, tier=3, log_dir=logs, active_people=False
    ) as sim:
        prepare(sim, tmp_path / "setup")
        stepper = Stepper(sim, settings_for(sim, tmp_path, logs))
        try:
            ann, bob = sim.users[:2]
            refuse(sim, ann)
            stepper.step(1)
            assert enabled(sim) == {ann}
            # An admin takes ann out of the licensed group by hand and puts bob in.
            with sim.http() as http:
                http.delete("/rest/api/2/group/user", params={"groupname": E, "username": ann})
                http.post("/rest/api/2/group/user", params={"groupname": E}, json={"name": bob})
            assert enabled(sim) == {bob}
            report = stepper.served.runtime.reconcile_now()
            assert report.regranted == (ann,) and report.adopted == (bob,)
            stepper.step(1)
            assert enabled(sim) == {ann, bob} == stepper.holders()
            kinds = {(u, k) for u, k, _ in stepper.audit()}
            assert (ann, AuditKind.DRIFT_REGRANTED) in kinds
            assert (bob, AuditKind.DRIFT_ADOPTED) in kinds
            assert sim.state()["licence_violations"] == 0
        finally:
            stepper.close()


def test_shadow_mode_moves_nobody(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    with running_simulator(product="jira", users=6, tier=4, log_dir=logs) as sim:
        prepare(sim, tmp_path / "setup")
        before = sim.state()["groups"]
        stepper = Stepper(sim, settings_for(sim, tmp_path, logs, shadow=True))
        try:
            for _ in range(60):
                stepper.step(60)
            assert sim.state()["groups"] == before
            kinds = [k for _, k, _ in stepper.audit()]
            assert AuditKind.GRANT in kinds and AuditKind.MOVE_SHADOWED in kinds
            assert AuditKind.MOVE_APPLIED not in kinds
        finally:
            stepper.close()


@contextmanager
def running_service(served: Served) -> Iterator[Served]:
    served.start()
    try:
        yield served
    finally:
        served.stop()


def test_a_refused_login_is_answered_within_a_second_even_with_faults(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    with live_jira(logs, users=8, tier=5) as sim:
        prepare(sim, tmp_path / "setup")
        node_alive(sim, 0)
        node_alive(sim, 1)
        settings = settings_for(sim, tmp_path, logs, poll_interval_s=0.1)
        served = build_service(settings, connect_directory(settings))
        with running_service(served):
            latencies = []
            waiting = sorted(set(sim.users) - enabled(sim))
            assert len(waiting) >= 3
            for user in waiting[:3]:
                refuse(sim, user, at=time.time())
                latencies.append(wait_for(lambda u=user: sim.sim.world.is_licensed(u), 5))
            print("refused login -> IUM_Enabled:", [f"{t:.3f}s" for t in latencies])
            assert max(latencies) < 1.5
            # Faults on the directory: 429s, 500s and dropped connections. Seats still move,
            # later, and never over the tier.
            faults = [
                sim.add_fault("rate_limit", times=2, retry_after_s=1),
                sim.add_fault("error", times=2, status=500),
                sim.add_fault("drop", times=2),
            ]
            for user in waiting[3:]:
                refuse(sim, user, at=time.time())
            wait_for(lambda: len(enabled(sim)) == 5, 30, every=0.2)
            for fault in faults:
                try:
                    sim.remove_fault(fault)
                except Exception:  # noqa: BLE001 - already used up
                    pass
            assert sim.state()["licence_violations"] == 0
            status = served.runtime.status()
            assert (status.seats_held, status.queue_length) == (5, 3)  # 8 users, 5 seats


def serve_process(
    config: Path, state: Path, env: dict[str, str], log: Path, *, web_port: int | None = None
) -> subprocess.Popen[bytes]:
    with log.open("ab") as stderr:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from floatseat.cli import main; main()",
                "serve",
                "--no-web" if web_port is None else f"--port={web_port}",
                f"--config={config}",
                f"--state={state}",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_a_killed_service_restarts_and_the_licence_is_never_exceeded(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    with live_jira(logs, users=10, tier=4) as sim:
        prepare(sim, tmp_path / "setup")
        config = tmp_path / "floatseat.toml"
        nodes = jira_nodes_toml(logs)
        config.write_text(
            f'product = "jira"\nbase_url = "{sim.base_url}"\nusername = "admin"\n'
            f'users_group = "{USERS_GROUP}"\nexcluded_users = ["admin"]\npoll_interval_s = 0.1\n'
            "outbox_lease_s = 5\noutbox_backoff_base_s = 1\n"
            "[policy]\nreserve = 0\nmin_hold_s = 1\nidle_timeout_s = 4\nsweep_interval_s = 1\n"
            f"preempt = false\nwarn_before_s = 0\n{nodes}"
        )
        env = {**os.environ, "FLOATSEAT_PASSWORD": sim.admin_password}
        state = tmp_path / "state"
        log = tmp_path / "serve.log"
        node_alive(sim, 0)
        node_alive(sim, 1)
        latency = sim.add_fault("latency", latency_ms=300, methods=["POST", "DELETE"])
        process = serve_process(config, state, env, log)
        try:
            for round_ in range(3):
                wait_for(lambda: (state / "floatseat.db").exists(), 20, every=0.1)
                time.sleep(1.5)  # started: reconciled, following the logs
                for user in sim.users:
                    refuse(sim, user, at=time.time(), node=round_ % 2)
                    time.sleep(0.15)
                assert sim.state()["licence_violations"] == 0
                # Killed mid-run, with moves in flight (each directory write takes 300 ms).
                process.send_signal(signal.SIGKILL)
                process.wait(10)
                assert sim.state()["licence_violations"] == 0
                process = serve_process(config, state, env, log)
            # Settles: idle holders are revoked (4 s), nobody over the tier, ever.
            sim.remove_fault(latency)
            # The last one is running (a SIGTERM before it handles signals would kill it).
            wait_for(lambda: log.read_text().count("running: following the logs") >= 4, 30)
            wait_for(lambda: len(enabled(sim)) == 0, 30, every=0.2)
            assert sim.state()["licence_violations"] == 0
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                raise
        assert process.returncode == 0, log.read_text()[-3000:]
        assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


def test_serve_with_the_web_side_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    # uvicorn raises a captured SIGTERM again once it has shut down; serve must still stop
    # its loops (positions saved) and exit with status 0.
    with running_simulator(product="jira", users=3, tier=5, active_people=False) as sim:
        config = tmp_path / "floatseat.toml"
        config.write_text(f'product = "jira"\nbase_url = "{sim.base_url}"\nusername = "admin"\n')
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        env = {**os.environ, "FLOATSEAT_PASSWORD": sim.admin_password}
        log = tmp_path / "serve.log"
        process = serve_process(config, tmp_path / "state", env, log, web_port=port)

        def healthy() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return process.poll() is not None  # died: fail below with its log

        try:
            wait_for(healthy, 30, every=0.1)
            assert process.poll() is None, log.read_text()[-3000:]
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                raise
        text = log.read_text()
        assert process.returncode == 0, text[-3000:]
        assert "Traceback" not in text, text[-3000:]
