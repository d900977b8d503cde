"""POST /api/v1/agent/batches: activity from `floatseat agent` on the cluster's nodes.

An agent follows one node's logs with `floatseat serve`'s own followers and sends what it
saw in numbered batches (`seq` 1, 2, 3, ... per `agent_id`). A batch is stored in the
activity inbox together with its number, in one transaction; a batch whose number is not
above the last one accepted from that agent is answered `duplicate: true` and adds nothing.
So an agent that did not hear the answer sends the batch again, and it is counted once.

Authentication is that of POST /api/v1/activity: a reporter or admin token, or an HMAC
signature over the body. A batch with zero items is a heartbeat: it says that the agent
lives and, in `log_at`, when its node's logs last grew.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, status
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.concurrency import run_in_threadpool

from floatseat.logs.pattern import MAX_USERNAME_LENGTH, canonical_user, is_username
from floatseat.service.errors import LedgerDatabaseError
from floatseat.service.ports import InboxItem
from floatseat.store.inbox import AgentNodeMismatch, BatchReceipt, Inbox
from floatseat.web.api import THROTTLED_RESPONSE, activity_reporter
from floatseat.web.deps import Context, WebContext
from floatseat.web.security import Principal

__all__ = [
    "MAX_AGE_S",
    "MAX_AHEAD_S",
    "MAX_ITEMS",
    "AgentBatchIn",
    "AgentBatchPublic",
    "AgentItemIn",
    "router",
]

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1", tags=["agents"])

MAX_ITEMS = 5000  # per batch; the agent sends at most 1000 by default
# A spooled batch may reach us days late (the service was down); a week-old sighting no
# longer matters to any seat, and anything older is a broken clock or a broken agent.
MAX_AGE_S = 7 * 86400
MAX_AHEAD_S = 60  # a node's clock may run a little ahead of ours
_MAX_SECONDS = 2**53  # bounds what reaches the database's BIGINT columns
_MAX_SEQ = 2**63 - 1


class _StrictIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class AgentItemIn(_StrictIn):
    """One sighting: a counted request, or a refused login (`refused`, always urgent)."""

    user: str = Field(min_length=1, max_length=255, description="The username as logged.")
    at: int = Field(ge=0, le=_MAX_SECONDS, description="The log line's time, Unix seconds.")
    urgent: bool = Field(False, description="A refused login or a seat path: no coalescing.")
    refused: bool = Field(False, description="A refused login.")

    @field_validator("user")
    @classmethod
    def _named(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("a username must not be blank")
        if not is_username(canonical_user(value.strip())):
            raise ValueError(f"longer than {MAX_USERNAME_LENGTH} characters once lower-cased")
        return value.strip()


class AgentBatchIn(_StrictIn):
    """A numbered batch of one node's sightings."""

    agent_id: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9._-]+$",
        description="The agent's id, made at its first start and kept in its state.",
    )
    node: str = Field(min_length=1, max_length=255, description="The node the logs are from.")
    seq: int = Field(ge=1, le=_MAX_SEQ, description="1, 2, 3, ...: the batch's number.")
    log_at: int | None = Field(
        None, ge=0, le=_MAX_SECONDS, description="When the node's logs last grew (Unix s)."
    )
    items: list[AgentItemIn] = Field(max_length=MAX_ITEMS)

    @field_validator("node")
    @classmethod
    def _named(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("a node's name must not be blank")
        return value.strip()


class AgentBatchPublic(BaseModel):
    """What became of a batch. `duplicate`: it had been accepted before, nothing was added."""

    seq: int
    accepted: int = Field(description="Sightings added to the activity inbox.")
    duplicate: bool
    last_seq: int = Field(description="The highest batch number accepted from this agent.")
    too_old: int = Field(
        0, description="Sightings more than 7 days old: left out, they matter to no seat."
    )
    ahead: int = Field(
        0,
        description="Sightings more than 60 s ahead of the service's clock (the node's clock "
        "runs fast): added at the service's time.",
    )


@router.post(
    "/agent/batches",
    response_model=AgentBatchPublic,
    responses={
        401: {"description": "No token, or a bad or stale signature."},
        403: {"description": "A token that may not report activity."},
        409: {"description": "The agent's id already reports another node."},
        422: {"description": "A malformed batch."},
        429: THROTTLED_RESPONSE,
        503: {"description": "The ledger's database failed; send the batch again later."},
    },
)
async def accept_agent_batch(
    body: AgentBatchIn,
    ctx: Context,
    _: Annotated[Principal, Depends(activity_reporter)],
) -> AgentBatchPublic:
    """Take a batch of sightings from `floatseat agent`; a batch sent again is counted once.

    A sighting more than 7 days old is left out; one more than a minute ahead of the
    service's clock is added at the service's time (the answer counts both). One bad item
    never holds up the node's other activity. Authenticate as for POST /api/v1/activity.
    """
    return await run_in_threadpool(store_batch, ctx, body)


def store_batch(ctx: WebContext, body: AgentBatchIn) -> AgentBatchPublic:
    now = ctx.now()
    items, too_old, ahead = within_window(body.node, body.items, now)
    try:
        receipt: BatchReceipt = Inbox(ctx.runtime.ledger.engine).accept_batch(
            body.agent_id, body.node, body.seq, items, now=now, log_at=body.log_at
        )
    except AgentNodeMismatch as error:
        raise HTTPException(status.HTTP_409_CONFLICT, str(error)) from None
    except LedgerDatabaseError as error:
        log.warning("agent %s, batch %d: %s", body.agent_id, body.seq, error)
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "the ledger's database failed; send the batch again later",
            headers={"Retry-After": "5"},
        ) from None
    counted = not receipt.duplicate
    if counted and (too_old or ahead):
        log.warning(
            "agent %s, node %s, batch %d: %d sightings more than 7 days old left out, %d more "
            "than %d s ahead of this clock added at its time (fix the node's time sync)",
            body.agent_id,
            body.node,
            body.seq,
            too_old,
            ahead,
            MAX_AHEAD_S,
        )
    return AgentBatchPublic(
        seq=receipt.seq,
        accepted=receipt.accepted,
        duplicate=receipt.duplicate,
        last_seq=receipt.last_seq,
        too_old=too_old if counted else 0,
        ahead=ahead if counted else 0,
    )


def within_window(
    node: str, items: list[AgentItemIn], now: int
) -> tuple[list[InboxItem], int, int]:
    """The inbox items of a batch; how many were too old (left out), how many ahead.

    A sighting stamped ahead of this clock happened by now at the latest (it reached us), so
    it counts at `now`: a node whose clock runs fast loses no activity and holds up nothing.
    """
    kept: list[InboxItem] = []
    too_old = ahead = 0
    for i in items:
        at = i.at
        if at < now - MAX_AGE_S:
            too_old += 1
            continue
        if at > now + MAX_AHEAD_S:
            ahead += 1
            at = now
        kept.append(InboxItem(node, canonical_user(i.user), at, i.urgent or i.refused, i.refused))
    return kept, too_old, ahead
