"""The REST API under /api/v1: status, seats, users, queue, audit, policy, pins, activity.

Reading needs an account or token with the read-only or admin role; changing anything needs
admin (and, from a browser session, the CSRF token). POST /activity takes a `reporter`
token, an admin token, or an HMAC signature; see `floatseat.web.security`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Path, Query, Request, status
from fastapi.responses import StreamingResponse
from pydantic import AwareDatetime, ValidationError
from starlette.concurrency import run_in_threadpool

from floatseat.domain.policy import (
    Activity,
    Decision,
    Denied,
    Grant,
    Ignored,
    PolicySnapshot,
    Queued,
    Release,
    Revoke,
    SettingsError,
    Warn,
)
from floatseat.web.actions import PolicyNotEditable, policy_to_json
from floatseat.web.deps import Admin, Context, Reader, WebContext, require_admin, who_is_asking
from floatseat.web.schemas import (
    AccountCreate,
    AccountPublic,
    ActivityDecision,
    ActivityIn,
    ActivityPublic,
    AuditEntryPublic,
    AuditPagePublic,
    DecisionPublic,
    HistoryPublic,
    HolderPublic,
    LicenceDayPublic,
    LicencePublic,
    PinCreate,
    PinPublic,
    ReasonIn,
    StatusPublic,
    TokenCreate,
    TokenCreated,
    TokenPublic,
    UserPublic,
    WaiterPublic,
    WaitingLinkIn,
    WaitingLinkPublic,
    instant,
    optional_instant,
)
from floatseat.web.security import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Principal,
    bearer_principal,
    make_waiting_room_link,
)
from floatseat.web.store import Role
from floatseat.web.views import (
    AuditQuery,
    AuditRow,
    HolderView,
    Status,
    WaiterView,
    holders,
    queue,
    queue_position,
    search_audit,
    seat_history,
    user_view,
)

__all__ = ["router", "status_public"]

router = APIRouter(prefix="/api/v1")

_KIND_NAMES: dict[type[Decision], str] = {
    Grant: "grant",
    Revoke: "revoke",
    Release: "release",
    Queued: "queued",
    Denied: "denied",
    Warn: "warn",
    Ignored: "ignored",
}
_CSV_PAGE = 5000
MAX_OFFSET = 10**9  # past any audit log; a bigger one would overflow the database's integers


# -- shaping -------------------------------------------------------------------------------


def status_public(s: Status) -> StatusPublic:
    return StatusPublic(
        capacity=s.capacity,
        seats_held=s.seats_held,
        queue_length=s.queue_length,
        pinned=s.pinned,
        tier=s.tier,
        licensed=s.licensed,
        licence_reported_at=optional_instant(s.licence_reported_at),
        revokes_paused=s.revokes_paused,
        frozen=s.frozen,
        shadow=s.shadow,
        stalled_feeds=list(s.stalled_feeds),
        feed_lag_s=dict(s.feed_lag_s),
        outbox_backlog=s.outbox_backlog,
        directory_errors=s.directory_errors,
        last_reconciliation=optional_instant(s.last_reconciliation),
        drift_repairs=s.drift_repairs,
        warnings=list(s.warnings),
        now=instant(s.now),
        role=s.role,
        instance=s.instance,
        leader=s.leader,
        epoch=s.epoch,
    )


def holder_public(h: HolderView) -> HolderPublic:
    return HolderPublic(
        user=h.user,
        granted_at=instant(h.granted_at),
        last_activity=instant(h.last_activity),
        expires_at=instant(h.expires_at),
    )


def waiter_public(w: WaiterView) -> WaiterPublic:
    return WaiterPublic(
        user=w.user,
        position=w.position,
        queued_at=instant(w.queued_at),
        estimated_wait_s=w.estimated_wait_s,
    )


def audit_public(r: AuditRow) -> AuditEntryPublic:
    return AuditEntryPublic(
        at=instant(r.at),
        user=r.user,
        kind=r.kind,
        rule=r.rule,
        reason=r.reason,
        move_id=r.move_id,
        source="admin" if r.source == "admin" else "engine",
    )


def decisions_public(decisions: list[Decision]) -> list[DecisionPublic]:
    return [
        DecisionPublic(
            user=d.user,
            at=instant(d.at),
            kind=_KIND_NAMES.get(type(d), "decision"),
            rule=d.rule.value,
            reason=d.reason,
        )
        for d in decisions
    ]


def _epoch(value: datetime | None) -> int | None:
    return None if value is None else int(value.timestamp())


def _bad(error: Exception) -> HTTPException:
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(error))


# -- status, seats, queue, users -----------------------------------------------------------


@router.get("/status", response_model=StatusPublic, tags=["status"])
async def get_status(ctx: Context, _: Reader) -> StatusPublic:
    """Seats held against capacity (floating seats only), the queue, licence and warnings."""
    # A reading at most `STATUS_TTL_S` old answers without a thread-pool hop or the database.
    s = ctx.recent_status()
    if s is None:
        async with ctx.status_refresh():  # one reading at a time; the others wait for it
            s = ctx.recent_status()
            if s is None:
                s = await run_in_threadpool(ctx.fresh_status)
    return status_public(s)


@router.get("/seats", response_model=list[HolderPublic], tags=["seats"])
def get_seats(ctx: Context, _: Reader) -> list[HolderPublic]:
    """Who holds a floating seat, since when, and their last activity."""
    return [holder_public(h) for h in holders(ctx.snapshot(), ctx.runtime.engine.settings)]


@router.get("/seats/history", response_model=HistoryPublic, tags=["seats"])
def get_seat_history(
    ctx: Context,
    _: Reader,
    window_s: Annotated[int | None, Query(ge=60, le=400 * 86400)] = None,
) -> HistoryPublic:
    """Floating seats held over time (from the audit log), and today's capacity."""
    now = ctx.now()
    since = now - (window_s or ctx.settings.history_window_s)
    points = seat_history(ctx.runtime.ledger.engine, since, now)
    return HistoryPublic(
        capacity=ctx.status().capacity, points=[(instant(t), n) for t, n in points]
    )


