"""The HTML side: the admin dashboard, login and first-admin setup, the action forms, and
the users' waiting room. Templates in `templates/`, scripts and styles in `static/`; the
pages load nothing from anywhere but this server (see `CSP`).
"""

from __future__ import annotations

import hmac
import json
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Annotated, Any
from urllib.parse import urlencode

import jinja2
from fastapi import APIRouter, Form, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool

from floatseat import __version__
from floatseat.analysis.html import SCRIPT_ESCAPES
from floatseat.domain.policy import Activity, Decision, SettingsError
from floatseat.web.actions import PolicyNotEditable, policy_to_json
from floatseat.web.api import MAX_OFFSET
from floatseat.web.deps import Admin, Context, CurrentSession, WebContext, principal_of
from floatseat.web.schemas import WaitingStatePublic
from floatseat.web.security import CSRF_FIELD, Session, csrf_ok, read_waiting_room_token
from floatseat.web.store import Role
from floatseat.web.views import (
    AuditQuery,
    audit_kinds,
    holders,
    leadership_text,
    queue,
    search_audit,
    user_view,
)

__all__ = ["CSP", "router", "static_router"]

# Scripts only from this server; ECharts' tooltips style their own markup, hence inline styles.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
_PAGE = 50

router = APIRouter(include_in_schema=False)
static_router = APIRouter(include_in_schema=False)


# -- rendering -----------------------------------------------------------------------------


@cache
def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("floatseat", "web/templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["time"] = _fmt_time
    env.filters["duration"] = _fmt_duration
    return env


def _fmt_time(at: int | None) -> str:
    if at is None:
        return "–"
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _fmt_duration(seconds: int | None) -> str:
    if seconds is None:
        return "unknown"
    if seconds < 60:
        return f"{seconds} s"
    minutes, _ = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"


def render(
    request: Request, name: str, context: dict[str, Any], status_code: int = 200
) -> HTMLResponse:
    session: Session = request.state.session
    flash, session.flash = session.flash, None
    if flash is not None:
        session.dirty = True
    html = (
        _env()
        .get_template(name)
        .render(
            {"version": __version__, "csrf": session.csrf, "csrf_field": CSRF_FIELD, "flash": flash}
            | context
        )
    )
    return HTMLResponse(html, status_code=status_code)


def _back(request: Request, message: str, to: str = "/") -> RedirectResponse:
    session: Session = request.state.session
    session.say(message)
    return RedirectResponse(to, status_code=status.HTTP_303_SEE_OTHER)


# -- login and setup -----------------------------------------------------------------------


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, ctx: Context) -> Response:
    return render(
        request, "login.html.j2", {"needs_setup": not ctx.store.has_accounts(), "error": None}
    )


@router.post("/login", response_class=HTMLResponse)
def login(
    request: Request,
    ctx: Context,
    session: CurrentSession,
    username: Annotated[str, Form(max_length=255)],
    password: Annotated[str, Form(max_length=1024)],
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    if not csrf_ok(session, csrf_token):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "missing or wrong CSRF token")
    throttle = ctx.login_throttle
    address = request.client.host if request.client else None
    wait = throttle.wait_s(username, address)
    if wait:
        reply = render(
            request,
            "login.html.j2",
            {"needs_setup": False, "error": f"Too many failed logins: try again in {wait} s."},
            status_code=status.HTTP_429_TOO_MANY_REQUESTS,
        )
        reply.headers["Retry-After"] = str(wait)
        return reply
    with throttle.checking:
        account = ctx.store.check_password(username, password)
    if account is None:
        throttle.failed(username, address)
        return render(
            request,
            "login.html.j2",
            {"needs_setup": False, "error": "Wrong username or password."},
            status_code=401,
        )
    throttle.succeeded(username)
    session.log_in(account.username)
    return _back(request, f"Logged in as {account.username}.")


@router.post("/logout")
def logout(
    request: Request,
    ctx: Context,
    session: CurrentSession,
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    if not csrf_ok(session, csrf_token):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "missing or wrong CSRF token")
    ctx.sessions.end(session)
    return RedirectResponse("/login", status_code=status.HTTP_303_SEE_OTHER)


def _setup_token_ok(ctx: WebContext, token: str) -> bool:
    return ctx.setup_token is not None and hmac.compare_digest(ctx.setup_token, token)


