"""Requests and votes: load, lock, list, count."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, bindparam, exists, func, or_, text
from sqlmodel import Session, col, select

from bot.domain.lifecycle import Status
from bot.store.models import AWAITING_DECISION, AccessRequest, Vote

OPEN = (Status.PENDING.value, Status.APPROVED.value, Status.ACTIVE.value)


@dataclass(frozen=True)
class Page:
    """The first rows of a listing, and how many rows it has in all."""

    rows: list[AccessRequest]
    total: int

    @property
    def more(self) -> int:
        """How many rows the page leaves out."""
        return max(self.total - len(self.rows), 0)


# Every step on a request locks its row, several times per revoke: built once (making the statement costs
# more client CPU than sending it).
_LOCK_REQUEST = select(AccessRequest).where(col(AccessRequest.id) == bindparam("request_id")).with_for_update()


def lock_request(request_id: int, *, session: Session) -> AccessRequest | None:
    """Load a request and hold its row until the transaction ends (FOR UPDATE on PostgreSQL)."""
    return session.exec(_LOCK_REQUEST, params={"request_id": request_id}).first()


def get_request(request_id: int, *, session: Session) -> AccessRequest | None:
    """Load a request without locking it."""
    return session.get(AccessRequest, request_id)


def filed_from(submission: str, *, session: Session) -> AccessRequest | None:
    """The request filed from a Slack submission (trigger or view ID), if any."""
    return session.exec(select(AccessRequest).where(AccessRequest.submission == submission)).first()


def open_votes(request: AccessRequest, *, session: Session) -> list[Vote]:
    """The votes of the decision open now (the request's, or its latest extension's), oldest first."""
    stmt = select(Vote).where(Vote.request_id == request.id, Vote.round == request.extension_round)
    return list(session.exec(stmt.order_by(col(Vote.id))).all())


def requests_of(requester_id: str, *, session: Session, limit: int = 20) -> Sequence[AccessRequest]:
    """A requester's most recent requests, newest first."""
    stmt = (
        select(AccessRequest)
        .where(AccessRequest.requester_id == requester_id)
        .order_by(col(AccessRequest.id).desc())
        .limit(limit)
    )
    return session.exec(stmt).all()


def open_requests_of(requester_id: str, *, session: Session, limit: int = 1000) -> Sequence[AccessRequest]:
    """A requester's pending, approved and active requests, newest first, however old.

    The limit is the highest max_open_requests a catalog may set: in practice every one of them.
    """
    stmt = (
        select(AccessRequest)
        .where(AccessRequest.requester_id == requester_id, col(AccessRequest.status).in_(OPEN))
        .order_by(col(AccessRequest.id).desc())
        .limit(limit)
    )
    return session.exec(stmt).all()


def awaiting_decision(approver: str, resources: Mapping[str, datetime | None], *, session: Session, limit: int) -> Page:
    """The open decisions (requests and extensions) on `resources` that `approver` neither asked for nor voted
    on yet, oldest first, and how many there are.

    `resources` maps each resource to None (every request for it) or to a moment: only the requests filed by
    then (the approver is one of its escalation contacts, who may decide once a request has escalated).
    """
    by_moment: dict[datetime | None, list[str]] = {}
    for name, filed_by in resources.items():
        by_moment.setdefault(filed_by, []).append(name)
    if not by_moment:
        return Page([], 0)
    resource, created = col(AccessRequest.resource), col(AccessRequest.created_at)
    scopes = [
        resource.in_(sorted(names)) if filed_by is None else and_(resource.in_(sorted(names)), created <= filed_by)
        for filed_by, names in by_moment.items()
    ]
    voted = exists().where(
        col(Vote.request_id) == AccessRequest.id,
        col(Vote.round) == AccessRequest.extension_round,
        col(Vote.approver_id) == approver,
    )
    conditions = (
        text(AWAITING_DECISION),  # the partial index's own condition: what lets both databases use it
        col(AccessRequest.extension_approved_at).is_(None),  # an approved extension waits for AWS, not a person
        col(AccessRequest.requester_id) != approver,
        or_(col(AccessRequest.filed_by).is_(None), col(AccessRequest.filed_by) != approver),  # nor for whom they filed
        or_(*scopes),
        ~voted,
    )
    oldest = (created, col(AccessRequest.id))
    # One scan finds the page's IDs and counts every match; sorting narrow (ID, time) rows rather than whole
    # requests, and counting in the same pass, halves the time at 10,000 matches.
    found = session.exec(
        select(col(AccessRequest.id), func.count().over()).where(*conditions).order_by(*oldest).limit(limit)
    ).all()
    if not found:
        return Page([], 0)
    ids = [int(request_id) for request_id, _total in found if request_id is not None]
    rows = session.exec(select(AccessRequest).where(col(AccessRequest.id).in_(ids)).order_by(*oldest)).all()
    return Page(list(rows), int(found[0][1]))


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
