"""Request bodies have a size limit, checked before they are read.

An unauthenticated caller decides how big a body is; FastAPI reads a route's whole body
before its dependencies look at who is asking, and POST /api/v1/activity reads it to check
the signature. So every request is refused with 413 once its body passes the limit: at
once when `Content-Length` says so, or as soon as a chunked body has sent too much.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["ACTIVITY_LIMIT", "BODY_LIMIT", "BodyLimit"]

BODY_LIMIT = 1024 * 1024  # bytes: the largest form is the policy, a few kilobytes
ACTIVITY_LIMIT = 16 * 1024  # bytes: a username, a time and a source


class BodyLimit:
    """ASGI middleware: at most `limit` bytes of body, or `limits[path]` for those paths."""

    def __init__(self, app: ASGIApp, limit: int, limits: Mapping[str, int] | None = None) -> None:
        self.app = app
        self.limit = limit
        self.limits = dict(limits or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.get(scope["path"], self.limit)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _too_large(limit)(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise HTTPException(413, f"the body is larger than {limit} bytes")
            return message

        await self.app(scope, counted, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _too_large(limit: int) -> JSONResponse:
    return JSONResponse(
        {"detail": f"the body is larger than {limit} bytes"},
        status_code=413,
        headers={"Connection": "close"},
    )