@router.get("/setup", response_class=HTMLResponse)
def setup_page(request: Request, ctx: Context, token: str = "") -> Response:
    if not _setup_token_ok(ctx, token):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "this setup link is used up or wrong")
    return render(request, "setup.html.j2", {"token": token, "error": None})


@router.post("/setup", response_class=HTMLResponse)
def setup(
    request: Request,
    ctx: Context,
    session: CurrentSession,
    token: Annotated[str, Form()],
    username: Annotated[str, Form(max_length=255)],
    password: Annotated[str, Form(max_length=1024)],
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    if not csrf_ok(session, csrf_token):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "missing or wrong CSRF token")
    with ctx.setup_lock:  # one time only: the first request to come takes the link
        if not _setup_token_ok(ctx, token):
            raise HTTPException(status.HTTP_404_NOT_FOUND, "this setup link is used up or wrong")
        ctx.setup_token = None
    try:
        account = ctx.store.add_account(username.strip(), password, Role.ADMIN, ctx.now())
    except ValueError as error:
        ctx.setup_token = token  # nothing was made: the link still works
        return render(
            request, "setup.html.j2", {"token": token, "error": str(error)}, status_code=422
        )
    except Exception:
        ctx.setup_token = token
        raise
    ctx.actions.record(account.username, "account", account.username, "first admin, by setup link")
    session.log_in(account.username)
    return _back(request, f"Welcome, {account.username}: you are the first admin.")


# -- the dashboard -------------------------------------------------------------------------


