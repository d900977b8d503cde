"""The simulator's HTTP face: `create_app(sim)` builds a FastAPI app serving the product's
REST API with the real paths, status codes and JSON shapes, plus the `/_sim` control API.

Every product request passes `SimMiddleware` first: faults (latency, 429, 5xx, dropped
connection, read-only directory), authentication (Basic or Bearer; wrong credentials give
401 with `X-Seraph-LoginReason: AUTHENTICATED_FAILED`), then the access log of a node.
`/_sim/*` is neither authenticated, faulted nor logged: it is the test's back door.

Control API:
- ``GET /_sim/state``: groups, memberships, licensed count, tier, `licence_violations`,
  faults, directories, people;
- ``GET|POST|DELETE /_sim/faults``, ``DELETE /_sim/faults/{id}``: see `floatseat.sim.faults`;
- ``POST /_sim/advance`` ``{"seconds": s}``: move the clock, run the virtual users;
- ``POST /_sim/sync``: the product synchronises its Crowd directory now;
- ``POST /_sim/licence`` ``{"tier", "can_use", "grants", "admin_groups", "sysadmin_groups"}``:
  the licence and Confluence's global permissions (Jira's role groups go through its REST API);
- ``POST /_sim/users`` ``{"name", "directory", "groups", "active", "password"}`` and
  ``PATCH /_sim/users/{name}`` ``{"active": bool}``: set-up of users.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from floatseat.sim import confluence, crowd, jira, permissions
from floatseat.sim.core import Simulator
from floatseat.sim.errors import Refusal, refusal_response
from floatseat.sim.faults import Fault
from floatseat.sim.logs import AccessRecord, thread_name
from floatseat.sim.model import SimError, SimUser

__all__ = ["SimMiddleware", "create_app"]


def create_app(sim: Simulator) -> FastAPI:
    """The ASGI app of `sim`: the product's REST API, Crowd's if enabled, and `/_sim`."""
    app = FastAPI(
        title=f"floatseat simulated {sim.product}", docs_url=None, redoc_url=None, openapi_url=None
    )
    app.state.sim = sim
    if sim.product == "confluence":
        app.include_router(confluence.router)
        app.include_router(permissions.router)
    else:
        app.include_router(jira.router)
    app.include_router(confluence.manifest_router)
    if sim.config.crowd:
        app.include_router(crowd.router)
    _control(app, sim)

    def answering(path: str) -> str:
        """Whose error format a path answers in: Crowd's resources speak Crowd's."""
        return "crowd" if path.startswith(crowd.PREFIXES) else sim.product

    @app.exception_handler(Refusal)
    async def _refusal(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Refusal)
        return refusal_response(answering(request.url.path), exc, request.url.path)

    @app.exception_handler(404)
    async def _not_found(request: Request, exc: Exception) -> Response:
        # Jersey's answer for a path no resource serves (products return it as JSON).
        path = request.url.path
        return refusal_response(answering(path), Refusal(404, f"null for uri: {request.url}"), path)

    app.add_middleware(SimMiddleware, sim=sim)
    return app


class SimMiddleware:
    """Faults, authentication and access logging in front of the product's routes."""

    def __init__(self, app: ASGIApp, sim: Simulator) -> None:
        self.app = app
        self.sim = sim

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/_sim"):
            await self.app(scope, receive, send)
            return
        sim = self.sim
        method: str = scope["method"]
        path: str = scope["path"]
        started = time.perf_counter()
        at = sim.now()
        node = sim.next_node()
        hit = sim.hit_faults(method, path)
        if hit.latency_ms:
            await asyncio.sleep(hit.latency_ms / 1000)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        is_crowd = path.startswith(crowd.PREFIXES)
        if is_crowd:
            auth = crowd.authenticate(sim, headers.get("authorization"))
        else:
            auth = sim.authenticate(headers.get("authorization"))
        state = scope.setdefault("state", {})
        state["sim_auth"] = auth
        state["sim_read_only"] = hit.read_only
        client = scope.get("client") or ("127.0.0.1", 0)
        status = [0]
        size = [0]

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            elif message["type"] == "http.response.body":
                size[0] += len(message.get("body", b""))
            await send(message)

        product = "crowd" if is_crowd else sim.product
        terminal = hit.terminal
        if terminal is not None and terminal.kind == "drop":
            await _drop(receive)
            status[0] = 0
        elif terminal is not None:
            await _fault_response(product, terminal, path)(scope, receive, counting_send)
        elif auth.failed or auth.refused:
            if auth.refused and auth.user is not None:
                sim.log_refusal(node, at, auth.user, ip=client[0], url=path)
            response = refusal_response(
                product,
                Refusal(401, "Client must be authenticated to access this resource."),
                path,
            )
            if not is_crowd:
                response.headers["X-Seraph-LoginReason"] = "AUTHENTICATED_FAILED"
            await response(scope, receive, counting_send)
        else:
            await self.app(scope, receive, counting_send)
        if status[0] == 0:
            return  # no response, no access-log line (Tomcat logs what it answered)
        query = scope.get("query_string", b"").decode("latin-1")
        logged_user = auth.user if not (auth.failed or auth.refused or is_crowd) else None
        if status[0] == 401:
            logged_user = None
        sim.log_access(
            node,
            AccessRecord(
                at=at,
                method=method,
                uri=path + ("?" + query if query else ""),
                status=status[0],
                size=size[0],
                took_ms=max(1, round((time.perf_counter() - started) * 1000)),
                user=logged_user,
                ip=client[0],
                referer=headers.get("referer", ""),
                agent=headers.get("user-agent", ""),
                thread=thread_name(sim.product, node + 1),
            ),
        )


