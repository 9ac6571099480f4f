"""Requests filed on someone's behalf: what a filer filed for others."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func
from sqlmodel import Session, col, select

from bot.store.models import AccessRequest


def filed_for_others_since(filer: str, since: datetime, *, session: Session) -> int:
    """How many requests `filer` filed on others' behalf since `since` (ix_access_requests_filed_by)."""
    stmt = (
        select(func.count())
        .select_from(AccessRequest)
        .where(AccessRequest.filed_by == filer, col(AccessRequest.created_at) >= since)
    )
    return int(session.exec(stmt).one())
