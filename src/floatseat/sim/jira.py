"""Jira Data Center's REST v2 endpoints, as floatseat uses them (reference §2).

Group members page with `startAt`/`maxResults`, capped at 50, with `total`, `isLast` and
`nextPage` (only while more remain). Membership changes are not idempotent in Jira: adding
a member who is already in the group and removing one who is not are refused with 400
(the texts below are UNVERIFIED: Jira's i18n strings were not found in public sources; the
400 status matches how Jira's GroupResource reports validation errors). Over the licence,
Jira keeps group management working and refuses new issues.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from floatseat.sim.confluence import base_of, expands, int_param
from floatseat.sim.core import Simulator
from floatseat.sim.errors import Refusal, read_only_fault, require_admin, require_user, sim_of
from floatseat.sim.model import NotFound, ReadOnlyDirectory, SimUser, fold

__all__ = ["router"]

router = APIRouter()
ROLE_KEY = "jira-software"
ROLE_NAME = "Jira Software"
# The KB's text (reference §2).
OVER_LICENCE = (
    "You have exceeded the number of users allowed to use JIRA applications under your license"
)
USER_NOT_FOUND = "Specified user does not exist or you do not have required permissions"


def user_json(user: SimUser, base: str) -> dict[str, Any]:
    avatar = f"{base}/secure/useravatar?avatarId=10122"
    return {
        "self": f"{base}/rest/api/2/user?username={quote(user.name)}",
        "key": user.key,
        "name": user.name,
        "emailAddress": user.email,
        "avatarUrls": {
            "48x48": avatar,
            "24x24": avatar + "&size=small",
            "16x16": avatar + "&size=xsmall",
            "32x32": avatar + "&size=medium",
        },
        "displayName": user.display_name,
        "active": user.active,
        "deleted": False,
        "timeZone": "UTC",
        "locale": "en_US",
    }


def group_json(name: str, size: int, base: str) -> dict[str, Any]:
    return {
        "name": name,
        "self": f"{base}/rest/api/2/group?groupname={quote(name)}",
        "users": {"size": size, "items": [], "max-results": 50, "start-index": 0, "end-index": 0},
        "expand": "users",
    }


def role_json(sim: Simulator) -> dict[str, Any]:
    w = sim.world
    count = w.licensed_count()
    tier = w.rules.tier
    groups = sorted((w.group_spelling(g) for g in w.rules.can_use if w.has_group(g)), key=fold)
    return {
        "key": ROLE_KEY,
        "name": ROLE_NAME,
        "groups": groups,
        "defaultGroups": list(w.default_groups),
        "selectedByDefault": False,
        "defined": True,
        "numberOfSeats": tier,
        "remainingSeats": tier - count,  # negative when over (UNVERIFIED)
        "userCount": count,
        "userCountDescription": f"{count} users",
        "hasUnlimitedSeats": False,
        "platform": False,
    }


def _group_param(request: Request) -> str:
    group = request.query_params.get("groupname")
    if not group:
        raise Refusal(400, "The group name must be specified.")
    return group


@router.get("/rest/api/2/serverInfo")
def server_info(request: Request) -> JSONResponse:
    sim = sim_of(request)
    version = sim.config.version or ""
    from floatseat.sim.confluence import build_number

    now = datetime.fromtimestamp(sim.now(), UTC)
    return JSONResponse(
        {
            "baseUrl": base_of(request),
            "version": version,
            "versionNumbers": list(sim.config.version_tuple[:3]),
            "deploymentType": "Server",
            "buildNumber": build_number("jira", sim.config.version_tuple),
            "buildDate": "2023-11-28T00:00:00.000+0000",
            "serverTime": now.strftime("%Y-%m-%dT%H:%M:%S.")
            + f"{now.microsecond // 1000:03d}+0000",
            "scmInfo": "3b9c6c1c0e7a1f3e1b0d1f1e0c3a1e2d3c4b5a69",
            "serverTitle": "Jira",
        }
    )


@router.get("/rest/api/2/myself")
def myself(request: Request) -> JSONResponse:
    auth = require_user(request)
    sim = sim_of(request)
    assert auth.user is not None
    with sim.lock:
        return JSONResponse(user_json(sim.world.user(auth.user), base_of(request)))


@router.get("/rest/api/2/group/member")
def group_members(request: Request) -> JSONResponse:
    require_admin(request)
    sim = sim_of(request)
    group = _group_param(request)
    include_inactive = request.query_params.get("includeInactiveUsers", "false").lower() == "true"
    start = int_param(request, "startAt", 0)
    cap = sim.config.jira_page_cap
    limit = min(max(int_param(request, "maxResults", cap), 1), cap)
    base = base_of(request)
    with sim.lock:
        try:
            members = sim.world.members_of(group)
        except NotFound:
            raise Refusal(404, f"Group with name '{group}' does not exist.") from None
        values = [user_json(u, base) for u in members if include_inactive or u.active]
    chunk = values[start : start + limit]
    is_last = start + limit >= len(values)

    def url(at: int) -> str:
        return (
            f"{base}/rest/api/2/group/member?groupname={quote(group)}"
            f"&includeInactiveUsers={str(include_inactive).lower()}&startAt={at}&maxResults={limit}"
        )

    data: dict[str, Any] = {"self": url(start)}
    if not is_last:
        data["nextPage"] = url(start + limit)
    data.update(
        {
            "maxResults": limit,
            "startAt": start,
            "total": len(values),
            "isLast": is_last,
            "values": chunk,
        }
    )
    return JSONResponse(data)


@router.post("/rest/api/2/group/user")
async def add_to_group(request: Request) -> JSONResponse:
    require_admin(request)
    sim = sim_of(request)
    group = _group_param(request)
    try:
        username = str(json.loads(await request.body() or b"{}")["name"])
    except (ValueError, KeyError, TypeError):
        raise Refusal(400, "The user name must be specified.") from None
    with sim.lock:
        w = sim.world
        if not w.has_group(group):
            raise Refusal(404, f"Group with name '{group}' does not exist.")
        if w.find_user(username) is None:
            raise Refusal(404, USER_NOT_FOUND)
        try:
            added = w.add_member(username, group, sim.now(), read_only=read_only_fault(request))
        except ReadOnlyDirectory as exc:
            raise Refusal(400, str(exc)) from None  # status UNVERIFIED; text: Jira KB
        if not added:
            # UNVERIFIED text; 400, not 201: Jira validates the membership first.
            raise Refusal(400, f"Cannot add user. '{username}' is already a member of '{group}'")
        name = w.group_spelling(group)
        size = len(w.members_of(group))
    return JSONResponse(group_json(name, size, base_of(request)), status_code=201)


@router.delete("/rest/api/2/group/user")
def remove_from_group(request: Request) -> Response:
    require_admin(request)
    sim = sim_of(request)
    group = _group_param(request)
    username = request.query_params.get("username")
    if not username:
        raise Refusal(400, "The user name must be specified.")
    with sim.lock:
        w = sim.world
        if not w.has_group(group):
            raise Refusal(404, f"Group with name '{group}' does not exist.")
        if w.find_user(username) is None:
            raise Refusal(404, USER_NOT_FOUND)
        try:
            removed = w.remove_member(username, group, read_only=read_only_fault(request))
        except ReadOnlyDirectory as exc:
            raise Refusal(400, str(exc)) from None
        if not removed:
            raise Refusal(  # UNVERIFIED text
                400,
                f"Cannot remove user '{username}' from group '{group}' since user is not a "
                f"member of '{group}'",
            )
    return Response(status_code=200)


@router.post("/rest/api/2/group")
async def create_group(request: Request) -> JSONResponse:
    require_admin(request)
    sim = sim_of(request)
    try:
        name = str(json.loads(await request.body() or b"{}")["name"]).strip()
    except (ValueError, KeyError, TypeError):
        raise Refusal(400, "The group name must be specified.") from None
    with sim.lock:
        if not sim.world.create_group(name):
            raise Refusal(400, "A group or user with this name already exists.")  # UNVERIFIED
    return JSONResponse(group_json(name, 0, base_of(request)), status_code=201)


@router.delete("/rest/api/2/group")
def delete_group(request: Request) -> Response:
    require_admin(request)
    sim = sim_of(request)
    group = _group_param(request)
    with sim.lock:
        try:
            sim.world.delete_group(group)
        except NotFound:
            raise Refusal(404, f"Group with name '{group}' does not exist.") from None
        rules = sim.world.rules
        if fold(group) in rules.can_use:
            sim.set_licence(can_use=[g for g in rules.can_use if g != fold(group)])
    return Response(status_code=200)


@router.get("/rest/api/2/user")
def get_user(request: Request) -> JSONResponse:
    require_user(request)
    sim = sim_of(request)
    username = request.query_params.get("username")
    key = request.query_params.get("key")
    base = base_of(request)
    with sim.lock:
        w = sim.world
        user = w.find_user(username) if username else (w.user_by_key(key) if key else None)
        if user is None:
            raise Refusal(404, f"The user named '{username or key}' does not exist")
        data = user_json(user, base)
        expand = expands(request)
        data["expand"] = "groups,applicationRoles"
        if "groups" in expand:
            groups = w.groups_of(user.name)
            data["groups"] = {
                "size": len(groups),
                "items": [
                    {"name": g, "self": f"{base}/rest/api/2/group?groupname={quote(g)}"}
                    for g in groups
                ],
            }
        else:
            data["groups"] = {"size": len(w.groups_of(user.name)), "items": []}
        licensed = w.is_licensed(user.name)
        data["applicationRoles"] = {
            "size": 1 if licensed else 0,
            "items": (
                [{"key": ROLE_KEY, "name": ROLE_NAME}]
                if licensed and "applicationRoles" in expand
                else []
            ),
        }
    return JSONResponse(data)


@router.get("/rest/api/2/user/search")
def search_users(request: Request) -> JSONResponse:
    require_user(request)
    sim = sim_of(request)
    query = (request.query_params.get("username") or "").strip()
    if not query:
        raise Refusal(400, "The username query parameter was not provided")
    start = int_param(request, "startAt", 0)
    cap = sim.config.user_search_cap
    limit = min(int_param(request, "maxResults", 50), cap)
    active = request.query_params.get("includeActive", "true").lower() != "false"
    inactive = request.query_params.get("includeInactive", "false").lower() == "true"
    base = base_of(request)
    needle = query.casefold()
    with sim.lock:
        found = [
            u
            for u in sim.world.all_users()
            if (u.active and active or not u.active and inactive)
            and (
                needle in (".", "%", "*")
                or any(needle in s.casefold() for s in (u.name, u.display_name, u.email))
            )
        ]
        # "up to the thousandth user": nothing past the cap is ever returned.
        found = found[:cap]
        return JSONResponse([user_json(u, base) for u in found[start : start + limit]])


def roles_version(sim: Simulator) -> str:
    """The roles' version hash, sent as the ETag of `GET /applicationrole` (Jira's REST WADL).

    Jira's own hash scheme is not documented: any value that changes with the roles will do.
    """
    role = role_json(sim)
    text = json.dumps([role["groups"], role["defaultGroups"]], sort_keys=True)
    return '"' + hashlib.sha256(text.encode()).hexdigest()[:16] + '"'


@router.get("/rest/api/2/applicationrole")
def roles(request: Request) -> JSONResponse:
    require_admin(request)
    sim = sim_of(request)
    with sim.lock:
        return JSONResponse([role_json(sim)], headers={"ETag": roles_version(sim)})


@router.get("/rest/api/2/applicationrole/{key}")
def role(key: str, request: Request) -> JSONResponse:
    require_admin(request)
    sim = sim_of(request)
    if key != ROLE_KEY:
        raise Refusal(404, f"The role with key '{key}' does not exist.")
    with sim.lock:
        return JSONResponse(role_json(sim))


@router.put("/rest/api/2/applicationrole/{key}")
async def update_role(key: str, request: Request) -> JSONResponse:
    """Only `groups` and `defaultGroups` can change; other fields are ignored."""
    require_admin(request)
    sim = sim_of(request)
    if key != ROLE_KEY:
        raise Refusal(404, f"The role with key '{key}' does not exist.")
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        raise Refusal(400, "Invalid JSON") from None
    if not isinstance(body, dict):
        raise Refusal(400, "Invalid JSON")
    with sim.lock:
        expected_version = request.headers.get("if-match")
        if expected_version is not None and expected_version != roles_version(sim):
            # UNVERIFIED: the status Jira gives a stale version hash is not documented.
            raise Refusal(412, "The application roles were changed by someone else.")
        w = sim.world
        groups = body.get("groups")
        defaults = body.get("defaultGroups")
        for g in list(groups or []) + list(defaults or []):
            if not w.has_group(str(g)):
                raise Refusal(400, f"Group '{g}' does not exist.")
        if groups is not None:
            sim.set_licence(can_use=[str(g) for g in groups])
        if defaults is not None:
            if not set(map(fold, defaults)) <= w.rules.can_use:
                raise Refusal(400, "Default groups must be a subset of the role's groups.")
            w.default_groups = [w.group_spelling(str(g)) for g in defaults]
        return JSONResponse(role_json(sim))


@router.delete("/rest/api/2/user/session/{username}")
def kill_sessions(username: str, request: Request) -> Response:
    require_admin(request)
    sim = sim_of(request)
    if not sim.config.at_least(9, 11):
        raise Refusal(404, f"null for uri: {request.url}")
    with sim.lock:
        if sim.world.find_user(username) is None:
            raise Refusal(404, USER_NOT_FOUND)
        sim.people.end_session(username)
    return Response(status_code=204)


@router.post("/rest/api/2/issue")
def create_issue(request: Request) -> JSONResponse:
    require_user(request)
    sim = sim_of(request)
    with sim.lock:
        if sim.world.over_tier():
            raise Refusal(403, OVER_LICENCE)  # status UNVERIFIED
    return JSONResponse(
        {"id": "10000", "key": "OPS-1", "self": f"{base_of(request)}/rest/api/2/issue/10000"},
        status_code=201,
    )