async def _drop(receive: Receive) -> None:
    """Close the connection without answering, as a crashed node or a proxy would.

    uvicorn's `receive` is a method of its request cycle, which holds the transport; abort
    it (no response bytes at all) and mark the cycle disconnected so that uvicorn does not
    try to answer 500 itself.
    """
    cycle = getattr(receive, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None:
        raise ConnectionAbortedError("simulated dropped connection")
    transport.abort()
    if hasattr(cycle, "disconnected"):
        setattr(cycle, "disconnected", True)  # noqa: B010 - an attribute of uvicorn's cycle
    await asyncio.sleep(0)


def _fault_response(product: str, fault: Fault, path: str) -> Response:
    if fault.kind == "rate_limit":
        # DC rate limiting's headers (shared/reference/atlassian.md §5).
        response = refusal_response(product, Refusal(429, "Rate limit exceeded"), path)
        response.headers.update(
            {
                "Retry-After": str(fault.retry_after_s),
                "X-RateLimit-Limit": "10",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Interval-Seconds": "1",
                "X-RateLimit-FillRate": "1",
            }
        )
        return response
    messages = {500: "Internal server error", 503: "Service Unavailable"}
    return refusal_response(
        product, Refusal(fault.status, messages.get(fault.status, "Simulated failure")), path
    )


def _control(app: FastAPI, sim: Simulator) -> None:
    """The `/_sim` back door."""

    @app.get("/_sim/state")
    def state() -> JSONResponse:
        return JSONResponse(sim.snapshot())

    @app.get("/_sim/faults")
    def faults() -> JSONResponse:
        with sim.lock:
            return JSONResponse([f.as_json() for f in sim.faults.faults])

    @app.post("/_sim/faults")
    async def add_fault(request: Request) -> JSONResponse:
        try:
            fault = Fault.from_json(await _json(request))
        except (ValueError, TypeError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse(sim.add_fault(fault).as_json(), status_code=201)

    @app.delete("/_sim/faults")
    def clear_faults() -> Response:
        sim.clear_faults()
        return Response(status_code=204)

    @app.delete("/_sim/faults/{fault_id}")
    def remove_fault(fault_id: int) -> Response:
        with sim.lock:
            removed = sim.faults.remove(fault_id)
        return Response(status_code=204 if removed else 404)

    @app.post("/_sim/sync")
    def sync() -> Response:
        sim.sync_crowd()
        return Response(status_code=204)

    @app.post("/_sim/advance")
    async def advance(request: Request) -> JSONResponse:
        body = await _json(request)
        try:
            requests = sim.advance(float(body.get("seconds", 0)))
        except (TypeError, ValueError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse({"now": sim.now(), "requests": requests})

    @app.post("/_sim/licence")
    async def licence(request: Request) -> JSONResponse:
        body = await _json(request)
        sim.set_licence(
            tier=body.get("tier"),
            can_use=body.get("can_use"),
            grants=body.get("grants"),
            admin_groups=body.get("admin_groups"),
            sysadmin_groups=body.get("sysadmin_groups"),
        )
        return JSONResponse(sim.snapshot())

    @app.post("/_sim/users")
    async def add_user(request: Request) -> JSONResponse:
        body = await _json(request)
        name = str(body["name"])
        user = SimUser(
            name,
            str(body.get("display_name", name)),
            str(body.get("email", f"{name}@example.com")),
            active=bool(body.get("active", True)),
            password=body.get("password", sim.config.user_password),
        )
        try:
            with sim.lock:
                sim.world.add_user(
                    user,
                    directory=body.get("directory"),
                    groups=body.get("groups", ()),
                    now=sim.now(),
                )
        except SimError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse({"name": name, "key": user.key}, status_code=201)

    @app.patch("/_sim/users/{name}")
    async def patch_user(name: str, request: Request) -> Response:
        body = await _json(request)
        try:
            with sim.lock:
                if "active" in body:
                    sim.world.set_active(name, bool(body["active"]), sim.now())
        except SimError as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)
        return Response(status_code=204)


async def _json(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("a JSON object is expected")
    return data
