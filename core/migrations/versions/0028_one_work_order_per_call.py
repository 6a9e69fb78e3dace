"""work orders: one per call from the wrap-up

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-02 14:30:00

Saving an agent's wrap-up again made another work order each time. A call has at most one
order of kind 'call' that is not closed (the wrap-up returns the one it made before). An
older database holding such duplicates stops here with their numbers: close the extra
ones (`hotline orders close ID --note "duplicate of N"`) and migrate again; nothing is
deleted or closed behind anyone's back.
"""

from alembic import op
import sqlalchemy as sa


revision = '0028'
down_revision = '0027'
branch_labels = None
depends_on = None

WHERE = "kind = 'call' AND status <> 'closed'"


def upgrade() -> None:
    duplicated = op.get_bind().execute(
        sa.text(
            f"SELECT call_id, MIN(id), COUNT(*) FROM work_orders WHERE {WHERE} AND call_id IS NOT NULL"
            " GROUP BY call_id HAVING COUNT(*) > 1 ORDER BY MIN(id)"
        )
    ).all()
    if duplicated:
        listed = "; ".join(f"call {call} has {n} open orders (the first {first})" for call, first, n in duplicated[:20])
        raise RuntimeError(
            f"migration 0027: {len(duplicated)} calls have more than one open work order from the wrap-up: "
            f"{listed}. Close the duplicates (hotline orders close ID --note 'duplicate of N') and migrate again."
        )
    with op.batch_alter_table('work_orders', schema=None) as batch_op:
        batch_op.create_index(
            'uq_work_orders_call',
            ['call_id'],
            unique=True,
            postgresql_where=sa.text(WHERE),
            sqlite_where=sa.text(WHERE),
        )


def downgrade() -> None:
    with op.batch_alter_table('work_orders', schema=None) as batch_op:
        batch_op.drop_index('uq_work_orders_call')
