"""Alembic migrations of the transcript store (run by ``greffier.store.sql.upgrade_schema``)."""
