"""Leader election on PostgreSQL, with a fencing epoch (docs/operations.md, "High availability").

Every `floatseat serve` instance on one PostgreSQL ledger campaigns for the session-level
advisory lock `LEADER_LOCK` on a connection of its own. The one that holds it is the leader:
it raises the `leadership` row's epoch by one and works under that epoch. PostgreSQL ends
the lock with the session, so a leader that dies (its socket closes) or whose connection is
cut or terminated frees it at once for the next campaign.

**Fencing.** A leader calls the directory in a *term*: `begin_term()`, once its takeover
grace is over, records the epoch the term runs under; stepping down ends it. Before every
directory call the leader runs `check()`, which refuses (raises `Deposed`) unless the term's
epoch is the current one and the grace is over, and then asks the database, over that same
connection, whether the epoch is still its own. An answer proves that the session (hence
the lock) is alive at that moment, so no other instance leads; a lost connection, a newer
epoch, or a local lease run out (no heartbeat for `lease_s`) raises `Deposed` and the call
is not made. Work of an earlier term is refused even after a re-election: its epoch is not
the current one, and a new term begins only after the new grace, on the directory worker's
thread, once that work is over. A call that passed the check may still be under way when
its leader loses the lock; a new leader therefore waits `takeover_grace_s` (longer than any
directory call may take) before its first directory call, and then takes over the moves
left in flight. A leader that stops cleanly hands over with no grace only when its own grace
is over: before that, the call of the leader before it may still land.

**A hung leader** (stopped, swapping) keeps its socket and thus its lock. Followers watch the
row's heartbeat, written with the database's clock; one that finds it older than
`leader_timeout_s` ends the leader's session (`pg_terminate_backend`, allowed between
sessions of the same role), which frees the lock. Only the holder of this database's lock
whose session has been quiet that long is ended, in the statement that finds the heartbeat
old: never a leader of another database on the same server, nor one just elected. When the
hung process resumes, its lease has run out and its connection is gone: it steps down
without acting.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import sqlalchemy as sa

from floatseat.service.errors import Deposed
from floatseat.service.ports import LeaderInfo, MoveState
from floatseat.store.schema import leadership, outbox

log = logging.getLogger(__name__)

# Any constant will do, the same in every floatseat process (not the migration lock's).
LEADER_LOCK = 0x666C_6F61_7473_6C64  # "floatsld"
_APPLICATION_NAME = "floatseat-leader"
# The database's clock: the instances' clocks may disagree.
_NOW = sa.literal_column(
    "CAST(FLOOR(EXTRACT(EPOCH FROM clock_timestamp())) AS BIGINT)", sa.BigInteger
)


def read_leadership(engine: sa.Engine) -> tuple[LeaderInfo | None, int]:
    """The `leadership` row and the database's clock now (for `floatseat doctor`)."""
    with engine.connect() as connection:
        info = _leader_info(connection)
        now = int(connection.execute(sa.select(_NOW)).scalar_one())
    return info, now


def _leader_info(connection: sa.Connection) -> LeaderInfo | None:
    row = connection.execute(sa.select(leadership)).first()
    if row is None:
        return None
    return LeaderInfo(row.epoch, row.leader, row.since, row.heartbeat_at)


