"""indexes for /access pending and App Home: the requests waiting for a decision, a person's latest requests

ix_access_requests_awaiting_decision is partial: it holds only pending requests and active ones with an
extension asked for, so its size follows the open requests, not the history. Its condition is the same text
as AWAITING_DECISION in bot/store/models.py (SQLite uses a partial index only when the query repeats it
word for word).
ix_access_requests_requester_recent: a person's latest requests, newest first, read from the index; without
it PostgreSQL walked the primary key back from the newest row (300 ms at a million rows for a new user).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 13:30:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

AWAITING_DECISION = "(status = 'pending' OR (status = 'active' AND extension_seconds IS NOT NULL))"


def upgrade() -> None:
    with op.batch_alter_table('access_requests', schema=None) as batch_op:
        batch_op.create_index(
            'ix_access_requests_awaiting_decision',
            ['resource', 'created_at'],
            unique=False,
            postgresql_where=sa.text(AWAITING_DECISION),
            sqlite_where=sa.text(AWAITING_DECISION),
        )
        batch_op.create_index('ix_access_requests_requester_recent', ['requester_id', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('access_requests', schema=None) as batch_op:
        batch_op.drop_index('ix_access_requests_requester_recent')
        batch_op.drop_index('ix_access_requests_awaiting_decision')
