"""extensions, reminders, break-glass, vote rounds, audit hash chain

New NOT NULL columns carry a server default so rows that already exist stay valid.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 19:09:06.878260
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('access_requests', schema=None) as batch_op:
        batch_op.add_column(sa.Column('extension_seconds', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('extension_approved_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('extension_round', sa.Integer(), nullable=False, server_default=sa.text('0')))
        batch_op.add_column(sa.Column('extensions_used', sa.Integer(), nullable=False, server_default=sa.text('0')))
        batch_op.add_column(sa.Column('reminders_sent', sa.Integer(), nullable=False, server_default=sa.text('0')))
        batch_op.add_column(sa.Column('reminded_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('auto_approved', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('break_glass', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('acknowledged_by', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True))
        batch_op.add_column(sa.Column('acknowledged_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))

    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('prev_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
        batch_op.add_column(sa.Column('hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))

    with op.batch_alter_table('votes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('round', sa.Integer(), nullable=False, server_default=sa.text('0')))
        batch_op.drop_constraint(batch_op.f('uq_votes_request_approver'), type_='unique')
        batch_op.create_unique_constraint('uq_votes_request_round_approver', ['request_id', 'round', 'approver_id'])



def downgrade() -> None:
    with op.batch_alter_table('votes', schema=None) as batch_op:
        batch_op.drop_constraint('uq_votes_request_round_approver', type_='unique')
        batch_op.create_unique_constraint(batch_op.f('uq_votes_request_approver'), ['request_id', 'approver_id'])
        batch_op.drop_column('round')

    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_column('hash')
        batch_op.drop_column('prev_hash')

    with op.batch_alter_table('access_requests', schema=None) as batch_op:
        batch_op.drop_column('acknowledged_at')
        batch_op.drop_column('acknowledged_by')
        batch_op.drop_column('break_glass')
        batch_op.drop_column('auto_approved')
        batch_op.drop_column('reminded_at')
        batch_op.drop_column('reminders_sent')
        batch_op.drop_column('extensions_used')
        batch_op.drop_column('extension_round')
        batch_op.drop_column('extension_approved_at')
        batch_op.drop_column('extension_seconds')

