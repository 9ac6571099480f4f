"""activity_reports and cloudtrail_pace: every grant's activity report, and LookupEvents' shared pace

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-08 03:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = sqlmodel.sql.sqltypes.UTCDateTime
TEXT = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    op.create_table(
        "activity_reports",
        sa.Column("request_id", sa.Integer(), sa.ForeignKey("access_requests.id"), primary_key=True),
        sa.Column("ended_at", UTC(), nullable=False),
        sa.Column("next_attempt_at", UTC(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", TEXT(length=500), nullable=True),
        sa.Column("claimed_by", TEXT(length=256), nullable=True),
        sa.Column("claimed_until", UTC(), nullable=True),
        sa.Column("reported_at", UTC(), nullable=True),
        sa.Column("calls", sa.Integer(), nullable=True),
        sa.Column("writes", sa.Integer(), nullable=True),
        sa.Column("denied", sa.Integer(), nullable=True),
        sa.Column("last_call_at", UTC(), nullable=True),
        sa.Column("partial", sa.Boolean(), nullable=False),
        sa.Column("body", TEXT(), nullable=True),
    )
    op.create_index(
        "ix_activity_reports_owed",
        "activity_reports",
        ["ended_at"],
        postgresql_where=sa.text("reported_at IS NULL"),
        sqlite_where=sa.text("reported_at IS NULL"),
    )
    op.create_table(
        "cloudtrail_pace",
        sa.Column("account", TEXT(length=12), primary_key=True),
        sa.Column("region", TEXT(length=32), primary_key=True),
        sa.Column("next_at", UTC(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("cloudtrail_pace")
    op.drop_index("ix_activity_reports_owed", table_name="activity_reports")
    op.drop_table("activity_reports")
