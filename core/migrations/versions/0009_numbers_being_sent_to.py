"""numbers being sent to

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 09:35:00

A claim skips numbers that already have a message on the wire. As NOT IN (every
`sending` row) it scanned, per claim, the whole `sending` range of the due index, which
between two vacuums holds an entry for every message that ever passed through it; as a
NOT EXISTS probe of this partial index it reads only that number's entries.
"""

from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('sms_messages', schema=None) as batch_op:
        batch_op.create_index(
            'ix_sms_messages_sending',
            ['recipient'],
            unique=False,
            postgresql_where=sa.text("status = 'sending'"),
            sqlite_where=sa.text("status = 'sending'"),
        )


def downgrade() -> None:
    with op.batch_alter_table('sms_messages', schema=None) as batch_op:
        batch_op.drop_index('ix_sms_messages_sending')
