"""What an admin can do, shared by the API and the dashboard's forms; each action is audited.

Seat events go through the runtime, so the engine audits their decisions (a manual grant's
audit line names the admin and the reason). Freezes and policy changes are audited by the
runtime; pins, accounts and tokens, which change no seat by themselves, go to the same
audit log through `SqlLedger.record_admin` (kind `admin`, rule `admin-<action>`). Each
action writes one entry.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, cast

from floatseat.domain.policy import (
    AdminGrant,
    AdminRevoke,
    Decision,
    Pin,
    PinsChanged,
    PolicySettings,
    PriorityClass,
    SettingsError,
)
from floatseat.service.ports import AuditEntry
from floatseat.web.ports import PolicyEditor, WebRuntime
from floatseat.web.store import WebStore

__all__ = ["Actions", "PolicyNotEditable", "policy_from_json", "policy_to_json"]


class PolicyNotEditable(Exception):
    """The runtime cannot change its policy while it runs."""


def _iso(at: int | None) -> str:
    return "no end" if at is None else datetime.fromtimestamp(at, UTC).isoformat()


class Actions:
    """Admin actions against one runtime."""

    def __init__(self, runtime: WebRuntime, store: WebStore) -> None:
        self.runtime = runtime
        self.store = store
        self._pins_lock = threading.Lock()  # pins are read, changed and written back whole

    def now(self) -> int:
        return self.runtime.now()

    def record(self, by: str, action: str, target: str, detail: str) -> None:
        """Audit an admin action in the ledger's audit log (rule `admin-<action>`)."""
        self.runtime.ledger.record_admin(self.now(), by, action, target, detail)

    def pin(self, user: str, until: int | None, by: str, reason: str = "") -> list[Decision]:
        user = user.strip()
        if not user:
            raise ValueError("name the user to pin")
        now = self.now()
        if until is not None and until <= now:
            raise ValueError("the pin's end time has already passed")
        with self._pins_lock:
            pins = self.runtime.state().pins
            kept = tuple(p for p in pins if p.user != user)
            decisions = self.runtime.submit(PinsChanged(now, (*kept, Pin(user=user, until=until))))
            self.record(by, "pin", user, _with_reason(f"pinned until {_iso(until)}", reason))
        return decisions

    def unpin(self, user: str, by: str, reason: str = "") -> list[Decision]:
        with self._pins_lock:
            pins = self.runtime.state().pins
            kept = tuple(p for p in pins if p.user != user)
            if len(kept) == len(pins):
                raise LookupError(f"{user!r} is not pinned by name")
            decisions = self.runtime.submit(PinsChanged(self.now(), kept))
            self.record(by, "unpin", user, _with_reason("unpinned", reason))
        return decisions

    def grant(self, user: str, reason: str, by: str) -> list[Decision]:
        return self.runtime.submit(AdminGrant(self.now(), user.strip(), by, _reason(reason)))

    def revoke(self, user: str, reason: str, by: str) -> list[Decision]:
        return self.runtime.submit(AdminRevoke(self.now(), user.strip(), by, _reason(reason)))

    def freeze(self, reason: str, by: str) -> None:
        self.runtime.freeze(by, _reason(reason))  # the runtime audits it

    def unfreeze(self, by: str) -> None:
        self.runtime.unfreeze(by)  # the runtime audits it

    def set_policy(self, changes: Mapping[str, Any], by: str) -> PolicySettings:
        """Apply `changes` to the current policy; raises SettingsError when they cannot work."""
        if not isinstance(self.runtime, PolicyEditor):
            raise PolicyNotEditable("this service cannot change its policy while it runs")
        before = self.runtime.engine.settings
        after = policy_from_json(before, changes)
        # The service's Runtime audits the change itself and returns its entry; a runtime
        # that does not (returns None) gets the entry here. One entry either way.
        update = cast(Callable[[PolicySettings, str], object], self.runtime.update_policy)
        if not isinstance(update(after, by), AuditEntry):
            old, new = policy_to_json(before), policy_to_json(after)
            diff = ", ".join(f"{k}: {old[k]!r} -> {new[k]!r}" for k in new if old[k] != new[k])
            self.record(by, "policy", "-", diff or "no change")
        return after


def _reason(reason: str) -> str:
    reason = " ".join(reason.split())
    if not reason:
        raise ValueError("give a reason: it goes to the audit log")
    return reason[:500]


def _with_reason(text: str, reason: str) -> str:
    reason = " ".join(reason.split())
    return f"{text}: {reason[:500]}" if reason else text


# -- the policy as JSON --------------------------------------------------------------------


def policy_to_json(settings: PolicySettings) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        if f.name == "priority_classes":
            value = [{"name": c.name, "rank": c.rank, "groups": sorted(c.groups)} for c in value]
        elif isinstance(value, Mapping):
            value = dict(sorted(value.items()))
        out[f.name] = value
    return out


def policy_from_json(base: PolicySettings, changes: Mapping[str, Any]) -> PolicySettings:
    """`base` with `changes` applied, validated by `PolicySettings` (SettingsError if not)."""
    names = {f.name: f for f in dataclasses.fields(base)}
    problems = [f"unknown setting {k!r}" for k in changes if k not in names]
    values: dict[str, Any] = {}
    for key, value in changes.items():
        if key not in names:
            continue
        default = getattr(base, key)
        try:
            values[key] = _convert(key, default, value)
        except (TypeError, ValueError) as error:
            problems.append(f"{key}: {error}")
    if problems:
        raise SettingsError("; ".join(problems))
    return dataclasses.replace(base, **values)


def _convert(key: str, default: object, value: object) -> object:
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise TypeError("must be true or false")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError("must be a whole number")
        return value
    if key == "priority_classes":
        if not isinstance(value, list):
            raise TypeError("must be a list of {name, rank, groups}")
        classes = []
        for item in value:
            if not isinstance(item, dict) or set(item) != {"name", "rank", "groups"}:
                raise TypeError("each priority class needs exactly name, rank and groups")
            name, rank, groups = item["name"], item["rank"], item["groups"]
            if not isinstance(name, str) or not isinstance(rank, int) or isinstance(rank, bool):
                raise TypeError("a priority class has a text name and a whole-number rank")
            if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
                raise TypeError("a priority class's groups are a list of group names")
            classes.append(PriorityClass(name, rank, frozenset(groups)))
        return tuple(classes)
    if isinstance(default, Mapping):
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool)
            for k, v in value.items()
        ):
            raise TypeError("must map group names to whole numbers")
        return dict(value)
    raise TypeError("cannot be changed here")
