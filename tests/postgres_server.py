"""A real PostgreSQL server that the tests start themselves (initdb + pg_ctl): `postgres`.

The server runs from a temporary folder on a free port of 127.0.0.1, with fsync off, and is
stopped at the end of the session. As root (as in CI), it runs as the `postgres` user, or
`nobody`: PostgreSQL refuses to run as root. conftest.py offers the fixture to every test;
`Server.new_database()` gives each test a database of its own.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import system_program_in

POSTGRES_BIN = ("/usr/lib/postgresql/*/bin",)
WHY = "the ledger's tests on PostgreSQL (two writers, leader election) run a real server"


@dataclass(frozen=True)
class Server:
    url: sa.URL  # of the maintenance database `postgres`

    def new_database(self) -> str:
        name = f"floatseat_{uuid.uuid4().hex[:12]}"
        engine = sa.create_engine(self.url, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        engine.dispose()
        return self.url.set(database=name).render_as_string(hide_password=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _server_account() -> pwd.struct_passwd | None:
    """The account to run PostgreSQL as: None for ourselves, unless we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    pytest.fail("running as root, but there is neither a postgres nor a nobody user to run as")


@contextmanager
def running_postgres() -> Iterator[Server]:
    initdb = system_program_in("initdb", WHY, search=POSTGRES_BIN, package="postgresql")
    pg_ctl = str(Path(initdb).with_name("pg_ctl"))
    if not os.access(pg_ctl, os.X_OK):
        pg_ctl = system_program_in("pg_ctl", WHY, search=POSTGRES_BIN, package="postgresql")
    account = _server_account()
    # Not pytest's tmp_path: its parent is private to root, where the server user cannot go.
    home = Path(tempfile.mkdtemp(prefix="floatseat-pg-"))
    data = home / "data"
    as_server = {} if account is None else {"user": account.pw_uid, "group": account.pw_gid}
    if account is not None:
        os.chown(home, account.pw_uid, account.pw_gid)

    def run(*args: str, check: bool = True) -> bool:
        done = subprocess.run(
            args, capture_output=True, text=True, cwd=home, timeout=60, **as_server
        )
        if done.returncode != 0 and check:
            log = home / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            pytest.fail(f"{' '.join(args)} failed:\n{done.stdout}{done.stderr}{tail}")
        return done.returncode == 0

    try:
        run(initdb, "-D", str(data), "-U", "floatseat", "--auth=trust", "-E", "UTF8",
            "--locale=C", "--no-sync")  # fmt: skip
        options = (
            f"-c listen_addresses=127.0.0.1 -k {home} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off"
        )
        for last_try in (False, False, True):  # another program may take the free port first
            port = _free_port()
            if run(pg_ctl, "-D", str(data), "-l", str(home / "server.log"), "-w", "-t", "30",
                   "-o", f"{options} -p {port}", "start", check=last_try):  # fmt: skip
                break
        try:
            yield Server(sa.make_url(f"postgresql+psycopg://floatseat@127.0.0.1:{port}/postgres"))
        finally:
            run(pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop")
    finally:
        shutil.rmtree(home, ignore_errors=True)
