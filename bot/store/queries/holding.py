"""Who holds what: the one rule for "may hold access in AWS", and what reconcile compares with AWS."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, func
from sqlmodel import Session, col, select

from bot.domain.lifecycle import Status
from bot.store.models import AccessRequest


def may_hold() -> Any:
    """The one rule for "the bot may hold access in AWS for this request": a grant was started and not yet undone.

    True while the grant is in flight, once active, while its end is being applied, and for a failed or
    ended request whose removal AWS has not yet accepted.
    """
    return col(AccessRequest.grant_started_at).is_not(None) & col(AccessRequest.ended_at).is_(None)


def holds(row: AccessRequest) -> bool:
    """The rule of may_hold(), for a row in hand."""
    return row.grant_started_at is not None and row.ended_at is None


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


# Asked on every end of a shared kind: built once (building the statement costs more than running it).
_OTHER_HOLDERS = (
    select(func.count())
    .select_from(AccessRequest)
    .where(
        col(AccessRequest.id) != bindparam("request_id"),
        col(AccessRequest.iam_user) == bindparam("iam_user"),
        col(AccessRequest.target) == bindparam("target"),
        col(AccessRequest.kind) == bindparam("kind"),
        keeps(),
    )
)


def other_holders(request: AccessRequest, *, session: Session) -> int:
    """How many other requests keep the same access for the same user (so ending this one must leave it)."""
    given = {"request_id": request.id, "iam_user": request.iam_user, "target": request.target, "kind": request.kind}
    # On the session's connection: this request's own pending changes do not bear on the count.
    return int(session.connection().execute(_OTHER_HOLDERS, given).scalar_one())


def others_may_hold(request: AccessRequest, *, session: Session) -> int:
    """How many other requests may hold the same access for the same user (kept, or still to be removed)."""
    stmt = select(func.count()).select_from(AccessRequest).where(_same_access(request), may_hold())
    return int(session.exec(stmt).one())


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
