"""three-party calls and each party's time in them

Revision ID: 0044
Revises: 0043
Create Date: 2026-12-07 23:40:00

`conferences`: an agent's three-party call (三方通话, ivr/conference.py) with whom it
brought in, the caller's and the agent's channels it moves, and its state;
`conference_legs`: each party's join and leave as ConfBridge reports them, for the call
record's "who joined and left and when" and each one's talk time.
Only new tables, with their indexes: safe beside live calls (tests/unit/test_migration_safety.py).
"""

from alembic import op
import sqlalchemy as sa

import core.models


revision = "0044"
down_revision = "0043"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "conferences",
        sa.Column("id", ID, nullable=False),
        sa.Column("call_id", sa.String(length=36), nullable=False),
        sa.Column("agent_id", sa.String(length=32), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("target_kind", sa.String(length=12), nullable=False),
        sa.Column("target", sa.String(length=64), nullable=False),
        sa.Column("member_interface", sa.String(length=120), nullable=False),
        sa.Column("caller_channel", sa.String(length=120), nullable=False),
        sa.Column("agent_channel", sa.String(length=120), nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("detail", sa.String(length=200), nullable=True),
        sa.Column("started_at", core.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("ended_at", core.models.UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conferences")),
    )
    op.create_index(op.f("ix_conferences_call_id"), "conferences", ["call_id"], unique=False)
    op.create_index(op.f("ix_conferences_agent_id"), "conferences", ["agent_id"], unique=False)
    op.create_table(
        "conference_legs",
        sa.Column("id", ID, nullable=False),
        sa.Column("conference_id", ID, nullable=False),
        sa.Column("party", sa.String(length=12), nullable=False),
        sa.Column("channel", sa.String(length=120), nullable=False),
        sa.Column("uniqueid", sa.String(length=40), nullable=False),
        sa.Column("joined_at", core.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("left_at", core.models.UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["conference_id"], ["conferences.id"], name=op.f("fk_conference_legs_conference_id_conferences")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conference_legs")),
        sa.UniqueConstraint("conference_id", "uniqueid", name=op.f("uq_conference_legs_conference_id")),
    )
    op.create_index(op.f("ix_conference_legs_conference_id"), "conference_legs", ["conference_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_conference_legs_conference_id"), table_name="conference_legs")
    op.drop_table("conference_legs")
    op.drop_index(op.f("ix_conferences_agent_id"), table_name="conferences")
    op.drop_index(op.f("ix_conferences_call_id"), table_name="conferences")
    op.drop_table("conferences")
