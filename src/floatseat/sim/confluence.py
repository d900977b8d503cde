"""Confluence Data Center's REST and JSON-RPC endpoints, as floatseat uses them.

Sources (shared/reference/atlassian.md §1): the DC REST docs for User, Group, User Group
(8.2+, idempotent, 204) and Admin Group (8.2+); the licence resource `{"count": N}`; the
9.3+ list of licensed users; `GET /rest/api/user/memberof` (a page of groups). Lists are
paged with `start`/`limit`; the server caps `limit` (200 here) and gives `_links.next` while
more remain, so a short page is the last. Before 8.2 the REST API has no membership
resources (404), and the JSON-RPC service `/rpc/json-rpc/confluenceservice-v2` is the way,
when the Remote API is enabled (off by default from 8.x: see `SimConfig.remote_api_enabled`).
Global permissions, over REST from 9.2.5 and over JSON-RPC, live in
`floatseat.sim.permissions`; `getServerInfo` answers the Remote API's ServerInfo struct.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import escape

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from floatseat.sim import permissions
from floatseat.sim.core import Simulator
from floatseat.sim.errors import (
    Refusal,
    read_only_fault,
    require_admin,
    require_user,
    sim_of,
)
from floatseat.sim.model import (
    AlreadyExists,
    NotFound,
    ReadOnlyDirectory,
    SimError,
    SimUser,
)

__all__ = ["manifest_router", "router"]

router = APIRouter()
manifest_router = APIRouter()
# UNVERIFIED wording; the behaviour is the licence-limit KB's (reference §9).
READ_ONLY_MESSAGE = (
    "Confluence is in read-only mode: the number of licensed users exceeds the licence."
)


def base_of(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def int_param(request: Request, name: str, default: int) -> int:
    text = request.query_params.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise Refusal(400, f"{name} must be an integer, not {text!r}") from None
    if value < 0:
        raise Refusal(400, f"{name} must not be negative")
    return value


def expands(request: Request) -> set[str]:
    return {e.strip() for e in request.query_params.get("expand", "").split(",") if e.strip()}


def user_json(user: SimUser, base: str, expand: set[str]) -> dict[str, Any]:
    data: dict[str, Any] = {
        "type": "known",
        "username": user.name,
        "userKey": user.key,
        "profilePicture": {
            "path": "/images/icons/profilepics/default.svg",
            "width": 48,
            "height": 48,
            "isDefault": True,
        },
        "displayName": user.display_name,
        "_links": {"self": f"{base}/rest/api/user?key={user.key}"},
        "_expandable": {"status": "", "details": ""},
    }
    if "status" in expand:
        data["status"] = "Active" if user.active else "Deactivated"
        del data["_expandable"]["status"]
    return data


def page(
    request: Request, items: list[Any], *, cap: int, path: str, default_limit: int | None = None
) -> dict[str, Any]:
    """Confluence's page: results, start, limit, size, _links (next while more remain)."""
    start = int_param(request, "start", 0)
    limit = int_param(request, "limit", default_limit or cap)
    limit = min(max(limit, 1), cap)
    chunk = items[start : start + limit]
    base = base_of(request)
    links: dict[str, str] = {"base": base, "context": ""}
    extra = "".join(
        f"&{k}={quote(v, safe='')}"
        for k, v in request.query_params.items()
        if k in ("expand", "username", "key")
    )
    links["self"] = f"{base}{path}"
    if start + limit < len(items):
        links["next"] = f"{path}?limit={limit}&start={start + limit}{extra}"
    if start > 0:
        links["prev"] = f"{path}?limit={limit}&start={max(0, start - limit)}{extra}"
    return {"results": chunk, "start": start, "limit": limit, "size": len(chunk), "_links": links}


def _membership_api(sim: Simulator, request: Request) -> None:
    if not sim.config.at_least(8, 2):
        raise Refusal(404, f"null for uri: {request.url}")


# -- users and groups ------------------------------------------------------------------------


def _user_named_in_query(sim: Simulator, request: Request) -> SimUser:
    """The user of `?username=` or `?key=`, as Confluence's user resources look them up."""
    username = request.query_params.get("username")
    key = request.query_params.get("key")
    if username:
        user = sim.world.find_user(username)
    elif key:
        user = sim.world.user_by_key(key)
    else:
        raise Refusal(400, "username or key is required")
    if user is None:
        what = f"username: {username}" if username else f"key: {key}"
        raise Refusal(404, f"No user found with {what}")
    return user


