"""nuisance callers: the list supervisors keep and the calls it met

Revision ID: 0047
Revises: 0046
Create Date: 2026-12-07 23:00:00

`blocked_callers`: a calling number listed (with a reason, until an expiry) by a
supervisor; its calls hear the IVR's set treatment instead of reaching an agent
(core/blocked_callers.py). `blocked_calls`: one row per call from a listed number, counted
by the report. Only new tables, with their indexes: safe beside live calls
(tests/unit/test_migration_safety.py).
"""

from alembic import op
import sqlalchemy as sa

import core.models


revision = "0047"
down_revision = "0046"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "blocked_callers",
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("until", core.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("blocked_by", sa.String(length=64), nullable=False),
        sa.Column("blocked_at", core.models.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("number", name=op.f("pk_blocked_callers")),
    )
    op.create_table(
        "blocked_calls",
        sa.Column("call_id", sa.String(length=64), nullable=False),
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("at", core.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("stage", sa.String(length=8), nullable=False),
        sa.Column("treatment", sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint("call_id", name=op.f("pk_blocked_calls")),
    )
    op.create_index(op.f("ix_blocked_calls_at"), "blocked_calls", ["at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_blocked_calls_at"), table_name="blocked_calls")
    op.drop_table("blocked_calls")
    op.drop_table("blocked_callers")
