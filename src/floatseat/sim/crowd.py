"""Crowd's user-management REST API over the product's Crowd directory (reference §3).

Authenticated by the *application's* name and password. Changes made here land in Crowd's
own state and reach the product at its next directory synchronisation (`/_sim/sync`, or
the configured interval). Codes: add 201, already a member 409, group not found 400, user
not found 404; remove 204; not a member 404.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from floatseat.sim.core import Auth, Simulator
from floatseat.sim.errors import Refusal, auth_of, read_only_fault, sim_of
from floatseat.sim.model import AlreadyExists, AlreadyMember, NotAMember, NotFound, SimUser, fold

__all__ = ["PREFIXES", "authenticate", "router"]

PREFIXES = ("/rest/usermanagement/1/", "/rest/usermanagement/latest/")
router = APIRouter()


def authenticate(sim: Simulator, authorization: str | None) -> Auth:
    """The application's credentials; users cannot call Crowd's REST API."""
    scheme, _, value = (authorization or "").partition(" ")
    if scheme.lower() != "basic":
        return Auth(None, failed=True)
    try:
        name, _, password = base64.b64decode(value).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return Auth(None, failed=True)
    if name != sim.config.crowd_app or password != sim.config.crowd_password:
        return Auth(None, failed=True)
    return Auth(name, failed=False, admin=True)


def _base(request: Request) -> str:
    version = request.path_params["version"]
    return f"{str(request.base_url).rstrip('/')}/rest/usermanagement/{version}"


def _check(request: Request) -> Simulator:
    if request.path_params.get("version") not in ("1", "latest"):
        raise Refusal(404, f"null for uri: {request.url}")
    auth_of(request)  # the middleware has refused bad credentials already
    return sim_of(request)


def _user_link(base: str, name: str) -> dict[str, str]:
    return {"href": f"{base}/user?username={quote(name)}", "rel": "self"}


def _user_json(user: SimUser, base: str) -> dict[str, Any]:
    first, _, last = user.display_name.partition(" ")
    return {
        "expand": "attributes",
        "link": _user_link(base, user.name),
        "name": user.name,
        "password": {
            "link": {"href": f"{base}/user/password?username={quote(user.name)}", "rel": "edit"}
        },
        "key": user.key,
        "active": user.active,
        "first-name": first,
        "last-name": last,
        "display-name": user.display_name,
        "email": user.email,
    }


def _group_json(name: str, base: str) -> dict[str, Any]:
    return {
        "expand": "attributes",
        "link": {"href": f"{base}/group?groupname={quote(name)}", "rel": "self"},
        "name": name,
        "description": "",
        "type": "GROUP",
        "active": True,
    }


async def _name(request: Request) -> str:
    try:
        return str(json.loads(await request.body() or b"{}")["name"])
    except (ValueError, KeyError, TypeError):
        raise Refusal(400, "name is required", "INVALID_REQUEST") from None


def _param(request: Request, name: str) -> str:
    value = request.query_params.get(name)
    if not value:
        raise Refusal(400, f"{name} is required", "INVALID_REQUEST")
    return value


def _members(sim: Simulator, request: Request, group: str) -> JSONResponse:
    base = _base(request)
    crowd = sim.world.require_crowd()
    g = fold(group)
    if g not in crowd.live_groups:
        raise Refusal(404, f"Group <{group}> does not exist", "GROUP_NOT_FOUND")
    names = sorted((crowd.live_users[u].name for u in crowd.live_members.get(g, set())), key=fold)
    start = int(request.query_params.get("start-index", "0"))
    count = int(request.query_params.get("max-results", "1000"))
    chunk = names[start : start + count]
    return JSONResponse(
        {"expand": "user", "users": [{"link": _user_link(base, n), "name": n} for n in chunk]}
    )


@router.get("/rest/usermanagement/{version}/group/user/direct")
@router.get("/rest/usermanagement/{version}/group/user/nested")
def group_members(request: Request) -> JSONResponse:
    sim = _check(request)
    with sim.lock:
        return _members(sim, request, _param(request, "groupname"))


def _refuse_if_read_only(request: Request, user: str, group: str) -> None:
    # UNVERIFIED: Crowd's exact answer for a read-only directory. Crowd refuses changes the
    # application's directory permissions do not allow with 403 APPLICATION_PERMISSION_DENIED;
    # the text follows the products' "The user's directory is read only."
    if read_only_fault(request):
        raise Refusal(
            403,
            f"You cannot change the membership of user <{user}> in group <{group}>. "
            "The user's directory is read only.",
            "APPLICATION_PERMISSION_DENIED",
        )


async def _add(request: Request, user: str, group: str) -> Response:
    sim = _check(request)
    _refuse_if_read_only(request, user, group)
    with sim.lock:
        try:
            sim.world.crowd_add_member(user, group)
        except NotFound as exc:
            if exc.what == "group":
                raise Refusal(400, f"Group <{group}> does not exist", "GROUP_NOT_FOUND") from None
            raise Refusal(404, f"User <{user}> does not exist", "USER_NOT_FOUND") from None
        except AlreadyMember:
            raise Refusal(
                409,
                f"User <{user}> is already a direct member of <{group}>",
                "MEMBERSHIP_ALREADY_EXISTS",
            ) from None
    return Response(status_code=201)


@router.post("/rest/usermanagement/{version}/group/user/direct")
async def add_member(request: Request) -> Response:
    return await _add(request, await _name(request), _param(request, "groupname"))


@router.post("/rest/usermanagement/{version}/user/group/direct")
async def add_group_to_user(request: Request) -> Response:
    return await _add(request, _param(request, "username"), await _name(request))


def _remove(request: Request, user: str, group: str) -> Response:
    sim = _check(request)
    _refuse_if_read_only(request, user, group)
    with sim.lock:
        try:
            sim.world.crowd_remove_member(user, group)
        except NotFound as exc:
            what = "Group" if exc.what == "group" else "User"
            raise Refusal(
                404, f"{what} <{exc.name}> does not exist", f"{what.upper()}_NOT_FOUND"
            ) from None
        except NotAMember:
            raise Refusal(
                404, f"User <{user}> is not a direct member of <{group}>", "MEMBERSHIP_NOT_FOUND"
            ) from None
    return Response(status_code=204)


@router.delete("/rest/usermanagement/{version}/user/group/direct")
@router.delete("/rest/usermanagement/{version}/group/user/direct")
def remove_member(request: Request) -> Response:
    return _remove(request, _param(request, "username"), _param(request, "groupname"))


@router.get("/rest/usermanagement/{version}/user/group/direct")
def user_groups(request: Request) -> JSONResponse:
    sim = _check(request)
    username = fold(_param(request, "username"))
    base = _base(request)
    with sim.lock:
        crowd = sim.world.require_crowd()
        if username not in crowd.live_users:
            raise Refusal(404, f"User <{username}> does not exist", "USER_NOT_FOUND")
        names = sorted(
            (crowd.live_groups[g] for g, us in crowd.live_members.items() if username in us),
            key=fold,
        )
    start = int(request.query_params.get("start-index", "0"))
    count = int(request.query_params.get("max-results", "1000"))
    names = names[max(0, start) : max(0, start) + max(0, count)]
    return JSONResponse(
        {
            "expand": "group",
            "groups": [
                {"link": {"href": f"{base}/group?groupname={quote(n)}", "rel": "self"}, "name": n}
                for n in names
            ],
        }
    )


@router.get("/rest/usermanagement/{version}/group")
def get_group(request: Request) -> JSONResponse:
    sim = _check(request)
    group = _param(request, "groupname")
    with sim.lock:
        crowd = sim.world.require_crowd()
        name = crowd.live_groups.get(fold(group))
    if name is None:
        raise Refusal(404, f"Group <{group}> does not exist", "GROUP_NOT_FOUND")
    return JSONResponse(_group_json(name, _base(request)))


@router.post("/rest/usermanagement/{version}/group")
async def create_group(request: Request) -> JSONResponse:
    sim = _check(request)
    name = await _name(request)
    with sim.lock:
        try:
            sim.world.crowd_create_group(name)
        except AlreadyExists:
            raise Refusal(400, f"Group <{name}> already exists", "INVALID_GROUP") from None
    return JSONResponse(_group_json(name, _base(request)), status_code=201)


@router.get("/rest/usermanagement/{version}/user")
def get_user(request: Request) -> JSONResponse:
    sim = _check(request)
    username = _param(request, "username")
    with sim.lock:
        crowd = sim.world.require_crowd()
        user = crowd.live_users.get(fold(username))
        if user is None:
            raise Refusal(404, f"User <{username}> does not exist", "USER_NOT_FOUND")
        return JSONResponse(_user_json(user, _base(request)))
