"""The composition root of the seat engine: the one place that picks the adapters.

Tests call `bootstrap` with a `FakeDirectory` and a SQLite file; `floatseat serve` will call
it with a real directory client and the configured database.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from floatseat.directory.port import DEFAULT_GROUPS, Directory, PoolGroups
from floatseat.domain.policy import PolicySettings
from floatseat.service.engine import SeatEngine
from floatseat.service.outbox import DEFAULT_OUTBOX, OutboxExecutor, OutboxSettings
from floatseat.store.ledger import SqlLedger


@dataclass
class Services:
    """The engine's parts, wired to one ledger."""

    ledger: SqlLedger
    engine: SeatEngine
    outbox: OutboxExecutor

    def close(self) -> None:
        self.ledger.close()


def bootstrap(
    database_url: str | sa.URL,
    settings: PolicySettings,
    directory: Directory,
    *,
    groups: PoolGroups = DEFAULT_GROUPS,
    outbox: OutboxSettings = DEFAULT_OUTBOX,
    migrate: bool = True,
) -> Services:
    """Open (and by default migrate) the ledger and wire the engine and the outbox to it."""
    ledger = SqlLedger.open(database_url, migrate=migrate)
    return Services(
        ledger=ledger,
        engine=SeatEngine(ledger, settings),
        outbox=OutboxExecutor(ledger, directory, groups, outbox),
    )
