"""`floatseat agent`: the batches, the spool protocol and the backoff, with a fake service.

The agent runs one step at a time on a clock the test moves; its logs are real files in
the products' formats (`floatseat.sim.logs`), read by serve's own followers. The service is
`FakeService`, a small working stand-in that keeps the last accepted batch number per agent
as the real one does (store/inbox.py), or an httpx `MockTransport` where headers matter.
"""

from __future__ import annotations

import errno
import json
import subprocess
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from faults import failing_first
from hypothesis import given
from hypothesis import strategies as st

from floatseat.agent import runner as runner_module
from floatseat.agent import spool as spool_module
from floatseat.agent.batches import (
    Batch,
    Sighting,
    make_batches,
    parse_retry_after,
    retry_delay,
)
from floatseat.agent.runner import Agent
from floatseat.agent.sender import BatchSender, Delivered, Outcome, Refused, Unavailable, judge
from floatseat.agent.settings import AgentSettings, feed_settings, node_logs
from floatseat.agent.spool import STATE_FILE, Spool, SpoolLocked, batch_file_name, seq_of_file
from floatseat.sim.logs import AccessRecord, LogSink

T0 = 1_790_000_000  # the test clock's start, Unix seconds


class Clock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class FakeService:
    """The service's side of the protocol: a batch number at most the last one accepted
    is a duplicate and adds nothing. `down` answers as an unreachable service would."""

    def __init__(self) -> None:
        self.url = "https://floatseat.test/api/v1/agent/batches"
        self.last_seq: dict[str, int] = {}
        self.items: list[tuple[str, int, bool]] = []  # (user, at, refused) accepted
        self.received: list[int] = []  # every seq sent, in order
        self.down: Outcome | None = None
        self.lose_answers = False  # accept, then fail as if the answer never came

    def send(self, body: bytes) -> Outcome:
        batch = Batch.decode(body)
        self.received.append(batch.seq)
        if self.down is not None:
            return self.down
        if batch.seq <= self.last_seq.get(batch.agent_id, 0):
            return Delivered(0, True)
        self.last_seq[batch.agent_id] = batch.seq
        self.items.extend((s.user, s.at, s.refused) for s in batch.items)
        if self.lose_answers:
            return Unavailable("the answer was lost")
        return Delivered(len(batch.items), False)

    def close(self) -> None:
        pass


class Node:
    """One Confluence node's logs, written the way the product writes them."""

    def __init__(self, root: Path) -> None:
        self.sink = LogSink(root, "confluence", nodes=1)
        self.expected: list[tuple[str, int, bool]] = []

    def request(self, user: str | None, at: int, uri: str = "/display/DOC/Home") -> None:
        self.sink.access(0, AccessRecord(at, "GET", uri, 200, 100, 12, user=user))
        if user is not None and not uri.startswith("/rest/quickreload/"):
            self.expected.append((user, at, False))

    def refused(self, user: str, at: int) -> None:
        self.sink.refusal(0, at, user, ip="10.0.0.9")
        self.expected.append((user, at, True))

    def requests(self, count: int, at: int, prefix: str = "u") -> None:
        for k in range(count):
            self.request(f"{prefix}{k}", at + k % 30)


def settings_for(tmp_path: Path, **changes: Any) -> AgentSettings:
    base = AgentSettings(
        to_url="https://floatseat.test/",
        token="t0ken",
        product="confluence",
        node="node1",
        spool_dir=tmp_path / "spool",
        follow=(tmp_path / "logs" / "node1", tmp_path / "logs" / "node1" / "home" / "logs"),
        read_existing=True,
    )
    return replace(base, **changes)


def make_agent(tmp_path: Path, service: Any, clock: Clock, **changes: Any) -> Agent:
    settings = settings_for(tmp_path, **changes)
    agent = Agent(settings, service, clock=clock, random=lambda: 1.0)  # the longest wait
    agent.start()
    return agent


