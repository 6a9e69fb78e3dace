"""audit log: channel, hash chain, append-only triggers

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-02 05:00:00

Each audit entry gets the channel it came through and its place in a hash chain (seq,
prev_hash, row_hash: core.audit). Existing rows are given their channel (derived from
actor and action) and chained in id order, so `hotline audit verify` passes on an
upgraded database. Then triggers refuse UPDATE and DELETE on audit_log (and TRUNCATE on
PostgreSQL): the table only grows.
"""

from alembic import op
import sqlalchemy as sa

import core.models
from core.audit import GENESIS, ChainLink, channel_of


revision = '0024'
down_revision = '0023'
branch_labels = None
depends_on = None

_PG_FUNCTION = """
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END
$$
"""
_PG_TRIGGERS = (
    "CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log"
    " FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()",
    "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log"
    " FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()",
)
_SQLITE_TRIGGERS = (
    "CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log"
    " BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: UPDATE refused'); END",
    "CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log"
    " BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: DELETE refused'); END",
)


def _chain_existing_rows() -> None:
    log = sa.table(
        'audit_log',
        sa.column('id', sa.BigInteger()),
        sa.column('at', core.models.UtcDateTime()),
        sa.column('actor', sa.String()),
        sa.column('action', sa.String()),
        sa.column('resident_id', sa.Integer()),
        sa.column('call_id', sa.String()),
        sa.column('detail', sa.Text()),
        sa.column('channel', sa.String()),
        sa.column('seq', sa.BigInteger()),
        sa.column('prev_hash', sa.String()),
        sa.column('row_hash', sa.String()),
    )
    conn = op.get_bind()
    rows = conn.execute(sa.select(log).order_by(log.c.id)).all()
    update = (
        sa.update(log)
        .where(log.c.id == sa.bindparam('rid'))
        .values(
            channel=sa.bindparam('c'), seq=sa.bindparam('s'), prev_hash=sa.bindparam('p'), row_hash=sa.bindparam('h')
        )
    )
    prev, values = GENESIS, []
    for seq, r in enumerate(rows, start=1):
        channel = channel_of(r.actor, r.action)
        digest = ChainLink(seq, r.at, r.actor, r.action, r.resident_id, r.call_id, r.detail, channel, prev).row_hash()
        values.append({'rid': r.id, 'c': channel, 's': seq, 'p': prev, 'h': digest})
        prev = digest
    for start in range(0, len(values), 1000):
        conn.execute(update, values[start : start + 1000])


def upgrade() -> None:
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.add_column(sa.Column('channel', sa.String(length=12), nullable=True))
        batch_op.add_column(sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True))
        batch_op.add_column(sa.Column('prev_hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('row_hash', sa.String(length=64), nullable=True))
    _chain_existing_rows()
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.alter_column('channel', existing_type=sa.String(length=12), nullable=False)
        batch_op.alter_column(
            'seq', existing_type=sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False
        )
        batch_op.alter_column('prev_hash', existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column('row_hash', existing_type=sa.String(length=64), nullable=False)
        batch_op.create_unique_constraint(batch_op.f('uq_audit_log_seq'), ['seq'])
        batch_op.create_index('ix_audit_actor_at', ['actor', 'at'], unique=False)
        batch_op.create_index('ix_audit_at', ['at'], unique=False)
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(_PG_FUNCTION)
        for statement in _PG_TRIGGERS:
            op.execute(statement)
    else:
        for statement in _SQLITE_TRIGGERS:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("DROP TRIGGER audit_log_no_truncate ON audit_log")
        op.execute("DROP TRIGGER audit_log_no_change ON audit_log")
        op.execute("DROP FUNCTION audit_log_append_only()")
    else:
        op.execute("DROP TRIGGER audit_log_no_delete")
        op.execute("DROP TRIGGER audit_log_no_update")
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_at')
        batch_op.drop_index('ix_audit_actor_at')
        batch_op.drop_constraint(batch_op.f('uq_audit_log_seq'), type_='unique')
        batch_op.drop_column('row_hash')
        batch_op.drop_column('prev_hash')
        batch_op.drop_column('seq')
        batch_op.drop_column('channel')
