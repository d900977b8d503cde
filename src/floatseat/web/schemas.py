"""The API's request and reply bodies (Pydantic): `*Public` out, `*Create`/`*In` in.

Times go out as ISO 8601 instants in UTC and come in as ISO 8601 with an offset, or as
seconds since the epoch.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from floatseat.web.store import Role
from floatseat.web.views import InstanceRole


def instant(at: int) -> datetime:
    return datetime.fromtimestamp(at, UTC)


def optional_instant(at: int | None) -> datetime | None:
    return None if at is None else instant(at)


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StatusPublic(BaseModel):
    capacity: int = Field(description="Floating seats there are (pinned and reserve excluded).")
    seats_held: int = Field(description="Floating seats held now.")
    queue_length: int = Field(description="Users waiting for a seat.")
    pinned: int
    tier: int | None = Field(description="The licence tier as last reported.")
    licensed: int | None = Field(description="The licensed count as last reported.")
    licence_reported_at: datetime | None
    revokes_paused: str | None = Field(description="Why idle revokes are paused, if they are.")
    frozen: bool
    shadow: bool
    stalled_feeds: list[str]
    feed_lag_s: dict[str, float]
    outbox_backlog: int
    directory_errors: int
    last_reconciliation: datetime | None
    drift_repairs: int
    warnings: list[str]
    now: datetime
    role: InstanceRole = Field(
        description="This instance's part: `solo` (one instance, SQLite ledger); with several "
        "instances on PostgreSQL `leader` (moves users in the directory), "
        "`leader-taking-over` (leads, but is still within the takeover grace: directory "
        "moves resume within seconds) or `follower` (serves the dashboard and the API, "
        "hands activity to the leader)."
    )
    instance: str = Field(description="This instance's name (`solo` for a single instance).")
    leader: str | None = Field(
        description="The leading instance's name, as the ledger records it; null when solo "
        "or when nobody leads (e.g. just after the leader stopped cleanly)."
    )
    epoch: int | None = Field(
        description="The leadership epoch: it rises by one at every change of leader "
        "(a fencing token); null when solo."
    )


class HolderPublic(BaseModel):
    user: str
    granted_at: datetime
    last_activity: datetime
    expires_at: datetime = Field(description="When the seat may go for idleness.")


class WaiterPublic(BaseModel):
    user: str
    position: int = Field(description="1: served next.")
    queued_at: datetime
    estimated_wait_s: int | None = Field(
        description="Seconds until a seat could be had if nobody becomes active again; "
        "null when there is no estimate (no seats, or revokes paused)."
    )


class UserPublic(BaseModel):
    user: str
    state: Literal["holding", "pinned", "queued", "idle", "excluded", "unmanaged"]
    in_pool: bool
    excluded: bool
    pinned: bool
    holder: HolderPublic | None
    waiter: WaiterPublic | None
    recent_audit: list[AuditEntryPublic]


class AuditEntryPublic(BaseModel):
    at: datetime
    user: str
    kind: str = Field(
        description="grant, revoke, release, queued, denied, warn, ignored, "
        "move-*, or admin (an action on the dashboard or the API)"
    )
    rule: str
    reason: str
    move_id: int | None
    source: Literal["engine", "admin"]


class AuditPagePublic(BaseModel):
    total: int
    offset: int
    limit: int
    entries: list[AuditEntryPublic]


class HistoryPublic(BaseModel):
    capacity: int
    points: list[tuple[datetime, int]] = Field(
        description="(time, floating seats held from then on), from the audit log."
    )


class LicenceDayPublic(BaseModel):
    day: str = Field(description="YYYY-MM-DD, UTC.")
    max_licensed: int
    tier: int


class LicencePublic(BaseModel):
    tier: int | None
    licensed: int | None
    reported_at: datetime | None
    days: list[LicenceDayPublic] = Field(description="The daily maximum licensed count.")


class PinPublic(BaseModel):
    user: str | None
    group: str | None
    until: datetime | None


class PinCreate(_In):
    until: AwareDatetime | None = Field(None, description="When the pin ends; null: never.")
    reason: str = ""


class ReasonIn(_In):
    reason: str = Field(min_length=1, max_length=500, description="Goes to the audit log.")


class DecisionPublic(BaseModel):
    user: str
    at: datetime
    kind: str
    rule: str
    reason: str


class ActivityIn(_In):
    """A user was seen: a login, a request, an SSO hook."""

    user: str = Field(min_length=1, max_length=255, description="The username.")
    at: AwareDatetime | None = Field(
        None, description="When (ISO 8601 with offset, or epoch seconds); default now."
    )
    source: str | None = Field(
        None, max_length=64, description="Who reports it, e.g. scriptrunner-login-listener."
    )


ActivityDecision = Literal["granted", "holding", "queued", "ignored", "denied", "forwarded"]


class ActivityPublic(BaseModel):
    """What floatseat made of the activity."""

    decision: ActivityDecision = Field(
        description="granted: a seat was given now; holding: the user already holds one "
        "(or is pinned); queued: waiting, see position; ignored: not managed by floatseat; "
        "denied: no seat could be had; forwarded: this instance follows another, the "
        "leader, which has the report and decides within seconds."
    )
    position: Annotated[int | None, Field(description="Place in the queue when queued.")] = None
    reason: str


class PolicyIn(_In):
    """Settings to change; the others keep their value. Validated together."""

    model_config = ConfigDict(extra="allow")


class TokenCreate(_In):
    name: str = Field(min_length=1, max_length=100)
    role: Role


class TokenPublic(BaseModel):
    id: int
    name: str
    role: Role
    created_by: str
    created_at: datetime


class TokenCreated(TokenPublic):
    token: str = Field(description="The secret: shown this once, never stored.")


class AccountCreate(_In):
    username: str = Field(min_length=1, max_length=255)
    password: str = Field(min_length=12, max_length=1024)
    role: Literal[Role.ADMIN, Role.READ_ONLY]


class AccountPublic(BaseModel):
    username: str
    role: Role
    created_at: datetime


class WaitingLinkIn(_In):
    user: str = Field(min_length=1, max_length=255)


class WaitingLinkPublic(BaseModel):
    url: str
    expires_in_s: int


class WaitingStatePublic(BaseModel):
    """The waiting room's view of one verified user."""

    user: str
    state: str
    position: int | None
    queue_length: int
    estimated_wait_s: int | None
    redirect_to: str | None = Field(description="Set once the user holds a seat.")


class Problem(BaseModel):
    detail: Any


UserPublic.model_rebuild()
