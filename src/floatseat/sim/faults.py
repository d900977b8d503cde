"""Faults a test switches on at run time: which requests they hit, and how often. Pure.

Kinds:
- ``latency``: wait `latency_ms` before answering (stacks with any other fault);
- ``rate_limit``: 429 with `Retry-After` and the `X-RateLimit-*` headers of DC rate limiting
  (shared/reference/atlassian.md §5);
- ``error``: answer `status` (500 or 503 ...) with the product's error body;
- ``drop``: close the connection without any response;
- ``read_only``: the user's directory refuses membership changes, as a plain "Read Only"
  LDAP directory does.

A fault hits requests whose path starts with one of `paths` (or matches it as a glob when
it holds `*`) and whose method is one of `methods`; empty means all. With `times`, it hits
that many requests and then retires itself.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, cast

__all__ = ["Fault", "FaultKind", "FaultSet", "Hit"]

FaultKind = Literal["latency", "rate_limit", "error", "drop", "read_only"]
KINDS: tuple[str, ...] = ("latency", "rate_limit", "error", "drop", "read_only")
TERMINAL = ("rate_limit", "error", "drop")  # these answer instead of the product


@dataclass
class Fault:
    kind: FaultKind
    times: int | None = None  # requests left to hit; None: until cleared
    paths: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()
    status: int = 503  # error
    latency_ms: int = 0  # latency
    retry_after_s: int = 5  # rate_limit
    id: int = 0
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.methods and method.upper() not in self.methods:
            return False
        if not self.paths:
            return True
        return any(
            fnmatch.fnmatchcase(path, p) if "*" in p else path.startswith(p) for p in self.paths
        )

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["paths"] = list(self.paths)
        data["methods"] = list(self.methods)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Fault:
        """A fault from a `/_sim/faults` body; ValueError names what is wrong."""
        kind = data.get("kind")
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
        times = data.get("times")
        if times is not None and (not isinstance(times, int) or times < 1):
            raise ValueError("times must be a positive integer or null")
        status = int(data.get("status", 503))
        if not 400 <= status <= 599:
            raise ValueError("status must be an HTTP error status")

        def strings(name: str) -> tuple[str, ...]:
            value = data.get(name, ())
            if isinstance(value, str):
                value = [value]
            return tuple(str(v) for v in value)

        return cls(
            kind=cast(FaultKind, kind),
            times=times,
            paths=strings("paths"),
            methods=tuple(m.upper() for m in strings("methods")),
            status=status,
            latency_ms=int(data.get("latency_ms", 0)),
            retry_after_s=int(data.get("retry_after_s", 5)),
        )


@dataclass(frozen=True)
class Hit:
    """What the faults do to one request."""

    latency_ms: int = 0
    terminal: Fault | None = None  # rate_limit, error or drop: answers instead
    read_only: bool = False


@dataclass
class FaultSet:
    """The faults switched on now. Not thread-safe: the simulator holds its lock."""

    faults: list[Fault] = field(default_factory=list)
    next_id: int = 1

    def add(self, fault: Fault) -> Fault:
        fault.id = self.next_id
        self.next_id += 1
        self.faults.append(fault)
        return fault

    def remove(self, fault_id: int) -> bool:
        before = len(self.faults)
        self.faults = [f for f in self.faults if f.id != fault_id]
        return len(self.faults) < before

    def clear(self) -> None:
        self.faults.clear()

    def hit(self, method: str, path: str) -> Hit:
        """Apply the faults to one request; counts hits and retires used-up faults."""
        latency = 0
        terminal: Fault | None = None
        read_only = False
        for fault in self.faults:
            if not fault.matches(method, path):
                continue
            if fault.kind in TERMINAL:
                if terminal is not None:
                    continue  # one answer per request: the earliest fault wins
                terminal = fault
            elif fault.kind == "latency":
                latency += fault.latency_ms
            else:
                read_only = True
            fault.hits += 1
            if fault.times is not None:
                fault.times -= 1
        self.faults = [f for f in self.faults if f.times is None or f.times > 0]
        return Hit(latency, terminal, read_only)
