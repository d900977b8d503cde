"""POST /api/v1/agent/batches, and `floatseat agent` against the real service end to end.

The web app runs in uvicorn on a loopback port against a real SQLite ledger, the real
`Runtime` and a `FakeDirectory`, as in test_web_api. The end-to-end test runs the agent as a
subprocess (the CLI) following real-format Confluence logs, stops the service while the
agent spools, SIGKILLs the agent twice (while spooling, and while draining), and checks that
the inbox holds every sighting of the logs exactly once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from test_web_api import Server

from floatseat.agent.runner import Agent
from floatseat.agent.sender import BatchSender
from floatseat.agent.settings import AgentSettings
from floatseat.agent.spool import iter_batch_files
from floatseat.directory.fake import FakeDirectory
from floatseat.domain.policy import DirectoryChanged, PolicySettings
from floatseat.service.bootstrap import Services, bootstrap
from floatseat.service.runtime import Runtime
from floatseat.sim.logs import AccessRecord, LogSink
from floatseat.store.inbox import Inbox
from floatseat.web.app import create_app
from floatseat.web.settings import WebSettings
from floatseat.web.store import Role, WebStore

POLICY = PolicySettings(
    idle_timeout_s=600, min_hold_s=60, preempt=False, warn_before_s=0, reserve=0
)
BATCHES = "/api/v1/agent/batches"


@dataclass
class Service:
    app: FastAPI
    runtime: Runtime
    server: Server

    @property
    def url(self) -> str:
        return self.server.url

    def token(self, role: Role) -> str:
        store = WebStore(self.runtime.ledger.engine)
        return store.add_token(f"agent-{role}", role, "test", self.runtime.now())[1]

    def inbox(self) -> list[tuple[str, int, bool]]:
        taken = Inbox(self.runtime.ledger.engine).take(limit=100_000)
        return [(t.item.user, t.item.at, t.item.refused) for t in taken]

    def restart(self) -> None:
        self.server = Server(self.app, self.server.port)


@pytest.fixture
def service(tmp_path: Path, opened: list[Services]) -> Iterator[Service]:
    fake = FakeDirectory(3, groups={"IUM_Enabled": set(), "IUM_Disabled": {"ann", "bob"}})
    services = bootstrap(f"sqlite:///{tmp_path / 'ledger.db'}", POLICY, fake)
    opened.append(services)
    runtime = Runtime(ledger=services.ledger, engine=services.engine, policy_settings=POLICY)
    runtime.submit(DirectoryChanged(runtime.now(), fake.figures()))
    web = WebSettings(secret_key="s" * 40, activity_hmac_key="k" * 40)
    app = create_app(runtime, web_settings=web, announce=lambda _link: None)
    s = Service(app, runtime, Server(app))
    yield s
    s.server.stop()


def batch(seq: int, *items: dict[str, Any], agent_id: str = "agent-1", **extra: Any) -> Any:
    return {
        "agent_id": agent_id,
        "node": "node1",
        "seq": seq,
        "log_at": None,
        "items": list(items),
        **extra,
    }


def item(user: str, at: int, **extra: Any) -> dict[str, Any]:
    return {"user": user, "at": at, "urgent": False, "refused": False, **extra}


# -- the endpoint --------------------------------------------------------------------------


def test_a_batch_needs_a_reporter_or_admin_token(service: Service) -> None:
    body = batch(1, item("ann", int(time.time())))
    assert httpx.post(service.url + BATCHES, json=body).status_code == 401
    for role, expected in ((Role.READ_ONLY, 403), (Role.REPORTER, 200), (Role.ADMIN, 200)):
        headers = {"Authorization": f"Bearer {service.token(role)}"}
        reply = httpx.post(
            service.url + BATCHES, json=batch(1, agent_id=f"agent-{role}"), headers=headers
        )
        assert reply.status_code == expected, reply.text
    assert service.inbox() == []  # the refused one added nothing


def test_a_batch_sent_twice_is_counted_once(service: Service) -> None:
    now = int(time.time())
    headers = {"Authorization": f"Bearer {service.token(Role.REPORTER)}"}
    first = batch(1, item("Ann", now), item("bob", now - 5, refused=True))
    with httpx.Client(base_url=service.url, headers=headers) as c:
        assert c.post(BATCHES, json=first).json() == {
            "seq": 1,
            "accepted": 2,
            "duplicate": False,
            "last_seq": 1,
            "too_old": 0,
            "ahead": 0,
        }
        assert c.post(BATCHES, json=first).json() == {
            "seq": 1,
            "accepted": 0,
            "duplicate": True,
            "last_seq": 1,
            "too_old": 0,
            "ahead": 0,
        }
        assert c.post(BATCHES, json=batch(3, item("carl", now))).json()["accepted"] == 1
        late = c.post(BATCHES, json=batch(2, item("dora", now))).json()
        assert late == {
            "seq": 2,
            "accepted": 0,
            "duplicate": True,
            "last_seq": 3,
            "too_old": 0,
            "ahead": 0,
        }
    # Usernames compare case-insensitively: stored as the followers see them.
    assert service.inbox() == [("ann", now, False), ("bob", now - 5, True), ("carl", now, False)]
    taken = Inbox(service.runtime.ledger.engine).take()
    assert taken[1].item.urgent  # a refused login is always urgent


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (batch(0), "greater than or equal to 1"),
        (batch(1, agent_id="no spaces"), "pattern"),
        (batch(1, agent_id="x" * 65), "at most 64"),
        (batch(1, node=" "), "blank"),
        (batch(1, item("ann", 1, extra="x")), "Extra inputs"),
        (batch(1, item("ann", "1700000000")), "valid integer"),
        (batch(1, item("", 1_700_000_000)), "at least 1"),
        (batch(1, item("x" * 256, 1_700_000_000)), "at most 255"),
        (batch(1, *[item("ann", 1)] * 5001), "at most 5000"),
        (batch(1, item("\u0130" * 200, 1_700_000_000)), "once lower-cased"),
    ],
)
def test_a_malformed_batch_is_refused_with_what_is_wrong(
    service: Service, body: Any, says: str
) -> None:
    headers = {"Authorization": f"Bearer {service.token(Role.REPORTER)}"}
    reply = httpx.post(service.url + BATCHES, json=body, headers=headers)
    assert reply.status_code == 422
    assert says in reply.text
    assert service.inbox() == []


def test_a_sighting_out_of_the_window_never_holds_up_the_others(service: Service) -> None:
    now = int(time.time())
    headers = {"Authorization": f"Bearer {service.token(Role.REPORTER)}"}
    body = batch(1, item("ann", now - 8 * 86400), item("bob", now + 3600), item("carl", now))
    reply = httpx.post(service.url + BATCHES, json=body, headers=headers)
    assert reply.status_code == 200, reply.text
    answer = reply.json()
    assert (answer["accepted"], answer["too_old"], answer["ahead"]) == (2, 1, 1)
    # A week-old sighting matters to no seat; one from a fast clock happened by now.
    [(bob, bob_at, _), carl] = service.inbox()
    assert bob == "bob" and now <= bob_at <= now + 5 and carl == ("carl", now, False)


def test_two_agents_with_one_id_are_told_apart_by_their_node(service: Service) -> None:
    now = int(time.time())
    headers = {"Authorization": f"Bearer {service.token(Role.REPORTER)}"}
    with httpx.Client(base_url=service.url, headers=headers) as c:
        assert c.post(BATCHES, json=batch(5, item("ann", now))).status_code == 200
        # A spool copied to node2 (a cloned VM): its batch 3 would pass for a duplicate.
        copy = c.post(BATCHES, json=batch(3, item("bob", now), node="node2"))
        assert copy.status_code == 409
        assert "delete its spool directory" in copy.json()["detail"]
        assert c.post(BATCHES, json=batch(6, item("carl", now))).status_code == 200
    assert [user for user, _, _ in service.inbox()] == ["ann", "carl"]


def test_the_agent_delivers_through_the_real_endpoint(tmp_path: Path, service: Service) -> None:
    sink = LogSink(tmp_path / "logs", "confluence", nodes=1)
    now = int(time.time())
    sink.access(0, AccessRecord(now, "GET", "/display/DOC", 200, 10, 5, user="ann"))
    sink.refusal(0, now, "bob", ip="10.0.0.1")
    settings = AgentSettings(
        to_url=service.url,
        token=service.token(Role.REPORTER),
        product="confluence",
        node="node1",
        spool_dir=tmp_path / "spool",
        follow=(sink.node_dir(0), sink.security_path(0).parent),
        read_existing=True,
    )
    agent = Agent(settings, BatchSender(settings.to_url, settings.token))
    agent.start()
    agent.step()
    agent.close()
    assert service.inbox() == [("ann", now, False), ("bob", now, True)]
    assert list(iter_batch_files(tmp_path / "spool")) == []
    bad = replace(settings, token="fs_wrong")
    agent = Agent(bad, BatchSender(bad.to_url, bad.token))
    agent.start()
    sink.access(0, AccessRecord(now + 1, "GET", "/display/DOC", 200, 10, 5, user="carl"))
    agent.step()
    agent.close()
    assert agent.failures == 1 and len(list(iter_batch_files(tmp_path / "spool"))) == 1


# -- end to end ----------------------------------------------------------------------------


class Writer:
    """Appends real-format Confluence lines for one node and remembers the sightings."""

    def __init__(self, root: Path) -> None:
        self.sink = LogSink(root, "confluence", nodes=1)
        self.expected: list[tuple[str, int, bool]] = []
        self.count = 0

    def write(self, lines: int) -> None:
        now = int(time.time())
        for _ in range(lines):
            self.count += 1
            k = self.count
            user = f"user{k % 37}"
            if k % 10 == 0:
                self.sink.refusal(0, now, user, ip="10.0.0.7")
                self.expected.append((user, now, True))
                continue
            anonymous = k % 7 == 0
            record = AccessRecord(
                now, "GET", f"/display/DOC/Page{k}", 200, 100, 9, user=None if anonymous else user
            )
            self.sink.access(0, record)
            if not anonymous:
                self.expected.append((user, now, False))


def wait_for(what: Callable[[], bool], timeout: float, why: str) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < deadline, why
        time.sleep(0.05)


def test_the_agent_loses_nothing_and_counts_nothing_twice_across_outages_and_kills(
    tmp_path: Path, service: Service
) -> None:
    writer = Writer(tmp_path / "logs")
    writer.write(1)  # the folders exist before the agent looks
    spool = tmp_path / "spool"
    command = [
        sys.executable,
        "-c",
        "import sys; from floatseat.cli import main; sys.argv[0] = 'floatseat'; main()",
        "agent",
        "--to",
        service.url,
        "--product",
        "confluence",
        "--node",
        "node1",
        "--follow",
        str(writer.sink.node_dir(0)),
        "--follow",
        str(writer.sink.security_path(0).parent),
        "--spool",
        str(spool),
        "--batch-max",
        "5",
        "--interval",
        "0.05",
        "--read-existing",
    ]
    env = {**os.environ, "FLOATSEAT_AGENT_TOKEN": service.token(Role.REPORTER)}
    log = (tmp_path / "agent.log").open("ab")

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(command, env=env, stdout=log, stderr=log)

    def spooled() -> int:
        return len(list(iter_batch_files(spool)))

    def delivered() -> int:
        return len(service.inbox())

    agent = start()
    try:
        writer.write(100)
        wait_for(lambda: delivered() == len(writer.expected), 10, "first lines not delivered")

        service.server.stop()  # the service goes away: the spool grows
        writer.write(150)
        wait_for(lambda: spooled() >= 10, 10, "nothing spooled while the service was down")
        agent.kill()  # SIGKILL while spooling
        agent.wait(5)
        writer.write(150)
        agent = start()
        wait_for(lambda: spooled() >= 40, 10, "the restarted agent spooled nothing")
        time.sleep(0.5)  # long enough to find the service still away

        service.restart()  # the spool drains; kill the agent in the middle of it
        before = delivered()
        wait_for(lambda: delivered() > before, 15, "the spool did not start draining")
        agent.kill()
        agent.wait(5)
        assert spooled() > 0, "drained before the kill: the test proves less than it says"
        agent = start()
        writer.write(100)
        wait_for(lambda: delivered() >= len(writer.expected) and spooled() == 0, 15, "not drained")
        time.sleep(0.5)  # a duplicate would land now
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(10) == 0
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait(5)
        log.close()
    inbox = service.inbox()
    assert len(inbox) == len(writer.expected)
    assert Counter(inbox) == Counter(writer.expected)
    text = (tmp_path / "agent.log").read_text()
    # One line per change of state, not one per batch: two runs saw the outage begin.
    assert 1 <= text.count("service unreachable") <= 4, text
    assert "batches drained" in text and "HTTP Request" not in text