def started_with_new_lines(
    tmp_path: Path, node: Node, *, down: bool = False
) -> tuple[FakeService, Clock, Agent]:
    """An agent that has read the logs once; then three requests it has not read yet."""
    service, clock = FakeService(), Clock()
    if down:
        service.down = Unavailable("down")
    agent = make_agent(tmp_path, service, clock)
    agent.step()
    node.requests(3, T0)
    return service, clock, agent


def assert_a_restart_delivers_everything(
    tmp_path: Path, service: FakeService, clock: Clock, node: Node
) -> None:
    """Start the agent again on the same spool: the service ends with every sighting once."""
    again = make_agent(tmp_path, service, clock)
    again.step()
    assert service.items == node.expected
    again.close()


def crash(agent: Agent) -> None:
    """Stop as a SIGKILL would: no commit, no cleanup (beyond this process's open files)."""
    assert agent.feeds is not None
    agent.feeds.close()
    agent.spool.close()


def batch_files(tmp_path: Path) -> list[int]:
    folder = tmp_path / "spool" / "spool"
    return sorted(s for p in folder.iterdir() if (s := seq_of_file(p.name)) is not None)


@pytest.fixture
def node(tmp_path: Path) -> Node:
    return Node(tmp_path / "logs")


# -- pure parts ----------------------------------------------------------------------------


def test_batch_file_names_sort_in_sequence_order_and_read_back() -> None:
    names = [batch_file_name(s) for s in (9, 10, 100, 1)]
    assert sorted(names) == [batch_file_name(s) for s in (1, 9, 10, 100)]
    assert [seq_of_file(n) for n in names] == [9, 10, 100, 1]
    for other in ("state.json", ".tmp-000000000001.json", "000000000000.json", "12.json"):
        assert seq_of_file(other) is None
    with pytest.raises(ValueError):
        batch_file_name(0)


def test_sightings_are_cut_into_numbered_batches_by_count_and_by_size() -> None:
    sightings = [Sighting(f"u{k}", T0 + k) for k in range(25)]
    batches = make_batches(sightings, agent_id="a", node="n", first_seq=7, log_at=T0, batch_max=10)
    assert [(b.seq, len(b.items)) for b in batches] == [(7, 10), (8, 10), (9, 5)]
    assert [s for b in batches for s in b.items] == sightings
    long_names = [Sighting("x" * 200, T0) for _ in range(10)]
    by_size = make_batches(
        long_names, agent_id="a", node="n", first_seq=1, log_at=None, batch_max=10, max_bytes=3000
    )
    assert len(by_size) > 1 and all(len(b.encode()) <= 3000 for b in by_size)
    assert make_batches([], agent_id="a", node="n", first_seq=1, log_at=None, batch_max=5) == []


def test_a_batch_reads_back_from_its_json_and_refuses_what_is_not_one() -> None:
    batch = Batch("a1", "node1", 3, T0, (Sighting("ann", T0, True, True), Sighting("bob", T0)))
    assert Batch.decode(batch.encode()) == batch
    for broken in (b"[]", b"{}", b'{"agent_id":"a","node":"n","seq":"1","log_at":null,"items":[]}'):
        with pytest.raises(ValueError):
            Batch.decode(broken)


def test_the_backoff_doubles_up_to_its_cap_and_a_retry_after_wins() -> None:
    def most(n: int, retry_after: float | None = None) -> float:
        return retry_delay(n, retry_after, random=lambda: 1.0)

    assert [most(n) for n in range(1, 9)] == [0.5, 1, 2, 4, 8, 16, 30, 30]
    assert most(1000) == 30
    assert most(3, retry_after=7) == 7.5  # what the server asked, plus the spread
    assert retry_delay(3, retry_after=7, random=lambda: 0.0) == 7
    assert retry_delay(1, retry_after=0, random=lambda: 0.0) == 0.5  # never a busy loop
    assert most(1, retry_after=86400) == 600.5  # a misconfigured proxy, not a plan


