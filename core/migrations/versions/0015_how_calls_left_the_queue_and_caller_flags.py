"""how calls left the queue (transfers) and flagged caller ids

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-01 21:50:00.000000
"""

from alembic import op
import sqlalchemy as sa


revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.add_column(sa.Column('queue_exit', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('transferred_to', sa.String(length=80), nullable=True))
        batch_op.add_column(sa.Column('caller_flag', sa.String(length=24), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.drop_column('caller_flag')
        batch_op.drop_column('transferred_to')
        batch_op.drop_column('queue_exit')
