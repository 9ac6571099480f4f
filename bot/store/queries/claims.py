"""Row claims: which replica works on which due row, and when anything is next due."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import func, or_, update
from sqlmodel import Session, col, select

from bot.store.models import AccessRequest


def claim_due(*, session: Session, now: datetime, owner: str, lease: timedelta, limit: int) -> list[AccessRequest]:
    """Claim up to `limit` due rows for `owner`, skipping rows another replica holds or has leased; return them.

    One statement claims the rows and reads them back (UPDATE … RETURNING), earliest due first: the sweep
    decides what each is owed from what it returns, with no read of its own per row.
    """
    due = AccessRequest.__table__.alias("due")  # type: ignore[attr-defined]
    chosen = (
        select(due.c.id)
        .where(due.c.next_due_at <= now, or_(due.c.claimed_until.is_(None), due.c.claimed_until < now))
        .order_by(due.c.next_due_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    stmt = (
        update(AccessRequest)
        .where(col(AccessRequest.id).in_(chosen.scalar_subquery()))
        .values(claimed_by=owner, claimed_until=now + lease)
        .returning(AccessRequest)
    )
    rows = list(session.scalars(stmt, execution_options={"synchronize_session": False}).all())
    return sorted(rows, key=lambda row: (row.next_due_at or now, row.id or 0))


def renew_claim(request_id: int, *, session: Session, owner: str, now: datetime, lease: timedelta) -> bool:
    """Extend `owner`'s claim on a row it is about to work on; False when the row is no longer its to work on.

    A claimed row can wait in a batch past its lease; another replica may have taken it over meanwhile
    (or finished and released it). The update is conditional and takes the row lock, so exactly one
    replica goes on with the row.
    """
    result = session.execute(
        update(AccessRequest)
        .where(col(AccessRequest.id) == request_id, col(AccessRequest.claimed_by) == owner)
        .values(claimed_until=now + lease)
    )
    return bool(getattr(result, "rowcount", 0))


def renew_claims(request_ids: Sequence[int], *, session: Session, owner: str, now: datetime, lease: timedelta) -> int:
    """Extend the leases `owner` holds on rows it is working on (its heartbeat); return how many it renewed."""
    if not request_ids:
        return 0
    mine = or_(col(AccessRequest.claimed_by) == owner, col(AccessRequest.claimed_by).startswith(f"{owner}#"))
    result = session.execute(
        update(AccessRequest)
        .where(col(AccessRequest.id).in_(list(request_ids)), mine)
        .values(claimed_until=now + lease)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def next_due_at(*, session: Session, now: datetime) -> datetime | None:
    """The earliest moment any row needs attention; a leased row not before its lease ends."""
    free = session.exec(
        select(func.min(AccessRequest.next_due_at)).where(
            or_(col(AccessRequest.claimed_until).is_(None), col(AccessRequest.claimed_until) < now)
        )
    ).one()
    # A row is only ever claimed once due, so a leased row's next_due_at is in the past: bounding it keeps
    # this an index range scan over the due rows instead of a scan of every active grant (the minute
    # allows for clock skew between replicas).
    leased = session.exec(
        select(func.min(AccessRequest.claimed_until)).where(
            col(AccessRequest.next_due_at) <= now + timedelta(minutes=1), col(AccessRequest.claimed_until) >= now
        )
    ).one()
    found = [moment for moment in (free, leased) if moment is not None]
    return min(found) if found else None
