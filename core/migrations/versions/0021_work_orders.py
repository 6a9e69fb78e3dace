"""work orders, their events, and SMS surveys

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-02 05:00:00

Work orders (工单) with their append-only history, and the SMS questions answered by a digit
(a work order's follow-up), which the SMS gateway answers without knowing of work orders.
"""

from alembic import op
import sqlalchemy as sa

import core.models


revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table(
        'work_orders',
        sa.Column('id', ID, nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('category', sa.String(length=20), nullable=False),
        sa.Column('summary', sa.Text(), nullable=False),
        sa.Column('department', sa.String(length=40), nullable=True),
        sa.Column('status', sa.String(length=12), nullable=False),
        sa.Column('resident_id', sa.Integer(), nullable=True),
        sa.Column('id_number_masked', sa.String(length=18), nullable=True),
        sa.Column('caller_number', sa.String(length=32), nullable=True),
        sa.Column('call_id', sa.String(length=36), nullable=True),
        sa.Column('voice_message_id', ID, nullable=True),
        sa.Column('created_by', sa.String(length=64), nullable=False),
        sa.Column('created_at', core.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column('due_at', core.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column('answered_at', core.models.UtcDateTime(timezone=True), nullable=True),
        sa.Column('answer', sa.Text(), nullable=True),
        sa.Column('answered_by', sa.String(length=64), nullable=True),
        sa.Column('reply_via', sa.String(length=8), nullable=True),
        sa.Column('closed_at', core.models.UtcDateTime(timezone=True), nullable=True),
        sa.Column('escalated_at', core.models.UtcDateTime(timezone=True), nullable=True),
        sa.Column('followup_state', sa.String(length=12), nullable=True),
        sa.Column('followup_at', core.models.UtcDateTime(timezone=True), nullable=True),
        sa.Column('satisfaction', sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_work_orders')),
        sa.UniqueConstraint('voice_message_id', name=op.f('uq_work_orders_voice_message_id')),
    )
    with op.batch_alter_table('work_orders', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_work_orders_call_id'), ['call_id'], unique=False)
        batch_op.create_index('ix_work_orders_status_due', ['status', 'due_at'], unique=False)
        batch_op.create_index('ix_work_orders_department_status', ['department', 'status'], unique=False)
    op.create_table(
        'work_order_events',
        sa.Column('id', ID, nullable=False),
        sa.Column('order_id', ID, nullable=False),
        sa.Column('at', core.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column('actor', sa.String(length=64), nullable=False),
        sa.Column('action', sa.String(length=20), nullable=False),
        sa.Column('detail', sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ['order_id'], ['work_orders.id'], name=op.f('fk_work_order_events_order_id_work_orders')
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_work_order_events')),
    )
    with op.batch_alter_table('work_order_events', schema=None) as batch_op:
        batch_op.create_index('ix_work_order_events_order_at', ['order_id', 'at'], unique=False)
    op.create_table(
        'sms_surveys',
        sa.Column('key', sa.String(length=128), nullable=False),
        sa.Column('phone', sa.String(length=20), nullable=False),
        sa.Column('asked_at', core.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column('open_until', core.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column('answer', sa.Integer(), nullable=True),
        sa.Column('answered_at', core.models.UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('key', name=op.f('pk_sms_surveys')),
    )
    with op.batch_alter_table('sms_surveys', schema=None) as batch_op:
        batch_op.create_index('ix_sms_surveys_phone_asked', ['phone', 'asked_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('sms_surveys', schema=None) as batch_op:
        batch_op.drop_index('ix_sms_surveys_phone_asked')
    op.drop_table('sms_surveys')
    with op.batch_alter_table('work_order_events', schema=None) as batch_op:
        batch_op.drop_index('ix_work_order_events_order_at')
    op.drop_table('work_order_events')
    with op.batch_alter_table('work_orders', schema=None) as batch_op:
        batch_op.drop_index('ix_work_orders_department_status')
        batch_op.drop_index('ix_work_orders_status_due')
        batch_op.drop_index(batch_op.f('ix_work_orders_call_id'))
    op.drop_table('work_orders')
