"""The web API under load: `GET /api/v1/status` and `POST /api/v1/activity`, from wrk.

The app (`floatseat.web.app.create_app`) runs in this process in uvicorn on a free loopback
port, as `floatseat serve` runs it: the real `Runtime` and engine on a SQLite ledger in a
temporary folder, a `FakeDirectory` with `--users` users in `IUM_Disabled` and a tier of
`--seats`. The load comes from a second process: `wrk` (Debian: `apt-get install -y wrk`)
with a Lua script that reports the latency percentiles; the POST carries a reporter bearer
token and a random user's name (so the first requests grant seats, later ones refresh
holders and queue the rest). Without wrk, a multiprocess httpx load generator does the same
(`--tool httpx` forces it). `GET /healthz` (no database, no auth) is measured first as the
framework's floor.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn

from floatseat.directory.fake import FakeDirectory
from floatseat.domain.policy import DirectoryChanged, PolicySettings
from floatseat.service.bootstrap import bootstrap
from floatseat.service.runtime import Runtime
from floatseat.web.app import create_app
from floatseat.web.settings import WebSettings
from floatseat.web.store import Role, WebStore

LUA = r"""
local body_users = {}
local method, path, headers = "GET", "/", {}

function init(args)
  method, path = args[1], args[2]
  if args[3] ~= nil then headers["Authorization"] = "Bearer " .. args[3] end
  local n = tonumber(args[4] or "0")
  for i = 1, n do body_users[i] = string.format("user%05d", i - 1) end
  math.randomseed(os.time() + math.floor(os.clock() * 1000000))
end