@router.get("/rest/api/user")
def get_user(request: Request) -> JSONResponse:
    require_user(request)
    sim = sim_of(request)
    with sim.lock:
        user = _user_named_in_query(sim, request)
        return JSONResponse(user_json(user, base_of(request), expands(request)))


@router.get("/rest/api/user/current")
def current_user(request: Request) -> JSONResponse:
    auth = require_user(request)
    sim = sim_of(request)
    assert auth.user is not None
    with sim.lock:
        user = sim.world.user(auth.user)
        return JSONResponse(user_json(user, base_of(request), expands(request)))


@router.get("/rest/api/user/memberof")
def member_of(request: Request) -> JSONResponse:
    """The groups a user belongs to directly, paged like every Confluence list.

    DC REST docs, User: `GET /rest/api/user/memberof?username=|key=[&start&limit]`, a page
    of groups (`{"type": "group", "name", "_links"}`); no such user: 404.
    """
    require_user(request)
    sim = sim_of(request)
    base = base_of(request)
    with sim.lock:
        user = _user_named_in_query(sim, request)
        groups = [group_json(g, base) for g in sim.world.groups_of(user.name)]
    return JSONResponse(
        page(request, groups, cap=sim.config.member_page_cap, path="/rest/api/user/memberof")
    )


def group_json(name: str, base: str) -> dict[str, Any]:
    return {
        "type": "group",
        "name": name,
        "_links": {"self": f"{base}/rest/api/group/{quote(name)}"},
    }


@router.get("/rest/api/group")
def get_groups(request: Request) -> JSONResponse:
    require_user(request)
    sim = sim_of(request)
    base = base_of(request)
    with sim.lock:
        groups = [
            {"type": "group", "name": g, "_links": {"self": f"{base}/rest/api/group/{quote(g)}"}}
            for g in sim.world.group_names()
        ]
    return JSONResponse(
        page(request, groups, cap=sim.config.member_page_cap, path="/rest/api/group")
    )


@router.get("/rest/api/group/{group}")
def get_group(group: str, request: Request) -> JSONResponse:
    require_user(request)
    sim = sim_of(request)
    with sim.lock:
        if not sim.world.has_group(group):
            raise Refusal(404, f"No group found with name: {group}")
        name = sim.world.group_spelling(group)
    base = base_of(request)
    return JSONResponse(
        {"type": "group", "name": name, "_links": {"self": f"{base}/rest/api/group/{quote(name)}"}}
    )


@router.get("/rest/api/group/{group}/member")
def group_members(group: str, request: Request) -> JSONResponse:
    require_user(request)
    sim = sim_of(request)
    base = base_of(request)
    expand = expands(request)
    with sim.lock:
        try:
            members = sim.world.members_of(group)
        except NotFound:
            raise Refusal(404, f"No group found with name: {group}") from None
        results = [user_json(u, base, expand) for u in members]
    path = f"/rest/api/group/{quote(group)}/member"
    return JSONResponse(page(request, results, cap=sim.config.member_page_cap, path=path))


@router.put("/rest/api/user/{username}/group/{group}")
def add_to_group(username: str, group: str, request: Request) -> Response:
    require_admin(request)
    sim = sim_of(request)
    _membership_api(sim, request)
    with sim.lock:
        try:
            sim.world.add_member(username, group, sim.now(), read_only=read_only_fault(request))
        except NotFound as exc:
            raise Refusal(404, _not_found(exc)) from None
        except ReadOnlyDirectory as exc:
            raise Refusal(403, str(exc)) from None  # status UNVERIFIED
    return Response(status_code=204)


@router.delete("/rest/api/user/{username}/group/{group}")
def remove_from_group(username: str, group: str, request: Request) -> Response:
    require_admin(request)
    sim = sim_of(request)
    _membership_api(sim, request)
    with sim.lock:
        try:
            sim.world.remove_member(username, group, read_only=read_only_fault(request))
        except NotFound as exc:
            raise Refusal(404, _not_found(exc)) from None
        except ReadOnlyDirectory as exc:
            raise Refusal(403, str(exc)) from None
    return Response(status_code=204)


def _not_found(exc: NotFound) -> str:
    if exc.what == "user":
        return f"No user found with username: {exc.name}"
    return f"No group found with name: {exc.name}"


