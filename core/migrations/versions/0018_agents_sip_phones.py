"""agents' SIP phones and softphones

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-02 01:20:00

`hotline phones add` stores a phone's password digests (MD5 and SHA-256 of
user:realm:password, what PJSIP's `password_digest` takes), never the password;
`hotline asterisk up` renders pjsip.conf's phones from this table.
"""

from alembic import op
import sqlalchemy as sa

import core.models


revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'sip_phones',
        sa.Column('endpoint', sa.String(length=40), nullable=False),
        sa.Column('agent_id', sa.String(length=32), nullable=False),
        sa.Column('kind', sa.String(length=12), nullable=False),
        sa.Column('realm', sa.String(length=64), nullable=False),
        sa.Column('md5_digest', sa.String(length=32), nullable=False),
        sa.Column('sha256_digest', sa.String(length=64), nullable=False),
        sa.Column('generation', sa.Integer(), server_default='0', nullable=False),
        sa.Column('created_at', core.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column('updated_at', core.models.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('endpoint', name=op.f('pk_sip_phones')),
    )
    with op.batch_alter_table('sip_phones', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sip_phones_agent_id'), ['agent_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('sip_phones', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sip_phones_agent_id'))
    op.drop_table('sip_phones')
