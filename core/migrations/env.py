"""Alembic environment: the connection is handed over by core.db.Store.migrate."""

from alembic import context

from core.models import Base, outside_models

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=True,
    include_name=outside_models,
)
with context.begin_transaction():
    context.run_migrations()
