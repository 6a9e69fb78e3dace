"""voice messages: index by calling number and time

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-02 14:30:00

The IVR counts a calling number's voice messages of the local day before it lets the
caller leave another (recordings.messages_per_number_day): an index on (caller_number,
created_at) keeps that count from reading the whole table.
"""

from alembic import op


revision = '0029'
down_revision = '0028'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('voice_messages', schema=None) as batch_op:
        batch_op.create_index('ix_voice_messages_caller_created', ['caller_number', 'created_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('voice_messages', schema=None) as batch_op:
        batch_op.drop_index('ix_voice_messages_caller_created')
