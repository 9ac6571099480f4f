"""access_requests.sessions_denied_before: the cutoff of the role session deny a request owes

With one deny statement per person on a role, lifting one end's deny must leave a later end's alone, and
reconcile checks that each owed deny is still on its role with at least this cutoff.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-08 03:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = sqlmodel.sql.sqltypes.UTCDateTime


def upgrade() -> None:
    op.add_column("access_requests", sa.Column("sessions_denied_before", UTC(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("access_requests") as batch:
        batch.drop_column("sessions_denied_before")
