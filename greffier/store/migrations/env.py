"""Alembic environment: runs on the connection ``upgrade_schema`` passes (online only)."""

from __future__ import annotations

from alembic import context

from greffier.store.sql import full_metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=full_metadata(),
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