class PostgresLeadership:
    """Campaign, heartbeat and fence for one instance; thread-safe.

    `campaign()` is called every `heartbeat_s` by the service's leadership thread: it renews
    the leadership while leading, else tries to take it (and, where the leader's heartbeat is
    too old, ends its session first)."""

    def __init__(
        self,
        engine: sa.Engine,
        instance: str,
        *,
        lease_s: float = 5.0,
        leader_timeout_s: float = 15.0,
        takeover_grace_s: float = 35.0,
        monotonic: Callable[[], float] = time.monotonic,
        on_change: Callable[[bool, int], None] = lambda _leading, _epoch: None,
    ) -> None:
        if engine.dialect.name != "postgresql":
            raise ValueError("leader election needs the ledger on PostgreSQL")
        self.engine = engine
        self.instance = instance
        self.lease_s = lease_s
        self.leader_timeout_s = leader_timeout_s
        self.takeover_grace_s = takeover_grace_s
        self.monotonic = monotonic
        self.on_change = on_change
        self.epoch: int | None = None
        self._term: int | None = None  # the epoch this instance's directory term began under
        self._unended_epoch: int | None = None  # a silent leader this instance could not end
        self._connection: sa.Connection | None = None
        self._renewed_at = float("-inf")
        self._since = float("-inf")  # monotonic time this instance became leader
        self._lock = threading.RLock()  # the lock connection serves one thread at a time

    # -- state -----------------------------------------------------------------------------

    @property
    def leading(self) -> bool:
        """Holding the lock with a fresh lease (may still be within the takeover grace)."""
        with self._lock:
            return self.epoch is not None and self.monotonic() - self._renewed_at < self.lease_s

    def acting(self) -> bool:
        """Leading, and past the takeover grace: may call the directory."""
        with self._lock:
            return self.leading and self.monotonic() - self._since >= self.takeover_grace_s

    def info(self) -> LeaderInfo | None:
        with self.engine.connect() as connection:
            return _leader_info(connection)

    # -- fencing ---------------------------------------------------------------------------

    def begin_term(self) -> int:
        """Begin a directory term under the current epoch (past the takeover grace); its
        epoch. `check()` lets calls through only in the term of the current epoch, so the
        caller begins it once the work of any earlier term is over."""
        with self._lock:
            if not self.acting():
                raise Deposed(f"{self.instance} may not act (not leading, or in its grace)")
            assert self.epoch is not None
            self._term = self.epoch
            return self._term

    def check(self) -> None:
        """Raise `Deposed` unless this instance acts in the term of its current epoch, and
        leads now, as the database confirms."""
        with self._lock:
            epoch = self.epoch
            if epoch is None or self._connection is None:
                raise Deposed(f"{self.instance} is not the leader")
            if self.monotonic() - self._renewed_at >= self.lease_s:
                self._step_down("its lease ran out (no heartbeat)")
                raise Deposed(f"{self.instance}'s leadership lease ran out")
            if self._term != epoch:  # work of an earlier term, or none begun yet
                raise Deposed(f"{self.instance} has begun no term under epoch {epoch}")
            if self.monotonic() - self._since < self.takeover_grace_s:
                raise Deposed(f"{self.instance} is still in its takeover grace")
            try:
                current = self._connection.execute(sa.select(leadership.c.epoch)).scalar_one()
            except sa.exc.DBAPIError as error:
                self._step_down(f"its database connection failed: {error.orig}")
                raise Deposed(f"{self.instance} lost its database connection") from error
            if current != epoch:
                self._step_down(f"epoch {current} is newer than its {epoch}")
                raise Deposed(f"{self.instance} was deposed: epoch {current} > {epoch}")

    # -- campaigning -----------------------------------------------------------------------

    def campaign(self) -> bool:
        """Renew the leadership, or try to take it; whether this instance leads now."""
        with self._lock:
            if self.epoch is not None:
                return self._renew()
            try:
                return self._try_lead()
            except sa.exc.DBAPIError as error:
                log.warning("leader election: %s", error.orig)
                self._close()
                return False

    def _connect(self) -> sa.Connection:
        if self._connection is None:
            connection = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            # Let the server notice a vanished leader within seconds, not hours, and name the
            # session so that a follower can end a hung leader's session.
            for statement in (
                "SET tcp_keepalives_idle = 5",
                "SET tcp_keepalives_interval = 2",
                "SET tcp_keepalives_count = 3",
                f"SET application_name = '{_APPLICATION_NAME}'",
            ):
                connection.exec_driver_sql(statement)
            self._connection = connection
        return self._connection

    def _try_lead(self) -> bool:
        connection = self._connect()
        got = connection.execute(sa.select(sa.func.pg_try_advisory_lock(LEADER_LOCK))).scalar()
        if not got:
            self._end_hung_leader(connection)
            return False
        # Nobody else writes the row while we hold the lock; a leader that resigned cleanly
        # left it without a name, and made its last directory call before that.
        previous = connection.execute(sa.select(leadership.c.leader)).scalar_one()
        epoch = connection.execute(  # autocommit: the new epoch is public at once
            sa.update(leadership)
            .where(leadership.c.id == 1)
            .values(
                epoch=leadership.c.epoch + 1, leader=self.instance, since=_NOW, heartbeat_at=_NOW
            )
            .returning(leadership.c.epoch)
        ).scalar_one()
        now = self.monotonic()
        self.epoch, self._renewed_at = int(epoch), now
        # No grace after a clean handover (or on a new ledger): no call can be under way.
        self._since = now if previous is not None else now - self.takeover_grace_s
        log.info("%s leads under epoch %d", self.instance, epoch)
        self.on_change(True, int(epoch))
        return True

    def _renew(self) -> bool:
        assert self._connection is not None and self.epoch is not None
        try:
            renewed = self._connection.execute(
                sa.update(leadership)
                .where(leadership.c.id == 1, leadership.c.epoch == self.epoch)
                .values(heartbeat_at=_NOW)
            ).rowcount
        except sa.exc.DBAPIError as error:
            self._step_down(f"its database connection failed: {error.orig}")
            return False
        if renewed != 1:
            self._step_down("another instance took the leadership")
            return False
        self._renewed_at = self.monotonic()
        return True

    def _end_hung_leader(self, connection: sa.Connection) -> None:
        """End the session of a leader whose heartbeat is older than `leader_timeout_s`.

        One statement finds the old heartbeat and ends the session that holds the lock in
        this database (advisory locks are per database: the same key locks nothing in the
        others; objsubid 1 is the single bigint key form), and only if that session ran no
        statement for as long: a leader elected since, whose row is not written yet, has
        just taken the lock and is left alone."""
        ended = connection.execute(
            sa.text(
                "SELECT r.leader, r.epoch, pg_terminate_backend(l.pid) AS ended "
                "FROM leadership r "
                "JOIN pg_locks l ON l.locktype = 'advisory' AND l.granted "
                "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                "AND l.classid = :hi AND l.objid = :lo AND l.objsubid = 1 "
                "AND l.pid <> pg_backend_pid() "
                "JOIN pg_stat_activity a ON a.pid = l.pid "
                "AND a.state_change < clock_timestamp() - make_interval(secs => :timeout) "
                "WHERE r.id = 1 AND r.heartbeat_at < "
                "FLOOR(EXTRACT(EPOCH FROM clock_timestamp())) - :timeout"
            ),
            {
                "lo": LEADER_LOCK & 0xFFFF_FFFF,
                "hi": LEADER_LOCK >> 32,
                "timeout": float(self.leader_timeout_s),
            },
        ).first()
        if ended is not None and ended.ended:
            log.warning(
                "%s ended the session of leader %s (epoch %d): no heartbeat for over %g s",
                self.instance,
                ended.leader,
                ended.epoch,
                self.leader_timeout_s,
            )
            return
        self._warn_if_unended(connection)

    def _warn_if_unended(self, connection: sa.Connection) -> None:
        """Say so (once per epoch) when a leader has been silent for twice the timeout and
        is still not ended: this role cannot see or signal its session (pg_stat_activity
        hides another role's sessions), so no instance leads until a human steps in."""
        silent = connection.execute(
            sa.select(leadership.c.leader, leadership.c.epoch).where(
                leadership.c.id == 1,
                leadership.c.leader.is_not(None),
                leadership.c.heartbeat_at < _NOW - 2 * self.leader_timeout_s,
            )
        ).first()
        if silent is None or silent.epoch == self._unended_epoch:
            return
        self._unended_epoch = silent.epoch
        log.error(
            "leader %s (epoch %d) has sent no heartbeat for over %g s, and %s cannot end its "
            "session: connect every instance as the same database role (or grant this one "
            "pg_signal_backend and pg_read_all_stats); until then no instance leads",
            silent.leader,
            silent.epoch,
            2 * self.leader_timeout_s,
            self.instance,
        )

    def release_in_flight(self) -> int:
        """Make the moves a previous leader left in flight due now (after the grace, when it
        can no longer be calling); they stay counted as in flight until tried again."""
        self.check()
        with self.engine.begin() as connection:
            now = connection.execute(sa.select(_NOW)).scalar_one()
            done = connection.execute(
                sa.update(outbox)
                .where(outbox.c.state == MoveState.IN_FLIGHT.value, outbox.c.lease_until > now)
                .values(next_try_at=now, lease_until=now)
            ).rowcount
        return int(done)

    # -- stepping down ---------------------------------------------------------------------

    def resign(self, *, calls_over: bool = True) -> None:
        """Give up the leadership (at a stop). With `calls_over` (no directory call of this
        instance can still be under way) and its own takeover grace over (no call of an
        earlier leader either), the next leader needs no grace."""
        with self._lock:
            if self._connection is not None and self.epoch is not None:
                grace_over = self.monotonic() - self._since >= self.takeover_grace_s
                try:
                    if calls_over and grace_over:
                        self._connection.execute(
                            sa.update(leadership)
                            .where(leadership.c.id == 1, leadership.c.epoch == self.epoch)
                            .values(leader=None)
                        )
                    self._connection.execute(sa.select(sa.func.pg_advisory_unlock(LEADER_LOCK)))
                except sa.exc.DBAPIError:
                    pass
            self._step_down("it stopped")

    def _step_down(self, why: str) -> None:
        epoch, self.epoch, self._term = self.epoch, None, None
        self._close()
        if epoch is not None:
            log.warning("%s no longer leads (epoch %d): %s", self.instance, epoch, why)
            self.on_change(False, epoch)

    def _close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.invalidate()  # never back to the pool: it may hold the lock
                connection.close()
            except sa.exc.DBAPIError:
                pass