@router.post("/seats/{user}/grant", response_model=list[DecisionPublic], tags=["seats"])
def grant_seat(user: str, body: ReasonIn, ctx: Context, who: Admin) -> list[DecisionPublic]:
    """Give `user` a seat by hand (never above capacity); audited with the reason."""
    try:
        return decisions_public(ctx.actions.grant(ctx.canonical_user(user), body.reason, who.name))
    except ValueError as error:
        raise _bad(error) from error


@router.post("/seats/{user}/revoke", response_model=list[DecisionPublic], tags=["seats"])
def revoke_seat(user: str, body: ReasonIn, ctx: Context, who: Admin) -> list[DecisionPublic]:
    """Take `user`'s floating seat back by hand; audited with the reason."""
    try:
        decisions = ctx.actions.revoke(ctx.canonical_user(user), body.reason, who.name)
    except ValueError as error:
        raise _bad(error) from error
    return decisions_public(decisions)


@router.get("/queue", response_model=list[WaiterPublic], tags=["queue"])
def get_queue(ctx: Context, _: Reader) -> list[WaiterPublic]:
    """The waiting line in service order, with an estimated wait each."""
    snapshot = ctx.snapshot()
    s = ctx.status(snapshot)
    return [
        waiter_public(w) for w in queue(snapshot, ctx.runtime.engine.settings, s.capacity, s.now)
    ]


@router.get("/users/{user}", response_model=UserPublic, tags=["users"])
def get_user(user: str, ctx: Context, _: Reader) -> UserPublic:
    """One user's state: holding, pinned, queued, idle, excluded or unmanaged."""
    snapshot = ctx.snapshot()
    s = ctx.status(snapshot)
    name = ctx.canonical_user(user, snapshot)
    view = user_view(name, snapshot, ctx.runtime.engine.settings, s.capacity, s.now)
    recent = search_audit(ctx.runtime.ledger.engine, AuditQuery(user=name, limit=20))
    return UserPublic(
        user=view.user,
        state=view.state,  # type: ignore[arg-type]
        in_pool=view.in_pool,
        excluded=view.excluded,
        pinned=view.pinned,
        holder=None if view.holder is None else holder_public(view.holder),
        waiter=None if view.waiter is None else waiter_public(view.waiter),
        recent_audit=[audit_public(r) for r in recent.rows],
    )


# -- audit ---------------------------------------------------------------------------------


