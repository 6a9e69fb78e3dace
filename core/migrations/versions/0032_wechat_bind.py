"""wechat binding: code requests per account and per ID number

Revision ID: 0032
Revises: 0031
Create Date: 2026-12-02 19:10:00

Each request for a binding code (console/wechat_bind.py) is a row, so the limits per WeChat
account and per ID number over the last hour hold across processes and restarts.
"""

from alembic import op
import sqlalchemy as sa

import core.models


revision = "0032"
down_revision = "0031"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "wechat_bind_requests",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("openid", sa.String(length=64), nullable=False),
        sa.Column("subject_id", sa.String(length=32), nullable=False),
        sa.Column("requested_at", core.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("sent", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wechat_bind_requests")),
    )
    with op.batch_alter_table("wechat_bind_requests", schema=None) as batch_op:
        batch_op.create_index("ix_wechat_bind_requests_openid", ["openid", "requested_at"], unique=False)
        batch_op.create_index("ix_wechat_bind_requests_subject", ["subject_id", "requested_at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_wechat_bind_requests_requested_at"), ["requested_at"], unique=False
        )


def downgrade() -> None:
    op.drop_table("wechat_bind_requests")
