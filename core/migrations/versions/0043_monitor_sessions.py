"""supervisors' listen / whisper / barge sessions

Revision ID: 0043
Revises: 0039
Create Date: 2026-12-07 23:10:00

`monitor_sessions`: a supervisor's ChanSpy on an agent's call (ivr/monitor.py), from the
ring of the supervisor's phone to its hang-up, with the latest mode. The audit trail keeps
every start, mode change and end; this table keeps what is going on now, so a second
supervisor cannot barge into a call already barged and the agent's desk can say it is
being listened to.
Only a new table, with its indexes: safe beside live calls (tests/unit/test_migration_safety.py).
"""

from alembic import op
import sqlalchemy as sa

import core.models


revision = "0043"
down_revision = "0039"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "monitor_sessions",
        sa.Column("id", ID, nullable=False),
        sa.Column("supervisor", sa.String(length=64), nullable=False),
        sa.Column("agent_id", sa.String(length=32), nullable=False),
        sa.Column("call_id", sa.String(length=36), nullable=False),
        sa.Column("phone", sa.String(length=120), nullable=False),
        sa.Column("mode", sa.String(length=8), nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("spy_channel", sa.String(length=120), nullable=True),
        sa.Column("detail", sa.String(length=200), nullable=True),
        sa.Column("started_at", core.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("answered_at", core.models.UtcDateTime(timezone=True), nullable=True),
        sa.Column("ended_at", core.models.UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_monitor_sessions")),
    )
    op.create_index("ix_monitor_sessions_call_state", "monitor_sessions", ["call_id", "state"], unique=False)
    op.create_index(op.f("ix_monitor_sessions_agent_id"), "monitor_sessions", ["agent_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_monitor_sessions_agent_id"), table_name="monitor_sessions")
    op.drop_index("ix_monitor_sessions_call_state", table_name="monitor_sessions")
    op.drop_table("monitor_sessions")
