"""slack_outbox: the Slack posts the bot owes, retried with backoff until Slack takes them

A post is written in the transaction of the change it tells of, sent from there, and deleted once Slack
answered ok; a failed one waits for its next attempt (next_attempt_at), a crashed sender's for the end of
its lease (claimed_until); one that kept failing past the bound is kept, given_up_at set.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29 16:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = sqlmodel.sql.sqltypes.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "slack_outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=True),
        sa.Column("method", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("payload", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("render", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
        sa.Column("created_at", UTC(), nullable=False),
        sa.Column("next_attempt_at", UTC(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column("claimed_by", sqlmodel.sql.sqltypes.AutoString(length=256), nullable=True),
        sa.Column("claimed_until", UTC(), nullable=True),
        sa.Column("given_up_at", UTC(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_slack_outbox_due",
        "slack_outbox",
        ["next_attempt_at"],
        unique=False,
        postgresql_where=sa.text("given_up_at IS NULL"),
        sqlite_where=sa.text("given_up_at IS NULL"),
    )
    op.create_index("ix_slack_outbox_request", "slack_outbox", ["request_id", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_slack_outbox_request", table_name="slack_outbox")
    op.drop_index("ix_slack_outbox_due", table_name="slack_outbox")
    op.drop_table("slack_outbox")
