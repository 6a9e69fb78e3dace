"""voice messages: index by calling number and time

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-02 14:30:00

The IVR counts a calling number's voice messages of the local day before it lets the
caller leave another (recordings.messages_per_number_day): an index on (caller_number,
created_at) keeps that count from reading the whole table.
"""

from alembic import op


revision = '0026'
down_revision = '0025'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('voice_messages', schema=None) as batch_op:
        batch_op.create_index('ix_voice_messages_caller_created', ['caller_number', 'created_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('voice_messages', schema=None) as batch_op:
        batch_op.drop_index('ix_voice_messages_caller_created')
