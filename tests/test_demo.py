"""`floatseat demo` as a newcomer runs it: one command, then a dashboard where seats float.

The demo runs as a subprocess on free ports, on a fast clock with few users to keep this
short. It must answer within 90 s, move seats (grants and revokes in the audit API), say
that no login is needed on loopback, never breach the simulated licence, and stop with
status 0 on SIGTERM, leaving no process behind.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from floatseat.demo import MARKER, DemoError, DemoOptions, prepare_state

USERS, TIER, SPEED = 16, 10, 120


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(check: Callable[[], bool], timeout: float, every: float = 0.2) -> float:
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not within {timeout} s")
        time.sleep(every)
    return time.monotonic() - started


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def total(client: httpx.Client, kind: str) -> int:
    reply = client.get("/api/v1/audit", params={"kind": kind, "limit": 1})
    assert reply.status_code == 200, reply.text
    return int(reply.json()["total"])


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_the_demo_floats_seats_and_stops_cleanly(tmp_path: Path) -> None:
    port, sim_port = free_port(), free_port()
    state = tmp_path / "state"
    out, err = tmp_path / "demo.out", tmp_path / "demo.err"
    command = [
        sys.executable,
        "-c",
        "from floatseat.cli import main; main()",
        "demo",
        f"--port={port}",
        f"--sim-port={sim_port}",
        f"--state={state}",
        f"--users={USERS}",
        f"--tier={TIER}",
        f"--speed={SPEED}",
    ]
    started = time.monotonic()
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(command, stdout=stdout, stderr=stderr, start_new_session=True)
    url, sim_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{sim_port}"
    stopped = False
    try:
        wait_for(lambda: process.poll() is None and answers(f"{url}/api/v1/status"), 90)
        first_answer = time.monotonic() - started
        assert f"{url}/" in out.read_text()  # the dashboard's URL is printed
        with httpx.Client(base_url=url, timeout=10) as client:
            page = client.get("/")
            assert page.status_code == 200
            assert "without logging in" in page.text  # demo mode says so
            status: dict[str, Any] = client.get("/api/v1/status").json()
            # Confluence's admin holds a seat outside the pool; the reserve keeps two.
            assert status["capacity"] == TIER - 1 - 2
            assert 0 <= status["seats_held"] <= status["capacity"]
            assert status["queue_length"] >= 0
            # Seats float: people get seats, idle ones lose theirs.
            wait_for(lambda: total(client, "grant") > 0 and total(client, "revoke") > 0, 40)
            moved = time.monotonic() - started
            status = client.get("/api/v1/status").json()
            assert status["seats_held"] <= status["capacity"]
        print(f"dashboard answered after {first_answer:.1f} s, seats floated by {moved:.1f} s")
        sim_state = httpx.get(f"{sim_url}/_sim/state", timeout=10).json()
        assert sim_state["licence_violations"] == 0, sim_state["violations"]
        assert sim_state["licensed"] <= sim_state["tier"]

        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
        stopped = True
    finally:
        if not stopped and process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
    log = err.read_text()
    assert process.returncode == 0, log[-3000:]
    assert "Traceback" not in log, log[-3000:]
    assert "stopped" in out.read_text()
    wait_for(lambda: not group_alive(process.pid), 10)  # nothing left behind
    assert not answers(f"{url}/healthz") and not answers(f"{sim_url}/_sim/state")
    # --state keeps the ledger and the logs.
    assert (state / "floatseat.db").exists() and (state / "logs" / "node1").is_dir()


def test_a_state_folder_must_be_new_empty_or_an_earlier_demos(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(DemoError, match="not empty"):
        prepare_state(mine)
    assert (mine / "notes.txt").exists()
    earlier = tmp_path / "earlier"
    (earlier / "logs").mkdir(parents=True)
    (earlier / MARKER).write_text("")
    (earlier / "floatseat.db").write_text("old")
    assert prepare_state(earlier) == (earlier, False)
    assert list(earlier.iterdir()) == []  # the simulator starts afresh: so does the state
    fresh, temporary = prepare_state(None)
    assert temporary and fresh.is_dir()
    fresh.rmdir()


def test_demo_options_are_checked() -> None:
    with pytest.raises(DemoError, match="must differ"):
        DemoOptions(port=9000, sim_port=9000)
    with pytest.raises(DemoError, match="--tier"):
        DemoOptions(tier=3)
    with pytest.raises(DemoError, match="--product"):
        DemoOptions(product="bamboo")  # type: ignore[arg-type]