@router.post("/rest/api/admin/group")
async def create_group(request: Request) -> JSONResponse:
    require_admin(request)
    sim = sim_of(request)
    _membership_api(sim, request)
    try:
        body = json.loads(await request.body() or b"{}")
        name = str(body["name"]).strip()
    except (ValueError, KeyError, TypeError):
        raise Refusal(400, "A group name is required") from None
    if not name:
        raise Refusal(400, "A group name is required")
    with sim.lock:
        if not sim.world.create_group(name):
            raise Refusal(409, f"Group already exists: {name}")  # status UNVERIFIED
    base = base_of(request)
    return JSONResponse(
        {"type": "group", "name": name, "_links": {"self": f"{base}/rest/api/group/{quote(name)}"}},
        status_code=201,  # UNVERIFIED: the docs say "Group JSON"; 200 and 201 both plausible
    )


@router.delete("/rest/api/admin/group/{group}")
def delete_group(group: str, request: Request) -> Response:
    require_admin(request)
    sim = sim_of(request)
    _membership_api(sim, request)
    with sim.lock:
        try:
            sim.world.delete_group(group)
        except NotFound:
            raise Refusal(404, f"No group found with name: {group}") from None
    return Response(status_code=204)


# -- licence ---------------------------------------------------------------------------------


@router.get("/rest/license/1.0/license/{figure}")
def licence_figure(figure: str, request: Request) -> JSONResponse:
    require_admin(request)
    sim = sim_of(request)
    with sim.lock:
        tier, count = sim.world.rules.tier, sim.world.licensed_count()
    values = {"userCount": count, "maxUsers": tier, "remainingSeats": tier - count}
    if figure not in values:
        raise Refusal(404, f"null for uri: {request.url}")
    return JSONResponse({"count": values[figure]})


def _active_users(request: Request) -> JSONResponse:
    require_admin(request)
    sim = sim_of(request)
    if not sim.config.at_least(9, 3):
        raise Refusal(404, f"null for uri: {request.url}")
    base = base_of(request)
    expand = expands(request)
    with sim.lock:
        results = []
        for user in sim.world.licensed_users():
            data = user_json(user, base, expand)
            if "lastLogin" in expand:
                data["lastLogin"] = sim.people.last_login(user.name)
            results.append(data)
    return JSONResponse(
        page(
            request,
            results,
            cap=sim.config.member_page_cap,
            path=request.url.path,
            default_limit=100,
        )
    )


# The reference (§1) found two spellings of this 9.3 resource; serve both.
router.get("/rest/api/admin/users/list/active")(_active_users)
router.get("/rest/api/user/list/active")(_active_users)


# -- content: where read-only mode shows -----------------------------------------------------


@router.post("/rest/api/content")
@router.put("/rest/api/content/{content_id}")
def write_content(request: Request) -> JSONResponse:
    require_user(request)
    sim = sim_of(request)
    with sim.lock:
        if sim.world.over_tier():
            raise Refusal(403, READ_ONLY_MESSAGE)
    return JSONResponse({"id": "65537", "type": "page", "status": "current"})


# -- JSON-RPC --------------------------------------------------------------------------------

# The text of Confluence's XML-RPC and SOAP servlets when `allowRemoteApi` is off (decompiled
# `XmlRpcServer` / `AxisSoapServer`, which answer it with HTTP 403). Whether the JSON-RPC
# plugin answers 403 too is UNVERIFIED: it is kept as a JSON-RPC error here.
RPC_DISABLED = "Remote API is not enabled on this server. Ask a site administrator to enable it."
ANYONE_RPC = frozenset({"hasUser", "hasGroup", "getUser", "getServerInfo"})


@router.post("/rpc/json-rpc/confluenceservice-v2")
@router.post("/rpc/json-rpc/confluenceservice-v2/{method}")
async def json_rpc(request: Request) -> JSONResponse:
    """The RemoteAPI's user-management methods, token-less (the session authenticates)."""
    sim = sim_of(request)
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        return _rpc_error(None, -32700, "Parse error")
    call_id = body.get("id") if isinstance(body, dict) else None
    method = request.path_params.get("method") or (
        body.get("method") if isinstance(body, dict) else None
    )
    params = body.get("params", []) if isinstance(body, dict) else body
    if not isinstance(params, list):
        params = [params]
    if not sim.config.remote_api_enabled:
        return _rpc_error(call_id, 0, RPC_DISABLED)
    auth = require_user(request)
    if not auth.admin and method not in ANYONE_RPC:
        return _rpc_error(call_id, 0, f"User '{auth.user}' is not a Confluence administrator")
    try:
        with sim.lock:
            result = _rpc_call(sim, str(method), params, read_only_fault(request), base_of(request))
    except SimError as exc:
        return _rpc_error(call_id, 0, _rpc_message(exc))
    except (IndexError, TypeError):
        return _rpc_error(call_id, -32602, f"Invalid params for {method}")
    except LookupError:
        return _rpc_error(call_id, -32601, f"Method not found: {method}")
    return JSONResponse({"jsonrpc": "2.0", "result": result, "id": call_id})


