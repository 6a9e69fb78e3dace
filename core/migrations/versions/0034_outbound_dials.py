"""calls out: the ledger the caps on calls out count

Revision ID: 0034
Revises: 0033
Create Date: 2026-12-07 06:00:00

Every call out the platform places (a callback dialled, a voice notice's call) is a row, and
so is one a cap kept from being placed: `destinations.calls_per_number_day` counts a number's
rows in the last 24 hours, `destinations.calls_per_hour` the hotline's in the last hour
(core/calls_out.py). Callbacks keep only their last dial, notices only a count of attempts,
so neither can say how often a number was called today.
"""

from alembic import op
import sqlalchemy as sa

import core.models


revision = "0034"
down_revision = "0033"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outbound_dials",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("purpose", sa.String(length=12), nullable=False),
        sa.Column("ref_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("at", core.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("refused", sa.String(length=16), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbound_dials")),
    )
    with op.batch_alter_table("outbound_dials", schema=None) as batch_op:
        batch_op.create_index("ix_outbound_dials_number_at", ["number", "at"], unique=False)
        batch_op.create_index("ix_outbound_dials_at", ["at"], unique=False)


def downgrade() -> None:
    op.drop_table("outbound_dials")