def audit_query(
    user: Annotated[str | None, Query(max_length=255)] = None,
    kind: Annotated[str | None, Query(max_length=32)] = None,
    rule: Annotated[str | None, Query(max_length=64)] = None,
    since: Annotated[AwareDatetime | None, Query(description="From (inclusive).")] = None,
    until: Annotated[AwareDatetime | None, Query(description="To (exclusive).")] = None,
    q: Annotated[str | None, Query(max_length=200, description="Text in the reason.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> AuditQuery:
    return AuditQuery(
        user=user or None,
        kind=kind or None,
        rule=rule or None,
        since=_epoch(since),
        until=_epoch(until),
        text=q or None,
        limit=limit,
        offset=offset,
    )


AuditFilter = Annotated[AuditQuery, Depends(audit_query)]


@router.get("/audit", response_model=AuditPagePublic, tags=["audit"])
def get_audit(query: AuditFilter, ctx: Context, _: Reader) -> AuditPagePublic:
    """The audit log, newest first: filter by user, kind, rule, time range and text; paged."""
    page = search_audit(ctx.runtime.ledger.engine, query)
    return AuditPagePublic(
        total=page.total,
        offset=query.offset,
        limit=query.limit,
        entries=[audit_public(r) for r in page.rows],
    )


@router.get(
    "/audit.csv",
    tags=["audit"],
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}, "description": "Every matching entry."}},
)
def export_audit(query: AuditFilter, ctx: Context, _: Reader) -> StreamingResponse:
    """Every matching audit entry as CSV (`limit` and `offset` are ignored)."""
    engine = ctx.runtime.ledger.engine

    def rows() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["at", "user", "kind", "rule", "reason", "move_id", "source"])
        offset = 0
        while True:
            page = search_audit(
                engine,
                AuditQuery(**{**query.__dict__, "limit": _CSV_PAGE, "offset": offset}),
            )
            for r in page.rows:
                writer.writerow(
                    [
                        instant(r.at).isoformat(),
                        _cell(r.user),
                        r.kind,
                        r.rule,
                        _cell(r.reason),
                        "" if r.move_id is None else r.move_id,
                        r.source,
                    ]
                )
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
            if len(page.rows) < _CSV_PAGE:
                return
            offset += _CSV_PAGE

    stamp = datetime.fromtimestamp(ctx.now(), UTC).strftime("%Y%m%dT%H%M%SZ")
    return StreamingResponse(
        rows(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="floatseat-audit-{stamp}.csv"'},
    )


def _cell(text: str) -> str:
    """Text a spreadsheet will not run as a formula."""
    if len(text) > 1 and text[0] in "=+-@\t\r":
        return "'" + text
    return text


# -- policy, pins, freeze ------------------------------------------------------------------


@router.get("/policy", tags=["policy"])
def get_policy(ctx: Context, _: Reader) -> dict[str, Any]:
    """The policy settings in force."""
    return policy_to_json(ctx.runtime.engine.settings)


@router.put(
    "/policy",
    tags=["policy"],
    responses={422: {"description": "The settings cannot work together; the detail says why."}},
)
def put_policy(
    ctx: Context,
    who: Admin,
    changes: Annotated[
        dict[str, Any],
        Body(
            description="Settings to change (see GET); the others keep their value.",
            examples=[{"idle_timeout_s": 1800, "reserve": 2}],
        ),
    ],
) -> dict[str, Any]:
    """Change policy settings; validated together, audited with the differences."""
    try:
        return policy_to_json(ctx.actions.set_policy(changes, who.name))
    except SettingsError as error:
        raise _bad(error) from error
    except PolicyNotEditable as error:
        raise HTTPException(status.HTTP_501_NOT_IMPLEMENTED, str(error)) from error


@router.get("/pins", response_model=list[PinPublic], tags=["pins"])
def get_pins(ctx: Context, _: Reader) -> list[PinPublic]:
    """Pins of users and groups, with their end times."""
    return [
        PinPublic(user=p.user, group=p.group, until=optional_instant(p.until))
        for p in ctx.snapshot().pins
    ]


@router.put("/pins/{user}", response_model=list[DecisionPublic], tags=["pins"])
def pin_user(user: str, body: PinCreate, ctx: Context, who: Admin) -> list[DecisionPublic]:
    """Pin `user` (a fixed seat), until `until` if given; audited."""
    try:
        decisions = ctx.actions.pin(
            ctx.canonical_user(user), _epoch(body.until), who.name, body.reason
        )
    except ValueError as error:
        raise _bad(error) from error
    return decisions_public(decisions)


@router.delete("/pins/{user}", response_model=list[DecisionPublic], tags=["pins"])
def unpin_user(user: str, ctx: Context, who: Admin) -> list[DecisionPublic]:
    """Remove `user`'s pin; they keep their seat as a floating holder. Audited."""
    try:
        return decisions_public(ctx.actions.unpin(ctx.canonical_user(user), who.name))
    except LookupError as error:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(error)) from error


