"""notices over the channels each resident chose

Revision ID: 0031
Revises: 0030
Create Date: 2026-12-02 18:45:00

Channel preferences per subject and category (notice_preferences, which the business system
may write too), one notice per event for subjects who have them (notices, with its history
in notice_steps), and the two new channels' own rows: calls out that read a notice
(voice_notices, voice_optouts) and WeChat template messages (wechat_messages, with the
account bindings). sms_messages.notice_id ties an SMS to the notice it is a step of; every
existing message has none, as before.
"""

from alembic import op
import sqlalchemy as sa

import core.models


revision = "0031"
down_revision = "0030"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notice_preferences",
        sa.Column("subject_kind", sa.String(length=8), nullable=False),
        sa.Column("subject_id", sa.String(length=32), nullable=False),
        sa.Column("category", sa.String(length=20), nullable=False),
        sa.Column("channels", sa.String(length=40), nullable=False),
        sa.Column("language", sa.String(length=5), server_default="zh", nullable=False),
        sa.Column("quiet_start", sa.String(length=5), nullable=True),
        sa.Column("quiet_end", sa.String(length=5), nullable=True),
        sa.Column("voice_number", sa.String(length=20), nullable=True),
        sa.Column("source", sa.String(length=48), server_default="business", nullable=False),
        sa.Column("updated_at", core.models.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("subject_kind", "subject_id", "category", name=op.f("pk_notice_preferences")),
    )
    op.create_table(
        "notice_steps",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("notice_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("at", core.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notice_steps")),
    )
    with op.batch_alter_table("notice_steps", schema=None) as batch_op:
        batch_op.create_index("ix_notice_steps_notice", ["notice_id", "id"], unique=False)

    op.create_table(
        "voice_notices",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("notice_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("number", sa.String(length=20), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("language", sa.String(length=5), nullable=False),
        sa.Column("category", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", core.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("last_result", sa.String(length=32), nullable=True),
        sa.Column("claimed_by", sa.String(length=64), nullable=True),
        sa.Column("claimed_at", core.models.UtcDateTime(timezone=True), nullable=True),
        sa.Column("created_at", core.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("final_at", core.models.UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_voice_notices")),
        sa.UniqueConstraint("notice_id", name=op.f("uq_voice_notices_notice_id")),
    )
    with op.batch_alter_table("voice_notices", schema=None) as batch_op:
        batch_op.create_index(
            "ix_voice_notices_calling",
            ["number"],
            unique=False,
            postgresql_where=sa.text("status = 'calling'"),
            sqlite_where=sa.text("status = 'calling'"),
        )
        batch_op.create_index(
            "ix_voice_notices_queued",
            ["next_attempt_at", "id"],
            unique=False,
            postgresql_where=sa.text("status = 'queued'"),
            sqlite_where=sa.text("status = 'queued'"),
        )

    op.create_table(
        "voice_optouts",
        sa.Column("phone", sa.String(length=20), nullable=False),
        sa.Column("at", core.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(length=48), nullable=False),
        sa.PrimaryKeyConstraint("phone", name=op.f("pk_voice_optouts")),
    )
    op.create_table(
        "wechat_bind_codes",
        sa.Column("openid", sa.String(length=64), nullable=False),
        sa.Column("subject_id", sa.String(length=32), nullable=False),
        sa.Column("code_hash", sa.String(length=128), nullable=False),
        sa.Column("requested_at", core.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("tries", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("openid", name=op.f("pk_wechat_bind_codes")),
    )
    op.create_table(
        "wechat_bindings",
        sa.Column("subject_id", sa.String(length=32), nullable=False),
        sa.Column("openid", sa.String(length=64), nullable=False),
        sa.Column("bound_at", core.models.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("subject_id", name=op.f("pk_wechat_bindings")),
        sa.UniqueConstraint("openid", name=op.f("uq_wechat_bindings_openid")),
    )
    op.create_table(
        "wechat_messages",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("notice_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("openid", sa.String(length=64), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("category", sa.String(length=20), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", core.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("msgid", sa.String(length=32), nullable=True),
        sa.Column("claimed_by", sa.String(length=64), nullable=True),
        sa.Column("claimed_at", core.models.UtcDateTime(timezone=True), nullable=True),
        sa.Column("created_at", core.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("final_at", core.models.UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wechat_messages")),
        sa.UniqueConstraint("notice_id", name=op.f("uq_wechat_messages_notice_id")),
    )
    with op.batch_alter_table("wechat_messages", schema=None) as batch_op:
        batch_op.create_index(
            "ix_wechat_messages_queued",
            ["next_attempt_at", "id"],
            unique=False,
            postgresql_where=sa.text("status = 'queued'"),
            sqlite_where=sa.text("status = 'queued'"),
        )

    op.create_table(
        "notices",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("event_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("category", sa.String(length=20), nullable=False),
        sa.Column("subject_kind", sa.String(length=8), nullable=False),
        sa.Column("subject_id", sa.String(length=32), nullable=False),
        sa.Column("plan", sa.String(length=40), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("fallbacks", sa.Integer(), nullable=False),
        sa.Column("language", sa.String(length=5), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", core.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("final_at", core.models.UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["event_id"], ["business_events.id"], name=op.f("fk_notices_event_id_business_events")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notices")),
        sa.UniqueConstraint("event_id", name=op.f("uq_notices_event_id")),
    )
    with op.batch_alter_table("notices", schema=None) as batch_op:
        batch_op.create_index("ix_notices_created", ["created_at"], unique=False)
        batch_op.create_index(
            "ix_notices_open",
            ["state", "channel", "id"],
            unique=False,
            postgresql_where=sa.text("state IN ('pending', 'advance')"),
            sqlite_where=sa.text("state IN ('pending', 'advance')"),
        )
        batch_op.create_index("ix_notices_subject", ["subject_kind", "subject_id"], unique=False)

    with op.batch_alter_table("sms_messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("notice_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True))
        batch_op.create_index(
            "ix_sms_messages_notice_id",
            ["notice_id"],
            unique=False,
            postgresql_where=sa.text("notice_id IS NOT NULL"),
            sqlite_where=sa.text("notice_id IS NOT NULL"),
        )


def downgrade() -> None:
    with op.batch_alter_table("sms_messages", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_sms_messages_notice_id",
            postgresql_where=sa.text("notice_id IS NOT NULL"),
            sqlite_where=sa.text("notice_id IS NOT NULL"),
        )
        batch_op.drop_column("notice_id")

    with op.batch_alter_table("notices", schema=None) as batch_op:
        batch_op.drop_index("ix_notices_subject")
        batch_op.drop_index(
            "ix_notices_open",
            postgresql_where=sa.text("state IN ('pending', 'advance')"),
            sqlite_where=sa.text("state IN ('pending', 'advance')"),
        )
        batch_op.drop_index("ix_notices_created")

    op.drop_table("notices")
    with op.batch_alter_table("wechat_messages", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_wechat_messages_queued",
            postgresql_where=sa.text("status = 'queued'"),
            sqlite_where=sa.text("status = 'queued'"),
        )

    op.drop_table("wechat_messages")
    op.drop_table("wechat_bindings")
    op.drop_table("wechat_bind_codes")
    op.drop_table("voice_optouts")
    with op.batch_alter_table("voice_notices", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_voice_notices_queued",
            postgresql_where=sa.text("status = 'queued'"),
            sqlite_where=sa.text("status = 'queued'"),
        )
        batch_op.drop_index(
            "ix_voice_notices_calling",
            postgresql_where=sa.text("status = 'calling'"),
            sqlite_where=sa.text("status = 'calling'"),
        )

    op.drop_table("voice_notices")
    with op.batch_alter_table("notice_steps", schema=None) as batch_op:
        batch_op.drop_index("ix_notice_steps_notice")

    op.drop_table("notice_steps")
    op.drop_table("notice_preferences")
