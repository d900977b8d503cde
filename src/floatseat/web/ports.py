"""What the web side needs from the running service, as Protocols.

`floatseat.service.runtime.Runtime` is the implementation `serve` and `demo` pass in. The web
side reads the engine's state and the ledger, and changes things only through the runtime:
`submit(event)` for seat events, `freeze`/`unfreeze`, and `update_policy` where offered.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from floatseat.domain.policy import Activity, Decision, Event, PolicySettings, PolicySnapshot
from floatseat.service.engine import SeatEngine
from floatseat.store.ledger import SqlLedger

__all__ = ["PolicyEditor", "WebRuntime"]


class WebRuntime(Protocol):
    """The running service as the web side uses it."""

    @property
    def engine(self) -> SeatEngine: ...

    @property
    def ledger(self) -> SqlLedger: ...

    def now(self) -> int:
        """Seconds since the epoch on the service's clock (the demo's runs fast)."""
        ...

    def state(self) -> PolicySnapshot:
        """The policy's state: holders, waiters, pins."""
        ...

    def status(self) -> object:
        """The service's figures; read by attribute name (see `floatseat.web.views.Status`)."""
        ...

    def submit(self, event: Event) -> list[Decision]:
        """Decide one seat event (thread-safe); the decisions taken."""
        ...

    def submit_each(self, events: Sequence[Event]) -> list[list[Decision]]:
        """Decide several events in one ledger transaction; each event's decisions."""
        ...

    @property
    def follows(self) -> bool:
        """Another instance leads (several instances): activity is forwarded to it."""
        ...

    def forward(self, activity: Activity) -> bool:
        """Hand `activity` to the leader; whether it took it in time."""
        ...

    def freeze(self, by: str, reason: str) -> None:
        """Pause idle revokes until `unfreeze`; the runtime audits it."""
        ...

    def unfreeze(self, by: str) -> object: ...


@runtime_checkable
class PolicyEditor(Protocol):
    """A runtime that can change the policy while it runs (PUT /api/v1/policy needs it)."""

    def update_policy(self, settings: PolicySettings, by: str) -> None: ...
