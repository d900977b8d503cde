"""Confluence's global permissions: the REST resource (9.2.5+) and the JSON-RPC methods.

What the simulated Confluence serves, and where each shape comes from:

- ``GET /rest/api/permissions``: every grant, as ``[{"operation": {"targetType",
  "operationKey"}, "subject": {...}}]`` (Confluence DC REST docs, "Global Permissions",
  v9.2.18 and v10.0.0). The docs' example subject has only ``displayName`` and ``type``; a
  public note made against a real 9.3.1 reads space-permission subjects as ``{type,
  userKey|name}``. Which field names a group is therefore UNVERIFIED: a group's subject
  carries both ``name`` and ``displayName`` (a group's display name is its name).
- ``GET /rest/api/permissions/group/{groupName}``: that group's grants; 404 for no group.
- ``PUT /rest/api/permissions/group/{groupName}/grant|revoke`` with a body of
  ``[{"targetType", "operationKey"}]``; the documented pairs are "application use",
  "application administer", "system administer", "personal_space create" and "space create".
  Grant "doesn't override existing permissions, will only add those one that weren't
  granted before"; on revoke, "When 'application use' is revoked, all granted permissions
  will be removed from target group". 400 for any other pair, 404 for no group (docs'
  error list); the success status is not given ("void"): 204 here.
- Served from 9.2.5: `RemoteGlobalPermissionService` is "Since: 9.2.5" (Confluence
  javadoc 10.1.2); before, the path is unknown to Jersey (404).
- JSON-RPC ``addGlobalPermission(permission, entityName)``,
  ``addGlobalPermissions(permissions, entityName)`` and
  ``removeGlobalPermission(permission, entityName)``: decompiled `SpacesSoapService`. The
  name is looked up as a *user first*, then as a group ("No user or group with the name
  '...' exists." otherwise); adding is idempotent and returns true; removing takes away only
  that one permission and returns true even when it was not granted. The permission strings
  are `SpacePermission`'s: "USECONFLUENCE", "ADMINISTRATECONFLUENCE",
  "SYSTEMADMINISTRATOR", "PERSONALSPACE", "CREATESPACE". Confluence stores any other string
  unchecked; the simulator accepts and forgets it.

Every change goes through `World.set_rules`, so the licensed count follows at once and a
grant that takes the count over the tier is recorded as a licence violation.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from floatseat.sim.core import Simulator
from floatseat.sim.errors import Refusal, require_admin, sim_of
from floatseat.sim.model import SimError, World, fold

__all__ = [
    "GROUP_OPERATIONS",
    "REST_SINCE",
    "RPC_PERMISSIONS",
    "RemoteFault",
    "group_operations",
    "rpc_change",
    "router",
]

router = APIRouter()

Operation = tuple[str, str]  # (targetType, operationKey)
USE: Operation = ("application", "use")
ADMINISTER: Operation = ("application", "administer")
SYSTEM: Operation = ("system", "administer")
PERSONAL_SPACE: Operation = ("personal_space", "create")
SPACE: Operation = ("space", "create")
GROUP_OPERATIONS: tuple[Operation, ...] = (USE, ADMINISTER, SYSTEM, PERSONAL_SPACE, SPACE)
OTHER_OPERATIONS = frozenset({PERSONAL_SPACE, SPACE})  # license no one
RPC_PERMISSIONS: dict[str, Operation] = {
    "USECONFLUENCE": USE,
    "ADMINISTRATECONFLUENCE": ADMINISTER,
    "SYSTEMADMINISTRATOR": SYSTEM,
    "PERSONALSPACE": PERSONAL_SPACE,
    "CREATESPACE": SPACE,
}
REST_SINCE = (9, 2, 5)


class RemoteFault(SimError):
    """A `RemoteException` of Confluence's RPC layer, with its message."""

    def __init__(self, message: str) -> None:
        super().__init__(f"com.atlassian.confluence.rpc.RemoteException: {message}")


# -- the model -------------------------------------------------------------------------------


def group_operations(world: World, group: str) -> list[Operation]:
    """The global permissions `group` holds, in the documented order."""
    g, rules = fold(group), world.rules
    held = {
        USE: g in rules.can_use,
        ADMINISTER: g in rules.admin_groups,
        SYSTEM: g in rules.sysadmin_groups,
    }
    others = world.other_permissions.get(g, set())
    return [op for op in GROUP_OPERATIONS if held.get(op, op in others)]


def change_group(
    world: World,
    group: str,
    *,
    grant: frozenset[Operation] = frozenset(),
    revoke: frozenset[Operation] = frozenset(),
    now: float,
) -> None:
    """Grant and revoke global permissions of `group` (which must exist)."""
    g, rules = fold(group), world.rules

    def apply(holders: frozenset[str], op: Operation) -> frozenset[str]:
        if op in revoke:
            return holders - {g}
        if op in grant:
            return holders | {g}
        return holders

    others = world.other_permissions.get(g, set())
    others = (others | (grant & OTHER_OPERATIONS)) - revoke
    if others:
        world.other_permissions[g] = others
    else:
        world.other_permissions.pop(g, None)
    new = replace(
        rules,
        can_use=apply(rules.can_use, USE),
        admin_groups=apply(rules.admin_groups, ADMINISTER),
        sysadmin_groups=apply(rules.sysadmin_groups, SYSTEM),
    )
    spelling = world.group_spelling(group)
    what = ", ".join(f"{t} {k}" for t, k in sorted(grant | revoke))
    verb = "granted to" if grant else "revoked from"
    world.set_rules(new, now, f"global permissions ({what}) {verb} {spelling}")