@router.post("/freeze", status_code=204, tags=["freeze"])
def freeze(body: ReasonIn, ctx: Context, who: Admin) -> None:
    """Pause every idle revoke (an incident, an upgrade); grants still respect the cap."""
    try:
        ctx.actions.freeze(body.reason, who.name)
    except ValueError as error:
        raise _bad(error) from error


@router.post("/unfreeze", status_code=204, tags=["freeze"])
def unfreeze(ctx: Context, who: Admin) -> None:
    """End a freeze: idle revokes resume."""
    ctx.actions.unfreeze(who.name)


# -- licence -------------------------------------------------------------------------------


@router.get("/licence", response_model=LicencePublic, tags=["licence"])
def get_licence(
    ctx: Context,
    _: Reader,
    since: Annotated[str | None, Query(pattern=r"^\d{4}-\d{2}-\d{2}$")] = None,
) -> LicencePublic:
    """The licence as last reported, and the daily maximum licensed count (renewal evidence)."""
    with ctx.runtime.ledger.transaction() as tx:
        report = tx.licence_report()
    days = ctx.runtime.ledger.licence_days(since)
    return LicencePublic(
        tier=report.tier if report else None,
        licensed=report.licensed if report else None,
        reported_at=instant(report.reported_at) if report else None,
        days=[LicenceDayPublic(day=d.day, max_licensed=d.max_licensed, tier=d.tier) for d in days],
    )


# -- activity ------------------------------------------------------------------------------


async def activity_reporter(request: Request, ctx: Context) -> Principal:
    """An admin or reporter token, or a fresh HMAC signature over the body; within its rate.

    Throttled before anything costly: an address that failed to authenticate too often is
    refused before its token is looked up or its body's HMAC computed, and a principal over
    its rate before the report goes to the thread pool and the engine. A failed request
    counts against its address only, never against the principal it claimed to be.
    """
    limits = ctx.activity_limits
    address = request.client.host if request.client else None
    who = bearer_principal(request, ctx.store, cached=True)  # no I/O: never throttled here
    if who is None:
        wait = limits.closed_to(address)
        if wait:
            raise _throttled(ctx, "failed_auth", wait, "too many failed authentications")
        try:
            who = await _authenticate_reporter(request, ctx)
        except HTTPException as error:
            if error.status_code == status.HTTP_401_UNAUTHORIZED:
                limits.failed(address)
            raise
    elif who.role not in (Role.ADMIN, Role.REPORTER):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this token may not report activity")
    wait = limits.admit(who.name)
    if wait:
        raise _throttled(ctx, "rate", wait, f"too many activity reports from {who.name}")
    return who


async def _authenticate_reporter(request: Request, ctx: WebContext) -> Principal:
    who = await who_is_asking(request, ctx)
    if who is not None and who.via == "token" and who.role in (Role.ADMIN, Role.REPORTER):
        return who
    if who is not None and who.via == "token":
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this token may not report activity")
    signature = request.headers.get(SIGNATURE_HEADER)
    if signature is None and request.headers.get("authorization") is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            f"send a bearer token or sign the body ({SIGNATURE_HEADER})",
            headers={"WWW-Authenticate": "Bearer"},
        )
    body = await request.body()
    refusal = ctx.signatures.check(request.headers.get(TIMESTAMP_HEADER), signature, body)
    if refusal is not None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, refusal)
    return Principal("hmac", Role.REPORTER, "hmac")


