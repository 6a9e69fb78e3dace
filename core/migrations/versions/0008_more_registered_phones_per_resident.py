"""more registered phones per resident

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 09:20:00

Notices go to every number a resident registered: `residents.phone` and the rows here.
"""

from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('resident_phones',
    sa.Column('resident_id', sa.Integer(), nullable=False),
    sa.Column('phone', sa.String(length=20), nullable=False),
    sa.ForeignKeyConstraint(['resident_id'], ['residents.id'], name=op.f('fk_resident_phones_resident_id_residents'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('resident_id', 'phone', name=op.f('pk_resident_phones'))
    )
    with op.batch_alter_table('resident_phones', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_resident_phones_phone'), ['phone'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('resident_phones', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_resident_phones_phone'))
    op.drop_table('resident_phones')
