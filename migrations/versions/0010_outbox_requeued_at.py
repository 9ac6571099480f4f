"""slack_outbox.requeued_at: when an operator sent a given-up post again (`accessbot outbox retry`)

The post keeps its created_at (its real age, shown by `accessbot outbox`); its give-up bound and the
"oldest owed" metric count from requeued_at instead once it is set.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29 19:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = sqlmodel.sql.sqltypes.UTCDateTime


def upgrade() -> None:
    op.add_column("slack_outbox", sa.Column("requeued_at", UTC(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("slack_outbox") as batch:
        batch.drop_column("requeued_at")
