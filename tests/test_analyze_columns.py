"""The report's column-wise pieces against the plain-Python code they stand in for.

`window_peaks_frame` must give the domain's `window_peaks`; the users' long days, the walk
over each session's days; the encoded pairs, the pairs sorted by user then time.
"""

from __future__ import annotations

import random
from zoneinfo import ZoneInfo

import polars as pl
import pytest

from floatseat.analysis.analyze import (
    _long_days,
    _long_days_walked,
    encode_frames,
    window_peaks_frame,
)
from floatseat.analysis.scan import PAIRS_SCHEMA
from floatseat.domain.sessions import Step, window_peaks

STEPS_SCHEMA = {"at": pl.Int64, "level": pl.Int64}


@pytest.mark.parametrize("seed", range(4))
def test_window_peaks_frame_is_window_peaks(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(500):
        ats = sorted(rng.sample(range(-50, 200), rng.randint(0, 30)))
        levels = [rng.randint(0, 9) for _ in ats]
        frame = pl.DataFrame({"at": ats, "level": levels}, schema=STEPS_SCHEMA)
        edges = [rng.randint(-80, 220)]
        for _ in range(rng.randint(0, 12)):
            edges.append(edges[-1] + rng.choice([0, 1, 3, 10, 40]))  # empty windows too
        steps = [Step(at, level) for at, level in zip(ats, levels, strict=True)]
        assert window_peaks_frame(frame, edges) == window_peaks(steps, edges)


@pytest.mark.parametrize(
    ("zone", "base"),
    [
        ("UTC", 1_767_225_600),
        ("America/New_York", 1_772_900_000),  # spans the change to summer time
        ("Asia/Kolkata", 1_767_225_600),
        ("Pacific/Apia", 1_325_000_000),  # 30 December 2011 never happened there
        ("Australia/Lord_Howe", 1_775_300_000),  # half-hour change
    ],
)
def test_long_days_match_the_walk_over_each_sessions_days(zone: str, base: int) -> None:
    rng = random.Random(base)
    rows = []
    for uid in range(6):
        start = base + rng.randint(0, 86_400)
        for _ in range(rng.randint(1, 8)):
            length = rng.choice([60, 3_600, 70_000, 80_000, 200_000, 400_000])
            rows.append((uid, start, start + length))
            start += length + rng.randint(1, 40_000)
    sessions = pl.DataFrame(
        rows, schema={"uid": pl.UInt32, "start": pl.Int64, "end": pl.Int64}, orient="row"
    )
    fast = _long_days(sessions, ZoneInfo(zone)).collect().sort("uid")
    walked = _long_days_walked(sessions, ZoneInfo(zone)).collect().sort("uid")
    assert fast.to_dicts() == walked.to_dicts()
    assert fast.height > 0


def test_encoded_pairs_are_summed_and_sorted_by_user_then_time() -> None:
    frames = [
        pl.DataFrame(
            {"user": ["b", "a", "b"], "ts": [5, 7, 4], "n": [1, 2, 3]}, schema=PAIRS_SCHEMA
        ),
        pl.DataFrame(
            {"user": ["a", "é", "b"], "ts": [7, 1, 5], "n": [1, 1, 2]}, schema=PAIRS_SCHEMA
        ),
    ]
    encoded = encode_frames(frames)
    assert encoded.users.to_list() == ["a", "b", "é"]
    assert encoded.decoded().rows() == [("a", 7, 3), ("b", 4, 3), ("b", 5, 3), ("é", 1, 1)]


def test_pairs_too_far_apart_for_one_key_sort_on_two_columns() -> None:
    far = pl.DataFrame(
        {"user": ["b", "a", "b", "b"], "ts": [-(2**61), 2**61, 3, 3], "n": [1, 2, 3, 4]},
        schema=PAIRS_SCHEMA,
    )
    assert encode_frames([far]).decoded().rows() == [
        ("a", 2**61, 2),
        ("b", -(2**61), 1),
        ("b", 3, 7),
    ]


def test_no_pairs_encode_to_an_empty_frame() -> None:
    encoded = encode_frames([pl.DataFrame(schema=PAIRS_SCHEMA)])
    assert encoded.frame.height == 0
    assert encoded.decoded().schema == pl.Schema(PAIRS_SCHEMA)
