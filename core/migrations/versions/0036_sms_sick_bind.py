"""sms: the state of each SMPP link, and temporary refusals counted apart from attempts

Revision ID: 0036
Revises: 0035
Create Date: 2026-12-07 06:00:00

A bind can answer every submit_sm with a temporary error (an SMSC restarted behind a
connection that outlived it): the gateway drops it and binds again (sms/bind_health.py), and
writes each link's state to `sms_links` so `hotline sms status` shows it from another
process. A refused submit was never accepted: `refusals` counts those apart from `attempts`.
"""

from alembic import op
import sqlalchemy as sa

import core.models


revision = "0036"
down_revision = "0035"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sms_links",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("address", sa.String(length=128), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("since", core.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("sick_binds", sa.Integer(), nullable=False),
        sa.Column("updated_at", core.models.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_sms_links")),
    )
    # A plain ADD COLUMN on both databases (no batch copy of sms_messages on SQLite).
    op.add_column("sms_messages", sa.Column("refusals", sa.Integer(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("sms_messages", schema=None) as batch_op:
        batch_op.drop_column("refusals")
    op.drop_table("sms_links")
