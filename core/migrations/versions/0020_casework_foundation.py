"""casework foundation: voice messages, department users

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-02 05:00:00

The IVR leaves voice messages as rows (the `cases` room turns each into a work order), and a
console user of role `department` belongs to one department.
"""

from alembic import op
import sqlalchemy as sa

import core.models


revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'voice_messages',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('call_id', sa.String(length=36), nullable=False),
        sa.Column('caller_number', sa.String(length=32), nullable=True),
        sa.Column('resident_id', sa.Integer(), nullable=True),
        sa.Column('id_number_masked', sa.String(length=18), nullable=True),
        sa.Column('recording', sa.String(length=200), nullable=False),
        sa.Column('duration_s', sa.Integer(), nullable=False),
        sa.Column('ended', sa.String(length=12), nullable=False),
        sa.Column('reason', sa.String(length=16), nullable=False),
        sa.Column('created_at', core.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column('order_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_voice_messages')),
    )
    with op.batch_alter_table('voice_messages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_voice_messages_call_id'), ['call_id'], unique=False)
        batch_op.create_index('ix_voice_messages_order_created', ['order_id', 'created_at'], unique=False)
    with op.batch_alter_table('console_users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('department', sa.String(length=40), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('console_users', schema=None) as batch_op:
        batch_op.drop_column('department')
    with op.batch_alter_table('voice_messages', schema=None) as batch_op:
        batch_op.drop_index('ix_voice_messages_order_created')
        batch_op.drop_index(batch_op.f('ix_voice_messages_call_id'))
    op.drop_table('voice_messages')
