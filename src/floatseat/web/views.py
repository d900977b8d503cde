"""Read models for the API and the pages: status, holders, the queue, the audit log, history.

Plain functions over the runtime and the ledger's database; the routes only shape their
results. Times are whole seconds since the epoch, as in the domain.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import sqlalchemy as sa

from floatseat.domain.policy import PolicySettings, PolicySnapshot, SeatPolicy, Waiter
from floatseat.service.ports import AuditKind, MoveState
from floatseat.store.schema import audit_log, outbox
from floatseat.web.ports import WebRuntime

__all__ = [
    "AuditPage",
    "AuditQuery",
    "AuditRow",
    "HolderView",
    "InstanceRole",
    "Status",
    "UserView",
    "WaiterView",
    "holders",
    "leadership_text",
    "queue",
    "queue_position",
    "read_status",
    "search_audit",
    "seat_history",
    "user_view",
]

# Audit rules whose grant puts a pinned user in the licensed group: a fixed seat, not a
# floating one, so the seats chart leaves it out. (floatseat.service.engine.PIN_BEGAN_RULE)
_FIXED_SEAT_GRANTS = ("grant-pin-began",)
ADMIN_KIND = AuditKind.ADMIN.value  # admin actions of the web side (pins, accounts, ...)

# This instance's part (high availability; `RuntimeStatus.role`): "solo" on SQLite; on
# PostgreSQL "leader", "leader-taking-over" (leads, still in the takeover grace: no directory
# call yet) or "follower".
InstanceRole = Literal["solo", "leader", "leader-taking-over", "follower"]
_ROLES: dict[str, InstanceRole] = {
    "solo": "solo",
    "leader": "leader",
    "leader-taking-over": "leader-taking-over",
    "follower": "follower",
}


@dataclass(frozen=True)
class Status:
    """The service's figures as the dashboard and the API show them."""

    now: int
    capacity: int
    seats_held: int
    queue_length: int
    pinned: int
    tier: int | None
    licensed: int | None
    licence_reported_at: int | None
    revokes_paused: str | None
    frozen: bool
    shadow: bool
    stalled_feeds: tuple[str, ...]
    feed_lag_s: Mapping[str, float]
    outbox_backlog: int
    directory_errors: int
    last_reconciliation: int | None
    drift_repairs: int
    role: InstanceRole = "solo"
    instance: str = "solo"
    leader: str | None = None  # the leading instance, as the ledger names it; None: nobody
    epoch: int | None = None  # the leadership epoch; None when solo
    warnings: tuple[str, ...] = field(default=())

    @property
    def leads(self) -> bool:
        """This instance leads (solo, acting, or taking over)."""
        return self.role != "follower"


def read_status(runtime: WebRuntime, snapshot: PolicySnapshot, now: int) -> Status:
    """The runtime's status, with what it does not report worked out from the ledger.

    The runtime's `status()` is read by attribute name: capacity, seats_held, queue_length,
    pinned, tier, licensed, revokes_paused, shadow, frozen, stalled_feeds, feed_lag_s,
    outbox_backlog, directory_errors, last_reconciliation, drift_repairs, and (high
    availability) role, instance, leader, epoch: a runtime without them is "solo".
    """
    reported = runtime.status()
    cache: dict[str, Any] = {}

    def ledger_figures(name: str) -> Any:
        """What the ledger says, read only if the runtime left something out (and only the
        part that is needed: the licence report, the outbox, or the policy's capacity)."""
        if name in ("tier", "licensed", "licence_reported_at"):
            if "tier" not in cache:
                with runtime.ledger.transaction() as tx:
                    report = tx.licence_report()
                cache.update(
                    tier=report.tier if report else None,
                    licensed=report.licensed if report else None,
                    licence_reported_at=report.reported_at if report else None,
                )
        elif name in ("outbox_backlog", "directory_errors"):
            if "outbox_backlog" not in cache:
                backlog, failing = _outbox_figures(runtime.ledger.engine)
                cache.update(outbox_backlog=backlog, directory_errors=failing)
        elif name not in cache:
            cache[name] = SeatPolicy.restore(runtime.engine.settings, snapshot).capacity()
        return cache[name]

    def get(name: str, default: Callable[[], object] = lambda: None) -> object:
        value = getattr(reported, name, None)
        return default() if value is None else value

    def from_ledger(name: str) -> Callable[[], object]:
        return lambda: ledger_figures(name)

    status = Status(
        now=now,
        capacity=_int(get("capacity", from_ledger("capacity"))),
        seats_held=_int(get("seats_held", lambda: len(snapshot.holders))),
        queue_length=_int(get("queue_length", lambda: len(snapshot.waiters))),
        pinned=_int(get("pinned", lambda: len(snapshot.pinned))),
        tier=_opt_int(get("tier", from_ledger("tier"))),
        licensed=_opt_int(get("licensed", from_ledger("licensed"))),
        licence_reported_at=_opt_int(
            get("licence_reported_at", from_ledger("licence_reported_at"))
        ),
        revokes_paused=str(get("revokes_paused", lambda: snapshot.revokes_paused) or "") or None,
        frozen=bool(get("frozen", lambda: False)),
        shadow=bool(get("shadow", lambda: False)),
        stalled_feeds=tuple(_names(get("stalled_feeds", lambda: ()))),
        feed_lag_s=_lags(get("feed_lag_s", dict)),
        outbox_backlog=_int(get("outbox_backlog", from_ledger("outbox_backlog"))),
        directory_errors=_int(get("directory_errors", from_ledger("directory_errors"))),
        last_reconciliation=_opt_int(get("last_reconciliation")),
        drift_repairs=_int(get("drift_repairs", lambda: 0)),
        role=_role(get("role", lambda: "solo")),
        instance=str(get("instance", lambda: "solo")),
        leader=_opt_str(get("leader")),
        epoch=_opt_int(get("epoch")),
    )
    return _with_warnings(status)


