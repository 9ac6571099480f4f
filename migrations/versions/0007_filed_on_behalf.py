"""requests filed on someone's behalf: `filed_by`, the filer when not the beneficiary (requester_id)

Nullable: every earlier request was filed by its requester. Indexed with created_at for the filer's own
rate limit.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 15:00:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

String = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    with op.batch_alter_table('access_requests', schema=None) as batch_op:
        batch_op.add_column(sa.Column('filed_by', String(length=32), nullable=True))
        batch_op.create_index('ix_access_requests_filed_by', ['filed_by', 'created_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('access_requests', schema=None) as batch_op:
        batch_op.drop_index('ix_access_requests_filed_by')
        batch_op.drop_column('filed_by')
