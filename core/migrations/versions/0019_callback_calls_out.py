"""callbacks placed as calls out: how the last call out went

Revision ID: 0019
Revises: 0017
Create Date: 2026-12-02 01:30:00

Taking a callback now dials the resident through the outbound trunk; the callback keeps
the state of its last call out (dialing, answered, busy, no_answer, lines_full, failed),
Asterisk's word for it, and when it was placed (an agent places one at a time).
"""

from alembic import op
import sqlalchemy as sa

import core.models


revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('callbacks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('dial_state', sa.String(length=12), nullable=True))
        batch_op.add_column(sa.Column('dial_detail', sa.String(length=32), server_default='', nullable=False))
        batch_op.add_column(sa.Column('dialed_at', core.models.UtcDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('callbacks', schema=None) as batch_op:
        batch_op.drop_column('dialed_at')
        batch_op.drop_column('dial_detail')
        batch_op.drop_column('dial_state')
