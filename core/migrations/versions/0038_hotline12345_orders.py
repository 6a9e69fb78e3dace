"""work orders sent by 12345, and the nonces of their signed requests

Revision ID: 0038
Revises: 0037
Create Date: 2026-12-07 21:00:00

`hotline12345_orders`: a work order the 12345 hotline sent (派单), keyed by (counterpart,
12345's number), with the local order it became: the same order sent again is the same
local order (cases.intake12345). A side table, not a column of `work_orders`: the key is
unique, and a unique index on `work_orders` would have to be built CONCURRENTLY beside
live calls; here both are new and empty.
`hotline12345_nonces`: the nonce of every signed request taken, per counterpart, shared by
all console processes, so a signed request is taken once.
Only new tables: safe beside live calls (tests/unit/test_migration_safety.py).
"""

from alembic import op
import sqlalchemy as sa

import core.models


revision = "0038"
down_revision = "0037"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "hotline12345_nonces",
        sa.Column("counterpart", sa.String(length=40), nullable=False),
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("taken_at", core.models.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("counterpart", "nonce", name=op.f("pk_hotline12345_nonces")),
    )
    op.create_index(op.f("ix_hotline12345_nonces_taken_at"), "hotline12345_nonces", ["taken_at"], unique=False)
    op.create_table(
        "hotline12345_orders",
        sa.Column("counterpart", sa.String(length=40), nullable=False),
        sa.Column("order_no", sa.String(length=40), nullable=False),
        sa.Column("order_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("received_at", core.models.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"], ["work_orders.id"], name=op.f("fk_hotline12345_orders_order_id_work_orders")
        ),
        sa.PrimaryKeyConstraint("counterpart", "order_no", name=op.f("pk_hotline12345_orders")),
        sa.UniqueConstraint("order_id", name=op.f("uq_hotline12345_orders_order_id")),
    )


def downgrade() -> None:
    op.drop_table("hotline12345_orders")
    op.drop_index(op.f("ix_hotline12345_nonces_taken_at"), table_name="hotline12345_nonces")
    op.drop_table("hotline12345_nonces")
