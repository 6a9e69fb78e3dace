"""console sign-in attempts per address

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-01 21:40:00

Besides the per-account lock, sign-ins are limited per network address: failures per
window, then the address is refused for a while (nobody can lock every agent out, or try
one password on every account, from one address).
"""

from alembic import op
import sqlalchemy as sa

import core.models


revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'console_sign_in_addresses',
        sa.Column('address', sa.String(length=64), nullable=False),
        sa.Column('window_start', core.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
        sa.Column('blocked_until', core.models.UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('address', name=op.f('pk_console_sign_in_addresses')),
    )


def downgrade() -> None:
    op.drop_table('console_sign_in_addresses')
