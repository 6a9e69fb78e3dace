"""Alembic environment: the connection is handed over by core.db.Store.migrate.

Every pending revision runs in the one transaction begun here (a failure leaves the schema
as it was), except what a revision runs in `op.get_context().autocommit_block()`.
"""

from alembic import context

from core.errors import StoreUnavailable
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
    if connection.dialect.name == "sqlite":
        # Foreign keys are off while SQLite's tables are rebuilt (core.db's migration
        # engine); checked here, inside the transaction, so that a migration that breaks
        # one is rolled back with the rest.
        broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
        if broken:
            raise StoreUnavailable(f"the migration would leave {len(broken)} rows breaking a foreign key")
