"""Alembic environment: runs on the connection ``upgrade_schema`` passes (online only).

The revisions spell out their tables; ``target_metadata`` (every table of the code) only
serves ``alembic revision --autogenerate`` and the test that migrations match the code.
"""

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
