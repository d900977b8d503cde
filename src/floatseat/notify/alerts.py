"""Admin alerts from the service's status: pure, the caller passes `now` and the status.

- seats exhausted: no free floating seat for `seats_exhausted_after_s`;
- outbox stuck: a move decided `outbox_stuck_after_s` ago is still not applied;
- directory failing: `directory_failures` directory errors in a row;
- drift repaired: reconciliation found hand edits and repaired them.

A lasting problem is alerted once, then again every `alert_repeat_s` while it lasts; once
it clears, the next occurrence is alerted at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from floatseat.service.runtime import RuntimeStatus

__all__ = ["Alert", "AlertRules", "AlertState", "admin_alerts"]


@dataclass(frozen=True)
class Alert:
    kind: str  # seats-exhausted, outbox-stuck, directory-failing, drift-repaired
    title: str
    detail: str
    at: int


@dataclass(frozen=True)
class AlertRules:
    seats_exhausted_after_s: int = 600
    outbox_stuck_after_s: int = 300
    directory_failures: int = 3
    alert_repeat_s: int = 3600


@dataclass
class AlertState:
    exhausted_since: int | None = None
    last_alerted: dict[str, int] = field(default_factory=dict)  # kind -> when, while it lasts
    drift_seen: int = 0  # the status's drift_repairs already alerted


def admin_alerts(
    status: RuntimeStatus,
    state: AlertState,
    rules: AlertRules,
    *,
    drift_details: Sequence[str] = (),
) -> list[Alert]:
    """The alerts due now; updates `state`. `drift_details`: the repairs in words."""
    now = status.now
    out: list[Alert] = []

    def lasting(kind: str, active: bool, title: str, detail: str) -> None:
        if not active:
            state.last_alerted.pop(kind, None)
            return
        last = state.last_alerted.get(kind)
        if last is None or now - last >= rules.alert_repeat_s:
            state.last_alerted[kind] = now
            out.append(Alert(kind, title, detail, now))

    exhausted = status.seats_held >= status.capacity
    if not exhausted:
        state.exhausted_since = None
    elif state.exhausted_since is None:
        state.exhausted_since = now
    since = state.exhausted_since
    lasting(
        "seats-exhausted",
        since is not None and now - since >= rules.seats_exhausted_after_s,
        "No free seat",
        f"All {status.capacity} floating seats have been taken for "
        f"{_minutes(now - (since or now))}; {status.queue_length} user(s) waiting. "
        "Consider a bigger tier, a shorter idle timeout, or fewer pinned users.",
    )
    oldest = status.oldest_pending_move_at
    lasting(
        "outbox-stuck",
        oldest is not None and now - oldest >= rules.outbox_stuck_after_s,
        "Moves are not being applied",
        f"{status.outbox_backlog} move(s) wait for the directory, the oldest for "
        f"{_minutes(now - (oldest or now))}. Users are not getting or losing seats as decided; "
        "see the audit log and the directory's health.",
    )
    lasting(
        "directory-failing",
        status.directory_errors_in_a_row >= rules.directory_failures,
        "The directory keeps failing",
        f"{status.directory_errors_in_a_row} directory errors in a row; the last: "
        f"{status.last_directory_error or 'unknown'}.",
    )
    if status.drift_repairs > state.drift_seen:
        count = status.drift_repairs - state.drift_seen
        state.drift_seen = status.drift_repairs
        listed = "".join(f"\n- {d}" for d in drift_details)
        out.append(
            Alert(
                "drift-repaired",
                "Hand edits to the pool groups were repaired",
                f"Reconciliation found {count} change(s) made outside floatseat and "
                f"repaired them.{listed}",
                now,
            )
        )
    elif status.drift_repairs < state.drift_seen:  # the service restarted
        state.drift_seen = status.drift_repairs
    return out


def _minutes(seconds: int) -> str:
    return f"{max(0, seconds) // 60} min"