@router.get("/", response_class=HTMLResponse)
def dashboard(
    request: Request,
    ctx: Context,
    user: str | None = None,
    kind: str | None = None,
    rule: str | None = None,
    since: str | None = None,
    until: str | None = None,
    q: str | None = None,
    page: Annotated[int, Query(ge=1, le=MAX_OFFSET // _PAGE)] = 1,
) -> Response:
    who = principal_of(request, ctx)
    if who is None or not who.can_read:
        return RedirectResponse("/login", status_code=status.HTTP_303_SEE_OTHER)
    snapshot = ctx.snapshot()
    s = ctx.status(snapshot)
    settings = ctx.runtime.engine.settings
    filters = {"user": user, "kind": kind, "rule": rule, "since": since, "until": until, "q": q}
    query = AuditQuery(
        user=user or None,
        kind=kind or None,
        rule=rule or None,
        since=_parse_form_time(since),
        until=_parse_form_time(until),
        text=q or None,
        limit=_PAGE,
        offset=(page - 1) * _PAGE,
    )
    audit = search_audit(ctx.runtime.ledger.engine, query)
    shown = {k: v for k, v in filters.items() if v}
    api_filters = dict(shown)
    for key in ("since", "until"):
        if key in api_filters:
            api_filters[key] = _iso_utc(api_filters[key])
    config = {
        "pollMs": ctx.settings.poll_interval_s * 1000,
        "historyWindowS": ctx.settings.history_window_s,
        "csrf": request.state.session.csrf,
        "admin": who.is_admin,
    }
    return render(
        request,
        "dashboard.html.j2",
        {
            "who": who,
            "demo": who.via == "demo",
            "s": s,
            "leadership": leadership_text(s),
            "holders": holders(snapshot, settings),
            "queue": queue(snapshot, settings, s.capacity, s.now),
            "pins": snapshot.pins,
            "policy": policy_to_json(settings),
            "policy_json": {
                k: json.dumps(v) for k, v in policy_to_json(settings).items() if _is_json_field(v)
            },
            "licence_days": ctx.runtime.ledger.licence_days()[-90:],
            "audit": audit,
            "filters": filters,
            "kinds": audit_kinds(),
            "page": page,
            "pages": max(1, -(-audit.total // _PAGE)),
            "page_link": lambda n: "/?" + urlencode({**shown, "page": n}),
            "csv_link": "/api/v1/audit.csv?" + urlencode(api_filters),
            "config_json": _script_json(config),
        },
    )


def _script_json(value: object) -> Markup:
    """JSON that may sit inside a <script type="application/json"> element as it is."""
    return Markup(json.dumps(value, separators=(",", ":")).translate(SCRIPT_ESCAPES))


def _is_json_field(value: object) -> bool:
    return isinstance(value, list | dict)


def _parse_form_time(text: str | None) -> int | None:
    """A time from the audit form (`2024-05-01T12:00`, read as UTC), or None."""
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp())


def _iso_utc(text: str) -> str:
    at = _parse_form_time(text)
    return "" if at is None else datetime.fromtimestamp(at, UTC).isoformat()


# -- the dashboard's forms -----------------------------------------------------------------


def _summary(decisions: list[Decision], fallback: str) -> str:
    return "; ".join(f"{d.user}: {d.reason} [{d.rule.value}]" for d in decisions) or fallback


@router.post("/actions/pin")
def action_pin(
    request: Request,
    ctx: Context,
    who: Admin,
    user: Annotated[str, Form(max_length=255)],
    until: Annotated[str, Form(max_length=64)] = "",
    reason: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    end = _parse_form_time(until)
    if until and end is None:
        return _back(request, f"Not pinned: {until!r} is no time.")
    name = ctx.canonical_user(user)
    try:
        decisions = ctx.actions.pin(name, end, who.name, reason)
    except ValueError as error:
        return _back(request, f"Not pinned: {error}.")
    return _back(request, _summary(decisions, f"Pinned {name}."))


@router.post("/actions/unpin")
def action_unpin(
    request: Request, ctx: Context, who: Admin, user: Annotated[str, Form(max_length=255)]
) -> Response:
    name = ctx.canonical_user(user)
    try:
        decisions = ctx.actions.unpin(name, who.name)
    except LookupError as error:
        return _back(request, f"Not unpinned: {error}.")
    return _back(request, _summary(decisions, f"Unpinned {name}."))


@router.post("/actions/grant")
def action_grant(
    request: Request,
    ctx: Context,
    who: Admin,
    user: Annotated[str, Form(max_length=255)],
    reason: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    try:
        decisions = ctx.actions.grant(ctx.canonical_user(user), reason, who.name)
    except ValueError as error:
        return _back(request, f"No grant: {error}.")
    return _back(request, _summary(decisions, "Nothing to do."))


@router.post("/actions/revoke")
def action_revoke(
    request: Request,
    ctx: Context,
    who: Admin,
    user: Annotated[str, Form(max_length=255)],
    reason: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    try:
        decisions = ctx.actions.revoke(ctx.canonical_user(user), reason, who.name)
    except ValueError as error:
        return _back(request, f"No revoke: {error}.")
    return _back(request, _summary(decisions, "Nothing to do."))


@router.post("/actions/freeze")
def action_freeze(
    request: Request, ctx: Context, who: Admin, reason: Annotated[str, Form(max_length=500)] = ""
) -> Response:
    try:
        ctx.actions.freeze(reason, who.name)
    except ValueError as error:
        return _back(request, f"Not frozen: {error}.")
    return _back(request, "Frozen: no idle revokes until you unfreeze.")


@router.post("/actions/unfreeze")
def action_unfreeze(request: Request, ctx: Context, who: Admin) -> Response:
    ctx.actions.unfreeze(who.name)
    return _back(request, "Unfrozen: idle revokes resume.")


@router.post("/actions/policy")
async def action_policy(request: Request, ctx: Context, who: Admin) -> Response:
    form = await request.form()
    current = policy_to_json(ctx.runtime.engine.settings)
    changes: dict[str, Any] = {}
    try:
        for key, old in current.items():
            raw = form.get(key)
            if not isinstance(raw, str):
                continue
            if isinstance(old, bool):
                changes[key] = raw == "true"
            elif isinstance(old, int):
                changes[key] = int(raw.strip())
            else:
                changes[key] = json.loads(raw)
    except ValueError as error:
        return _back(request, f"Policy unchanged: {error}.")
    changed = {k: v for k, v in changes.items() if v != current[k]}
    try:
        await run_in_threadpool(ctx.actions.set_policy, changed, who.name)
    except (SettingsError, PolicyNotEditable) as error:
        return _back(request, f"Policy unchanged: {error}.")
    return _back(request, "Policy changed: " + (", ".join(sorted(changed)) or "nothing"))


# -- the waiting room ----------------------------------------------------------------------


def waiting_identity(request: Request, ctx: WebContext, token: str | None) -> str | None:
    """The verified user behind a waiting-room request: SSO header or signed link, or None."""
    header = ctx.settings.sso_user_header
    client = request.client.host if request.client else None
    if header and ctx.settings.is_trusted_proxy(client):
        value = request.headers.get(header, "").strip()
        if value:
            return value
    if token:
        return read_waiting_room_token(ctx.settings, token)
    return None


def waiting_state(ctx: WebContext, user: str) -> WaitingStatePublic:
    snapshot = ctx.snapshot()
    s = ctx.status(snapshot)
    view = user_view(user, snapshot, ctx.runtime.engine.settings, s.capacity, s.now)
    seated = view.state in ("holding", "pinned")
    return WaitingStatePublic(
        user=user,
        state=view.state,
        position=view.waiter.position if view.waiter else None,
        queue_length=s.queue_length,
        estimated_wait_s=view.waiter.estimated_wait_s if view.waiter else None,
        redirect_to=ctx.settings.product_url if seated else None,
    )


@router.get("/waiting-room", response_class=HTMLResponse)
def waiting_room(request: Request, ctx: Context, t: str | None = None) -> Response:
    """A queued user's place and wait; off to the product the moment they hold a seat.

    Visiting with a verified identity counts as the user asking for a seat. A name typed
    into the URL (`?user=`) is ignored: it proves nothing.
    """
    user = waiting_identity(request, ctx, t)
    if user is None:
        s = ctx.status()
        return render(
            request,
            "waiting.html.j2",
            {
                "user": None,
                "state": None,
                "queue_length": s.queue_length,
                "token": None,
                "product_url": ctx.settings.product_url,
                "config_json": _script_json({}),
            },
            status_code=200 if not t else 403,
        )
    user = ctx.canonical_user(user)
    state = waiting_state(ctx, user)
    if state.state in ("idle", "queued"):
        ctx.runtime.submit(Activity(user, ctx.now()))
        state = waiting_state(ctx, user)
    if state.redirect_to is not None:
        return RedirectResponse(state.redirect_to, status_code=status.HTTP_303_SEE_OTHER)
    config = {
        "pollMs": ctx.settings.poll_interval_s * 1000,
        "statusUrl": "/waiting-room/status" + ("?" + urlencode({"t": t}) if t else ""),
    }
    return render(
        request,
        "waiting.html.j2",
        {
            "user": user,
            "state": state,
            "queue_length": state.queue_length,
            "token": t,
            "product_url": ctx.settings.product_url,
            "config_json": _script_json(config),
        },
    )


@router.get("/waiting-room/status")
def waiting_room_status(request: Request, ctx: Context, t: str | None = None) -> Response:
    user = waiting_identity(request, ctx, t)
    if user is None:
        return JSONResponse({"detail": "who you are is not known here"}, status_code=401)
    state = waiting_state(ctx, ctx.canonical_user(user))
    return JSONResponse(state.model_dump(mode="json"), headers={"Cache-Control": "no-store"})


# -- the API's own page --------------------------------------------------------------------

_METHODS = ("get", "post", "put", "delete", "patch")


@router.get("/docs", response_class=HTMLResponse)
def api_page(request: Request) -> Response:
    """The API's operations, from its OpenAPI schema; a page with no scripts, unlike FastAPI's
    Swagger UI, which loads from a CDN and runs inline code (both refused by `CSP`)."""
    schema = request.app.openapi()
    operations = [
        {
            "method": method.upper(),
            "path": path,
            "summary": op.get("summary", ""),
            "description": (op.get("description") or "").strip(),
            "tags": op.get("tags", []),
        }
        for path, item in schema.get("paths", {}).items()
        for method, op in item.items()
        if method in _METHODS
    ]
    return render(request, "api.html.j2", {"operations": operations, "info": schema["info"]})


# -- static files --------------------------------------------------------------------------

_STATIC = {
    "dashboard.js": ("web/static/dashboard.js", "text/javascript; charset=utf-8"),
    "waiting.js": ("web/static/waiting.js", "text/javascript; charset=utf-8"),
    "style.css": ("web/static/style.css", "text/css; charset=utf-8"),
    # The analyzer's vendored bundle, shipped once with its licence in analysis/assets.
    "echarts.min.js": ("analysis/assets/echarts.min.js", "text/javascript; charset=utf-8"),
}


@cache
def _static_bytes(path: str) -> bytes:
    return (resources.files("floatseat") / path).read_bytes()


@static_router.get("/static/{name}")
def static_file(name: str) -> Response:
    entry = _STATIC.get(name)
    if entry is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such file")
    path, media_type = entry
    return Response(
        _static_bytes(path),
        media_type=media_type,
        headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )


@static_router.get("/favicon.ico")
def favicon() -> Response:
    """No icon (pages say so with a data: URL); answering spares browsers a 404."""
    return Response(status_code=status.HTTP_204_NO_CONTENT)
