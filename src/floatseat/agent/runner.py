"""`Agent`: follow one node's logs, spool the sightings, and deliver the spool in order.

One thread does everything, a step at a time (`step`): read the logs and spool what they
show (`read_logs`), then send the spooled batches that are due (`deliver`). While the
service cannot be reached, reading and spooling go on and sending waits for its backoff;
see `floatseat.agent.spool` for why nothing is lost or counted twice.

The log says each change of state once: the service unreachable, refusing, reachable again
(with how many batches were drained), the spool full, the spool with room again.
"""

from __future__ import annotations

import logging
import random as _random
import threading
import time
from collections.abc import Callable

from floatseat.agent.batches import Batch, Sighting, make_batches, retry_delay
from floatseat.agent.sender import BatchSender, Delivered, Outcome, Refused
from floatseat.agent.settings import AgentSettings, feed_settings
from floatseat.agent.spool import AgentState, Spool
from floatseat.service.feeds import Feeds
from floatseat.service.settings import ServeSettings

__all__ = ["Agent", "run_agent"]

log = logging.getLogger(__name__)

_SAVE_POSITIONS_S = 5.0  # positions past lines without sightings are saved this often
_DRAIN_BUDGET_S = 2.0  # then the logs get read again, however long the backlog
_SPOOL_RETRY_S = 10.0  # after a failed spool write (a full disk), read again this much later


