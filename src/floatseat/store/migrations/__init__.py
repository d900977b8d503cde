"""Alembic migrations of the ledger, run by `floatseat.store.database.upgrade()`."""
