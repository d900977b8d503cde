"""The errors of the Atlassian HTTP layer, rooted in the engine's `DirectoryError`.

* DirectoryError (floatseat.service.errors): the directory refused a call or was unreachable
  + ReadOnlyDirectory: the user's directory (or the whole product) refuses writes
  + NotFound: the user or group named in the call does not exist
    - UserNotFound
    - GroupNotFound
  + NotPermitted: 401 or 403, the credentials are wrong or lack the permission
  + UnexpectedResponse: any other status the caller did not expect (400, 409, a redirect...)
  + ManualStepRequired: no API makes this change; the admin gets the steps to click
  + DirectoryUnavailable (floatseat.service.errors): transient, the same call may succeed later
    - Unavailable: 5xx, a refused connection or a timeout, after the retries
    - RateLimited: still 429 after the retries

Each error keeps the server's own text (`server_message`) and the HTTP `status` when there
was one, and never any credential: the HTTP layer scrubs passwords and tokens out of every
message before it raises. `retry_after_s` carries the server's Retry-After when it sent one,
so the outbox waits at least that long.
"""

from __future__ import annotations

from floatseat.service.errors import DirectoryError, DirectoryUnavailable

__all__ = [
    "DirectoryError",
    "DirectoryUnavailable",
    "GroupNotFound",
    "ManualStepRequired",
    "HttpDirectoryError",
    "NotFound",
    "NotPermitted",
    "RateLimited",
    "ReadOnlyDirectory",
    "Unavailable",
    "UnexpectedResponse",
    "UserNotFound",
]


class HttpDirectoryError(DirectoryError):
    """Base of the HTTP layer's own errors: the HTTP status and the server's text."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        server_message: str = "",
        retry_after_s: int | None = None,
    ) -> None:
        super().__init__(message, retry_after_s=retry_after_s)
        self.status = status
        self.server_message = server_message


class ReadOnlyDirectory(HttpDirectoryError):
    """The directory refuses writes, e.g. "The user's directory is read only."

    Put the pool groups in a writable (internal, or "Read Only, with Local Groups") directory.
    """


class NotFound(HttpDirectoryError):
    """A 404: what the call named does not exist."""


class UserNotFound(NotFound):
    """The user named in the call does not exist."""


class GroupNotFound(NotFound):
    """The group named in the call does not exist."""


class NotPermitted(HttpDirectoryError):
    """A 401 or 403: the credentials are refused or lack the administrator permission."""


class UnexpectedResponse(HttpDirectoryError):
    """A status the caller did not expect and no other error describes (400, 409, 3xx...)."""


class Unavailable(HttpDirectoryError, DirectoryUnavailable):
    """A 5xx, a refused connection or a timeout, still there after the retries."""


class RateLimited(HttpDirectoryError, DirectoryUnavailable):
    """Still rate-limited (429) after the retries; wait `retry_after_s` before the next call."""


class ManualStepRequired(DirectoryError):
    """The product offers no API for this change: `steps` tells the admin what to click.

    Confluence, for example, has no REST call for the "Can use" global permission.
    """

    def __init__(self, message: str, *, steps: tuple[str, ...]) -> None:
        super().__init__(message)
        self.steps = steps
