"""`floatseat demo`: the main job on embedded defaults, in one process.

Composition only: a simulated Confluence (or Jira) with virtual users on an accelerated
clock writing its nodes' logs into the state folder; `floatseat setup` done on it (pool
groups, application access, the first seats); `floatseat serve` on SQLite following those
logs, on the simulator's clock; the web side in demo mode. Both servers listen on
127.0.0.1 only. `Demo.run()` serves until SIGTERM or Ctrl-C, then stops everything.

Pace: the simulated Monday starts at 09:00 UTC and runs `speed` times faster than real time
(60 by default: an hour a minute). The policy's times are simulated seconds, so with the
defaults an idle seat is taken back after about 10 s and the queue moves every second.
A load balancer's health checks (anonymous `GET /status`) keep every node's access log
growing, as in a real cluster, so the feeds do not look stalled when people go quiet.
"""

from __future__ import annotations

import logging
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from floatseat.directory.http import BasicCredentials
from floatseat.directory.port import ManagedDirectory
from floatseat.domain.onboarding import SetupOptions
from floatseat.service.bootstrap import Served, build_service, connect_directory
from floatseat.service.settings import ServeSettings
from floatseat.service.setup import SetupRefused, execute, prepare_setup
from floatseat.sim.core import DEFAULT_START, USERS_GROUP, SimConfig, Simulator
from floatseat.sim.logs import AccessRecord, LogSink
from floatseat.sim.server import SimServer

__all__ = ["DemoError", "DemoOptions", "Demo"]

log = logging.getLogger(__name__)

Product = Literal["confluence", "jira"]
HOST = "127.0.0.1"
MARKER = ".floatseat-demo"
# Confluence 9.3 reads and changes "Can use" over REST, so setup needs no step by hand.
VERSIONS: dict[str, str] = {"confluence": "9.3.1", "jira": "9.12.2"}
START = DEFAULT_START + 3600  # Monday 09:00 UTC: most people are at work or arriving
RESERVE = 2


class DemoError(Exception):
    """The demo cannot start; the message says why, for people."""


@dataclass(frozen=True)
class DemoOptions:
    product: Product = "confluence"
    port: int = 8080
    sim_port: int = 8090
    state: Path | None = None  # None: a fresh temporary folder, removed at the end
    users: int = 40
    tier: int = 18  # 15 floating seats (Confluence's admin holds one, the reserve two)
    speed: float = 60.0  # simulated seconds per real second
    seed: int = 0
    nodes: int = 2

    def __post_init__(self) -> None:
        if self.product not in VERSIONS:
            raise DemoError("--product is confluence or jira")
        if self.users < 1:
            raise DemoError("--users must be 1 or more")
        if self.tier < RESERVE + 2:
            raise DemoError(f"--tier must be {RESERVE + 2} or more (the reserve is {RESERVE})")
        if not 0 < self.speed <= 3600:
            raise DemoError("--speed must be above 0 and at most 3600")
        for port in (self.port, self.sim_port):
            if not 0 < port < 65536:
                raise DemoError(f"no such port: {port}")
        if self.port == self.sim_port:
            raise DemoError("--port and --sim-port must differ")


def demo_policy() -> dict[str, int | bool]:
    """The policy in simulated seconds. Realistic times (10 min idle timeout, 2 min minimum
    hold) that at 60x play out in seconds."""
    return {
        "idle_timeout_s": 600,
        "min_hold_s": 120,
        "preempt": True,
        "preempt_after_s": 300,
        "warn_before_s": 60,
        "queue_timeout_s": 1800,
        "sweep_interval_s": 60,
        "reserve": RESERVE,
        "queue_aging_s": 300,
        "max_revokes_per_sweep": 20,
    }


