"""Reports owed and made, in the database: written in the end's own transaction, claimed by one replica."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import or_
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from bot.store.activity_tables import ActivityReport


def owe(session: Session, request_id: int, ended_at: datetime) -> None:
    """Owe the grant's report from its end, in the end's transaction: one INSERT that does nothing when a
    report is owed already (so that it can never fail the end it is written with)."""
    insert = postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    values = {"request_id": request_id, "ended_at": ended_at, "attempts": 0, "partial": False}
    session.execute(insert(ActivityReport).values(**values).on_conflict_do_nothing(index_elements=["request_id"]))


def claim_due(
    session: Session, *, now: datetime, delay: timedelta, owner: str, lease: timedelta, limit: int = 5
) -> list[int]:
    """Claim up to `limit` owed reports whose delay has passed and whose retry time has come."""
    rows = session.exec(
        select(ActivityReport)
        .where(
            col(ActivityReport.reported_at).is_(None),
            col(ActivityReport.ended_at) <= now - delay,
            or_(col(ActivityReport.next_attempt_at).is_(None), col(ActivityReport.next_attempt_at) <= now),
            or_(col(ActivityReport.claimed_until).is_(None), col(ActivityReport.claimed_until) < now),
        )
        .order_by(col(ActivityReport.ended_at))
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    for row in rows:
        row.claimed_by, row.claimed_until = owner, now + lease
    return [row.request_id for row in rows]


def next_due(session: Session, *, delay: timedelta) -> datetime | None:
    """When the next owed report falls due (its end plus the delay, or its retry time if later)."""
    rows = session.exec(
        select(ActivityReport).where(col(ActivityReport.reported_at).is_(None)).order_by(col(ActivityReport.ended_at))
    ).first()
    if rows is None:
        return None
    return max(rows.ended_at + delay, rows.next_attempt_at or rows.ended_at)


def reports_of(session: Session, request_ids: Sequence[int]) -> dict[int, ActivityReport]:
    """The made reports of these requests, by request ID."""
    if not request_ids:
        return {}
    rows = session.exec(
        select(ActivityReport).where(
            col(ActivityReport.request_id).in_(list(request_ids)), col(ActivityReport.reported_at).is_not(None)
        )
    ).all()
    return {row.request_id: row for row in rows}
