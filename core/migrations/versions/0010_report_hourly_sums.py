"""report hourly sums

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 12:00:00

A half-year report over a million calls read every row (13 s on SQLite); hours that can
no longer change are summed once into these tables, and a report adds up at most a few
thousand rows per kind plus the last day read live.
"""

from alembic import op
import sqlalchemy as sa

import core.models


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

CALL_SUMS = (
    'automated', 'agent_calls', 'abandoned', 'timeout', 'callback', 'talk_s', 'answered_wait_s',
    'answered_waits', 'answered_in_sl', 'abandoned_wait_s', 'abandoned_waits', 'abandoned_in_sl',
    'satisfied', 'rated', 'simulated',
)


def upgrade() -> None:
    op.create_table(
        'report_sealed',
        sa.Column('kind', sa.String(length=8), nullable=False),
        sa.Column('hour', core.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column('sealed_at', core.models.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('kind', 'hour', name=op.f('pk_report_sealed')),
    )
    op.create_table(
        'report_state',
        sa.Column('kind', sa.String(length=8), nullable=False),
        sa.Column('generation', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('kind', name=op.f('pk_report_state')),
    )
    op.create_table(
        'report_call_hours',
        sa.Column('hour', core.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column('agent', sa.String(length=64), nullable=False),
        *(sa.Column(name, sa.BigInteger(), nullable=False) for name in CALL_SUMS),
        sa.Column('sl_s', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('hour', 'agent', name=op.f('pk_report_call_hours')),
    )
    op.create_table(
        'report_menu_hours',
        sa.Column('hour', core.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column('query', sa.String(length=64), nullable=False),
        sa.Column('uses', sa.BigInteger(), nullable=False),
        sa.Column('succeeded', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('hour', 'query', name=op.f('pk_report_menu_hours')),
    )
    op.create_table(
        'report_sms_hours',
        sa.Column('hour', core.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column('category', sa.String(length=20), nullable=False),
        sa.Column('status', sa.String(length=12), nullable=False),
        sa.Column('messages', sa.BigInteger(), nullable=False),
        sa.Column('sent', sa.BigInteger(), nullable=False),
        sa.Column('latency_s', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('hour', 'category', 'status', name=op.f('pk_report_sms_hours')),
    )


def downgrade() -> None:
    for table in ('report_sms_hours', 'report_menu_hours', 'report_call_hours', 'report_state', 'report_sealed'):
        op.drop_table(table)