def leadership_text(s: Status) -> str | None:
    """Who this instance is and who leads, in words for the dashboard's header; None when
    solo (one instance needs no badge). dashboard.js words it the same way as it polls."""
    epoch = "" if s.epoch is None else f" (epoch {s.epoch})"
    if s.role == "solo":
        return None
    if s.role == "leader":
        return f"{s.instance} · leader{epoch}"
    if s.role == "leader-taking-over":
        resume = "directory moves resume within seconds"
        return f"{s.instance} · taking over as leader{epoch}: {resume}"
    leader = f"leader: {s.leader}" if s.leader else "no leader at the moment"
    return f"{s.instance} · follower — {leader}{epoch}"


def _role(value: object) -> InstanceRole:
    role = _ROLES.get(str(value))
    if role is None:
        raise ValueError(f"unknown instance role {value!r}")
    return role


def _with_warnings(s: Status) -> Status:
    warnings = []
    if s.shadow:
        warnings.append("Shadow mode: floatseat decides and audits, but moves nobody.")
    if s.frozen:
        warnings.append(f"Frozen: no idle revokes ({s.revokes_paused or 'no reason given'}).")
    elif s.revokes_paused:
        warnings.append(f"Idle revokes are paused: {s.revokes_paused}.")
    if s.stalled_feeds:
        warnings.append(
            "Stalled activity feeds (idle revokes stop): " + ", ".join(s.stalled_feeds) + "."
        )
    if s.directory_errors:
        warnings.append(f"{s.directory_errors} directory moves are failing; they are retried.")
    if s.outbox_backlog:
        warnings.append(f"{s.outbox_backlog} directory moves wait in the outbox.")
    if s.drift_repairs:
        warnings.append(
            f"Reconciliation repaired {s.drift_repairs} memberships edited outside floatseat."
        )
    if s.licensed is not None and s.tier is not None and s.licensed > s.tier:
        warnings.append(f"The product reports {s.licensed} licensed users over a tier of {s.tier}.")
    return Status(**{**s.__dict__, "warnings": tuple(warnings)})


def _outbox_figures(engine: sa.Engine) -> tuple[int, int]:
    """Unfinished moves, and those among them whose last attempt failed."""
    unfinished = outbox.c.state.in_((MoveState.PENDING.value, MoveState.IN_FLIGHT.value))
    query = sa.select(
        sa.func.count(),
        sa.func.count(outbox.c.last_error),
    ).where(unfinished)
    with engine.connect() as c:
        row = c.execute(query).one()
    return int(row[0]), int(row[1])


def _int(value: object) -> int:
    return int(value) if isinstance(value, int | float | str) else len(_names(value))


def _opt_int(value: object) -> int | None:
    return None if value is None else _int(value)


def _opt_str(value: object) -> str | None:
    return None if value is None else str(value)


