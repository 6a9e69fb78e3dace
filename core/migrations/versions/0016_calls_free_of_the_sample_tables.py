"""calls free of the sample tables

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-01 22:00:00

`calls.resident_id` is the business system's resident id, as the business port gives it;
a foreign key into the embedded sample's `residents` made every call record of a site with
its own adapter (and no sample tables) fail to write.
"""

from alembic import op


revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.drop_constraint('fk_calls_resident_id_residents', type_='foreignkey')


def downgrade() -> None:
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.create_foreign_key('fk_calls_resident_id_residents', 'residents', ['resident_id'], ['id'])
