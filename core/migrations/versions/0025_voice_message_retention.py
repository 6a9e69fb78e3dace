"""voice messages: retention (deleted_at, delete_reason)

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-02 14:00:00

The recordings' retention sweep also deletes voice-message files older than
recordings.retention_days whose work order is closed (never an open order's evidence);
the row stays, with when and why, as a recording's does.
"""

from alembic import op
import sqlalchemy as sa

import core.models


revision = '0025'
down_revision = '0024'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('voice_messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('deleted_at', core.models.UtcDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('delete_reason', sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('voice_messages', schema=None) as batch_op:
        batch_op.drop_column('delete_reason')
        batch_op.drop_column('deleted_at')
