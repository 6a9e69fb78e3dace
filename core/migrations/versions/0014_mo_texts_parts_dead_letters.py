"""residents' texts stored (parts, whole texts, TD confirmations) and inbound dead letters

Revision ID: 0014
Revises: 0012
Create Date: 2026-12-01 22:00:00

MO parts were held in one dispatcher's memory while their deliver_sm was already
answered; a TD took effect from one text, spoofed or not; replies had no cap; a deliver_sm
whose handling failed came back forever. Numbers that texted TD were kept as the SMSC
wrote them (`8613...`, `+8613...`), so they never matched the national numbers of the
residents' table: they are rewritten in the store's one form (core.phones.store_form,
China's country code, which every site so far has).
"""

from alembic import op
import sqlalchemy as sa

from core.models import UtcDateTime
from core.phones import BadPhoneNumber, store_form


revision = '0014'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'sms_optout_requests',
        sa.Column('phone', sa.String(length=20), nullable=False),
        sa.Column('code', sa.String(length=8), nullable=False),
        sa.Column('requested_at', UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('phone', name=op.f('pk_sms_optout_requests')),
    )
    op.create_table(
        'sms_mo_texts',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('phone', sa.String(length=20), nullable=False),
        sa.Column('text', sa.Text(), nullable=False),
        sa.Column('keyword', sa.String(length=8), nullable=False),
        sa.Column('received_at', UtcDateTime(timezone=True), nullable=False),
        sa.Column('replied', sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_sms_mo_texts')),
    )
    op.create_index('ix_sms_mo_texts_phone', 'sms_mo_texts', ['phone', 'received_at'], unique=False)
    op.create_table(
        'sms_mo_parts',
        sa.Column('phone', sa.String(length=20), nullable=False),
        sa.Column('reference', sa.Integer(), nullable=False),
        sa.Column('total', sa.Integer(), nullable=False),
        sa.Column('seq', sa.Integer(), nullable=False),
        sa.Column('data_coding', sa.Integer(), nullable=False),
        sa.Column('body', sa.LargeBinary(), nullable=False),
        sa.Column('received_at', UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('phone', 'reference', 'total', 'seq', name=op.f('pk_sms_mo_parts')),
    )
    op.create_index(op.f('ix_sms_mo_parts_received_at'), 'sms_mo_parts', ['received_at'], unique=False)
    op.create_table(
        'sms_dead_letters',
        sa.Column('key', sa.String(length=64), nullable=False),
        sa.Column('source', sa.String(length=24), nullable=False),
        sa.Column('esm_class', sa.Integer(), nullable=False),
        sa.Column('data_coding', sa.Integer(), nullable=False),
        sa.Column('short_message', sa.LargeBinary(), nullable=False),
        sa.Column('tries', sa.Integer(), nullable=False),
        sa.Column('reason', sa.Text(), nullable=True),
        sa.Column('dead', sa.Boolean(), nullable=False),
        sa.Column('first_at', UtcDateTime(timezone=True), nullable=False),
        sa.Column('last_at', UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('key', name=op.f('pk_sms_dead_letters')),
    )
    _optouts_in_store_form()


def _optouts_in_store_form() -> None:
    conn = op.get_bind()
    optouts = sa.table('sms_optouts', sa.column('phone', sa.String))
    phones = list(conn.scalars(sa.select(optouts.c.phone)))
    kept = set(phones)
    for phone in phones:
        try:
            form = store_form(phone)
        except BadPhoneNumber:
            continue  # not a number: left as it is, it matches nothing anyway
        if form == phone:
            continue
        if form in kept:
            conn.execute(optouts.delete().where(optouts.c.phone == phone))
        else:
            conn.execute(optouts.update().where(optouts.c.phone == phone).values(phone=form))
            kept.add(form)
        kept.discard(phone)


def downgrade() -> None:
    op.drop_table('sms_dead_letters')
    op.drop_index(op.f('ix_sms_mo_parts_received_at'), table_name='sms_mo_parts')
    op.drop_table('sms_mo_parts')
    op.drop_index('ix_sms_mo_texts_phone', table_name='sms_mo_texts')
    op.drop_table('sms_mo_texts')
    op.drop_table('sms_optout_requests')
