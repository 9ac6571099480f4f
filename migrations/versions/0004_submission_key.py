"""the Slack submission a request was filed from (trigger or view ID): a retry or a double submit files once

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 13:10:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

String = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    with op.batch_alter_table('access_requests', schema=None) as batch_op:
        batch_op.add_column(sa.Column('submission', String(length=128), nullable=True))
        batch_op.create_index('ux_access_requests_submission', ['submission'], unique=True)


def downgrade() -> None:
    with op.batch_alter_table('access_requests', schema=None) as batch_op:
        batch_op.drop_index('ux_access_requests_submission')
        batch_op.drop_column('submission')
