"""Licence tiers and the tier a peak calls for."""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction

# Atlassian Data Center user tiers: 500, then every 1,000 up to 10,000, then every 5,000 up to
# 50,000 (shared/reference/atlassian.md section 9).
DEFAULT_TIERS: tuple[int, ...] = (
    (500,) + tuple(range(1000, 10001, 1000)) + tuple(range(15000, 50001, 5000))
)


def required_seats(peak: int, headroom: Fraction, fixed_seats: int) -> int:
    """ceil(peak x (1 + headroom)) + fixed seats, computed exactly (no float rounding)."""
    return math.ceil(peak * (1 + headroom)) + fixed_seats


def smallest_tier(seats: int, tiers: Sequence[int]) -> int | None:
    """The smallest tier that holds `seats`; None when even the largest does not."""
    fitting = [tier for tier in tiers if tier >= seats]
    return min(fitting) if fitting else None
