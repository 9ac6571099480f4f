"""access_requests.on_call_note, .warning and .notify: on-call approval (or why it could not be checked), the
resource's warning as the requester saw it, and who the approval message mentions (issue 24).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-08 03:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("access_requests", sa.Column("on_call_note", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True))
    op.add_column("access_requests", sa.Column("warning", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True))
    op.add_column("access_requests", sa.Column("notify", sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("access_requests") as batch:
        batch.drop_column("notify")
        batch.drop_column("warning")
        batch.drop_column("on_call_note")
