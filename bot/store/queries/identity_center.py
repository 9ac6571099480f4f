"""What reconcile compares for the Identity Center kinds: the assignments and memberships the bot added last."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func
from sqlmodel import Session, col, select

from bot.domain.lifecycle import Status
from bot.store.models import AccessRequest

SSO_KINDS = ("sso_permission_set", "sso_group")


@dataclass(frozen=True)
class Added:
    """Identity Center access the bot added last for one user and target: the request, and whom it names."""

    request_id: int
    kind: str
    user: str  # Identity Store UserName
    user_id: str  # Identity Store UserId
    target: str


def bot_sso_additions(*, session: Session) -> list[Added]:
    """Per (kind, user, target): the last request that started granting it, unless a later one was refused.

    The same rule as bot_group_pairs: a refusal before granting means the access was there by other means,
    so it is not the bot's.
    """
    kind = col(AccessRequest.kind).in_(SSO_KINDS)
    key = (col(AccessRequest.kind), col(AccessRequest.iam_user), col(AccessRequest.target))
    started = session.exec(
        select(*key, func.max(AccessRequest.id))
        .where(kind, col(AccessRequest.grant_started_at).is_not(None))
        .group_by(*key)
    ).all()
    refused = session.exec(
        select(*key, func.max(AccessRequest.id))
        .where(kind, col(AccessRequest.grant_started_at).is_(None), col(AccessRequest.status) == Status.FAILED.value)
        .group_by(*key)
    ).all()
    last_refused = {(k, u, t): int(last or 0) for k, u, t, last in refused}
    found: list[Added] = []
    for k, u, t, last in started:
        if last is None or last <= last_refused.get((k, u, t), 0):
            continue
        row = session.get(AccessRequest, int(last))
        if row is not None:
            found.append(Added(int(last), str(k), str(u), row.iam_user_arn, str(t)))
    return found


def session_denies_owed(now: datetime, *, session: Session) -> list[AccessRequest]:
    """Ended Identity Center grants whose session deny is still owed (not yet lifted) at `now`."""
    return list(
        session.exec(
            select(AccessRequest)
            .where(col(AccessRequest.kind).in_(SSO_KINDS))
            .where(col(AccessRequest.ended_at).is_not(None))
            .where(col(AccessRequest.sessions_denied_until) > now)
            .order_by(col(AccessRequest.id))
        ).all()
    )
