from __future__ import annotations

import base64
import glob
import hashlib
import os
import re
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import pytest

from floatseat.service.bootstrap import Services

if TYPE_CHECKING:
    from postgres_server import Server

DATA = Path(__file__).parent / "data"


def system_program(name: str, why: str) -> str:
    """The path of a system program a test needs.

    Skips the test where it is missing, as on a laptop. `.ci/run` sets
    FLOATSEAT_REQUIRE_SYSTEM_PROGRAMS=1, which turns that skip into a failure.
    """
    path = shutil.which(name)
    if path is not None:
        return path
    _missing(name, why, package=name)


def system_program_in(name: str, why: str, *, search: Iterable[str], package: str) -> str:
    """Like `system_program`, but also looks in `search` (glob patterns of folders).

    Debian keeps server programs off the PATH, in versioned folders such as
    /usr/lib/postgresql/15/bin; the newest version wins.
    """
    path = shutil.which(name)
    if path is not None:
        return path
    found = [p for pattern in search for p in glob.glob(os.path.join(pattern, name))]
    for candidate in sorted(found, key=_version_key, reverse=True):
        if os.access(candidate, os.X_OK):
            return candidate
    _missing(name, why, package=package)


def _version_key(path: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", path))


def _missing(name: str, why: str, *, package: str) -> NoReturn:
    message = f"{name} is not installed ({why}); on Debian: apt-get install {package}"
    if os.environ.get("FLOATSEAT_REQUIRE_SYSTEM_PROGRAMS") == "1":
        pytest.fail(message + " -- required because FLOATSEAT_REQUIRE_SYSTEM_PROGRAMS=1")
    pytest.skip(message)


@pytest.fixture(scope="session")
def postgres() -> Iterator[Server]:
    """A PostgreSQL server for the session (tests/postgres_server.py)."""
    from postgres_server import running_postgres

    with running_postgres() as server:
        yield server


@pytest.fixture
def data_dir() -> Path:
    return DATA


@pytest.fixture
def url(tmp_path: Path) -> str:
    """A fresh SQLite ledger file."""
    return f"sqlite:///{tmp_path / 'ledger.db'}"


@pytest.fixture
def opened() -> Iterator[list[Services]]:
    """Every `Services` a test opens, closed at the end."""
    services: list[Services] = []
    yield services
    for s in services:
        s.close()


def assert_page_runs_only_its_own_scripts(html: str) -> None:
    """The page's CSP forbids every fetch and allows exactly its two inline scripts."""
    policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', html)
    assert policy is not None
    directives = dict(d.strip().split(" ", 1) for d in policy.group(1).split(";"))
    assert directives["default-src"] == "'none'"
    scripts = re.findall(r"<script>(.*?)</script>", html, re.DOTALL)
    assert len(scripts) == 2  # ECharts, then the page's own
    hashes = {
        "'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'"
        for s in scripts
    }
    assert set(directives["script-src"].split()) == hashes
