"""Alembic's entry point. floatseat passes its own connection (see database.upgrade)."""

from __future__ import annotations

from alembic import context

from floatseat.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run the ledger's migrations with floatseat.store.database.upgrade(url)")

# render_as_batch: SQLite can only ALTER a table by copying it; Alembic's batch mode does that.
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
