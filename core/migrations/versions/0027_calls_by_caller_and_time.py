"""calls by caller number and start: the report's repeat calls

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-02 14:00:00

First-call resolution (reports/casework.py) asks, for each agent call, whether the same
number called again within 7 days; this index makes that one probe per call rather than a
scan of the calls.
"""

from alembic import op


revision = '0027'
down_revision = '0026'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_calls_caller_started', 'calls', ['caller_number', 'started_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_calls_caller_started', table_name='calls')
