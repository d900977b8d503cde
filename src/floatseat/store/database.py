"""Opening the ledger's database and migrating it: SQLite by default, PostgreSQL by URL.

`upgrade(url)` brings the schema to the newest migration and is safe to run from several
processes at once; `create_engine(url)` gives an engine set up for the ledger's locking.
"""

from __future__ import annotations

import sqlite3
from functools import cache

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event

from floatseat.service.errors import LedgerDatabaseError, LedgerError, LedgerNotReady

SQLITE_BUSY_TIMEOUT_MS = 30_000
# Any constant will do: it only has to be the same in every floatseat process.
_MIGRATION_LOCK = 0x666C_6F61_7473_6561  # "floatsea"


# libpq's connection parameters: a dead peer is noticed after 5 s idle + 3 probes 2 s apart,
# data the server does not acknowledge fails the connection after 10 s, a connection
# attempt gives up after 10 s.
POSTGRES_CONNECT_DEFAULTS: dict[str, int] = {
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
    "tcp_user_timeout": 10_000,
    "connect_timeout": 10,
}


def normalise_url(url: str | sa.URL) -> sa.URL:
    """`postgresql://` means psycopg 3 here (SQLAlchemy alone would pick psycopg2)."""
    parsed = sa.make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def create_engine(url: str | sa.URL) -> sa.Engine:
    """An engine whose transactions can serialize the ledger's writers.

    SQLite: WAL, so that readers never block the writer; `busy_timeout`, so that a second
    process waits for the lock instead of failing; and every transaction begins with
    BEGIN IMMEDIATE, which takes the write lock at once. (With the driver's deferred BEGIN,
    two writers could read the same state, and the second would fail at its first write.)

    PostgreSQL: READ COMMITTED, so that a transaction that waited for the state row's lock
    reads what the previous writer committed; and client-side TCP keepalives and timeouts
    (`POSTGRES_CONNECT_DEFAULTS`, unless the URL sets them), so that a database that
    vanishes from the network fails a statement within seconds instead of the kernel's
    quarter of an hour: the leader's heartbeat and fence, and the threads that wait on them,
    are never stuck that long.
    """
    parsed = normalise_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            raise LedgerError("the SQLite ledger needs a file: sqlite:///path/to/floatseat.db")
        engine = sa.create_engine(parsed)
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if parsed.get_backend_name() == "postgresql":
        connect_args = {k: v for k, v in POSTGRES_CONNECT_DEFAULTS.items() if k not in parsed.query}
        return sa.create_engine(
            parsed, isolation_level="READ COMMITTED", pool_pre_ping=True, connect_args=connect_args
        )
    raise LedgerError(f"the ledger runs on SQLite or PostgreSQL, not {parsed.get_backend_name()!r}")


def _sqlite_connect(dbapi_connection: sqlite3.Connection, _record: object) -> None:
    dbapi_connection.isolation_level = None  # the driver sends no BEGIN: we do
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=FULL")  # a committed move survives a power cut
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin(connection: sa.Connection) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def _alembic_config(connection: sa.Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", "floatseat.store:migrations")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(target: str | sa.URL | sa.Engine) -> None:
    """Migrate the ledger to the newest schema; creates it on an empty database."""
    engine = target if isinstance(target, sa.Engine) else create_engine(target)
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                # Two engines starting at once: the second waits, then finds nothing to do.
                connection.execute(sa.select(sa.func.pg_advisory_xact_lock(_MIGRATION_LOCK)))
            command.upgrade(_alembic_config(connection), "head")
    except sa.exc.DBAPIError as error:
        raise LedgerDatabaseError(f"migrating the ledger failed: {error.orig}") from error
    finally:
        if engine is not target:
            engine.dispose()


@cache
def _heads() -> frozenset[str]:
    """The newest migrations shipped with this floatseat (reading them imports every file)."""
    return frozenset(ScriptDirectory.from_config(_alembic_config()).get_heads())


def ensure_current(engine: sa.Engine) -> None:
    """Raise `LedgerNotReady` unless the schema is at the newest migration."""
    heads = _heads()
    with engine.connect() as connection:
        current = set(MigrationContext.configure(connection).get_current_heads())
    if current != heads:
        found = ", ".join(sorted(current)) or "no schema"
        raise LedgerNotReady(
            f"the ledger is at {found}, floatseat needs {', '.join(sorted(heads))}: "
            "run floatseat.store.database.upgrade(url)"
        )
