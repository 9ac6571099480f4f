"""Tables of the activity report: reports owed and made, and the pace of CloudTrail lookups across replicas."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, text
from sqlmodel import Field, SQLModel


class ActivityReport(SQLModel, table=True):
    """A grant's activity report: owed from its end, made once CloudTrail has delivered the events."""

    __tablename__ = "activity_reports"
    __table_args__ = (
        Index(
            "ix_activity_reports_owed",
            "ended_at",
            postgresql_where=text("reported_at IS NULL"),
            sqlite_where=text("reported_at IS NULL"),
        ),
    )

    request_id: int = Field(primary_key=True, foreign_key="access_requests.id")
    ended_at: datetime
    # Tried again no earlier than this after CloudTrail throttled or failed (NULL: due once the delay passed).
    next_attempt_at: datetime | None = None
    attempts: int = 0
    last_error: str | None = Field(default=None, max_length=500)
    claimed_by: str | None = Field(default=None, max_length=256)
    claimed_until: datetime | None = None
    reported_at: datetime | None = None
    # The totals, for App Home and `accessbot report` without reading the body.
    calls: int | None = None
    writes: int | None = None
    denied: int | None = None
    last_call_at: datetime | None = None
    partial: bool = False
    body: str | None = None  # the report as JSON (bot.activity.summary.summarize)


class CloudTrailPace(SQLModel, table=True):
    """When the bot may next call LookupEvents in one account and Region: one row shared by every replica."""

    __tablename__ = "cloudtrail_pace"

    account: str = Field(primary_key=True, max_length=12)
    region: str = Field(primary_key=True, max_length=32)
    next_at: datetime