@given(st.integers(1, 40), st.floats(0, 1, exclude_max=True), st.floats(0, 1, exclude_max=True))
def test_the_backoff_spreads_agents_that_failed_together(n: int, a: float, b: float) -> None:
    # Half the wait is random: two agents that failed together come back apart, never sooner
    # than half the doubled wait, and a Retry-After is never cut short.
    low, high = retry_delay(n, random=lambda: 0.0), retry_delay(n, random=lambda: 1.0)
    assert low == high / 2
    first, second = retry_delay(n, random=lambda: a), retry_delay(n, random=lambda: b)
    assert low <= first <= high and low <= second <= high
    assert first - second == pytest.approx((a - b) * (high - low))
    assert 7 <= retry_delay(n, retry_after=7, random=lambda: a) <= 7.5


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert parse_retry_after("120", T0) == 120
    assert parse_retry_after("Thu, 01 Jan 1970 00:01:40 GMT", 40) == 60
    assert parse_retry_after("Thu, 01 Jan 1970 00:01:40 GMT", 400) == 0
    assert parse_retry_after("soon", T0) is None
    assert parse_retry_after(None, T0) is None


def test_answers_are_judged_delivered_unavailable_or_refused() -> None:
    h = httpx.Headers
    body = b'{"seq":1,"accepted":2,"duplicate":false,"last_seq":1}'
    assert judge(200, h(), body, T0) == Delivered(2, False)
    assert isinstance(judge(200, h(), b"<html>welcome to the hotel wifi", T0), Refused)
    assert judge(503, h({"Retry-After": "9"}), b"", T0) == Unavailable("HTTP 503", 9)
    assert isinstance(judge(429, h(), b"", T0), Unavailable)
    refused = judge(401, h(), b'{"detail":"send a bearer token"}', T0)
    assert refused == Refused(401, "HTTP 401: send a bearer token")
    moved = judge(308, h({"Location": "https://x/"}), b"", T0)
    assert isinstance(moved, Refused) and "https://x/" in moved.message


# -- settings ------------------------------------------------------------------------------


def test_follow_folders_find_the_products_log_names(tmp_path: Path) -> None:
    jira = node_logs(settings_for(tmp_path, product="jira", follow=(Path("/j/logs"),)))
    assert jira.access_logs == ["/j/logs/access_log.*"]
    assert jira.security_logs == ["/j/logs/atlassian-jira-security.log*"]
    conf = node_logs(settings_for(tmp_path, follow=(Path("/c"),), access_logs=("/x/*.log",)))
    assert conf.access_logs == ["/c/conf_access_log.*.log", "/x/*.log"]
    assert conf.security_logs == ["/c/atlassian-confluence.log*"]


def test_the_counting_rules_come_from_serves_config_file(tmp_path: Path) -> None:
    config = tmp_path / "floatseat.toml"
    config.write_text('polling_prefixes = ["/rest/mine/"]\nexcluded_users = ["bot"]\n')
    feed = feed_settings(settings_for(tmp_path, config=config))
    assert feed.polling_prefixes == ["/rest/mine/"] and feed.excluded_users == ["bot"]
    assert [n.name for n in feed.nodes] == ["node1"] and feed.read_existing_logs


def test_settings_refuse_a_missing_token_and_a_url_without_scheme(tmp_path: Path) -> None:
    from floatseat.service.settings import SettingsError

    with pytest.raises(SettingsError, match="FLOATSEAT_AGENT_TOKEN"):
        settings_for(tmp_path, token="")
    with pytest.raises(SettingsError, match="--to"):
        settings_for(tmp_path, to_url="floatseat.example.com")


# -- the spool protocol --------------------------------------------------------------------


def test_sightings_reach_the_service_once_in_their_order(tmp_path: Path, node: Node) -> None:
    service, clock = FakeService(), Clock()
    node.request("ann", T0)
    node.request(None, T0)  # anonymous: no sighting
    node.request("ann", T0 + 1, "/rest/quickreload/latest/123")  # polling: no sighting
    node.refused("bob", T0 + 2)
    agent = make_agent(tmp_path, service, clock)
    agent.step()
    assert service.items == node.expected == [("ann", T0, False), ("bob", T0 + 2, True)]
    assert batch_files(tmp_path) == []
    agent.close()


