"""Refusals and the products' error bodies; request helpers shared by the routers.

Shapes:
- Confluence: ``{"statusCode": 404, "data": {"authorized": .., "valid": .., "errors": [],
  "successful": false}, "message": ".."}``
- Jira: ``{"errorMessages": [".."], "errors": {}}``
- Crowd: ``{"reason": "GROUP_NOT_FOUND", "message": ".."}``
"""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse

from floatseat.sim.core import Auth, Simulator

__all__ = ["Refusal", "auth_of", "read_only_fault", "refusal_response", "require_admin", "sim_of"]


class Refusal(Exception):
    """An error answer: status, message and (Crowd) reason."""

    def __init__(self, status: int, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = reason


def refusal_response(product: str, refusal: Refusal, path: str) -> JSONResponse:
    status = refusal.status
    body: object
    if product == "jira":
        body = {"errorMessages": [refusal.message], "errors": {}}
    elif product == "crowd":
        body = {"reason": refusal.reason or _crowd_reason(status), "message": refusal.message}
    else:
        body = {
            "statusCode": status,
            "data": {
                "authorized": status not in (401, 403),
                "valid": status != 400,
                "errors": [],
                "successful": False,
            },
            "message": refusal.message,
        }
    return JSONResponse(body, status_code=status)


def _crowd_reason(status: int) -> str:
    return {
        400: "INVALID_REQUEST",
        401: "APPLICATION_ACCESS_DENIED",
        403: "APPLICATION_PERMISSION_DENIED",
        404: "OBJECT_NOT_FOUND",
        409: "MEMBERSHIP_ALREADY_EXISTS",
    }.get(status, "OPERATION_FAILED")


def sim_of(request: Request) -> Simulator:
    sim = request.app.state.sim
    assert isinstance(sim, Simulator)
    return sim


def auth_of(request: Request) -> Auth:
    """The `Auth` the middleware put on the request."""
    auth = request.state.sim_auth
    assert isinstance(auth, Auth)
    return auth


def read_only_fault(request: Request) -> bool:
    return bool(request.state.sim_read_only)


def require_user(request: Request) -> Auth:
    """Anonymous requests get 401; the products ask every REST caller to log in."""
    auth = auth_of(request)
    if auth.user is None:
        raise Refusal(401, "Client must be authenticated to access this resource.")
    return auth


def require_admin(request: Request) -> Auth:
    """401 without credentials, 403 for a user who is not an administrator."""
    auth = require_user(request)
    if not auth.admin:
        raise Refusal(403, f"User '{auth.user}' does not have administrator permissions.")
    return auth
