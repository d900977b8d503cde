"""The loop of `floatseat serve`: activity in -> decisions -> outbox -> directory.

Two threads, each a plain loop around a `step(now)` that tests call directly with their own
clock:

- `ActivityLoop` (every `poll_interval_s`, 250 ms by default): reads the feeds, coalesces
  the activity, hands it to the engine, saves the feeds' positions after the engine
  committed, keeps the revoke pause in line with the feeds' health, and runs the sweeps
  (one at start, then every `sweep_interval_s`).
- `DirectoryWorker`: the only thread that talks to the directory. It runs the outbox at
  once when a decision queued a move (the runtime wakes it), else every
  `outbox_interval_s`, and reconciles at start and every `reconcile_interval_s`. Keeping
  both on one thread means no move lands between the reads of a reconciliation.

**Coalescing.** Activity of a user who holds no seat goes to the engine at once: that is
the latency path (a refused login to `IUM_Enabled`). A holder's activity only refreshes
their last activity, so it reaches the ledger at most once per `coalesce_s` per user (the
latest time seen wins); urgent activity (a refused login, a seat path) never waits. A
crash loses at most `coalesce_s` of holders' refreshes, which only makes them look a few
seconds idler; the positions saved are those of lines whose activity was committed or is
only such a refresh.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from floatseat.domain.policy import Activity, Sweep
from floatseat.service.errors import DirectoryError, EngineError
from floatseat.service.feeds import Feeds, Seen
from floatseat.service.outbox import OutboxExecutor, PassReport, ShadowOutbox
from floatseat.service.ports import ActivityInbox, SoloLeadership
from floatseat.service.reconcile import Reconciler, ReconcileReport
from floatseat.service.runtime import Runtime

__all__ = ["ActivityLoop", "Coalescer", "DirectoryWorker", "Service"]

POLICY_CHECK_INTERVAL_S = 5.0  # several instances: how soon one adopts another's policy change

log = logging.getLogger(__name__)


@dataclass
class Coalescer:
    """Activity per user: non-holders and urgent activity at once, holders at most once per
    `window_s` (by the service's clock)."""

    window_s: float = 5.0
    pending: dict[str, int] = field(default_factory=dict)  # holder -> latest unsent time
    sent: dict[str, float] = field(default_factory=dict)  # user -> when last sent

    def offer(self, seen: Iterable[Seen], now: float, holders: frozenset[str]) -> list[Activity]:
        """The activity to send now; the rest is kept for `due`."""
        at_once: dict[str, int] = {}
        for item in seen:
            user = item.user
            if item.urgent or user not in holders:
                at_once[user] = max(at_once.get(user, item.at), item.at)
            else:
                self.pending[user] = max(self.pending.get(user, item.at), item.at)
        out = []
        for user, at in at_once.items():
            kept = self.pending.pop(user, None)
            out.append(Activity(user, at if kept is None else max(at, kept)))
            self.sent[user] = now
        return out

    def due(self, now: float) -> list[Activity]:
        """Holders' refreshes whose window has passed."""
        out = []
        for user, at in list(self.pending.items()):
            if now - self.sent.get(user, float("-inf")) >= self.window_s:
                out.append(Activity(user, at))
                del self.pending[user]
                self.sent[user] = now
        if len(self.sent) > 10_000:  # forget who was sent long ago
            horizon = now - self.window_s
            self.sent = {u: t for u, t in self.sent.items() if t >= horizon}
        return out

    def flush(self) -> list[Activity]:
        out = [Activity(u, at) for u, at in self.pending.items()]
        self.pending.clear()
        return out


@dataclass
class StepReport:
    seen: int = 0
    submitted: int = 0
    swept: bool = False
    saved: bool = False


class ActivityLoop:
    """Feeds -> engine, sweeps, and the feed-stall pause."""

    def __init__(
        self,
        runtime: Runtime,
        feeds: Feeds,
        *,
        coalesce_s: float = 5.0,
        sweep_interval_s: float | None = None,
        stall_check_interval_s: float = 5.0,
        save_interval_s: float = 1.0,
    ) -> None:
        self.runtime = runtime
        self.feeds = feeds
        self.coalescer = Coalescer(coalesce_s)
        # None: the policy's `sweep_interval_s`, as it is now (an admin may change it).
        self.fixed_sweep_interval_s = sweep_interval_s
        self.stall_check_interval_s = stall_check_interval_s
        self.save_interval_s = save_interval_s
        self._next_sweep: float | None = None  # None: sweep at the first step
        self._next_stall_check = float("-inf")
        self._last_save = float("-inf")
        self._unsaved = False
        self._names: dict[str, str] = {}
        self._names_version: object = None
        # Refused logins of users the pool does not know (yet): kept a while, in case the
        # reconciliation this triggers places them in the pool.
        self._unknown: dict[str, tuple[Seen, float]] = {}
        self.unknown_wait_s = 120.0
        self.on_unknown_user: Callable[[], None] = lambda: None
        # Agents' batches and followers' activity (several instances), None: none.
        self.inbox: ActivityInbox | None = None

    def begin_term(self, feeds: Feeds | None, now: float) -> None:
        """This instance has just become the leader: read on from the positions the last
        leader saved (in `feeds`), with nothing of an earlier term in memory."""
        if feeds is not None:
            self.feeds.close()
            self.feeds = feeds
        self.coalescer = Coalescer(self.coalescer.window_s)
        self._unknown.clear()
        self._next_sweep = None
        self._next_stall_check = float("-inf")
        self._unsaved = False
        log.info("activity: leading from %d", int(now))

    def step(self, now: float) -> StepReport:
        report = StepReport()
        t = int(now)
        polled = self.feeds.poll(t)
        self.runtime.counters.malformed_lines = self.feeds.malformed
        inbox = self.inbox
        taken = inbox.take() if inbox is not None else []
        # Usernames are compared folded (`Seen.user`): an agent sends them as logged.
        remote = [
            Seen(i.item.user.casefold(), i.item.at, i.item.urgent, i.item.node, i.item.refused)
            for i in taken
        ]
        report.seen = len(polled.seen) + len(remote)
        if polled.lines or polled.seen:
            self._unsaved = True
        state = self.runtime.state()
        names = self._spelling(state.figures.pool)
        seen = self._known([*polled.seen, *remote], names, now)
        holders = frozenset(h.user for h in state.holders)
        events = self.coalescer.offer(seen, now, holders) + self.coalescer.due(now)
        if events:
            self.runtime.submit_all(events)
            report.submitted = len(events)
        if inbox is not None and taken:
            inbox.done(i.id for i in taken)  # committed (or only a coalesced refresh)
        if self._unsaved and (
            now - self._last_save >= self.save_interval_s or any(s.urgent for s in seen)
        ):
            self.save_positions(t)
            report.saved = True
        if now >= self._next_stall_check:
            if inbox is not None:
                self.feeds.remote(inbox.agent_nodes(), t)
            self.runtime.set_stalls(self.feeds.health.stalls(t), t)
            self._next_stall_check = now + self.stall_check_interval_s
        if self._next_sweep is None or now >= self._next_sweep:
            self.runtime.submit(Sweep(t))
            self._next_sweep = now + self.sweep_interval_s
            report.swept = True
        return report

    @property
    def sweep_interval_s(self) -> float:
        if self.fixed_sweep_interval_s is not None:
            return self.fixed_sweep_interval_s
        return float(self.runtime.policy_settings.sweep_interval_s)

    def _known(self, polled: list[Seen], names: dict[str, str], now: float) -> list[Seen]:
        """Pool members' activity, spelled as the directory spells them. Activity of anyone
        else is nobody's seat; a refused login of someone unknown is kept a while and asks
        for a reconciliation: they may be a new user, not placed yet."""
        known = []
        for item in [*(s for s, _ in self._unknown.values()), *polled]:
            spelled = names.get(item.user)
            if spelled is not None:
                known.append(Seen(spelled, item.at, item.urgent, item.node, item.refused))
                self._unknown.pop(item.user, None)
            elif item.refused:
                if item.user not in self._unknown:
                    self.on_unknown_user()
                self._unknown[item.user] = (item, self._unknown.get(item.user, (item, now))[1])
        self._unknown = {
            u: (s, since)
            for u, (s, since) in self._unknown.items()
            if now - since < self.unknown_wait_s
        }
        return known

    def save_positions(self, now: int) -> None:
        with self.runtime.ledger.transaction() as tx:
            tx.save_feed_positions(self.feeds.positions(), now)
        self._last_save = float(now)
        self._unsaved = False

    def close(self, now: int) -> None:
        """Send what the coalescer holds, save the positions, close the files."""
        try:
            pending = self.coalescer.flush()
            if pending:
                self.runtime.submit_all(pending)
            self.save_positions(now)
        finally:
            self.feeds.close()

    def _spelling(self, pool: frozenset[str]) -> dict[str, str]:
        """Canonical (lower-case) name -> the directory's spelling, for the pool."""
        if pool is not self._names_version:
            self._names = {u.casefold(): u for u in pool}
            self._names_version = pool
        return self._names


class DirectoryWorker:
    """The outbox and reconciliation: everything that talks to the directory."""

    def __init__(
        self,
        runtime: Runtime,
        outbox: OutboxExecutor | ShadowOutbox,
        reconciler: Reconciler | None,
        *,
        reconcile_interval_s: float = 300.0,
    ) -> None:
        self.runtime = runtime
        self.outbox = outbox
        self.reconciler = reconciler
        self.reconcile_interval_s = reconcile_interval_s
        self._next_reconcile: float | None = None  # None: at the first step
        self._last_reconcile = float("-inf")
        self._lock = threading.Lock()  # one directory conversation at a time
        self.wakeup = threading.Event()

    def wake(self) -> None:
        self.wakeup.set()

    def begin_term(self) -> int:
        """This instance may call the directory again (it became the leader and its
        grace is over): begin the term of its epoch (once any call of an earlier term is
        over: the lock), take over what a previous leader left in flight, reconcile first.
        The term's epoch; raises `Deposed` if this instance may not act."""
        with self._lock:
            leadership = self.runtime.leadership
            epoch = leadership.begin_term()
            released = leadership.release_in_flight()
            if released:
                log.info("took over %d moves a previous leader left in flight", released)
            self._next_reconcile = None
            return epoch

    def step(self, now: float) -> PassReport | None:
        with self._lock:
            if self.reconciler is not None and (
                self._next_reconcile is None or now >= self._next_reconcile
            ):
                self._next_reconcile = now + self.reconcile_interval_s
                self._reconcile(int(now))
            return self._outbox(int(now))

    def reconcile_soon(self, now: float, at_most_every_s: float = 30.0) -> None:
        """Reconcile at the next step (someone unknown tried to log in), but not more often
        than `at_most_every_s`."""
        if self.reconciler is None:
            return
        if now - self._last_reconcile >= at_most_every_s:
            self._next_reconcile = now
            self.wake()

    def reconcile_now(self, now: int) -> ReconcileReport:
        if self.reconciler is None:
            raise RuntimeError("no directory to reconcile with")
        with self._lock:
            report = self.reconciler.run(now)
        self.wake()
        return report

    def _reconcile(self, now: int) -> None:
        assert self.reconciler is not None
        self._last_reconcile = now
        counters = self.runtime.counters
        try:
            report = self.reconciler.run(now)
        except DirectoryError as error:
            counters.directory_errors_in_a_row += 1
            counters.last_directory_error = f"reconciliation: {error}"
            log.warning("reconciliation failed: %s", error)
            self._next_reconcile = now + min(self.reconcile_interval_s, 30.0)
            return
        counters.directory_errors_in_a_row = 0
        if report.repairs:
            log.info(
                "reconciliation: adopted %d, revoked %d, re-granted %d, placed %d, deactivated %d",
                len(report.adopted),
                len(report.revoked),
                len(report.regranted),
                len(report.placed),
                len(report.deactivated),
            )

    def _outbox(self, now: int) -> PassReport | None:
        counters = self.runtime.counters
        try:
            report = self.outbox.run_once(now)
        except EngineError as error:
            counters.directory_errors_in_a_row += 1
            counters.last_directory_error = f"outbox: {error}"
            log.warning("outbox pass failed: %s", error)
            return None
        if report.failed:
            counters.directory_errors_in_a_row += 1
            counters.last_directory_error = "outbox: a move failed (see the audit log)"
        elif report.applied:
            counters.directory_errors_in_a_row = 0
        return report


class Service:
    """Runs the two loops on threads until `stop()`."""

    def __init__(
        self,
        runtime: Runtime,
        activity: ActivityLoop,
        directory: DirectoryWorker,
        *,
        poll_interval_s: float = 0.25,
        outbox_interval_s: float = 2.0,
        heartbeat_s: float = 1.0,
        clock: Callable[[], float] = time.time,
        feeds_factory: Callable[[], Feeds] | None = None,
    ) -> None:
        self.runtime = runtime
        self.activity = activity
        self.directory = directory
        self.poll_interval_s = poll_interval_s
        self.outbox_interval_s = outbox_interval_s
        self.heartbeat_s = heartbeat_s
        self.clock = clock
        # Builds the feeds from the positions saved in the ledger, for a new leader's term.
        self.feeds_factory = feeds_factory
        self.stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        # The epochs of the activity loop's and the directory worker's terms (None: none):
        # a re-election, even one the loops did not see as a loss, is a new term.
        self._activity_term: int | None = None
        self._directory_term: int | None = None
        runtime.wake_directory = directory.wake
        runtime.reconciler = lambda: directory.reconcile_now(int(clock()))
        activity.on_unknown_user = lambda: directory.reconcile_soon(clock())

    def start(self) -> None:
        """Campaign once; as the leader, reconcile and run the outbox once (so that the pool
        is known before the first line is read); then start the loops."""
        now = self.clock()
        leadership = self.runtime.leadership
        if leadership.campaign():
            self._activity_term = leadership.epoch  # the feeds were built from the saved positions
            self.runtime.apply_flags(int(now))
            if leadership.acting():
                try:
                    self._directory_term = self.directory.begin_term()
                    self.directory.step(now)
                except EngineError as error:
                    log.warning("first reconciliation: %s", error)
        loops = [
            ("activity", self._run_activity),
            ("directory", self._run_directory),
            ("leadership", self._run_leadership),
        ]
        if not isinstance(leadership, SoloLeadership):
            # Its own thread: a slow read (a pool wait) must not hold up the heartbeat.
            loops.append(("policy", self._run_policy_refresh))
        for name, target in loops:
            thread = threading.Thread(target=target, name=f"floatseat-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the loops (the leader saves the feeds' positions), then resign."""
        self.stopping.set()
        self.directory.wake()
        for thread in self._threads:
            thread.join(timeout)
        calls_over = not any(t.is_alive() for t in self._threads)
        self._threads.clear()
        self.runtime.leadership.resign(calls_over=calls_over)

    def alive(self) -> bool:
        return bool(self._threads) and all(t.is_alive() for t in self._threads)

    def _run_leadership(self) -> None:
        leadership = self.runtime.leadership
        while not self.stopping.is_set():
            was = leadership.leading
            try:
                now_leading = leadership.campaign()
            except Exception:  # never let the campaign die: a follower must be able to lead
                log.exception("leader election failed; trying again")
                now_leading = False
            if now_leading and not was:
                self.directory.wake()
            self.stopping.wait(self.heartbeat_s)

    def _run_policy_refresh(self) -> None:
        """Adopt the policy an admin changed on another instance (several instances only)."""
        while not self.stopping.wait(POLICY_CHECK_INTERVAL_S):
            try:
                self.runtime.refresh_policy()
            except EngineError as error:
                log.warning("reading the policy overrides: %s", error)
            except Exception:  # a pool timeout, say: try again at the next turn
                log.exception("reading the policy overrides failed; trying again later")

    def _activity_turn(self, now: float) -> None:
        leadership = self.runtime.leadership
        epoch = leadership.epoch
        leading = epoch is not None and leadership.leading
        if leading and self._activity_term != epoch:
            feeds = self.feeds_factory() if self.feeds_factory is not None else None
            self.activity.begin_term(feeds, now)
            self._activity_term = epoch
            self.runtime.apply_flags(int(now))
        elif not leading and self._activity_term is not None:
            log.info("activity: following (another instance leads)")
            self._activity_term = None
        if leading:
            self.activity.step(now)

    def _run_activity(self) -> None:
        try:
            while not self.stopping.is_set():
                started = time.monotonic()
                try:
                    self._activity_turn(self.clock())
                except EngineError as error:
                    log.warning("activity loop: %s", error)
                rest = self.poll_interval_s - (time.monotonic() - started)
                if rest > 0:
                    self.stopping.wait(rest)
        finally:
            try:
                leadership, epoch = self.runtime.leadership, self._activity_term
                if epoch is not None and epoch == leadership.epoch and leadership.leading:
                    self.activity.close(int(self.clock()))
                else:
                    self.activity.feeds.close()
            except EngineError as error:
                log.warning("saving the feeds' positions at stop failed: %s", error)

    def _directory_turn(self, now: float) -> None:
        leadership = self.runtime.leadership
        if not leadership.acting():
            self._directory_term = None
            return
        if self._directory_term != leadership.epoch:  # a new leadership, or a re-election
            self._directory_term = None
            self._directory_term = self.directory.begin_term()
        self.directory.step(now)

    def _run_directory(self) -> None:
        while not self.stopping.is_set():
            self.directory.wakeup.clear()
            try:
                self._directory_turn(self.clock())
            except EngineError as error:  # the ledger failed, or deposed: try again later
                log.warning("directory worker: %s", error)
            except Exception:  # a bug must not silently stop every grant
                log.exception("directory worker failed; retrying")
            self.directory.wakeup.wait(self.outbox_interval_s)


def run_until_signalled(
    service: Service,
    *,
    app: object | None = None,
    host: str = "127.0.0.1",
    port: int = 8080,
) -> None:
    """Start `service`, serve `app` (an ASGI app) on host:port if given, and stop cleanly on
    SIGTERM or SIGINT: the web side shuts down, the loops finish their step, the feeds'
    positions are saved. Raises RuntimeError if the web side stops on its own (a port in
    use, for example)."""
    import signal

    server: Any = None
    web: threading.Thread | None = None
    stop = threading.Event()

    def handle(signum: int, _frame: object) -> None:
        log.info("signal %d: stopping", signum)
        stop.set()

    # Before the first reconciliation, which may take seconds: a SIGTERM then still stops
    # cleanly once it is done, instead of killing the process.
    previous = {s: signal.signal(s, handle) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        service.start()
        log.info("running: following the logs, moving seats")
        if app is not None:
            import uvicorn

            # No proxy headers: uvicorn would otherwise take X-Forwarded-For from loopback as
            # the client's address, and the web side judges its trusted proxies by that
            # address. No access log: waiting-room links carry tokens in their query.
            config = uvicorn.Config(
                app,  # type: ignore[arg-type]
                host=host,
                port=port,
                log_level="info",
                proxy_headers=False,
                access_log=False,
            )
            server = uvicorn.Server(config)
            # From a thread: in the main thread uvicorn captures SIGTERM and SIGINT and raises
            # them again once it has shut down, which kills the process before the loops stop.
            web = threading.Thread(target=server.run, name="floatseat-web", daemon=True)
            web.start()
        while not stop.is_set() and service.alive() and (web is None or web.is_alive()):
            stop.wait(0.5)
        if web is not None and not web.is_alive() and not stop.is_set():
            raise RuntimeError(f"the web side on {host}:{port} stopped (see the log above)")
    finally:
        if server is not None and web is not None:
            server.should_exit = True
            web.join(15)
        service.stop()
        for s, h in previous.items():
            signal.signal(s, h)