def test_a_crash_between_spooling_and_committing_rereads_the_lines_and_counts_them_once(
    tmp_path: Path, node: Node
) -> None:
    service, clock = FakeService(), Clock()
    node.request("ann", T0)
    agent = make_agent(tmp_path, service, clock, batch_max=2)
    agent.step()  # ann delivered: batch 1
    committed = (tmp_path / "spool" / STATE_FILE).read_bytes()
    node.requests(5, T0 + 5)
    service.down = Unavailable("down")
    assert agent.read_logs() == 3  # batches 2, 3, 4 spooled and committed
    # The crash: the batch files are on disk, the state that commits them is not.
    (tmp_path / "spool" / STATE_FILE).write_bytes(committed)
    crash(agent)
    assert batch_files(tmp_path) == [2, 3, 4]

    service.down = None
    again = make_agent(tmp_path, service, clock, batch_max=2)
    assert batch_files(tmp_path) == []  # never committed, so never sent: deleted
    again.step()
    assert service.items == node.expected  # re-read from the committed positions
    assert Counter(service.items) == Counter(node.expected)
    assert service.received == [1, 2, 3, 4]
    again.close()


def test_a_crash_after_committing_sends_the_spool_at_the_next_start(
    tmp_path: Path, node: Node
) -> None:
    service, clock, agent = started_with_new_lines(tmp_path, node)
    service.down = Unavailable("down")
    agent.step()
    crash(agent)
    service.down = None
    again = make_agent(tmp_path, service, clock)
    assert batch_files(tmp_path) == [1]
    again.step()
    assert service.items == node.expected and batch_files(tmp_path) == []
    again.close()


def test_the_spool_drains_oldest_first_after_an_outage(tmp_path: Path, node: Node) -> None:
    service, clock = FakeService(), Clock()
    service.down = Unavailable("connection refused")
    agent = make_agent(tmp_path, service, clock)
    for k in range(4):
        node.requests(2, T0 + 10 * k, prefix=f"b{k}-")
        clock.t += 60  # past any backoff
        agent.step()
    assert batch_files(tmp_path) == [1, 2, 3, 4]
    assert set(service.received) == {1}  # never past the first unanswered batch
    service.down = None
    clock.t += 60
    agent.step()
    assert service.received[-4:] == [1, 2, 3, 4]
    assert service.items == node.expected and batch_files(tmp_path) == []
    agent.close()


def test_a_duplicate_answer_counts_as_delivered_and_deletes_the_file(
    tmp_path: Path, node: Node
) -> None:
    service, clock = FakeService(), Clock()
    node.requests(3, T0)
    service.lose_answers = True  # the service stores the batch; the agent hears nothing
    agent = make_agent(tmp_path, service, clock)
    agent.step()
    assert batch_files(tmp_path) == [1]
    service.lose_answers = False
    clock.t += 60
    agent.step()  # sent again: answered duplicate
    assert service.received == [1, 1] and batch_files(tmp_path) == []
    assert Counter(service.items) == Counter(node.expected)
    agent.close()


def test_a_refusing_service_keeps_the_batches_and_is_retried(tmp_path: Path, node: Node) -> None:
    service, clock = FakeService(), Clock()
    service.down = Refused(401, "HTTP 401: unknown token")
    node.requests(2, T0)
    agent = make_agent(tmp_path, service, clock)
    for _ in range(5):
        agent.step()
        clock.t = agent.retry_at
    assert batch_files(tmp_path) == [1] and service.items == []
    assert agent.failures == 5
    service.down = None
    agent.step()
    assert service.items == node.expected and agent.failures == 0
    agent.close()


