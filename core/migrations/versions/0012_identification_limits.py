"""identification limits

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 22:00:00

One call could walk through any number of ID numbers, and one calling number could try
without end: the ID numbers each call tried (as keyed hashes) and the failed
identifications per calling number and day are counted here, so that every FastAGI
worker sees the same counts.
"""

from alembic import op
import sqlalchemy as sa

import core.models


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'call_identities',
        sa.Column('call_id', sa.String(length=64), nullable=False),
        sa.Column('id_key', sa.String(length=64), nullable=False),
        sa.Column('at', core.models.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('call_id', 'id_key', name=op.f('pk_call_identities')),
    )
    op.create_table(
        'caller_failures',
        sa.Column('caller', sa.String(length=32), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('failures', sa.Integer(), nullable=False),
        sa.Column('updated_at', core.models.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('caller', 'day', name=op.f('pk_caller_failures')),
    )


def downgrade() -> None:
    op.drop_table('caller_failures')
    op.drop_table('call_identities')