def _throttled(ctx: WebContext, reason: str, wait_s: int, why: str) -> HTTPException:
    if ctx.metrics is not None:
        ctx.metrics.throttled.labels(reason).inc()
    return HTTPException(
        status.HTTP_429_TOO_MANY_REQUESTS,
        f"{why}; retry after {wait_s} s",
        headers={"Retry-After": str(wait_s)},
    )


# The 429 of every route that authenticates with `activity_reporter`.
THROTTLED_RESPONSE: dict[str, Any] = {
    "description": "Too many reports from this principal, or too many failed "
    "authentications from this address; retry after `Retry-After` seconds.",
    "headers": {
        "Retry-After": {
            "description": "Seconds to wait (whole, at least 1).",
            "schema": {"type": "integer", "minimum": 1},
        }
    },
}


@router.post(
    "/activity",
    response_model=ActivityPublic,
    tags=["activity"],
    responses={
        401: {"description": "No token, a bad or stale signature, or a replay."},
        422: {"description": "A malformed body, or `at` outside the accepted window."},
        429: THROTTLED_RESPONSE,
    },
)
async def report_activity(
    body: ActivityIn,
    ctx: Context,
    _: Annotated[Principal, Depends(activity_reporter)],
) -> ActivityPublic:
    """Report that a user was seen (a login, a request); they get a seat or join the queue.

    Authenticate with `Authorization: Bearer <token>` (a reporter or admin token), or sign:
    `X-Floatseat-Timestamp: <unix seconds>` and
    `X-Floatseat-Signature: sha256=<hex HMAC-SHA256(key, "<timestamp>." + raw body)>`.
    A signature is accepted once, within the replay window. Each token (and signed reports
    together) has a request rate; past it, and after many failed authentications from one
    address, the answer is 429 with `Retry-After`.
    """
    # `async def` with the work in the thread pool: one hop, where a plain `def` takes two
    # (FastAPI validates a sync route's response in the pool too).
    if ctx.runtime.follows:
        # A follower only hands the report on and waits for the leader: nothing to batch.
        return await run_in_threadpool(forward_activity, ctx, body.user, body.at)
    batcher = ctx.batcher("activity", lambda reports: decide_reports(ctx, reports))
    result: ActivityPublic = await batcher.submit((body.user, body.at))
    return result


def checked_activity(ctx: WebContext, user: str, at: datetime | None) -> Activity:
    """The report as a policy event: the user as the directory spells them, `at` checked."""
    now = ctx.now()
    when = now if at is None else int(at.timestamp())
    window = ctx.settings.activity_replay_window_s
    if when > now + 60 or when < now - window:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"`at` must lie between {window} s ago and a minute from now",
        )
    return Activity(ctx.canonical_user(user), when)


def decide_reports(
    ctx: WebContext, reports: Sequence[tuple[str, datetime | None]]
) -> list[ActivityPublic | HTTPException]:
    """Decide the reports that queued up together in one ledger transaction; each one's
    answer (or its own refusal, such as an `at` outside the window)."""
    checked: list[Activity | HTTPException] = []
    for user, at in reports:
        try:
            checked.append(checked_activity(ctx, user, at))
        except HTTPException as refused:
            checked.append(refused)
    events = [c for c in checked if isinstance(c, Activity)]
    decided = iter(ctx.runtime.submit_each(events))
    return [
        activity_outcome(ctx, c.user, next(decided)) if isinstance(c, Activity) else c
        for c in checked
    ]


def forward_activity(ctx: WebContext, user: str, at: datetime | None) -> ActivityPublic:
    """On a follower: what became of the user once the leader took the report (read from
    the ledger: this instance's own last commit is stale), or `forwarded` if it has not
    taken it yet (it is kept, not lost)."""
    activity = checked_activity(ctx, user, at)
    if not ctx.runtime.forward(activity):
        return ActivityPublic(
            decision="forwarded", reason="handed to the leader, which takes it within seconds"
        )
    return activity_outcome(ctx, activity.user, [], ctx.runtime.engine.state())


