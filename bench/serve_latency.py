"""`floatseat serve`: a refused login to `IUM_Enabled`, under background access-log traffic.

The simulated Jira (2 nodes, real HTTP on loopback, real-time clock) runs in this process;
`floatseat serve --no-web` runs as a second process following the nodes' logs, as in
production. A writer thread appends other users' requests to the nodes' access logs at a
fixed rate (batched every 10 ms, as Tomcat's unbuffered valve would write them). For each
sample, a disabled user's refused login is written to a node's security log with the time
of the request, and the latency is the time from that request to the moment the simulator
adds the user to `IUM_Enabled` (recorded by a hook on the simulator's group membership, so
no polling delay is added). A seat is always free.

Baselines, measured in the same run: the simulator's own membership change round trip (one
`POST /rest/api/2/group/user` over loopback, from this process) and the followers' poll
interval.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from floatseat.directory.http import BasicCredentials
from floatseat.directory.jira import JiraDirectory
from floatseat.domain.onboarding import SetupOptions
from floatseat.service.setup import execute, prepare_setup
from floatseat.sim.core import SimConfig, Simulator
from floatseat.sim.logs import AccessRecord, jira_access_line
from floatseat.sim.server import SimServer

E, D = "IUM_Enabled", "IUM_Disabled"
USERS_GROUP = "jira-software-users"
PATHS = (
    "/browse/ABC-{n}",
    "/rest/api/2/issue/ABC-{n}",
    "/secure/Dashboard.jspa",
    "/rest/api/2/search",
)


def load() -> str:
    return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of `values`."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


class Writer:
    """Other users' requests appended to the nodes' access logs at `rate` lines a second."""

    def __init__(self, sim: Simulator, users: list[str]) -> None:
        assert sim.logs is not None
        self.sink = sim.logs
        self.users = users
        self.rate = 0.0
        self.written = 0
        self.errors = 0
        self._stop = threading.Event()
        self._numbers = [0] * sim.config.nodes
        self._thread = threading.Thread(target=self._run, name="bench-writer", daemon=True)
        self._random = random.Random(1)

    def start(self) -> None:
        self._thread.start()

    def set_rate(self, rate: float) -> None:
        self.rate = rate

    def measure(self, seconds: float) -> float:
        before, started = self.written, time.monotonic()
        time.sleep(seconds)
        return (self.written - before) / (time.monotonic() - started)

    def _run(self) -> None:
        nodes = len(self._numbers)
        owed = 0.0
        last = time.monotonic()
        while not self._stop.wait(0.01):
            now = time.monotonic()
            owed += self.rate * (now - last)
            last = now
            count = int(owed)
            if not count:
                continue
            owed -= count
            at = time.time()
            lines: list[list[str]] = [[] for _ in range(nodes)]
            for k in range(count):
                node = k % nodes
                self._numbers[node] += 1
                record = AccessRecord(
                    at=at,
                    method="GET",
                    uri=self._random.choice(PATHS).format(n=self._random.randrange(1, 999)),
                    status=200,
                    size=1234,
                    took_ms=self._random.randrange(5, 300),
                    user=self.users[self._random.randrange(len(self.users))],
                    session="ASESSION",
                )
                lines[node].append(jira_access_line(record, self._numbers[node]))
            for node, batch in enumerate(lines):
                if batch:
                    path = self.sink.access_path(node, at)
                    path.parent.mkdir(parents=True, exist_ok=True)
                    with path.open("a", encoding="utf-8", newline="\n") as out:
                        out.write("".join(line + "\n" for line in batch))
            self.written += count

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def setup(url: str, state: Path) -> None:
    """`floatseat setup`: pool groups, application access, everyone in IUM_Disabled."""
    directory = JiraDirectory.connect(url, BasicCredentials("admin", "admin"))
    try:
        options = SetupOptions(reserve=0, excluded=frozenset({"admin"}))
        run = prepare_setup(directory, options, {}, state)
        run.snapshot.save(run.snapshot_path)
        result = execute(directory, run.plan, on_manual=lambda _step, _error: False)
        if not result.finished:
            raise SystemExit(f"setup failed: {result.stopped}")
    finally:
        directory.close()


def write_config(path: Path, url: str, logs: Path, poll: float) -> None:
    nodes = "".join(
        f'[[nodes]]\nname = "node{k}"\naccess_logs = ["{logs}/node{k}/access_log.*"]\n'
        f'security_logs = ["{logs}/node{k}/home/log/atlassian-jira-security.log*"]\n'
        'format = "jira"\n'
        for k in (1, 2)
    )
    path.write_text(
        f'product = "jira"\nbase_url = "{url}"\nusername = "admin"\n'
        f'users_group = "{USERS_GROUP}"\nexcluded_users = ["admin"]\n'
        f"poll_interval_s = {poll}\nread_existing_logs = true\n"
        "[policy]\nreserve = 0\nmin_hold_s = 60\nidle_timeout_s = 3600\nsweep_interval_s = 60\n"
        f"preempt = false\nwarn_before_s = 0\nmax_revokes_per_sweep = 0\n{nodes}"
    )


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.05)


def round_trip(url: str, users: list[str], repeats: int) -> list[float]:
    """The simulator's own membership change: one REST add to IUM_Enabled (then removed)."""
    times = []
    with httpx.Client(base_url=url, auth=("admin", "admin"), timeout=10) as http:
        for k in range(repeats):
            user = users[k % len(users)]
            started = time.perf_counter()
            r = http.post("/rest/api/2/group/user", params={"groupname": E}, json={"name": user})
            times.append(time.perf_counter() - started)
            r.raise_for_status()
            http.delete(
                "/rest/api/2/group/user", params={"groupname": E, "username": user}
            ).raise_for_status()
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="100,1000", help="background lines/s, comma-separated")
    parser.add_argument("--samples", type=int, default=100, help="refused logins per rate")
    parser.add_argument("--background-users", type=int, default=200)
    parser.add_argument("--poll", type=float, default=0.25, help="serve's poll_interval_s")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds at a rate before")
    parser.add_argument(
        "--sim-as-is",
        action="store_true",
        help="leave the simulator's listening socket without TCP_NODELAY (each REST answer "
        "then waits ~40 ms for a delayed ACK; Tomcat sets TCP_NODELAY by default)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    work = Path(tempfile.mkdtemp(prefix="floatseat-bench-latency-"))
    logs = work / "logs"
    background = args.background_users
    users = background + args.samples * len(rates) + 20
    print(f"floatseat serve latency bench: nproc {os.cpu_count()}, load {load()}")
    print(
        f"  work {work}; {users} users, poll_interval_s {args.poll}, simulator TCP_NODELAY "
        f"{'off (as is)' if args.sim_as_is else 'on'}"
    )

    config = SimConfig(
        product="jira",
        users=users,
        tier=users + 5,
        log_dir=logs,
        active_people=False,
        start=time.time(),
        speed=1,
        nodes=2,
    )
    added: dict[str, float] = {}
    arrived = threading.Condition()
    process: subprocess.Popen[bytes] | None = None
    writer: Writer | None = None
    with SimServer(config) as server:
        sim = server.sim
        if not args.sim_as_is:
            # SimServer binds a proto-0 socket, so asyncio leaves Nagle on: set TCP_NODELAY on
            # the listener (accepted sockets inherit it on Linux), as Tomcat's connector does.
            listener = server._socket  # noqa: SLF001
            assert listener is not None
            listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        setup(server.base_url, work / "setup")
        world = sim.world
        add_member = world.add_member

        def hooked(user: str, group: str, now: float, **kw: Any) -> bool:
            changed = add_member(user, group, now, **kw)
            if changed and group == E:
                with arrived:
                    added[user] = time.time()
                    arrived.notify_all()
            return changed

        world.add_member = hooked  # type: ignore[method-assign]
        names = sorted(p.name for p in sim.people.people)
        # Setup seats the first users while the tier allows: start with nobody seated.
        with sim.locked() as w:
            for member in w.members_of(E):
                w.remove_member(member.name, E)
                w.add_member(member.name, D, sim.now())
            disabled = [u.name for u in w.members_of(D)]
        rt = round_trip(server.base_url, disabled, 50)
        added.clear()
        random.Random(0).shuffle(names)
        background_users, candidates = names[:background], names[background:]

        # Every node's access log exists before serve starts.
        writer = Writer(sim, background_users)
        writer.start()
        writer.set_rate(rates[0])
        time.sleep(0.5)
        cfg = work / "floatseat.toml"
        write_config(cfg, server.base_url, logs, args.poll)
        serve_log = work / "serve.log"
        env = {**os.environ, "FLOATSEAT_PASSWORD": "admin"}
        with serve_log.open("ab") as stderr:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    "from floatseat.cli import main; main()",
                    "serve",
                    "--no-web",
                    f"--config={cfg}",
                    f"--state={work / 'state'}",
                ],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        try:
            wait_for(
                lambda: (
                    "running: following the logs" in serve_log.read_text()
                    or process.poll() is not None
                ),
                60,
                "serve to start",
            )
            if process.poll() is not None:
                print(serve_log.read_text()[-3000:])
                return 1
            # The background users' first requests got them seats: steady state from here.
            wait_for(
                lambda: sum(u in added for u in background_users) == background,
                60,
                "the background users' seats",
            )
            results = []
            queue = iter(candidates)
            jitter = random.Random(2)
            for rate in rates:
                writer.set_rate(rate)
                achieved = writer.measure(args.settle)
                phase_load = load()
                latencies: list[float] = []
                lines_before, started = writer.written, time.monotonic()
                for k in range(args.samples):
                    user = next(queue)
                    at = time.time()
                    sim.log_refusal(k % 2, at, user, ip="10.9.9.9")
                    with arrived:
                        if not arrived.wait_for(lambda u=user: u in added, 10):  # type: ignore[misc]
                            raise SystemExit(f"{user} was not enabled within 10 s")
                    latencies.append(added[user] - at)
                    time.sleep(jitter.uniform(0.02, 0.1))
                during = (writer.written - lines_before) / (time.monotonic() - started)
                results.append((rate, achieved, during, latencies, phase_load))
            state = server.sim.snapshot()
        finally:
            writer.stop()
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
    violations = state.get("licence_violations", "?")

    rt50, rt99 = statistics.median(rt), pct(rt, 99)
    print()
    print("Baselines (same run):")
    print(
        f"  simulator membership change (REST add, loopback): p50 {rt50 * 1000:.1f} ms, "
        f"p99 {rt99 * 1000:.1f} ms (n={len(rt)})"
    )
    print(f"  followers' poll interval: {args.poll * 1000:.0f} ms")
    print()
    head = (
        f"{'lines/s':>8} {'achieved':>9} {'n':>4} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
        f"{'max ms':>8} {'p50/poll':>9} {'p99/poll':>9} {'p99/rt':>7}  load avg (1 5 15)"
    )
    print(head)
    print("-" * len(head))
    passed = True
    for rate, _settled, during, lat, phase_load in results:
        p50, p95, p99 = pct(lat, 50), pct(lat, 95), pct(lat, 99)
        print(
            f"{rate:>8.0f} {during:>9.0f} {len(lat):>4} {p50 * 1000:>8.0f} {p95 * 1000:>8.0f} "
            f"{p99 * 1000:>8.0f} {max(lat) * 1000:>8.0f} {p50 / args.poll:>8.1f}x "
            f"{p99 / args.poll:>8.1f}x {p99 / rt50:>6.0f}x  {phase_load}"
        )
        if rate >= 1000:
            passed = passed and p99 < 2.0
    print()
    print(f"licence violations: {violations}")
    print(f"target p99 < 2 s at 1,000 lines/s: {'PASS' if passed else 'MISS'}")
    if args.keep:
        print(f"kept {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
