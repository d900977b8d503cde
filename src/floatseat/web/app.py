"""The web side of `floatseat serve`: one FastAPI app with the API, dashboard and waiting room.

Entry point::

    from floatseat.web.app import create_app
    from floatseat.web.settings import WebSettings

    app = create_app(runtime, web_settings=WebSettings())  # FLOATSEAT_WEB_* from the env
    uvicorn.run(app, host="127.0.0.1", port=8080)

`runtime` is the running service (`floatseat.service.runtime.Runtime`, or anything that
fits `floatseat.web.ports.WebRuntime`). The app serves:

- `/` the admin dashboard, `/login`, `/setup` (first admin, by one-time link);
- `/waiting-room` for queued users (identity from SSO headers or a signed link);
- `/api/v1/...` the REST API, described at `/openapi.json` and listed at `/docs`;
- `/metrics` (Prometheus), `/healthz` (the process answers), `/readyz` (the ledger answers).

On a database without any admin account, `create_app` makes a one-time setup token and
hands the setup link to `announce` (default: print it on stderr); `setup_path(app)` gives
it too. In demo mode, loopback visitors are admins without a login and the page says so.
"""

from __future__ import annotations

import logging
import secrets
import sys
import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from floatseat import __version__
from floatseat.web.actions import Actions
from floatseat.web.agents import router as agents_router
from floatseat.web.api import router as api_router
from floatseat.web.deps import WebContext
from floatseat.web.limits import ACTIVITY_LIMIT, BODY_LIMIT, BodyLimit
from floatseat.web.metrics import Metrics
from floatseat.web.pages import CSP, static_router
from floatseat.web.pages import router as pages_router
from floatseat.web.ports import WebRuntime
from floatseat.web.security import SAFE_METHODS, ActivitySignatures, Sessions
from floatseat.web.settings import WebSettings
from floatseat.web.store import WebStore

__all__ = ["create_app", "setup_path"]

log = logging.getLogger(__name__)


def _print_to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def create_app(
    runtime: WebRuntime,
    *,
    web_settings: WebSettings,
    announce: Callable[[str], None] = _print_to_stderr,
) -> FastAPI:
    """The web app for `runtime`; creates the web side's tables in the ledger's database.

    Time comes from `runtime.now()`, so the demo's accelerated clock rules the web side
    too. `announce` receives the one-time setup link.
    """
    store = WebStore(runtime.ledger.engine)
    store.create()
    ctx = WebContext(
        runtime=runtime,
        settings=web_settings,
        store=store,
        sessions=Sessions(web_settings, store),
        actions=Actions(runtime, store),
        signatures=ActivitySignatures(web_settings.hmac_key, web_settings.activity_replay_window_s),
    )
    metrics = Metrics(ctx.status, runtime.ledger.engine)
    ctx.metrics = metrics

    app = FastAPI(
        title="floatseat",
        version=__version__,
        description="Floating licences for Confluence and Jira Data Center: seats, queue, "
        "audit, policy and activity.",
        docs_url=None,  # FastAPI's Swagger UI loads from a CDN; pages.api_page lists the API
        redoc_url=None,
    )
    app.state.floatseat = ctx
    app.add_middleware(BodyLimit, limit=BODY_LIMIT, limits={"/api/v1/activity": ACTIVITY_LIMIT})
    app.include_router(api_router)
    app.include_router(agents_router)
    app.include_router(pages_router)
    app.include_router(static_router)

    @app.middleware("http")
    async def around(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        request.state.session = ctx.sessions.load(request)
        response = await call_next(request)
        if request.method not in SAFE_METHODS:
            ctx.forget_status()  # it may have changed something the status shows
        session = request.state.session
        if session.dirty:
            ctx.sessions.store(request, response, session)
        headers = response.headers
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "no-referrer")  # waiting-room links carry tokens
        headers.setdefault("X-Frame-Options", "DENY")
        if headers.get("content-type", "").startswith("text/html"):
            headers["Content-Security-Policy"] = CSP
            headers.setdefault("Cache-Control", "no-store")
        elif request.url.path.startswith("/api/"):
            headers.setdefault("Cache-Control", "no-store")  # new tokens, users, the audit
        route = request.scope.get("route")  # the matched route: bounded label values
        path = str(getattr(route, "path", "unmatched"))
        metrics.observe(request.method, path, response.status_code, started)
        return response

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @app.get("/readyz", include_in_schema=False)
    def readyz() -> JSONResponse:
        try:
            with runtime.ledger.transaction() as tx:
                tx.licence_report()  # one row of the ledger's state: cheap, and needs the schema
        except Exception as error:  # whatever it is, we are not ready
            # The log only: anyone may ask, and database errors name hosts, users and SQL.
            log.warning("not ready: %s", error)
            return JSONResponse({"status": "not ready"}, status_code=503)
        return JSONResponse({"status": "ready"})

    @app.get("/metrics", include_in_schema=False)
    def prometheus() -> PlainTextResponse:
        return PlainTextResponse(
            generate_latest(metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    if not store.has_accounts():
        ctx.setup_token = secrets.token_urlsafe(32)
        if not web_settings.demo:
            base = (web_settings.public_url or "").rstrip("/")
            where = base or "this server"
            announce(
                "floatseat: no admin account yet. Create the first one, once, at "
                f"{base}{setup_path(app)}" + ("" if base else f" (on {where})")
            )
    if web_settings.signing_key_is_ephemeral and not web_settings.demo:
        log.warning(
            "FLOATSEAT_WEB_SECRET_KEY is not set: sessions and waiting-room links end "
            "when this process does"
        )
    return app


def setup_path(app: FastAPI) -> str | None:
    """The one-time setup link's path and query, while no admin account exists."""
    ctx: WebContext = app.state.floatseat
    return None if ctx.setup_token is None else f"/setup?token={ctx.setup_token}"