class HealthChecks:
    """A load balancer asking every node for `/status` every `every_s` real seconds."""

    def __init__(self, sim: Simulator, every_s: float = 0.5) -> None:
        self.sim = sim
        self.every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="floatseat-demo-lb", daemon=True)

    def check(self) -> None:
        now = self.sim.now()
        for node in range(self.sim.config.nodes):
            self.sim.log_access(
                node,
                AccessRecord(
                    at=now,
                    method="GET",
                    uri="/status",
                    status=200,
                    size=20,
                    took_ms=1,
                    ip="10.0.0.2",
                    agent="ELB-HealthChecker/2.0",
                ),
            )

    def start(self) -> None:
        self.check()  # every node has an access log before the followers look
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self.check()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)


def prepare_state(state: Path | None) -> tuple[Path, bool]:
    """The state folder and whether it is temporary. A given folder must be empty or an
    earlier demo's (whose contents are cleared: the simulator starts afresh every run)."""
    if state is None:
        return Path(tempfile.mkdtemp(prefix="floatseat-demo-")), True
    if state.exists():
        if not state.is_dir():
            raise DemoError(f"--state {state} is not a folder")
        contents = list(state.iterdir())
        if contents and not (state / MARKER).exists():
            raise DemoError(
                f"--state {state} is not empty and not an earlier demo's: give an empty or "
                "new folder"
            )
        for item in contents:
            if item.is_dir() and not item.is_symlink():
                shutil.rmtree(item)
            else:
                item.unlink()
    state.mkdir(parents=True, exist_ok=True)
    return state, False


def _bind(port: int, what: str) -> socket.socket:
    # IPPROTO_TCP named: asyncio then turns Nagle off (TCP_NODELAY); see sim/server.py.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((HOST, port))
    except OSError as error:
        sock.close()
        raise DemoError(f"cannot listen on {HOST}:{port} for {what}: {error.strerror}") from None
    return sock


def serve_settings(options: DemoOptions, sim_url: str, state: Path) -> ServeSettings:
    """`floatseat serve`'s settings for the simulator: its logs, SQLite in `state`."""
    nodes = LogSink(state / "logs", options.product, options.nodes).followed_nodes()
    speed = options.speed
    # Built from these values only (model_validate reads no FLOATSEAT_* variable): the demo
    # needs no configuration and must not pick up a real instance's.
    return ServeSettings.model_validate(
        {
            "product": options.product,
            "base_url": sim_url,
            "username": "admin",
            "password": "admin",
            "state_dir": state,
            "users_group": USERS_GROUP[options.product],
            "excluded_users": ["admin"],
            "nodes": nodes,
            "policy": demo_policy(),
            "read_existing_logs": True,
            "poll_interval_s": 0.25,
            "coalesce_s": 30.0,  # simulated: half a real second at 60x
            "outbox_interval_s": 1.0,
            "outbox_lease_s": max(60, int(30 * speed)),  # about 30 real seconds
            "outbox_backoff_base_s": max(5, int(speed)),
            "reconcile_interval_s": 600.0,
            "stall_check_interval_s": 1.0,
            "feed_min_quiet_s": 600,
            "host": HOST,
            "port": options.port,
        }
    )


def _setup(options: DemoOptions, sim_url: str, state: Path) -> None:
    """`floatseat setup` on the simulator: pool groups, application access, first seats."""
    directory: ManagedDirectory
    credentials = BasicCredentials("admin", "admin")
    if options.product == "confluence":
        from floatseat.directory.confluence import ConfluenceDirectory

        directory = ConfluenceDirectory.connect(sim_url, credentials)
    else:
        from floatseat.directory.jira import JiraDirectory

        directory = JiraDirectory.connect(sim_url, credentials)
    try:
        setup_options = SetupOptions(reserve=RESERVE, excluded=frozenset({"admin"}))
        try:
            run = prepare_setup(directory, setup_options, {}, state / "setup")
        except SetupRefused as error:
            raise DemoError(f"setting up the simulator was refused: {error}") from None
        run.snapshot.save(run.snapshot_path)
        result = execute(directory, run.plan, on_manual=lambda _step, _error: False)
        if not result.finished:
            raise DemoError(f"setting up the simulator failed: {result.stopped}")
    finally:
        close = getattr(directory, "close", None)
        if callable(close):
            close()


