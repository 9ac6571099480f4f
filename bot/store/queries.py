"""Queries and row claims. They take a keyword-only session and never commit."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, update
from sqlmodel import Session, col, select

from bot.domain.lifecycle import Status
from bot.store.models import AccessRequest, AuditEvent, Vote


def lock_request(request_id: int, *, session: Session) -> AccessRequest | None:
    """Load a request and hold its row until the transaction ends (FOR UPDATE on PostgreSQL)."""
    stmt = select(AccessRequest).where(AccessRequest.id == request_id).with_for_update()
    return session.exec(stmt).first()


def get_request(request_id: int, *, session: Session) -> AccessRequest | None:
    """Load a request without locking it."""
    return session.get(AccessRequest, request_id)


def votes_for(request_id: int, *, session: Session) -> Sequence[Vote]:
    """Every vote on the request, oldest first."""
    return session.exec(select(Vote).where(Vote.request_id == request_id).order_by(col(Vote.id))).all()


def record_audit(
    *,
    session: Session,
    actor: str,
    action: str,
    request_id: int | None = None,
    from_status: Status | None = None,
    to_status: Status | None = None,
    at: datetime,
    **details: Any,
) -> AuditEvent:
    """Append one audit event to the current transaction."""
    event = AuditEvent(
        request_id=request_id,
        actor=actor,
        action=action,
        from_status=from_status.value if from_status else None,
        to_status=to_status.value if to_status else None,
        details=json.dumps(details, sort_keys=True, default=str),
        created_at=at,
    )
    session.add(event)
    return event


def other_holders(request: AccessRequest, *, session: Session) -> int:
    """How many other requests hold (or are granting) the same shared access for the same user."""
    stmt = (
        select(func.count())
        .select_from(AccessRequest)
        .where(
            AccessRequest.id != request.id,
            AccessRequest.iam_user == request.iam_user,
            AccessRequest.target == request.target,
            AccessRequest.kind == request.kind,
            col(AccessRequest.status).in_([Status.APPROVED.value, Status.ACTIVE.value]),
            col(AccessRequest.grant_started_at).is_not(None),
            col(AccessRequest.revoke_started_at).is_(None),
        )
    )
    return int(session.exec(stmt).one())


def claim_due(*, session: Session, now: datetime, owner: str, lease: timedelta, limit: int) -> list[int]:
    """Claim up to `limit` due rows for `owner`, skipping rows another replica holds or has leased."""
    stmt = (
        select(AccessRequest.id)
        .where(
            col(AccessRequest.next_due_at) <= now,
            or_(col(AccessRequest.claimed_until).is_(None), col(AccessRequest.claimed_until) < now),
        )
        .order_by(col(AccessRequest.next_due_at))
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    ids = [int(i) for i in session.exec(stmt).all() if i is not None]
    if ids:
        session.execute(
            update(AccessRequest)
            .where(col(AccessRequest.id).in_(ids))
            .values(claimed_by=owner, claimed_until=now + lease)
        )
    return ids


def next_due_at(*, session: Session, now: datetime) -> datetime | None:
    """The earliest moment any row needs attention; a leased row not before its lease ends."""
    free = session.exec(
        select(func.min(AccessRequest.next_due_at)).where(
            or_(col(AccessRequest.claimed_until).is_(None), col(AccessRequest.claimed_until) < now)
        )
    ).one()
    leased = session.exec(
        select(func.min(AccessRequest.claimed_until)).where(
            col(AccessRequest.next_due_at).is_not(None), col(AccessRequest.claimed_until) >= now
        )
    ).one()
    found = [moment for moment in (free, leased) if moment is not None]
    return min(found) if found else None


def requests_of(requester_id: str, *, session: Session, limit: int = 20) -> Sequence[AccessRequest]:
    """A requester's most recent requests, newest first."""
    stmt = (
        select(AccessRequest)
        .where(AccessRequest.requester_id == requester_id)
        .order_by(col(AccessRequest.id).desc())
        .limit(limit)
    )
    return session.exec(stmt).all()


def audit_trail(request_id: int, *, session: Session) -> Sequence[AuditEvent]:
    """A request's audit events in order."""
    stmt = select(AuditEvent).where(AuditEvent.request_id == request_id).order_by(col(AuditEvent.id))
    return session.exec(stmt).all()


def auto_approved_since(requester_id: str, since: datetime, *, session: Session) -> int:
    """How many of a requester's requests were approved without a person since `since`."""
    stmt = (
        select(func.count())
        .select_from(AccessRequest)
        .where(
            AccessRequest.requester_id == requester_id,
            col(AccessRequest.auto_approved).is_(True),
            col(AccessRequest.created_at) >= since,
        )
    )
    return int(session.exec(stmt).one())


def in_status(statuses: Sequence[Status], *, session: Session, limit: int = 200) -> Sequence[AccessRequest]:
    """Requests in any of the statuses, oldest first."""
    stmt = (
        select(AccessRequest)
        .where(col(AccessRequest.status).in_([s.value for s in statuses]))
        .order_by(col(AccessRequest.id))
        .limit(limit)
    )
    return session.exec(stmt).all()


def filed_since(requester_id: str, since: datetime, *, session: Session) -> int:
    """How many requests a user filed since `since`."""
    stmt = (
        select(func.count())
        .select_from(AccessRequest)
        .where(AccessRequest.requester_id == requester_id, col(AccessRequest.created_at) >= since)
    )
    return int(session.exec(stmt).one())


def open_count(requester_id: str, *, session: Session) -> int:
    """How many of a user's requests are pending, approved or active."""
    stmt = (
        select(func.count())
        .select_from(AccessRequest)
        .where(
            AccessRequest.requester_id == requester_id,
            col(AccessRequest.status).in_([Status.PENDING.value, Status.APPROVED.value, Status.ACTIVE.value]),
        )
    )
    return int(session.exec(stmt).one())
