"""The app's shared state and FastAPI dependencies: who is asking, and may they.

Routes get the `WebContext` and a `Principal` through the `Annotated` aliases below and never
look at cookies or headers themselves.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from starlette.concurrency import run_in_threadpool

from floatseat.domain.policy import PolicySnapshot
from floatseat.web.actions import Actions
from floatseat.web.batching import Batcher
from floatseat.web.limits import ActivityLimits
from floatseat.web.metrics import Metrics
from floatseat.web.ports import WebRuntime
from floatseat.web.security import (
    CSRF_FIELD,
    CSRF_HEADER,
    SAFE_METHODS,
    ActivitySignatures,
    LoginThrottle,
    Principal,
    Session,
    Sessions,
    bearer_principal,
    csrf_ok,
    is_local_visitor,
)
from floatseat.web.settings import WebSettings
from floatseat.web.store import Role, WebStore
from floatseat.web.views import Status, read_status

__all__ = ["STATUS_TTL_S", "Admin", "Context", "Reader", "WebContext"]

# Seconds GET /api/v1/status may answer from its last reading. A seat event this process
# commits, or any change made through the app (a non-GET request), ends a reading at once;
# what changes elsewhere (moves the directory worker finishes, a licence report, another
# process's writes) shows up to this much later. The dashboard's pages always read afresh.
STATUS_TTL_S = 0.25


@dataclass
class WebContext:
    """Everything the routes share; one per app, on `app.state.floatseat`."""

    runtime: WebRuntime
    settings: WebSettings
    store: WebStore
    sessions: Sessions
    actions: Actions
    signatures: ActivitySignatures
    setup_token: str | None = None
    metrics: Metrics | None = field(default=None)
    login_throttle: LoginThrottle = field(default_factory=LoginThrottle)
    setup_lock: threading.Lock = field(default_factory=threading.Lock)
    activity_limits: ActivityLimits = field(init=False)  # from `settings`; tests set its clock
    # GET /api/v1/status's last reading: (monotonic time, the engine's last commit then, it)
    _loop_locks: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Lock]] = field(
        default_factory=dict, init=False, repr=False
    )
    _batchers: dict[str, tuple[asyncio.AbstractEventLoop, Batcher[Any, Any]]] = field(
        default_factory=dict, init=False, repr=False
    )
    _status_cache: tuple[float, PolicySnapshot | None, Status] | None = field(
        default=None, init=False, repr=False
    )

    def __post_init__(self) -> None:
        self.activity_limits = ActivityLimits.from_settings(self.settings)

    def now(self) -> int:
        return self.runtime.now()

    def snapshot(self) -> PolicySnapshot:
        return self.runtime.state()

    def status(self, snapshot: PolicySnapshot | None = None) -> Status:
        return read_status(self.runtime, snapshot or self.snapshot(), self.now())

    def recent_status(self) -> Status | None:
        """The status read within `STATUS_TTL_S`, if this process committed no seat event
        since (and the app changed nothing since: see `forget_status`); None: read it."""
        known = self._status_cache
        if (
            known is not None
            and time.monotonic() - known[0] < STATUS_TTL_S
            and known[1] is self._last_commit()
        ):
            return known[2]
        return None

    def fresh_status(self) -> Status:
        """`status()`, remembered for `recent_status` (blocking: from the thread pool)."""
        started, mark = time.monotonic(), self._last_commit()
        s = self.status()
        self._status_cache = (started, mark, s)
        return s

    def status_refresh(self) -> asyncio.Lock:
        """Lets one request at a time read the status afresh (the others then reuse it)."""
        return self._loop_lock("status")

    def batcher(
        self, name: str, work: Callable[[Sequence[Any]], Sequence[Any]]
    ) -> Batcher[Any, Any]:
        """The running event loop's `Batcher` called `name` (made with `work` the first time):
        requests that queue up behind a batch go together (see web/batching.py)."""
        loop = asyncio.get_running_loop()  # a batcher serves one event loop (tests run several)
        known = self._batchers.get(name)
        if known is None or known[0] is not loop:
            known = self._batchers[name] = (loop, Batcher(work))
        return known[1]

    def _loop_lock(self, name: str) -> asyncio.Lock:
        loop = asyncio.get_running_loop()  # a lock serves one event loop (tests run several)
        known = self._loop_locks.get(name)
        if known is None or known[0] is not loop:
            known = self._loop_locks[name] = (loop, asyncio.Lock())
        return known[1]

    def forget_status(self) -> None:
        self._status_cache = None

    def _last_commit(self) -> PolicySnapshot | None:
        peek = getattr(self.runtime.engine, "peek", None)
        return peek() if callable(peek) else None

    def canonical_user(self, name: str, snapshot: PolicySnapshot | None = None) -> str:
        """`name` as the directory spells it (usernames compare case-insensitively)."""
        name = name.strip()
        figures = (snapshot or self.snapshot()).figures
        if name in figures.pool or name in figures.excluded:
            return name
        folded = name.casefold()
        for known in (*figures.pool, *figures.excluded):
            if known.casefold() == folded:
                return known
        return name


# The dependencies are `async def` where they do no I/O: FastAPI runs a plain `def` in its
# thread pool, and a hop there costs more than these do.


async def get_context(request: Request) -> WebContext:
    ctx: WebContext = request.app.state.floatseat
    return ctx


Context = Annotated[WebContext, Depends(get_context)]


async def get_session(request: Request) -> Session:
    session: Session = request.state.session
    return session


def principal_of(request: Request, ctx: WebContext) -> Principal | None:
    """Who is asking: an API token, a logged-in account, or (demo mode) a loopback visitor."""
    token = bearer_principal(request, ctx.store)
    if token is not None:
        return token
    session: Session = request.state.session
    if session.user is not None:
        account = ctx.store.account(session.user)
        if account is not None:
            return Principal(account.username, account.role, "session")
    if ctx.settings.demo and is_local_visitor(request):
        return Principal("demo", Role.ADMIN, "demo")
    return None


async def who_is_asking(request: Request, ctx: WebContext) -> Principal | None:
    """`principal_of`, from the event loop: a lately verified API token is answered at once,
    anything that needs the database goes to the thread pool."""
    token = bearer_principal(request, ctx.store, cached=True)
    if token is not None:
        return token
    return await run_in_threadpool(principal_of, request, ctx)


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": "Bearer"}
    )


async def require_reader(request: Request, ctx: Context) -> Principal:
    who = await who_is_asking(request, ctx)
    if who is None:
        raise _unauthorized("log in or send an API token")
    if not who.can_read:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this token may only report activity")
    return who


async def require_admin(request: Request, ctx: Context) -> Principal:
    """An admin; a cookie-borne (or demo) request must also carry the session's CSRF token."""
    who = await who_is_asking(request, ctx)
    if who is None:
        raise _unauthorized("log in or send an API token")
    if not who.is_admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only admins may change things")
    if who.needs_csrf and request.method not in SAFE_METHODS:
        await check_csrf(request)
    return who


async def check_csrf(request: Request) -> None:
    presented = request.headers.get(CSRF_HEADER)
    content_type = request.headers.get("content-type", "")
    if presented is None and content_type.startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        value = (await request.form()).get(CSRF_FIELD)
        presented = value if isinstance(value, str) else None
    if not csrf_ok(request.state.session, presented):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "missing or wrong CSRF token")


Reader = Annotated[Principal, Depends(require_reader)]
Admin = Annotated[Principal, Depends(require_admin)]
CurrentSession = Annotated[Session, Depends(get_session)]
