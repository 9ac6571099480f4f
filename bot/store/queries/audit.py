"""The audit trail: appending to the hash chain, and reading it back.

An event is appended when its transaction commits (a `before_commit` listener on every Session), so that the
chain's lock is held as briefly as it can be.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event, func, insert, text
from sqlmodel import Session, col, select

from bot.domain.audit import AuditAction
from bot.domain.lifecycle import Status
from bot.store import chain
from bot.store.models import AuditEvent

# The events a transaction appended, written when it commits (see _append_pending).
_PENDING = "audit_pending"
# Built once: making a statement costs more client CPU than sending it, and an append ends every change.
_APPEND_LOCK = text("SELECT pg_advisory_xact_lock(:key)").bindparams(key=chain.APPEND_LOCK_ID)
_LAST_HASH = select(AuditEvent.hash).order_by(col(AuditEvent.id).desc()).limit(1)
_APPEND = insert(AuditEvent)


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
) -> None:
    """Append one audit event to the current transaction; it is chained and written as the transaction commits."""
    content: dict[str, Any] = {
        "request_id": request_id,
        "actor": actor,
        "action": str(action),
        "from_status": from_status.value if from_status else None,
        "to_status": to_status.value if to_status else None,
        "details": json.dumps(details, sort_keys=True, default=str),
        "created_at": at.astimezone(UTC),
    }
    session.connection()  # begins the transaction (if nothing else did) that the event is written with
    transaction = session.get_transaction()
    pending: tuple[Any, list[dict[str, Any]]] | None = session.info.get(_PENDING)
    if pending is None or pending[0] is not transaction:
        pending = session.info[_PENDING] = (transaction, [])
    pending[1].append(content)


@event.listens_for(Session, "before_commit")
def _append_pending(session: Session) -> None:
    """Write the transaction's audit events, each chained to the one before, as the last thing before its commit.

    The transaction's other changes are flushed first, so the append lock is held only for reading the head,
    the inserts and the commit: every writer of the audit trail, in every replica, queues on that lock. On
    PostgreSQL it is an advisory lock held until the commit, so concurrent writers append one after the
    other, each reading the head only once it holds the lock; SQLite needs none (every transaction there
    begins IMMEDIATE, so writers are already serialised). One insert per event, in the order recorded, so IDs
    follow chain order.
    """
    pending = session.info.pop(_PENDING, None)
    if pending is None or pending[0] is not session.get_transaction():
        return
    session.flush()
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        connection.execute(_APPEND_LOCK)
    prev_hash = str(connection.execute(_LAST_HASH).scalar() or chain.GENESIS)
    for content in pending[1]:
        digest = chain.event_hash(content, prev_hash)
        connection.execute(_APPEND, {**content, "prev_hash": prev_hash, "hash": digest})
        prev_hash = digest


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