def _rpc_message(exc: SimError) -> str:
    if isinstance(exc, NotFound):
        return f"com.atlassian.confluence.rpc.RemoteException: {exc}"
    return str(exc)


def _rpc_call(sim: Simulator, method: str, p: list[Any], read_only: bool, base: str) -> Any:
    w = sim.world
    now = sim.now()
    if method == "getServerInfo":
        return server_info(sim, base)
    if method in ("addGlobalPermission", "addGlobalPermissions", "removeGlobalPermission"):
        return permissions.rpc_change(w, method, p, now)
    if method == "addUserToGroup":
        w.add_member(str(p[0]), str(p[1]), now, read_only=read_only)
        return True
    if method == "removeUserFromGroup":
        w.remove_member(str(p[0]), str(p[1]), read_only=read_only)
        return True
    if method == "addGroup":
        if not w.create_group(str(p[0])):
            raise AlreadyExists(f"Group already exists: {p[0]}")
        return True
    if method == "removeGroup":
        w.delete_group(str(p[0]))
        return True
    if method == "hasGroup":
        return w.has_group(str(p[0]))
    if method == "hasUser":
        return w.find_user(str(p[0])) is not None
    if method == "getGroups":
        return w.group_names()
    if method == "getUserGroups":
        return w.groups_of(str(p[0]))
    if method == "getUser":
        u = w.user(str(p[0]))
        return {"name": u.name, "fullname": u.display_name, "email": u.email, "key": u.key}
    if method == "getActiveUsers":
        return [u.name for u in w.all_users() if u.active]
    if method == "isActiveUser":
        return w.user(str(p[0])).active
    if method in ("deactivateUser", "reactivateUser"):
        w.set_active(str(p[0]), method == "reactivateUser", now)
        return True
    raise LookupError(method)


def server_info(sim: Simulator, base: str) -> dict[str, Any]:
    """`getServerInfo`: the Remote API's ServerInfo struct (majorVersion, minorVersion,
    patchLevel, buildId, developmentBuild, baseUrl), as its public clients read it."""
    major, minor, patch = (list(sim.config.version_tuple) + [0, 0])[:3]
    return {
        "majorVersion": major,
        "minorVersion": minor,
        "patchLevel": patch,
        "buildId": str(build_number("confluence", sim.config.version_tuple)),
        "developmentBuild": False,
        "baseUrl": base,
    }


def _rpc_error(call_id: Any, code: int, message: str) -> JSONResponse:
    return JSONResponse(
        {"jsonrpc": "2.0", "error": {"code": code, "message": message}, "id": call_id}
    )


# -- application links manifest (both products) ---------------------------------------------


def build_number(product: str, version: tuple[int, ...]) -> int:
    """Jira's build number is MAJOR*100000 + MINOR*1000 + PATCH (9.12.2 -> 912002);
    Confluence's scheme is not documented; this one is made up (UNVERIFIED)."""
    major, minor, patch = (list(version) + [0, 0])[:3]
    if product == "jira":
        return major * 100_000 + minor * 1_000 + patch
    return major * 1_000 + minor * 100 + patch


@manifest_router.get("/rest/applinks/1.0/manifest")
def manifest(request: Request) -> Response:
    sim = sim_of(request)
    base = base_of(request)
    product = sim.product
    name = "Confluence" if product == "confluence" else "Jira"
    version = sim.config.version or ""
    xml = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        "<manifest>"
        f"<id>{escape(sim.world.directories[0].name.replace(' ', '-').lower())}</id>"
        f"<name>{name}</name>"
        f"<typeId>{product}</typeId>"
        f"<version>{escape(version)}</version>"
        f"<buildNumber>{build_number(product, sim.config.version_tuple)}</buildNumber>"
        "<applinksVersion>9.1.2</applinksVersion>"
        "<inboundAuthenticationTypes>com.atlassian.applinks.api.auth.types.OAuthAuthenticationProvider</inboundAuthenticationTypes>"
        "<outboundAuthenticationTypes>com.atlassian.applinks.api.auth.types.OAuthAuthenticationProvider</outboundAuthenticationTypes>"
        "<publicSignup>false</publicSignup>"
        f"<url>{escape(base)}</url>"
        f"<iconUrl>{escape(base)}/images/logo/{product}-logo.png</iconUrl>"
        "</manifest>"
    )
    return Response(xml, media_type="application/xml")