def test_retry_after_is_honoured(tmp_path: Path, node: Node) -> None:
    clock, calls = Clock(), []

    def service(request: httpx.Request) -> httpx.Response:
        calls.append(clock.t)
        if len(calls) == 1:
            return httpx.Response(503, headers={"Retry-After": "7"}, json={"detail": "busy"})
        seq = json.loads(request.content)["seq"]
        return httpx.Response(
            200, json={"seq": seq, "accepted": 1, "duplicate": False, "last_seq": seq}
        )

    sender = BatchSender(
        "https://floatseat.test", "t0ken", transport=httpx.MockTransport(service), clock=clock
    )
    node.request("ann", T0)
    agent = make_agent(tmp_path, sender, clock)
    agent.step()
    assert calls == [T0] and agent.retry_at == T0 + 7.5  # the server's 7 s and the spread
    clock.t = T0 + 7.4
    agent.step()
    assert calls == [T0] and batch_files(tmp_path) == [1]
    clock.t = T0 + 7.5
    agent.step()
    assert calls == [T0, T0 + 7.5] and batch_files(tmp_path) == []
    agent.close()


def test_a_full_spool_pauses_reading_and_loses_nothing(tmp_path: Path, node: Node) -> None:
    service, clock = FakeService(), Clock()
    service.down = Unavailable("down")
    agent = make_agent(tmp_path, service, clock, spool_max_bytes=1)
    node.requests(3, T0)
    agent.step()
    node.requests(3, T0 + 60, prefix="later")
    clock.t += 60
    agent.step()
    assert batch_files(tmp_path) == [1]  # full: the later lines wait in the log
    service.down = None
    clock.t += 60
    agent.step()  # drains batch 1; reading was skipped before the drain
    agent.step()
    assert service.items == node.expected
    agent.close()


