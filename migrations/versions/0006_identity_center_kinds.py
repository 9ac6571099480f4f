"""IAM Identity Center kinds: `kind` wide enough for sso_permission_set, `iam_user` for an Identity Store UserName

For the kinds sso_permission_set and sso_group the principal is an Identity Store user: its UserName (up to
128 characters) goes in iam_user and its UserId in iam_user_arn, the columns that hold the principal a grant
names whatever the kind (so the overlap, lock and reconcile rules keep one meaning for every kind).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 14:00:00.000000
"""
from collections.abc import Sequence

import sqlmodel
from alembic import op


revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

String = sqlmodel.sql.sqltypes.AutoString
WIDER = [
    ('access_requests', 'kind', 16, 32),
    ('access_requests', 'iam_user', 64, 128),
]


def upgrade() -> None:
    for table, column, old, new in WIDER:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column(column, existing_type=String(length=old), type_=String(length=new))


def downgrade() -> None:
    for table, column, old, new in reversed(WIDER):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column(column, existing_type=String(length=new), type_=String(length=old))
