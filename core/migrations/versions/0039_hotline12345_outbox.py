"""messages to 12345 about its orders: accepted, answered, returned

Revision ID: 0039
Revises: 0038
Create Date: 2026-12-07 21:30:00

`hotline12345_outbox`: what 12345 must hear of an order it sent (签收, 办结, 退单), written
in the transaction of the change itself and keyed by (counterpart, 12345's number, kind,
the order event), so a change is sent once and a change rolled back sends nothing
(cases/outbox12345.py). Attempts and the next try are columns; a message 12345 refused
for good is kept as `failed` with the reason (a dead letter).
Only a new table, with its indexes: safe beside live calls (tests/unit/test_migration_safety.py).
"""

from alembic import op
import sqlalchemy as sa

import core.models


revision = "0039"
down_revision = "0038"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "hotline12345_outbox",
        sa.Column("id", ID, nullable=False),
        sa.Column("counterpart", sa.String(length=40), nullable=False),
        sa.Column("order_no", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("event_id", ID, nullable=False),
        sa.Column("order_id", ID, nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", core.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("created_at", core.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("claimed_by", sa.String(length=64), nullable=True),
        sa.Column("claimed_at", core.models.UtcDateTime(timezone=True), nullable=True),
        sa.Column("final_at", core.models.UtcDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(
            ["event_id"], ["work_order_events.id"], name=op.f("fk_hotline12345_outbox_event_id_work_order_events")
        ),
        sa.ForeignKeyConstraint(
            ["order_id"], ["work_orders.id"], name=op.f("fk_hotline12345_outbox_order_id_work_orders")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hotline12345_outbox")),
        sa.UniqueConstraint(
            "counterpart", "order_no", "kind", "event_id", name=op.f("uq_hotline12345_outbox_counterpart")
        ),
    )
    op.create_index("ix_hotline12345_outbox_due", "hotline12345_outbox", ["status", "next_attempt_at"], unique=False)
    op.create_index(op.f("ix_hotline12345_outbox_order_id"), "hotline12345_outbox", ["order_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_hotline12345_outbox_order_id"), table_name="hotline12345_outbox")
    op.drop_index("ix_hotline12345_outbox_due", table_name="hotline12345_outbox")
    op.drop_table("hotline12345_outbox")
