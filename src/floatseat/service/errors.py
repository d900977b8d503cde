"""The engine's errors, one small hierarchy.

* EngineError: anything the seat engine raises on purpose
  + LedgerError: the ledger cannot be used as it is
    - LedgerNotReady: its schema is missing or older than this floatseat; run the migrations
    - LedgerDatabaseError: the database failed a statement; the transaction was rolled back
  + DirectoryError: the directory refused a call or could not be reached; moves stay queued
    - DirectoryUnavailable: a transient failure (network, 5xx, 429); retry after a while

Adapters map their own failures (httpx, SQL) into these at their boundary, so that the
service layer catches exactly what it knows how to handle.
"""

from __future__ import annotations


class EngineError(Exception):
    """Base of every error the seat engine raises on purpose."""


class LedgerError(EngineError):
    """The ledger cannot be used as it is, or failed."""


class LedgerNotReady(LedgerError):
    """The ledger's schema is missing or out of date: `floatseat.store.upgrade(url)` fixes it."""


class LedgerDatabaseError(LedgerError):
    """The database failed a statement or the commit; nothing of the transaction remains."""


class DirectoryError(EngineError):
    """The directory refused a call or could not be reached.

    `retry_after_s` carries the server's Retry-After, when it sent one; the outbox waits at
    least that long before the next attempt.
    """

    def __init__(self, message: str, *, retry_after_s: int | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class DirectoryUnavailable(DirectoryError):
    """A transient failure: the network, a 5xx, a 429. The same call may succeed later."""


class Deposed(EngineError):
    """This instance is not (or no longer) the leader: it must not touch the directory."""
