"""The agent's pure parts: batches of sightings, their JSON, and how long to wait to retry.

No files, no network, no clock: the spool and the sender call these with what they read.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

__all__ = [
    "MAX_BATCH_BYTES",
    "RETRY_AFTER_CAP_S",
    "Batch",
    "Sighting",
    "make_batches",
    "parse_retry_after",
    "retry_delay",
]

# The service refuses bodies over 1 MiB (web/limits.py); a batch stays well below.
MAX_BATCH_BYTES = 512 * 1024
_ITEM_OVERHEAD = 64  # bytes of JSON around a user's name: {"user":..,"at":..,...}
RETRY_AFTER_CAP_S = 600.0  # a Retry-After of hours is a misconfigured proxy, not a plan


@dataclass(frozen=True)
class Sighting:
    """A user seen in the node's logs (`floatseat.service.feeds.Seen` without the node)."""

    user: str
    at: int
    urgent: bool = False
    refused: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"user": self.user, "at": self.at, "urgent": self.urgent, "refused": self.refused}


@dataclass(frozen=True)
class Batch:
    """A numbered batch: the body of POST /api/v1/agent/batches, and a spool file."""

    agent_id: str
    node: str
    seq: int
    log_at: int | None
    items: tuple[Sighting, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "agent_id": self.agent_id,
            "node": self.node,
            "seq": self.seq,
            "log_at": self.log_at,
            "items": [s.to_json() for s in self.items],
        }

    def encode(self) -> bytes:
        return json.dumps(self.to_json(), separators=(",", ":")).encode()

    @classmethod
    def decode(cls, raw: bytes) -> Batch:
        """A batch from its JSON; ValueError if it is not one."""
        data = json.loads(raw)
        if not isinstance(data, Mapping):
            raise ValueError("a batch is a JSON object")
        try:
            log_at = data["log_at"]
            batch = cls(
                agent_id=str(data["agent_id"]),
                node=str(data["node"]),
                seq=_integer(data["seq"]),
                log_at=None if log_at is None else _integer(log_at),
                items=tuple(
                    Sighting(
                        str(i["user"]), _integer(i["at"]), bool(i["urgent"]), bool(i["refused"])
                    )
                    for i in data["items"]
                ),
            )
        except (KeyError, TypeError) as error:
            raise ValueError(f"not a batch: {error}") from error
        return batch


def make_batches(
    sightings: Sequence[Sighting],
    *,
    agent_id: str,
    node: str,
    first_seq: int,
    log_at: int | None,
    batch_max: int,
    max_bytes: int = MAX_BATCH_BYTES,
) -> list[Batch]:
    """`sightings` cut into batches numbered from `first_seq`, in their order, each of at most
    `batch_max` items and about `max_bytes` of JSON. None for no sightings."""
    batches: list[Batch] = []
    for chunk in _chunks(sightings, batch_max, max_bytes):
        seq = first_seq + len(batches)
        batches.append(Batch(agent_id, node, seq, log_at, tuple(chunk)))
    return batches


def _chunks(sightings: Iterable[Sighting], most: int, max_bytes: int) -> Iterable[list[Sighting]]:
    chunk: list[Sighting] = []
    size = 0
    for sighting in sightings:
        cost = len(sighting.user.encode()) * 6 + _ITEM_OVERHEAD  # \uXXXX escapes at worst
        if chunk and (len(chunk) >= most or size + cost > max_bytes):
            yield chunk
            chunk, size = [], 0
        chunk.append(sighting)
        size += cost
    if chunk:
        yield chunk


def retry_delay(
    failures: int,
    retry_after: float | None = None,
    *,
    random: Callable[[], float],
    base_s: float = 0.5,
    cap_s: float = 30.0,
) -> float:
    """Seconds to wait after the `failures`-th failure in a row (1, 2, ...).

    The wait doubles from `base_s` up to `cap_s`, and half of it is random (`random()` in
    [0, 1)): the agents of a cluster that lost the service together do not all come back in
    the same second. A server's `Retry-After` wins when it gives one (never below `base_s`,
    never above `RETRY_AFTER_CAP_S`), plus up to `base_s` of the same spread.
    """
    if retry_after is not None:
        return min(max(retry_after, base_s), RETRY_AFTER_CAP_S) + random() * base_s
    exponent = min(max(failures, 1) - 1, 32)  # 2**32 * base is past any cap
    doubled = min(base_s * float(2**exponent), cap_s)
    return doubled / 2 + random() * doubled / 2


def parse_retry_after(value: str | None, now: float) -> float | None:
    """A `Retry-After` header's seconds (delay-seconds or an HTTP date), or None."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    seconds = float(when.timestamp()) - now
    return max(0.0, seconds) if math.isfinite(seconds) else None


def _integer(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{value!r} is not an integer")
    return value
