"""owed work (early end, retry time, session deny), the granted key's ARN, columns wide enough for real IDs

A quorum of three real Slack IDs overflowed decided_by (32) and the audit actor (64) on PostgreSQL;
claim tokens (host:pid:nonce#token) overflowed claimed_by (64).
Failed requests from before this revision count as undone: ended_at takes their last update time.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 10:30:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

String = sqlmodel.sql.sqltypes.AutoString
UTC = sqlmodel.sql.sqltypes.UTCDateTime
WIDER = [
    ('access_requests', 'decided_by', 32, 512),
    ('access_requests', 'ended_by', 32, 256),
    ('access_requests', 'claimed_by', 64, 256),
    ('access_requests', 'acknowledged_by', 32, 64),
    ('audit_events', 'actor', 64, 512),
]


def upgrade() -> None:
    with op.batch_alter_table('access_requests', schema=None) as batch_op:
        batch_op.add_column(sa.Column('end_requested_at', UTC(), nullable=True))
        batch_op.add_column(sa.Column('target_arn', String(length=2048), nullable=True))
        batch_op.add_column(sa.Column('sessions_denied_until', UTC(), nullable=True))
        batch_op.add_column(sa.Column('retry_at', UTC(), nullable=True))
    for table, column, old, new in WIDER:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column(column, existing_type=String(length=old), type_=String(length=new))
    op.execute(
        "UPDATE access_requests SET ended_at = updated_at "
        "WHERE status = 'failed' AND grant_started_at IS NOT NULL AND ended_at IS NULL"
    )


def downgrade() -> None:
    for table, column, old, new in WIDER:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column(column, existing_type=String(length=new), type_=String(length=old))
    with op.batch_alter_table('access_requests', schema=None) as batch_op:
        batch_op.drop_column('retry_at')
        batch_op.drop_column('sessions_denied_until')
        batch_op.drop_column('target_arn')
        batch_op.drop_column('end_requested_at')