def test_a_full_disk_pauses_reading_and_loses_nothing(
    tmp_path: Path, node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    service, clock, agent = started_with_new_lines(tmp_path, node)
    write = spool_module._write_atomically

    def disk_full(path: Path, data: bytes, *, sync_dir: bool) -> None:
        if path.name != STATE_FILE:  # the batch files fail; the small state would still fit
            raise OSError(errno.ENOSPC, "No space left on device")
        write(path, data, sync_dir=sync_dir)

    monkeypatch.setattr(spool_module, "_write_atomically", disk_full)
    agent.step()  # not a crash: the followers go back to the committed positions
    assert service.items == [] and batch_files(tmp_path) == []
    agent.close()  # must not commit positions past the lines no batch holds
    monkeypatch.setattr(spool_module, "_write_atomically", write)
    assert_a_restart_delivers_everything(tmp_path, service, clock, node)


def test_a_write_that_fails_after_the_commit_reads_the_state_back_from_disk(
    tmp_path: Path, node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    service, clock, agent = started_with_new_lines(tmp_path, node, down=True)
    fsync_dir = spool_module._fsync_dir

    def failing_root(path: Path) -> None:
        if path == tmp_path / "spool":  # after the state's rename: committed all the same
            raise OSError(errno.EIO, "Input/output error")
        fsync_dir(path)

    monkeypatch.setattr(spool_module, "_fsync_dir", failing_root)
    agent.step()
    monkeypatch.setattr(spool_module, "_fsync_dir", fsync_dir)
    assert batch_files(tmp_path) == [1]
    service.down = None
    clock.t += 60  # past the backoff and the pause
    agent.step()
    agent.step()
    assert service.items == node.expected  # once: batch 1, and its lines not read again
    agent.close()
    assert_a_restart_delivers_everything(tmp_path, service, clock, node)


def test_a_failure_while_reading_commits_nothing_it_read(
    tmp_path: Path, node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    service, clock, agent = started_with_new_lines(tmp_path, node)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(runner_module, "make_batches", broken)
    with pytest.raises(RuntimeError):
        agent.step()
    agent.close()  # what `run_agent` does on the way out
    monkeypatch.undo()
    assert_a_restart_delivers_everything(tmp_path, service, clock, node)


def test_a_batch_that_cannot_be_read_for_a_moment_is_kept_in_its_place(
    tmp_path: Path, node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    service, clock = FakeService(), Clock()
    service.down = Unavailable("down")
    agent = make_agent(tmp_path, service, clock, batch_max=2)
    node.requests(4, T0)
    agent.step()
    assert batch_files(tmp_path) == [1, 2]
    service.down = None
    flaky = failing_first(Spool.read, OSError(errno.EMFILE, "Too many open files"))
    monkeypatch.setattr(Spool, "read", flaky)
    clock.t += 60
    agent.step()
    assert batch_files(tmp_path) == [1, 2] and service.received == [1]  # nothing set aside
    clock.t += 60
    agent.step()
    assert service.received == [1, 1, 2] and service.items == node.expected
    agent.close()


def test_a_refused_login_for_a_name_longer_than_any_users_is_left_out(
    tmp_path: Path, node: Node
) -> None:
    service, clock = FakeService(), Clock()
    node.sink.refusal(0, T0, "x" * 256, ip="10.0.0.9")  # typed at the login page
    node.sink.refusal(0, T0, "\u0130" * 200, ip="10.0.0.9")  # 400 characters lower-cased
    node.refused("x" * 255, T0 + 1)
    agent = make_agent(tmp_path, service, clock)
    agent.step()
    assert service.items == node.expected  # the service would refuse the batch otherwise
    agent.close()


def test_the_services_counts_of_old_and_early_sightings_are_logged(
    tmp_path: Path, node: Node, caplog: pytest.LogCaptureFixture
) -> None:
    service, clock = FakeService(), Clock()
    send = service.send

    def answer(body: bytes) -> Outcome:
        delivered = send(body)
        assert isinstance(delivered, Delivered)
        return replace(delivered, too_old=1, ahead=2)

    service.send = answer  # type: ignore[method-assign]
    node.requests(3, T0)
    agent = make_agent(tmp_path, service, clock)
    agent.step()
    agent.close()
    assert batch_files(tmp_path) == []
    assert "left out 1 sightings more than a week old" in caplog.text
    assert "counted 2 stamped ahead of its clock" in caplog.text


def test_a_quiet_node_sends_a_heartbeat_with_when_its_logs_last_grew(
    tmp_path: Path, node: Node
) -> None:
    service, clock = FakeService(), Clock()
    seen: list[Batch] = []
    send = service.send
    service.send = lambda body: (seen.append(Batch.decode(body)), send(body))[1]  # type: ignore[method-assign]
    node.request("ann", T0)
    agent = make_agent(tmp_path, service, clock, heartbeat_s=30)
    agent.step()
    grew = seen[-1].log_at
    clock.t += 29
    agent.step()
    assert len(seen) == 1
    clock.t += 1
    agent.step()
    assert len(seen) == 2 and seen[-1].items == () and seen[-1].log_at == grew
    agent.close()


def test_a_restart_resumes_where_the_last_run_stopped(tmp_path: Path, node: Node) -> None:
    service, clock = FakeService(), Clock()
    node.requests(3, T0)
    agent = make_agent(tmp_path, service, clock)
    agent.step()
    agent.close()
    node.requests(2, T0 + 100, prefix="v")
    again = make_agent(tmp_path, service, clock)
    again.step()
    assert Counter(service.items) == Counter(node.expected)
    again.close()


def test_two_agents_cannot_share_a_spool(tmp_path: Path) -> None:
    first = Spool(tmp_path)
    first.open()
    with pytest.raises(SpoolLocked):
        Spool(tmp_path).open()
    first.close()
    with Spool(tmp_path) as second:
        second.open()


def test_a_damaged_state_file_is_refused_not_replaced(tmp_path: Path) -> None:
    (tmp_path / STATE_FILE).write_text("{not json")
    with pytest.raises(ValueError, match="damaged"):
        Spool(tmp_path).open()


def test_the_agent_loads_no_web_stack_and_no_database_driver() -> None:
    probe = "import json, sys, floatseat.agent; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    modules = json.loads(done.stdout)
    heavy = ("fastapi", "starlette", "uvicorn", "sqlalchemy", "alembic", "jinja2")
    assert [m for m in modules if m.split(".")[0] in heavy] == []
