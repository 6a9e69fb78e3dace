"""voice notices: at most one call under way per number, kept by the database

Revision ID: 0033
Revises: 0032
Create Date: 2026-12-03 08:00:00

The notice dialler (ivr/notice_calls.py) claims queued calls whose number has none under way;
two diallers claiming at once could still pick two notices to one number. The partial index
of calls under way becomes unique, so the second claim fails and is tried again later.
"""

from alembic import op
import sqlalchemy as sa


revision = "0033"
down_revision = "0032"
branch_labels = None
depends_on = None


def _calling_index(unique: bool) -> None:
    with op.batch_alter_table("voice_notices", schema=None) as batch_op:
        batch_op.drop_index("ix_voice_notices_calling")
        batch_op.create_index(
            "ix_voice_notices_calling",
            ["number"],
            unique=unique,
            postgresql_where=sa.text("status = 'calling'"),
            sqlite_where=sa.text("status = 'calling'"),
        )


def upgrade() -> None:
    _calling_index(unique=True)


def downgrade() -> None:
    _calling_index(unique=False)
