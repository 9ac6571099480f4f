"""Role session denies still owed: the ones reconcile checks, and the ones a new grant of the same role takes over."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlmodel import Session, col, select

from bot.store.models import AccessRequest


def owed_denies(*, session: Session, now: datetime) -> Sequence[AccessRequest]:
    """Requests whose role session deny is owed now (written, with its cutoff recorded, and not yet lifted)."""
    stmt = select(AccessRequest).where(
        col(AccessRequest.sessions_denied_before).is_not(None),
        col(AccessRequest.sessions_denied_until) > now,
    )
    return session.exec(stmt.order_by(col(AccessRequest.id))).all()


def denies_of(request: AccessRequest, *, session: Session) -> Sequence[AccessRequest]:
    """Other requests of the same person and role whose session deny is still owed, locked until the commit."""
    stmt = (
        select(AccessRequest)
        .where(
            col(AccessRequest.id) != request.id,
            col(AccessRequest.kind) == request.kind,
            col(AccessRequest.iam_user) == request.iam_user,
            col(AccessRequest.target) == request.target,
            col(AccessRequest.sessions_denied_until).is_not(None),
        )
        .with_for_update()
    )
    return session.exec(stmt.order_by(col(AccessRequest.id))).all()
