"""The audit trail: appending to the hash chain, and reading it back."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, text
from sqlmodel import Session, col, select

from bot.domain.audit import AuditAction
from bot.domain.lifecycle import Status
from bot.store import chain
from bot.store.models import AuditEvent

_HEAD = "audit_chain_head"


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


def audit_trail(request_id: int, *, session: Session) -> Sequence[AuditEvent]:
    """A request's audit events in order."""
    stmt = select(AuditEvent).where(AuditEvent.request_id == request_id).order_by(col(AuditEvent.id))
    return session.exec(stmt).all()


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


def last_audit_at(action: AuditAction, *, session: Session) -> datetime | None:
    """When the newest audit event with this action was written."""
    stmt = (
        select(AuditEvent.created_at)
        .where(col(AuditEvent.action) == action)
        .order_by(col(AuditEvent.created_at).desc())
        .limit(1)
    )
    return session.exec(stmt).first()


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
