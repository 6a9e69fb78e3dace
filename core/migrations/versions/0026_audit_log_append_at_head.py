"""audit log: on SQLite, a new row only after the head (no INSERT OR REPLACE over a row)

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-02 14:10:00

SQLite's REPLACE conflict resolution deletes the row in the way without firing DELETE
triggers (SQLite docs, "ON CONFLICT": unless recursive triggers are on), so
`INSERT OR REPLACE INTO audit_log` could rewrite a row past 0024's triggers. A BEFORE
INSERT trigger fires before the conflict is resolved: it refuses a row whose id exists
or whose seq is not above every seq there. PostgreSQL has no REPLACE; its
INSERT ... ON CONFLICT DO UPDATE is an UPDATE, which 0024's trigger refuses.
"""

from alembic import op


revision = '0026'
down_revision = '0025'
branch_labels = None
depends_on = None

_SQLITE_TRIGGER = (
    "CREATE TRIGGER audit_log_append_at_head BEFORE INSERT ON audit_log"
    " WHEN EXISTS (SELECT 1 FROM audit_log WHERE id = NEW.id OR seq >= NEW.seq)"
    " BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: a new row must follow the last one'); END"
)


def upgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        op.execute(_SQLITE_TRIGGER)


def downgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        op.execute("DROP TRIGGER audit_log_append_at_head")