def _names(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return [str(k) for k in value]
    if isinstance(value, Sequence | set | frozenset):
        return [str(getattr(v, "node", getattr(v, "name", v))) for v in value]
    return []


def _lags(value: object) -> dict[str, float]:
    if isinstance(value, Mapping):
        return {str(k): float(v) for k, v in value.items()}
    return {}


# -- holders and the queue -------------------------------------------------------------------


@dataclass(frozen=True)
class HolderView:
    user: str
    granted_at: int
    last_activity: int
    expires_at: int  # when the seat may be revoked for idleness


def holders(snapshot: PolicySnapshot, settings: PolicySettings) -> list[HolderView]:
    """Who holds a floating seat, longest held first."""
    rows = [
        HolderView(
            h.user,
            h.granted_at,
            h.last_activity,
            max(h.last_activity + settings.idle_timeout_s, h.granted_at + settings.min_hold_s),
        )
        for h in snapshot.holders
    ]
    return sorted(rows, key=lambda h: (h.granted_at, h.user))


@dataclass(frozen=True)
class WaiterView:
    user: str
    position: int  # 1: served next
    queued_at: int
    estimated_wait_s: int | None  # None: no estimate (no seats, or revokes paused)


def queue(
    snapshot: PolicySnapshot, settings: PolicySettings, capacity: int, now: int
) -> list[WaiterView]:
    """The waiting line in the order the policy serves it, with an estimated wait each."""
    ordered = _service_order(snapshot.waiters, settings, now)
    free_at = _seat_free_times(snapshot, settings, capacity, now)
    out = []
    for index, waiter in enumerate(ordered):
        wait = max(0, free_at[index] - now) if index < len(free_at) else None
        out.append(WaiterView(waiter.user, index + 1, waiter.queued_at, wait))
    return out


def queue_position(
    snapshot: PolicySnapshot, settings: PolicySettings, user: str, now: int
) -> int | None:
    """`user`'s place in the waiting line (1: served next), as `queue` gives it; None if
    not waiting. Counts who comes first instead of sorting the line."""
    key = _service_key(settings, now)
    mine = next((key(w) for w in snapshot.waiters if w.user == user), None)
    if mine is None:
        return None
    return 1 + sum(1 for w in snapshot.waiters if key(w) < mine)


def _service_order(waiters: Sequence[Waiter], settings: PolicySettings, now: int) -> list[Waiter]:
    """The policy's service order (`SeatPolicy._service_order`): rank with aging, then time."""
    return sorted(waiters, key=_service_key(settings, now))


def _service_key(settings: PolicySettings, now: int) -> Callable[[Waiter], tuple[int, int, str]]:
    aging = settings.queue_aging_s

    def key(w: Waiter) -> tuple[int, int, str]:
        rank = w.rank + ((now - w.queued_at) // aging if aging else 0)
        return (-rank, w.queued_at, w.user)

    return key


def _seat_free_times(
    snapshot: PolicySnapshot, settings: PolicySettings, capacity: int, now: int
) -> list[int]:
    """When each seat could go to a waiter, earliest first, if nobody becomes active again.

    A free seat now; a holder's once the rules may take it (pre-emption or idle expiry,
    never before the minimum hold). While revokes are paused only free seats count.
    """
    free = max(0, capacity - len(snapshot.holders))
    times = [now] * free
    if snapshot.revokes_paused is None:
        idle = settings.idle_timeout_s
        if settings.preempt:
            idle = min(idle, settings.preempt_after_s)
        times.extend(
            sorted(
                max(h.last_activity + idle, h.granted_at + settings.min_hold_s)
                for h in snapshot.holders
            )
        )
    return times


@dataclass(frozen=True)
class UserView:
    user: str
    state: str  # holding | pinned | queued | idle | excluded | unmanaged
    in_pool: bool
    excluded: bool
    pinned: bool
    holder: HolderView | None
    waiter: WaiterView | None


def user_view(
    user: str, snapshot: PolicySnapshot, settings: PolicySettings, capacity: int, now: int
) -> UserView:
    figures = snapshot.figures
    holder = next((h for h in holders(snapshot, settings) if h.user == user), None)
    waiter = next((w for w in queue(snapshot, settings, capacity, now) if w.user == user), None)
    pinned = user in snapshot.pinned
    excluded = user in figures.excluded
    in_pool = user in figures.pool
    if excluded:
        state = "excluded"
    elif not in_pool:
        state = "unmanaged"
    elif pinned:
        state = "pinned"
    elif holder is not None:
        state = "holding"
    elif waiter is not None:
        state = "queued"
    else:
        state = "idle"
    return UserView(user, state, in_pool, excluded, pinned, holder, waiter)


# -- the audit log ---------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditQuery:
    """Filters of an audit search; every one optional. `user` matches case-insensitively."""

    user: str | None = None
    kind: str | None = None
    rule: str | None = None
    since: int | None = None  # inclusive
    until: int | None = None  # exclusive
    text: str | None = None  # a piece of the reason, case-insensitive
    limit: int = 100
    offset: int = 0


@dataclass(frozen=True)
class AuditRow:
    at: int
    user: str
    kind: str
    rule: str
    reason: str
    move_id: int | None
    source: str  # engine | admin


@dataclass(frozen=True)
class AuditPage:
    total: int
    rows: list[AuditRow]


def _audit_rows() -> sa.Subquery:
    """The one audit log; an admin's actions (rule `admin-...`) are marked as such."""
    source = sa.case((audit_log.c.rule.like("admin-%"), "admin"), else_="engine")
    return sa.select(
        audit_log.c.at.label("at"),
        audit_log.c.username.label("user"),
        audit_log.c.kind.label("kind"),
        audit_log.c.rule.label("rule"),
        audit_log.c.reason.label("reason"),
        audit_log.c.move_id.label("move_id"),
        source.label("source"),
        audit_log.c.id.label("id"),
    ).subquery("audit")


def search_audit(engine: sa.Engine, query: AuditQuery) -> AuditPage:
    """Matching audit entries, newest first, with the number of all matches."""
    u = _audit_rows()
    where = []
    if query.user:
        where.append(sa.func.lower(u.c.user) == query.user.lower())
    if query.kind:
        where.append(u.c.kind == query.kind)
    if query.rule:
        where.append(u.c.rule == query.rule)
    if query.since is not None:
        where.append(u.c.at >= query.since)
    if query.until is not None:
        where.append(u.c.at < query.until)
    if query.text:
        escaped = query.text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        where.append(sa.func.lower(u.c.reason).like(f"%{escaped}%", escape="\\"))
    select = (
        sa.select(u)
        .where(*where)
        .order_by(u.c.at.desc(), u.c.id.desc())
        .limit(query.limit)
        .offset(query.offset)
    )
    count = sa.select(sa.func.count()).select_from(u).where(*where)
    with engine.connect() as c:
        total = int(c.execute(count).scalar_one())
        rows = [
            AuditRow(r.at, r.user, r.kind, r.rule, r.reason, r.move_id, r.source)
            for r in c.execute(select)
        ]
    return AuditPage(total, rows)


def audit_kinds() -> list[str]:
    return [k.value for k in AuditKind]


# -- seats over time -------------------------------------------------------------------------


def seat_history(engine: sa.Engine, since: int, now: int) -> list[tuple[int, int]]:
    """Floating seats held over time, from the audit log: (time, seats held from then on).

    Grants add a seat, revokes and releases free one; the first point is at `since`, or at
    the first seat ever moved when that came later (a young ledger's chart starts there).
    """
    kinds = (AuditKind.GRANT.value, AuditKind.REVOKE.value, AuditKind.RELEASE.value)
    delta = sa.case((audit_log.c.kind == AuditKind.GRANT.value, 1), else_=-1)
    counted = sa.and_(
        audit_log.c.kind.in_(kinds),
        sa.not_(
            sa.and_(
                audit_log.c.kind == AuditKind.GRANT.value, audit_log.c.rule.in_(_FIXED_SEAT_GRANTS)
            )
        ),
    )
    before = sa.select(sa.func.coalesce(sa.func.sum(delta), 0)).where(
        counted, audit_log.c.at < since
    )
    window = (
        sa.select(audit_log.c.at, delta.label("delta"))
        .where(counted, audit_log.c.at >= since, audit_log.c.at <= now)
        .order_by(audit_log.c.at, audit_log.c.id)
    )
    first = sa.select(sa.func.min(audit_log.c.at)).where(counted)
    with engine.connect() as c:
        first_at = c.execute(first).scalar_one()
        if first_at is not None and int(first_at) > since:
            since = min(int(first_at), now)
        held = int(c.execute(before).scalar_one())
        points = [(since, max(0, held))]
        for row in c.execute(window):
            held += int(row.delta)
            if points[-1][0] == row.at:
                points[-1] = (row.at, max(0, held))
            else:
                points.append((row.at, max(0, held)))
    return points
