"""Serving a `Simulator` over HTTP: in a background thread (tests) or in the foreground."""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType

import uvicorn

from floatseat.sim.app import create_app
from floatseat.sim.core import SimConfig, Simulator

__all__ = ["SimServer", "Ticker"]


class Ticker:
    """A daemon thread playing `sim`'s due work every `every_s` real seconds; a context
    manager. Does nothing with a manual clock (speed None)."""

    def __init__(self, sim: Simulator, every_s: float = 0.2) -> None:
        self.sim = sim
        self.every_s = every_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Ticker:
        if self.sim.config.speed is not None:
            self._thread = threading.Thread(
                target=self._run, name="floatseat-sim-tick", daemon=True
            )
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self.sim.tick()

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None


class SimServer:
    """uvicorn serving `sim` on 127.0.0.1 from a daemon thread; a context manager.

    The socket is bound before the thread starts (port 0: a free one), so `base_url` is
    known at once; `start()` returns when the server accepts connections. With a clock that
    runs on its own (`speed`), a ticker thread plays the virtual users every `tick_s`.
    """

    def __init__(
        self,
        sim: Simulator | SimConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tick_s: float = 0.2,
    ) -> None:
        if not isinstance(sim, Simulator):
            sim = Simulator(sim)
        self.sim = sim
        self.host = host
        self.port = port
        self.tick_s = tick_s
        self._socket: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._ticker: Ticker | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> SimServer:
        # IPPROTO_TCP named: asyncio then turns Nagle off (TCP_NODELAY), as Tomcat does;
        # without it every answer waits ~40 ms for a delayed ACK.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        self._socket = sock
        config = uvicorn.Config(
            create_app(self.sim),
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=2,
        )
        server = uvicorn.Server(config)
        self._server = server
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="floatseat-sim", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the simulator did not start")
            time.sleep(0.01)
        self._ticker = Ticker(self.sim, self.tick_s).__enter__()
        return self

    def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.__exit__(None, None, None)
            self._ticker = None
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def __enter__(self) -> SimServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