def _change_user(world: World, user: str, op: Operation, add: bool, now: float) -> None:
    """An individual grant: "Can use" (`grants`) or an administrator permission."""
    u, rules = fold(user), world.rules
    if op == USE:
        grants = rules.grants | {u} if add else rules.grants - {u}
        new = replace(rules, grants=grants)
    elif op in (ADMINISTER, SYSTEM):
        # Both administrator permissions share one set for individual users: enough for the
        # licence count, which is all the simulator models of them.
        admins = rules.admin_grants | {u} if add else rules.admin_grants - {u}
        new = replace(rules, admin_grants=admins)
    else:
        return
    world.set_rules(new, now, f"global permission {op[0]} {op[1]} changed for {user}")


def rpc_change(world: World, method: str, params: list[Any], now: float) -> bool:
    """`addGlobalPermission(s)` / `removeGlobalPermission`, as `SpacesSoapService` does them."""
    permissions: list[Any]
    if method == "addGlobalPermissions":
        permissions = params[0] if isinstance(params[0], list) else [params[0]]
    else:
        permissions = [params[0]]
    entity = params[1]
    if any(p is None for p in permissions):
        raise RemoteFault("Permission must be non-null")
    name = str(entity)
    user = world.find_user(name)
    if user is None and not world.has_group(name):
        raise RemoteFault(f"No user or group with the name '{name}' exists.")
    add = method != "removeGlobalPermission"
    for permission in permissions:
        op = RPC_PERMISSIONS.get(str(permission))
        if op is None:
            continue  # Confluence stores unknown strings unchecked; they license no one
        if user is not None:
            _change_user(world, user.name, op, add, now)
        elif add:
            change_group(world, name, grant=frozenset({op}), now=now)
        else:
            change_group(world, name, revoke=frozenset({op}), now=now)
    return True


# -- REST ------------------------------------------------------------------------------------


def _rest_api(sim: Simulator, request: Request) -> None:
    if not sim.config.at_least(*REST_SINCE):
        raise Refusal(404, f"null for uri: {request.url}")


def _grant_json(op: Operation, subject: dict[str, Any]) -> dict[str, Any]:
    return {"operation": {"targetType": op[0], "operationKey": op[1]}, "subject": subject}


def _group_subject(name: str) -> dict[str, Any]:
    return {"type": "group", "name": name, "displayName": name}


def _all_grants(world: World) -> list[dict[str, Any]]:
    rules = world.rules
    groups = rules.licensing_groups | set(world.other_permissions)
    grants: list[dict[str, Any]] = []
    for g in sorted(groups):
        spelling = world.group_spelling(g) if world.has_group(g) else g
        subject = _group_subject(spelling)
        grants.extend(_grant_json(op, subject) for op in group_operations(world, g))
    for u in sorted(rules.licensed_names):
        user = world.find_user(u)
        if user is None:
            continue
        subject = {"type": "user", "userKey": user.key, "displayName": user.display_name}
        if u in rules.grants:
            grants.append(_grant_json(USE, subject))
        if u in rules.admin_grants:
            grants.append(_grant_json(ADMINISTER, subject))
    return grants


@router.get("/rest/api/permissions")
def all_permissions(request: Request) -> JSONResponse:
    require_admin(request)
    sim = sim_of(request)
    _rest_api(sim, request)
    with sim.lock:
        return JSONResponse(_all_grants(sim.world))


@router.get("/rest/api/permissions/group/{group}")
def group_permissions(group: str, request: Request) -> JSONResponse:
    require_admin(request)
    sim = sim_of(request)
    _rest_api(sim, request)
    with sim.lock:
        if not sim.world.has_group(group):
            raise Refusal(404, f"No group found with name: {group}")
        subject = _group_subject(sim.world.group_spelling(group))
        ops = group_operations(sim.world, group)
    return JSONResponse([_grant_json(op, subject) for op in ops])


async def _operations(request: Request) -> frozenset[Operation]:
    try:
        body = json.loads(await request.body() or b"null")
    except ValueError:
        raise Refusal(400, "The request body is not JSON") from None
    if not isinstance(body, list) or not body:
        raise Refusal(400, "Expected a list of permissions: [{targetType, operationKey}]")
    ops: set[Operation] = set()
    for item in body:
        if not isinstance(item, dict):
            raise Refusal(400, f"Not a permission: {item!r}"[:200])
        op = (str(item.get("targetType")), str(item.get("operationKey")))
        if op not in GROUP_OPERATIONS:
            # UNVERIFIED wording; the docs only say 400 for "non existing operation".
            raise Refusal(400, f"Unsupported global permission: {op[0]} {op[1]}")
        ops.add(op)
    return frozenset(ops)


@router.put("/rest/api/permissions/group/{group}/grant")
async def grant_to_group(group: str, request: Request) -> Response:
    return await _change_group(group, request, grant=True)


@router.put("/rest/api/permissions/group/{group}/revoke")
async def revoke_from_group(group: str, request: Request) -> Response:
    return await _change_group(group, request, grant=False)


async def _change_group(group: str, request: Request, *, grant: bool) -> Response:
    require_admin(request)
    sim = sim_of(request)
    _rest_api(sim, request)
    ops = await _operations(request)
    with sim.lock:
        if not sim.world.has_group(group):
            raise Refusal(404, f"No group found with name: {group}")
        if grant:
            change_group(sim.world, group, grant=ops, now=sim.now())
        else:
            if USE in ops:  # "all granted permissions will be removed from target group"
                ops = frozenset(GROUP_OPERATIONS)
            change_group(sim.world, group, revoke=ops, now=sim.now())
    return Response(status_code=204)
