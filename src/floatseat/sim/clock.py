"""Clocks for the simulator: a manual one for tests, an accelerated one for demos."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

__all__ = ["AcceleratedClock", "Clock", "ManualClock"]


class Clock(Protocol):
    def now(self) -> float:
        """Simulated Unix seconds."""
        ...


class ManualClock:
    """Moves only when told: tests advance it and nothing sleeps."""

    def __init__(self, start: float) -> None:
        self._now = start
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError("a clock does not go back")
        with self._lock:
            self._now += seconds
            return self._now


class AcceleratedClock:
    """Simulated time running `speed` times faster than `real` (speed 1440: a day a minute)."""

    def __init__(
        self, start: float, speed: float = 1.0, real: Callable[[], float] = time.monotonic
    ) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self._start = start
        self._speed = speed
        self._real = real
        self._origin = real()
        self._skipped = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._start + self._skipped + (self._real() - self._origin) * self._speed

    def advance(self, seconds: float) -> float:
        """Jump ahead (e.g. to skip a night) without waiting."""
        if seconds < 0:
            raise ValueError("a clock does not go back")
        with self._lock:
            self._skipped += seconds
        return self.now()
