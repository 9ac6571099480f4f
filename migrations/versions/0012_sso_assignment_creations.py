"""sso_assignment_creations: the request IDs of the account assignment creations the bot asked for

An Identity Center assignment is created asynchronously and may finish after the bot's poll gave up; the
undo of a failed grant waits for each recorded creation's final status before it deletes what is there.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-08 03:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = sqlmodel.sql.sqltypes.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "sso_assignment_creations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("account", sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
        sa.Column("creation_id", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("created_at", UTC(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("request_id", "account", "creation_id", name="ux_sso_assignment_creation"),
    )
    op.create_index(
        op.f("ix_sso_assignment_creations_request_id"), "sso_assignment_creations", ["request_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_sso_assignment_creations_request_id"), table_name="sso_assignment_creations")
    op.drop_table("sso_assignment_creations")