class Agent:
    """The agent's loop, one `step` at a time; `clock` gives Unix seconds, `random` the
    backoff's spread."""

    def __init__(
        self,
        settings: AgentSettings,
        sender: BatchSender,
        *,
        feed: ServeSettings | None = None,
        clock: Callable[[], float] = time.time,
        random: Callable[[], float] = _random.random,
    ) -> None:
        self.settings = settings
        self.sender = sender
        self.clock = clock
        self.random = random
        self.spool = Spool(settings.spool_dir)
        self._feed_settings = feed if feed is not None else feed_settings(settings)
        self.state: AgentState | None = None
        self.feeds: Feeds | None = None
        self.failures = 0  # sends failed in a row
        self.retry_at = 0.0  # no send before this
        self.drained = 0  # batches delivered since the service came back
        self.failures_seen = False  # since the backlog began
        self._outage_since: float | None = None
        self._last_problem: str | None = None
        self._spool_full = False
        self._last_spooled = 0.0
        self._last_saved = 0.0
        # The followers read past the committed positions and nothing is committed yet: a
        # failure now must not commit where they stand (their lines are in no batch).
        self._unsaved_reads = False
        self._read_at = 0.0  # no reading before this (after a failed spool write)
        self._spool_error: str | None = None

    # -- life ------------------------------------------------------------------------------

    def start(self) -> None:
        """Open the spool (deleting what was never committed) and the followers."""
        now = self.clock()
        self.state = self.spool.open()
        self.feeds = Feeds(self._feed_settings, self.state.positions, now=int(now))
        self._last_spooled = now
        pending = self.spool.pending()
        if pending:  # a backlog from the last run: say when it is gone, as after an outage
            self._outage_since = now
        log.info(
            "agent %s on node %s: sending to %s; %d batches waiting in %s",
            self.state.agent_id,
            self.settings.node,
            self.sender.url,
            len(pending),
            self.settings.spool_dir,
        )

    def close(self) -> None:
        """Commit where the followers stand (unless they read lines that were not spooled:
        a failure stopped the agent), and let go of everything."""
        try:
            if self.feeds is not None and self.state is not None:
                if not self._unsaved_reads:
                    self._commit([])
                self.feeds.close()
        finally:
            self.feeds = None
            self.spool.close()
            self.sender.close()

    def step(self) -> None:
        self.read_logs()
        self.deliver()

    # -- reading ---------------------------------------------------------------------------

    def read_logs(self) -> int:
        """Read the logs and spool what they show (a heartbeat when quiet); batches spooled."""
        assert self.feeds is not None and self.state is not None, "start() first"
        now = self.clock()
        if now < self._read_at or self._is_spool_full():
            return 0
        self._unsaved_reads = True
        polled = self.feeds.poll(int(now))
        sightings = [Sighting(s.user, s.at, s.urgent, s.refused) for s in polled.seen]
        heartbeat = (
            not sightings
            and not self.spool.pending()
            and now - self._last_spooled >= self.settings.heartbeat_s
        )
        if not sightings and not heartbeat:
            # The first read of a run commits too: a first start's identity and positions.
            if not self._last_saved or (
                polled.lines and now - self._last_saved >= _SAVE_POSITIONS_S
            ):
                self._commit([])  # lines without sightings: no need to read them again
            return 0
        log_at = self.feeds.last_growth.get(self.settings.node)
        batches = make_batches(
            sightings,
            agent_id=self.state.agent_id,
            node=self.settings.node,
            first_seq=self.state.next_seq,
            log_at=log_at,
            batch_max=self.settings.batch_max,
        ) or [Batch(self.state.agent_id, self.settings.node, self.state.next_seq, log_at, ())]
        self._commit(batches)
        self._last_spooled = now
        return len(batches)

    def _commit(self, batches: list[Batch]) -> None:
        assert self.feeds is not None and self.state is not None
        state = AgentState(
            self.state.agent_id,
            self.state.next_seq + len(batches),
            self.feeds.positions(),
        )
        try:
            self.spool.spool(batches, state)
        except OSError as error:
            self._spool_failed(error)
            return
        self.state = state
        self._last_saved = self.clock()
        self._unsaved_reads = False
        if self._spool_error is not None:
            log.info("the spool can be written again")
            self._spool_error = None

    def _spool_failed(self, error: OSError) -> None:
        """Go back to what the spool committed: its state as on disk (the write may have
        got that far), and the followers at its positions, so every line not in a committed
        batch is read again. Reading waits a while: a full disk does not empty in a second."""
        assert self.feeds is not None
        problem = f"cannot write the spool in {self.settings.spool_dir} ({error})"
        if problem != self._spool_error:
            self._spool_error = problem
            log.error("%s: reading the logs paused; their lines are read again later", problem)
        self.state = self.spool.reload()
        self.feeds.close()
        now = self.clock()
        self.feeds = Feeds(self._feed_settings, self.state.positions, now=int(now))
        self._unsaved_reads = False
        self._read_at = now + _SPOOL_RETRY_S

    def _is_spool_full(self) -> bool:
        full = self.spool.size_bytes >= self.settings.spool_max_bytes
        if full != self._spool_full:
            self._spool_full = full
            if full:
                log.warning(
                    "spool full (%d MB in %s): reading the logs paused until the service "
                    "takes batches; the logs keep the rest",
                    self.spool.size_bytes >> 20,
                    self.settings.spool_dir,
                )
            else:
                log.info("spool has room again: reading the logs")
        return full

    # -- sending ---------------------------------------------------------------------------

    def deliver(self) -> int:
        """Send the spooled batches that are due, oldest first; batches delivered."""
        started = self.clock()
        if started < self.retry_at:
            return 0
        delivered = 0
        for seq in self.spool.pending():
            if self.clock() - started > _DRAIN_BUDGET_S:
                break
            try:
                batch = self.spool.read(seq)
            except ValueError as error:  # damaged: no retry will mend it
                aside = self.spool.set_aside(seq)
                log.error("batch %d is damaged (%s): set aside as %s", seq, error, aside)
                continue
            except OSError as error:  # perhaps for a moment: keep it, and the order
                log.error("batch %d cannot be read (%s): trying again later", seq, error)
                self.retry_at = self.clock() + _SPOOL_RETRY_S
                break
            outcome = self._send(batch)
            if not isinstance(outcome, Delivered):
                self._failed(outcome)
                break
            self.spool.delivered(seq)
            delivered += 1
            self._succeeded()
        if self._outage_since is not None and not self.spool.pending():
            log.info(
                "%s: %d batches drained in %.0f s",
                "service reachable again" if self.failures_seen else "spool sent",
                self.drained,
                self.clock() - self._outage_since,
            )
            self.failures_seen = False
            self._outage_since = None
            self._last_problem = None
        return delivered

    def _send(self, batch: Batch) -> Outcome:
        outcome = self.sender.send(batch.encode())
        if isinstance(outcome, Delivered) and (outcome.too_old or outcome.ahead):
            log.warning(
                "batch %d: the service left out %d sightings more than a week old and counted "
                "%d stamped ahead of its clock at its own time (fix this node's time sync)",
                batch.seq,
                outcome.too_old,
                outcome.ahead,
            )
        return outcome

    def _succeeded(self) -> None:
        self.failures = 0
        self.retry_at = 0.0
        if self._outage_since is not None:
            self.drained += 1

    def _failed(self, outcome: Outcome) -> None:
        assert not isinstance(outcome, Delivered)
        now = self.clock()
        self.failures += 1
        delay = retry_delay(self.failures, outcome.retry_after, random=self.random)
        self.retry_at = now + delay
        self.failures_seen = True
        if self._outage_since is None:
            self._outage_since = now
            self.drained = 0
        if isinstance(outcome, Refused):
            problem = f"the service refuses the batches ({outcome.message})"
        else:
            problem = f"service unreachable ({outcome.reason})"
        if problem != self._last_problem:
            self._last_problem = problem
            level = logging.ERROR if isinstance(outcome, Refused) else logging.WARNING
            log.log(
                level,
                "%s: keeping %d batches in the spool, retrying with backoff",
                problem,
                len(self.spool.pending()),
            )


def run_agent(settings: AgentSettings, stop: threading.Event) -> None:
    """Run until `stop` is set (SIGTERM): then commit the followers' positions and return."""
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request: not a state
    sender = BatchSender(settings.to_url, settings.token, ca_file=settings.ca_file)
    agent = Agent(settings, sender)
    try:
        agent.start()
        while not stop.is_set():
            agent.step()
            stop.wait(_pause(agent, settings.interval_s))
    finally:
        agent.close()
    log.info("agent stopped; state saved in %s", settings.spool_dir)


def _pause(agent: Agent, interval_s: float) -> float:
    # With a backlog and the service answering, go straight on draining.
    if agent.spool.pending() and agent.clock() >= agent.retry_at and not agent.failures:
        return 0.0
    return interval_s
