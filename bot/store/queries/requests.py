"""Requests and votes: load, lock, list, count."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, or_
from sqlmodel import Session, col, select

from bot.domain.lifecycle import Status
from bot.store.models import AccessRequest, Vote


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


def requests_of(requester_id: str, *, session: Session, limit: int = 20) -> Sequence[AccessRequest]:
    """A requester's most recent requests, newest first."""
    stmt = (
        select(AccessRequest)
        .where(AccessRequest.requester_id == requester_id)
        .order_by(col(AccessRequest.id).desc())
        .limit(limit)
    )
    return session.exec(stmt).all()


def in_status(statuses: Sequence[Status], *, session: Session, limit: int = 200) -> Sequence[AccessRequest]:
    """Requests in any of the statuses, oldest first."""
    stmt = (
        select(AccessRequest)
        .where(col(AccessRequest.status).in_([s.value for s in statuses]))
        .order_by(col(AccessRequest.id))
        .limit(limit)
    )
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


def find_requests(
    *,
    session: Session,
    status: str | None = None,
    requester: str | None = None,
    resource: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    granted: bool = False,
    limit: int = 500,
) -> Sequence[AccessRequest]:
    """Requests matching every filter given, newest first.

    since/until select requests whose life (filing to end; with `granted`, activation to end)
    overlaps [since, until); a request that has not ended overlaps everything after its start.
    """
    stmt = select(AccessRequest)
    if status:
        stmt = stmt.where(AccessRequest.status == status)
    if requester:
        stmt = stmt.where(AccessRequest.requester_id == requester)
    if resource:
        stmt = stmt.where(AccessRequest.resource == resource)
    start = col(AccessRequest.activated_at) if granted else col(AccessRequest.created_at)
    if granted:
        stmt = stmt.where(start.is_not(None))
    if until is not None:
        stmt = stmt.where(start < until)
    if since is not None:
        still_open = [Status.PENDING.value, Status.APPROVED.value, Status.ACTIVE.value]
        end = func.coalesce(AccessRequest.ended_at, AccessRequest.updated_at)
        stmt = stmt.where(or_(col(AccessRequest.status).in_(still_open), end >= since))
    return session.exec(stmt.order_by(col(AccessRequest.id).desc()).limit(limit)).all()


def active_by_kind(*, session: Session) -> dict[str, int]:
    """How many grants are active now, per kind."""
    stmt = (
        select(AccessRequest.kind, func.count())
        .where(AccessRequest.status == Status.ACTIVE.value)
        .group_by(col(AccessRequest.kind))
    )
    return {str(kind): int(count) for kind, count in session.exec(stmt).all()}