function request()
  if method == "POST" then
    headers["Content-Type"] = "application/json"
    local user = body_users[math.random(#body_users)]
    return wrk.format("POST", path, headers, '{"user":"' .. user .. '"}')
  end
  return wrk.format("GET", path, headers)
end

function done(summary, latency, requests)
  io.write(string.format(
    'RESULT {"requests": %d, "duration_us": %d, "p50": %d, "p90": %d, "p99": %d, "max": %d, '
    .. '"errors": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status
    + summary.errors.timeout))
end
"""


def load() -> str:
    return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def serve(work: Path, users: int, seats: int) -> tuple[uvicorn.Server, str, str]:
    names = [f"user{k:05d}" for k in range(users)]
    fake = FakeDirectory(seats, groups={"IUM_Enabled": set(), "IUM_Disabled": set(names)})
    policy = PolicySettings(
        idle_timeout_s=1800, min_hold_s=60, preempt=False, warn_before_s=0, reserve=0
    )
    services = bootstrap(f"sqlite:///{work / 'ledger.db'}", policy, fake)
    runtime = Runtime(ledger=services.ledger, engine=services.engine, policy_settings=policy)
    runtime.submit(DirectoryChanged(runtime.now(), fake.figures()))
    # No rate limit: one reporter token sends every request, and the bench measures how
    # fast the engine answers, not how the limiter turns the excess away (429).
    web = WebSettings(secret_key="s" * 40, activity_hmac_key="k" * 40, activity_rate_per_s=0)
    app = create_app(runtime, web_settings=web, announce=lambda _link: None)
    store = WebStore(services.ledger.engine)
    reporter = store.add_token("bench", Role.REPORTER, "bench", int(time.time()))[1]
    reader = store.add_token("bench-read", Role.READ_ONLY, "bench", int(time.time()))[1]
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted sockets only when the
    # listening socket says TCP; with proto 0 every response waits ~40 ms (Nagle + delayed
    # ACK). `floatseat serve` binds by host and port and gets TCP.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline:
            raise SystemExit("uvicorn did not start")
        time.sleep(0.02)
    server.bench_reader = reader  # type: ignore[attr-defined]
    return server, f"http://127.0.0.1:{port}", reporter


def run_wrk(
    url: str,
    method: str,
    path: str,
    token: str | None,
    users: int,
    conns: int,
    secs: float,
    script: Path,
) -> dict[str, float]:
    args = [method, path, token or "", str(users)]
    if token is None:
        args[2] = ""
    cmd = [
        "wrk",
        "-t1",
        f"-c{conns}",
        f"-d{secs:g}s",
        "--timeout",
        "5s",
        "-s",
        str(script),
        url,
        "--",
        *args,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("RESULT "))
    r = json.loads(line[len("RESULT ") :])
    return {
        "rps": r["requests"] / (r["duration_us"] / 1e6),
        "p50": r["p50"] / 1000,
        "p90": r["p90"] / 1000,
        "p99": r["p99"] / 1000,
        "max": r["max"] / 1000,
        "errors": r["errors"],
        "requests": r["requests"],
    }


def _httpx_worker(
    url: str,
    method: str,
    path: str,
    token: str | None,
    users: int,
    conns: int,
    secs: float,
    out: Any,
) -> None:
    import asyncio

    import httpx

    async def one(
        client: httpx.AsyncClient, until: float, lat: list[float], err: list[int]
    ) -> None:
        rng = random.Random()
        while time.monotonic() < until:
            started = time.perf_counter()
            if method == "POST":
                user = f"user{rng.randrange(users):05d}"
                r = await client.post(path, json={"user": user})
            else:
                r = await client.get(path)
            lat.append(time.perf_counter() - started)
            if r.status_code >= 400:
                err[0] += 1

    async def main() -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        lat: list[float] = []
        err = [0]
        limits = httpx.Limits(max_connections=conns)
        async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits) as client:
            until = time.monotonic() + secs
            await asyncio.gather(*(one(client, until, lat, err) for _ in range(conns)))
        out.put((lat, err[0]))

    asyncio.run(main())


def run_httpx(
    url: str,
    method: str,
    path: str,
    token: str | None,
    users: int,
    conns: int,
    secs: float,
    _script: Path,
) -> dict[str, float]:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = 2
    per = max(1, conns // procs)
    workers = [
        ctx.Process(target=_httpx_worker, args=(url, method, path, token, users, per, secs, queue))
        for _ in range(procs)
    ]
    for w in workers:
        w.start()
    lat: list[float] = []
    errors = 0
    for _ in workers:
        got, err = queue.get()
        lat.extend(got)
        errors += err
    for w in workers:
        w.join()
    lat.sort()

    def p(q: float) -> float:
        return lat[min(len(lat) - 1, int(q / 100 * len(lat)))] * 1000

    return {
        "rps": len(lat) / secs,
        "p50": p(50),
        "p90": p(90),
        "p99": p(99),
        "max": lat[-1] * 1000,
        "errors": errors,
        "requests": len(lat),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    parser.add_argument("--connections", default="4,16", help="comma-separated")
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--seats", type=int, default=500)
    parser.add_argument("--tool", choices=("auto", "wrk", "httpx"), default="auto")
    args = parser.parse_args()
    tool = args.tool
    if tool == "auto":
        tool = "wrk" if shutil.which("wrk") else "httpx"
    runner = run_wrk if tool == "wrk" else run_httpx
    conns = [int(c) for c in args.connections.split(",")]
    work = Path(tempfile.mkdtemp(prefix="floatseat-bench-api-"))
    script = work / "bench.lua"
    script.write_text(LUA)
    print(f"floatseat API load bench: nproc {os.cpu_count()}, load {load()}, load from {tool}")
    try:
        server, url, reporter = serve(work, args.users, args.seats)
        reader = server.bench_reader  # type: ignore[attr-defined]
        print(f"  {url}; {args.users} users, {args.seats} seats, {args.duration:g} s per row")
        cases = [
            ("GET /healthz (floor)", "GET", "/healthz", None),
            ("GET /api/v1/status", "GET", "/api/v1/status", reader),
            ("POST /api/v1/activity", "POST", "/api/v1/activity", reporter),
        ]
        head = (
            f"{'request':<24} {'conns':>5} {'req/s':>8} {'p50 ms':>7} {'p90 ms':>7} "
            f"{'p99 ms':>7} {'max ms':>7} {'errors':>6} {'rps/fl':>6} {'p99/fl':>6}"
            "  load avg (1 5 15)"
        )
        print(head)
        print("-" * len(head))
        passed = True
        floor: dict[int, dict[str, float]] = {}  # /healthz, by connections: this run's floor
        for name, method, path, token in cases:
            for c in conns:
                before = load()
                r = runner(url, method, path, token, args.users, c, args.duration, script)
                base = floor.setdefault(c, r)
                print(
                    f"{name:<24} {c:>5} {r['rps']:>8.0f} {r['p50']:>7.1f} {r['p90']:>7.1f} "
                    f"{r['p99']:>7.1f} {r['max']:>7.1f} {r['errors']:>6.0f} "
                    f"{r['rps'] / base['rps']:>6.2f} {r['p99'] / max(base['p99'], 0.001):>6.2f}"
                    f"  {before}",
                    flush=True,
                )
                if "/api/" in path:
                    passed = passed and r["p99"] < 50 and not r["errors"]
        print("rps/fl, p99/fl: against GET /healthz at the same connections, in this run")
        print(f"\ntarget p99 < 50 ms (API rows, no errors): {'PASS' if passed else 'MISS'}")
        server.should_exit = True
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
