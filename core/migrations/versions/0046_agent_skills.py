"""agents' skills: languages and business lines

Revision ID: 0046
Revises: 0044
Create Date: 2026-12-08 00:00:00

`agent_skills`: which skills (skills.names) each agent has; the skill's queue rings them
first (ivr/skills.py). A table of its own, not a column of `agents`, which log-in rewrites.
Only a new table: safe beside live calls (tests/unit/test_migration_safety.py).
"""

from alembic import op
import sqlalchemy as sa


revision = "0046"
down_revision = "0044"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agent_skills",
        sa.Column("agent_id", sa.String(length=32), nullable=False),
        sa.Column("skill", sa.String(length=12), nullable=False),
        sa.PrimaryKeyConstraint("agent_id", "skill", name=op.f("pk_agent_skills")),
    )


def downgrade() -> None:
    op.drop_table("agent_skills")