def activity_outcome(
    ctx: WebContext,
    user: str,
    decisions: list[Decision],
    snapshot: PolicySnapshot | None = None,
) -> ActivityPublic:
    mine = [d for d in decisions if d.user == user]
    outcomes: tuple[tuple[type[Decision], ActivityDecision], ...] = (
        (Grant, "granted"),
        (Denied, "denied"),
        (Ignored, "ignored"),
    )
    for kind, word in outcomes:
        found = next((d for d in mine if isinstance(d, kind)), None)
        if found is not None:
            return ActivityPublic(decision=word, reason=found.reason)
    if snapshot is None:
        snapshot = ctx.snapshot()
    if any(h.user == user for h in snapshot.holders):
        return ActivityPublic(decision="holding", reason="holds a seat")
    if user in snapshot.pinned:
        return ActivityPublic(decision="holding", reason="pinned: holds a fixed seat")
    # The position only: no status (and its ledger reads) for the estimated waits.
    position = queue_position(snapshot, ctx.runtime.engine.settings, user, ctx.now())
    if position is not None:
        queued = next((d for d in mine if isinstance(d, Queued)), None)
        reason = queued.reason if queued else "waiting for a seat"
        return ActivityPublic(decision="queued", position=position, reason=reason)
    return ActivityPublic(decision="ignored", reason="not managed by floatseat")


# -- waiting-room links, tokens, accounts --------------------------------------------------


async def link_maker(request: Request, ctx: Context) -> Principal:
    who = await who_is_asking(request, ctx)
    if who is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "send a bearer token")
    if who.role not in (Role.ADMIN, Role.REPORTER):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "admins and reporters only")
    if who.role is Role.ADMIN:
        return await require_admin(request, ctx)  # CSRF from a browser session
    return who


@router.post("/waiting-room/links", response_model=WaitingLinkPublic, tags=["waiting room"])
def make_link(
    body: WaitingLinkIn,
    request: Request,
    ctx: Context,
    _: Annotated[Principal, Depends(link_maker)],
) -> WaitingLinkPublic:
    """A signed, expiring waiting-room link for one user (for a login-page script or a mail)."""
    base = ctx.settings.public_url or str(request.base_url)
    url = make_waiting_room_link(ctx.settings, ctx.canonical_user(body.user), base)
    return WaitingLinkPublic(url=url, expires_in_s=ctx.settings.waiting_link_max_age_s)


@router.get("/tokens", response_model=list[TokenPublic], tags=["access"])
def get_tokens(ctx: Context, _: Admin) -> list[TokenPublic]:
    """API tokens (never their secrets)."""
    return [
        TokenPublic(
            id=t.id,
            name=t.name,
            role=t.role,
            created_by=t.created_by,
            created_at=instant(t.created_at),
        )
        for t in ctx.store.tokens()
    ]


@router.post("/tokens", response_model=TokenCreated, status_code=201, tags=["access"])
def create_token(body: TokenCreate, ctx: Context, who: Admin) -> TokenCreated:
    """A new API token; the secret is in this reply only."""
    token, secret = ctx.store.add_token(body.name, body.role, who.name, ctx.now())
    ctx.actions.record(who.name, "token", "-", f"created {token.role} token {token.name!r}")
    return TokenCreated(
        id=token.id,
        name=token.name,
        role=token.role,
        created_by=token.created_by,
        created_at=instant(token.created_at),
        token=secret,
    )


@router.delete("/tokens/{token_id}", status_code=204, tags=["access"])
def delete_token(
    token_id: Annotated[int, Path(ge=1, le=2**63 - 1, description="The token's id.")],
    ctx: Context,
    who: Admin,
) -> None:
    if not ctx.store.delete_token(token_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such token")
    ctx.actions.record(who.name, "token", "-", f"deleted token {token_id}")


@router.get("/accounts", response_model=list[AccountPublic], tags=["access"])
def get_accounts(ctx: Context, _: Admin) -> list[AccountPublic]:
    return [
        AccountPublic(username=a.username, role=a.role, created_at=instant(a.created_at))
        for a in ctx.store.accounts()
    ]


@router.post("/accounts", response_model=AccountPublic, status_code=201, tags=["access"])
def create_account(body: AccountCreate, ctx: Context, who: Admin) -> AccountPublic:
    """A new dashboard account (admin or read-only); the password is stored as argon2."""
    try:
        account = ctx.store.add_account(body.username, body.password, Role(body.role), ctx.now())
    except (ValueError, ValidationError) as error:
        raise _bad(error) from error
    ctx.actions.record(who.name, "account", account.username, f"created {account.role} account")
    return AccountPublic(
        username=account.username, role=account.role, created_at=instant(account.created_at)
    )
