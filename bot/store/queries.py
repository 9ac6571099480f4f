"""Queries and row claims. They take a keyword-only session and never commit."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, text, update
from sqlmodel import Session, col, select

from bot.domain.audit import AuditAction
from bot.domain.lifecycle import Status
from bot.store import chain
from bot.store.models import AccessRequest, AuditEvent, Vote

_HEAD = "audit_chain_head"


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
    action: AuditAction,
    request_id: int | None = None,
    from_status: Status | None = None,
    to_status: Status | None = None,
    at: datetime,
    **details: Any,
) -> AuditEvent:
    """Append one audit event to the current transaction, chained to the event before it."""
    event = AuditEvent(
        request_id=request_id,
        actor=actor,
        action=str(action),
        from_status=from_status.value if from_status else None,
        to_status=to_status.value if to_status else None,
        details=json.dumps(details, sort_keys=True, default=str),
        created_at=at.astimezone(UTC),
    )
    event.prev_hash = _chain_head(session)
    event.hash = chain.event_hash(event.model_dump(), event.prev_hash)
    session.add(event)
    # Flush now so that IDs follow chain order even when one transaction appends several events.
    session.flush()
    session.info[_HEAD] = (session.get_transaction(), event.hash)
    return event


def _chain_head(session: Session) -> str:
    """The hash the next event must link to; the first call in a transaction takes the append lock.

    On PostgreSQL the advisory lock (held until commit) makes concurrent writers, in this process or
    another replica, append one after the other, each reading the head only once it holds the lock.
    SQLite needs no lock: every transaction there begins IMMEDIATE, so writers are already serialised.
    """
    held = session.info.get(_HEAD)
    if held is not None and held[0] is session.get_transaction():
        return str(held[1])
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": chain.APPEND_LOCK_ID})
    last = session.exec(select(AuditEvent.hash).order_by(col(AuditEvent.id).desc()).limit(1)).first()
    return last or chain.GENESIS


def may_hold() -> Any:
    """The one rule for "the bot may hold access in AWS for this request": a grant was started and not yet undone.

    True while the grant is in flight, once active, while its end is being applied, and for a failed or
    ended request whose removal AWS has not yet accepted.
    """
    return col(AccessRequest.grant_started_at).is_not(None) & col(AccessRequest.ended_at).is_(None)


def keeps() -> Any:
    """Requests that hold access and mean to keep it: not ending, not failed."""
    return (
        may_hold()
        & col(AccessRequest.status).in_([Status.APPROVED.value, Status.ACTIVE.value])
        & col(AccessRequest.revoke_started_at).is_(None)
        & col(AccessRequest.end_requested_at).is_(None)
    )


def _same_access(request: AccessRequest) -> Any:
    return (
        (col(AccessRequest.id) != request.id)
        & (col(AccessRequest.iam_user) == request.iam_user)
        & (col(AccessRequest.target) == request.target)
        & (col(AccessRequest.kind) == request.kind)
    )


def other_holders(request: AccessRequest, *, session: Session) -> int:
    """How many other requests keep the same access for the same user (so ending this one must leave it)."""
    stmt = select(func.count()).select_from(AccessRequest).where(_same_access(request), keeps())
    return int(session.exec(stmt).one())


def others_may_hold(request: AccessRequest, *, session: Session) -> int:
    """How many other requests may hold the same access for the same user (kept, or still to be removed)."""
    stmt = select(func.count()).select_from(AccessRequest).where(_same_access(request), may_hold())
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


# -- reconciliation ------------------------------------------------------------------------------


def holding(*, session: Session) -> Sequence[AccessRequest]:
    """Requests for which the bot may hold access in AWS now (see may_hold)."""
    stmt = select(AccessRequest).where(may_hold())
    return session.exec(stmt.order_by(col(AccessRequest.id))).all()


def bot_group_pairs(*, session: Session) -> dict[tuple[str, str], int]:
    """(IAM user, group) pairs whose membership the bot itself added last, with the request that added it.

    A pair counts when some request started granting it, and no later request for it was refused before
    granting (the bot refuses when the user is already a member by other means: that membership is not its own).
    """
    kind = col(AccessRequest.kind) == "iam_group"
    started = session.exec(
        select(AccessRequest.iam_user, AccessRequest.target, func.max(AccessRequest.id))
        .where(kind, col(AccessRequest.grant_started_at).is_not(None))
        .group_by(col(AccessRequest.iam_user), col(AccessRequest.target))
    ).all()
    refused = session.exec(
        select(AccessRequest.iam_user, AccessRequest.target, func.max(AccessRequest.id))
        .where(kind, col(AccessRequest.grant_started_at).is_(None), col(AccessRequest.status) == Status.FAILED.value)
        .group_by(col(AccessRequest.iam_user), col(AccessRequest.target))
    ).all()
    last_refused = {(user, group): int(last or 0) for user, group, last in refused}
    return {
        (user, group): int(last)
        for user, group, last in started
        if last is not None and last > last_refused.get((user, group), 0)
    }


def holders_of(kind: str, iam_user: str, target: str, *, session: Session) -> int:
    """How many requests may hold this user's access to this target now (see may_hold)."""
    stmt = (
        select(func.count())
        .select_from(AccessRequest)
        .where(
            col(AccessRequest.kind) == kind,
            col(AccessRequest.iam_user) == iam_user,
            col(AccessRequest.target) == target,
            may_hold(),
        )
    )
    return int(session.exec(stmt).one())


