"""call recordings and their quality scores

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-02 05:00:00

Agent calls are recorded (MixMonitor when the agent answers): a row per recording, kept
after the retention sweep deletes its file (deleted_at, delete_reason). Supervisors score
recordings on the [quality] form (质检).
"""

from alembic import op
import sqlalchemy as sa

import core.models


revision = '0022'
down_revision = '0021'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'recordings',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('call_id', sa.String(length=36), nullable=False),
        sa.Column('agent', sa.String(length=64), nullable=True),
        sa.Column('path', sa.String(length=200), nullable=False),
        sa.Column('started_at', core.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column('duration_s', sa.Float(), nullable=True),
        sa.Column('size', sa.BigInteger(), nullable=True),
        sa.Column('deleted_at', core.models.UtcDateTime(timezone=True), nullable=True),
        sa.Column('delete_reason', sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_recordings')),
        sa.UniqueConstraint('path', name=op.f('uq_recordings_path')),
    )
    with op.batch_alter_table('recordings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_recordings_call_id'), ['call_id'], unique=False)
        batch_op.create_index('ix_recordings_started', ['started_at'], unique=False)
    op.create_table(
        'quality_scores',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('recording_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('call_id', sa.String(length=36), nullable=False),
        sa.Column('agent', sa.String(length=64), nullable=True),
        sa.Column('scorer', sa.String(length=64), nullable=False),
        sa.Column('items', sa.JSON(), nullable=False),
        sa.Column('total', sa.Integer(), nullable=False),
        sa.Column('max_total', sa.Integer(), nullable=False),
        sa.Column('comment', sa.Text(), nullable=False),
        sa.Column('at', core.models.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_quality_scores')),
    )
    with op.batch_alter_table('quality_scores', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_quality_scores_agent'), ['agent'], unique=False)
        batch_op.create_index(batch_op.f('ix_quality_scores_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_quality_scores_recording_id'), ['recording_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('quality_scores', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_quality_scores_recording_id'))
        batch_op.drop_index(batch_op.f('ix_quality_scores_at'))
        batch_op.drop_index(batch_op.f('ix_quality_scores_agent'))
    op.drop_table('quality_scores')
    with op.batch_alter_table('recordings', schema=None) as batch_op:
        batch_op.drop_index('ix_recordings_started')
        batch_op.drop_index(batch_op.f('ix_recordings_call_id'))
    op.drop_table('recordings')
