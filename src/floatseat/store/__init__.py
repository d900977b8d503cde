"""The durable seat ledger: SQLAlchemy Core tables, Alembic migrations, SQLite or PostgreSQL."""