def granted_targets(kind: str, *, session: Session) -> set[str]:
    """Every target of that kind the bot ever started granting."""
    stmt = (
        select(AccessRequest.target)
        .where(col(AccessRequest.kind) == kind, col(AccessRequest.grant_started_at).is_not(None))
        .distinct()
    )
    return set(session.exec(stmt).all())


def granted_target_arns(kind: str, *, session: Session) -> set[str]:
    """Every concrete object (KMS key ARN) of that kind the bot ever recorded granting on."""
    stmt = (
        select(AccessRequest.target_arn)
        .where(col(AccessRequest.kind) == kind, col(AccessRequest.target_arn).is_not(None))
        .distinct()
    )
    return {str(arn) for arn in session.exec(stmt).all() if arn}


def last_audit_at(action: AuditAction, *, session: Session) -> datetime | None:
    """When the newest audit event with this action was written."""
    stmt = (
        select(AuditEvent.created_at)
        .where(col(AuditEvent.action) == action)
        .order_by(col(AuditEvent.created_at).desc())
        .limit(1)
    )
    return session.exec(stmt).first()


def active_by_kind(*, session: Session) -> dict[str, int]:
    """How many grants are active now, per kind."""
    stmt = (
        select(AccessRequest.kind, func.count())
        .where(AccessRequest.status == Status.ACTIVE.value)
        .group_by(col(AccessRequest.kind))
    )
    return {str(kind): int(count) for kind, count in session.exec(stmt).all()}


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


def audit_events(
    *, session: Session, after_id: int = 0, since: datetime | None = None, until: datetime | None = None, limit: int
) -> Sequence[AuditEvent]:
    """Up to `limit` audit events with ID above `after_id`, in chain order, from the first event written at or
    after `since` to the last written before `until`.

    The window is a contiguous run of IDs, not a filter on each event's time: an event's time is taken when
    its unit of work began, so concurrent writers can interleave times and IDs slightly, and a filtered
    subset would have holes that look like removed events to `audit verify`.
    """
    stmt = select(AuditEvent).where(col(AuditEvent.id) > after_id)
    if since is not None:
        first = select(func.min(AuditEvent.id)).where(col(AuditEvent.created_at) >= since).scalar_subquery()
        stmt = stmt.where(col(AuditEvent.id) >= first)
    if until is not None:
        last = select(func.max(AuditEvent.id)).where(col(AuditEvent.created_at) < until).scalar_subquery()
        stmt = stmt.where(col(AuditEvent.id) <= last)
    return session.exec(stmt.order_by(col(AuditEvent.id)).limit(limit)).all()


def revoke_reason(request_id: int, *, session: Session) -> str | None:
    """The reason given when the request's early revoke was asked for, if any."""
    stmt = (
        select(AuditEvent.details)
        .where(AuditEvent.request_id == request_id, AuditEvent.action == AuditAction.REVOKE_REQUESTED)
        .order_by(col(AuditEvent.id).desc())
        .limit(1)
    )
    details = session.exec(stmt).first()
    reason = json.loads(details).get("reason") if details else None
    return str(reason) if reason else None