class Demo:
    """The simulator, setup, the service and the web side; `start()`, then `stop()`."""

    def __init__(self, options: DemoOptions) -> None:
        self.options = options
        self.state, self.temporary = prepare_state(options.state)
        (self.state / MARKER).write_text("floatseat demo state; cleared by the next demo\n")
        self.sim_server: SimServer | None = None
        self.health: HealthChecks | None = None
        self.served: Served | None = None
        self.web: object | None = None
        self._web_thread: threading.Thread | None = None
        self._web_socket: socket.socket | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.options.port}/"

    @property
    def sim_url(self) -> str:
        return f"http://{HOST}:{self.options.sim_port}"

    def start(self) -> None:
        """Start everything; the dashboard answers when this returns."""
        o = self.options
        self._web_socket = _bind(o.port, "the dashboard")  # fail early, before any work
        sim_socket = _bind(o.sim_port, "the simulator")
        sim_socket.close()  # SimServer binds it again (SO_REUSEADDR)
        sim = Simulator(
            SimConfig(
                product=o.product,
                version=VERSIONS[o.product],
                users=o.users,
                tier=o.tier,
                log_dir=self.state / "logs",
                seed=o.seed,
                start=START,
                speed=o.speed,
                nodes=o.nodes,
                active_people=False,  # nobody works until setup is done
            )
        )
        self.sim_server = SimServer(sim, host=HOST, port=o.sim_port).start()
        _setup(o, self.sim_url, self.state)
        self.health = HealthChecks(sim)
        self.health.start()
        sim.config.active_people = True
        settings = serve_settings(o, self.sim_url, self.state)
        self.served = build_service(settings, connect_directory(settings), clock=sim.now)
        self.served.start()
        self._start_web()

    def _start_web(self) -> None:
        import uvicorn

        from floatseat.web.app import create_app
        from floatseat.web.settings import WebSettings

        assert self.served is not None and self._web_socket is not None
        web_settings = WebSettings(demo=True, product_url=self.sim_url + "/")
        app = create_app(self.served.runtime, web_settings=web_settings)
        config = uvicorn.Config(
            app, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=2
        )
        server = uvicorn.Server(config)
        self.web = server
        # In a thread, so that uvicorn leaves the signals to `run` (it would re-raise them).
        self._web_thread = threading.Thread(
            target=server.run,
            kwargs={"sockets": [self._web_socket]},
            name="floatseat-demo-web",
            daemon=True,
        )
        self._web_thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            if not self._web_thread.is_alive() or time.monotonic() > deadline:
                raise DemoError("the web side did not start")
            time.sleep(0.02)

    def alive(self) -> bool:
        thread = self._web_thread
        served = self.served
        return (
            thread is not None
            and thread.is_alive()
            and served is not None
            and served.service.alive()
        )

    def stop(self) -> None:
        """Stop the web side, the service (positions saved), the health checks and the
        simulator; remove a temporary state folder. Safe to call twice."""
        server, self.web = self.web, None
        if server is not None:
            server.should_exit = True  # type: ignore[attr-defined]
        if self._web_thread is not None:
            self._web_thread.join(10)
            self._web_thread = None
        if self._web_socket is not None:
            self._web_socket.close()
            self._web_socket = None
        served, self.served = self.served, None
        if served is not None:
            served.stop()
        health, self.health = self.health, None
        if health is not None:
            health.stop()
        sim_server, self.sim_server = self.sim_server, None
        if sim_server is not None:
            sim_server.stop()
        if self.temporary:
            shutil.rmtree(self.state, ignore_errors=True)

    def run(self, ready: Callable[[Demo], None] | None = None) -> None:
        """Start, then serve until SIGTERM or SIGINT (Ctrl-C); always stop cleanly."""
        stop = threading.Event()

        def handle(signum: int, _frame: object) -> None:
            log.info("signal %d: stopping", signum)
            stop.set()

        previous = {s: signal.signal(s, handle) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            self.start()
            if ready is not None:
                ready(self)
            while not stop.is_set() and self.alive():
                stop.wait(0.5)
        finally:
            try:
                self.stop()
            finally:
                for s, h in previous.items():
                    signal.signal(s, h)
