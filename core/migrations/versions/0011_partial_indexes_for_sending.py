"""partial indexes for sending, and events taken up in one step

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 14:30:00

Every status change of a message or an event is an update that no index lets be HOT (the
status is indexed), so each wrote a new entry into every index of its table: 21 index
entries per message (six indexes, four row versions) and 12 per event. The indexes by
status become partial (a row is in each only while it is in that state), the category
index goes (only scans count by category) and the batch index holds batch messages only:
11 entries per message. An event is now taken up and expanded in one transaction
(pending -> queued | failed), so 'claimed' is gone; any left by an older dispatcher are
pending again.
"""

from alembic import op
import sqlalchemy as sa


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def _where(condition: str) -> dict[str, object]:
    return {"postgresql_where": sa.text(condition), "sqlite_where": sa.text(condition)}


def upgrade() -> None:
    op.execute("UPDATE business_events SET status = 'pending' WHERE status = 'claimed'")
    with op.batch_alter_table('business_events', schema=None) as batch_op:
        batch_op.drop_index('ix_business_events_claim')
        batch_op.drop_index('ix_business_events_status_type')
        batch_op.create_index('ix_business_events_pending', ['id'], unique=False, **_where("status = 'pending'"))
        batch_op.create_index(
            'ix_business_events_pending_type', ['event_type', 'id'], unique=False, **_where("status = 'pending'")
        )
    with op.batch_alter_table('sms_messages', schema=None) as batch_op:
        batch_op.drop_index('ix_sms_messages_due')
        batch_op.drop_index('ix_sms_messages_category')
        batch_op.drop_index('ix_sms_messages_batch_id')
        batch_op.create_index(
            'ix_sms_messages_queued', ['priority', 'next_attempt_at', 'id'], unique=False, **_where("status = 'queued'")
        )
        batch_op.create_index(
            'ix_sms_messages_submitted', ['submitted_at'], unique=False, **_where("status = 'submitted'")
        )
        batch_op.create_index('ix_sms_messages_batch_id', ['batch_id'], unique=False, **_where("batch_id IS NOT NULL"))


def downgrade() -> None:
    with op.batch_alter_table('sms_messages', schema=None) as batch_op:
        batch_op.drop_index('ix_sms_messages_batch_id')
        batch_op.drop_index('ix_sms_messages_submitted')
        batch_op.drop_index('ix_sms_messages_queued')
        batch_op.create_index('ix_sms_messages_batch_id', ['batch_id'], unique=False)
        batch_op.create_index('ix_sms_messages_category', ['category'], unique=False)
        batch_op.create_index(
            'ix_sms_messages_due', ['status', 'priority', 'next_attempt_at', 'id'], unique=False
        )
    with op.batch_alter_table('business_events', schema=None) as batch_op:
        batch_op.drop_index('ix_business_events_pending_type')
        batch_op.drop_index('ix_business_events_pending')
        batch_op.create_index('ix_business_events_status_type', ['status', 'event_type'], unique=False)
        batch_op.create_index('ix_business_events_claim', ['status', 'id'], unique=False)
