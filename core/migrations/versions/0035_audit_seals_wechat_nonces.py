"""audit seals and WeChat push nonces

Revision ID: 0035
Revises: 0034
Create Date: 2026-12-07 06:00:00

`audit_seals`: HMACs of the audit chain's head under a key kept outside the database
(core.audit_seal), so a chain rebuilt from a copy of the database does not verify.
`wechat_push_nonces`: the (timestamp, nonce) of every signed WeChat push taken, shared by
all console processes, so a signed request is taken once (sms.wechat_push).
"""

from alembic import op
import sqlalchemy as sa

import core.models


revision = "0035"
down_revision = "0034"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_seals",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=False, nullable=False),
        sa.Column("row_hash", sa.String(length=64), nullable=False),
        sa.Column("sealed_at", core.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("mac", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_seals")),
    )
    op.create_table(
        "wechat_push_nonces",
        sa.Column("timestamp", sa.String(length=12), nullable=False),
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("taken_at", core.models.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("timestamp", "nonce", name=op.f("pk_wechat_push_nonces")),
    )
    with op.batch_alter_table("wechat_push_nonces", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_wechat_push_nonces_taken_at"), ["taken_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("wechat_push_nonces", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_wechat_push_nonces_taken_at"))
    op.drop_table("wechat_push_nonces")
    op.drop_table("audit_seals")
