"""report: first-call counts per hour

Revision ID: 0030
Revises: 0029
Create Date: 2026-12-02 15:00:00

First-call resolution probed calls(caller_number, started_at) once per agent call of the
period (320,000 in a half-year, ~2 s). An hour's counts are final once its 7-day repeat
window has closed, so they are summed once into this table and sealed as the kind 'fcr'
in report_sealed. Hours sealed before this revision have no 'fcr' mark: the next seal (or
report) sums them like any hour not sealed yet; nothing to backfill here.
"""

from alembic import op
import sqlalchemy as sa

import core.models


revision = '0030'
down_revision = '0029'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'report_fcr_hours',
        sa.Column('hour', core.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column('calls', sa.BigInteger(), nullable=False),
        sa.Column('repeated', sa.BigInteger(), nullable=False),
        sa.Column('no_number', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('hour', name=op.f('pk_report_fcr_hours')),
    )


def downgrade() -> None:
    op.execute("DELETE FROM report_sealed WHERE kind = 'fcr'")
    op.drop_table('report_fcr_hours')
