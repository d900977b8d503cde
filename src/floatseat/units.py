"""Parsing of the units people type: durations and percentages."""

from __future__ import annotations

import re
from fractions import Fraction

_DURATION = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> int:
    """'90s', '30m', '1h', '2d' or bare seconds ('1800') -> seconds."""
    match = _DURATION.match(text.lower())
    if match is None:
        raise ValueError(f"{text!r} is not a duration; use for example 90s, 30m, 1h or 1800")
    return int(match.group(1)) * _SECONDS[match.group(2)]


def format_duration(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0 and seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def parse_fraction(text: str) -> Fraction:
    """'10%' or '0.1' -> Fraction(1, 10), exactly."""
    text = text.strip()
    try:
        if text.endswith("%"):
            value = Fraction(text[:-1].strip()) / 100
        else:
            value = Fraction(text)
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"{text!r} is not a share; use for example 10% or 0.1") from None
    if value < 0:
        raise ValueError(f"{text!r} is negative")
    return value
