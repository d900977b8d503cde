from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


def system_program(name: str, why: str) -> str:
    """The path of a system program a test needs.

    Skips the test where it is missing, as on a laptop. `.ci/run` sets
    FLOATSEAT_REQUIRE_SYSTEM_PROGRAMS=1, which turns that skip into a failure.
    """
    path = shutil.which(name)
    if path is not None:
        return path
    message = f"{name} is not installed ({why}); on Debian: apt-get install {name}"
    if os.environ.get("FLOATSEAT_REQUIRE_SYSTEM_PROGRAMS") == "1":
        pytest.fail(message + " -- required because FLOATSEAT_REQUIRE_SYSTEM_PROGRAMS=1")
    pytest.skip(message)


@pytest.fixture
def data_dir() -> Path:
    return DATA
