"""The Slack outbox: claiming due posts, keeping a request's posts in order, forgetting what Slack took."""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta

from sqlalchemy import delete, func, or_, update
from sqlmodel import Session, col, select

from bot.domain.posts import Render
from bot.store.models import AccessRequest, SlackPost


def claim_posts(*, session: Session, now: datetime, owner: str, lease: timedelta, limit: int) -> list[SlackPost]:
    """Claim up to `limit` due posts nobody is sending, oldest first, for `owner`; return them.

    One statement claims and reads them (UPDATE … RETURNING); SKIP LOCKED lets replicas claim side by side.
    """
    due = SlackPost.__table__.alias("due")  # type: ignore[attr-defined]
    chosen = (
        select(due.c.id)
        .where(
            due.c.given_up_at.is_(None),
            due.c.next_attempt_at <= now,
            or_(due.c.claimed_until.is_(None), due.c.claimed_until < now),
        )
        .order_by(due.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    stmt = (
        update(SlackPost)
        .where(col(SlackPost.id).in_(chosen.scalar_subquery()))
        .values(claimed_by=owner, claimed_until=now + lease)
        .returning(SlackPost)
    )
    posts = list(session.scalars(stmt, execution_options={"synchronize_session": False}).all())
    return sorted(posts, key=lambda post: post.id or 0)


def waits_behind(post: SlackPost, *, session: Session, besides: Collection[int] = ()) -> datetime | None:
    """When the earliest of the earlier posts about the same request, in the same line (see `line_of`), that
    are still owed is next tried (this one waits its turn until then); None when there is none. Posts in
    `besides` (sent, not deleted yet) do not count."""
    if post.request_id is None:
        return None
    stmt = select(SlackPost.render, SlackPost.payload, SlackPost.next_attempt_at).where(
        col(SlackPost.request_id) == post.request_id,
        col(SlackPost.id) < (post.id or 0),
        col(SlackPost.given_up_at).is_(None),
    )
    if besides:
        stmt = stmt.where(col(SlackPost.id).not_in(list(besides)))
    line = line_of(post.render, post.payload)
    due = [at for render, payload, at in session.exec(stmt) if line_of(render, payload) == line]
    return min(due, default=None)


def line_of(render: str | None, payload: str) -> str:
    """The line a post keeps its order in: the approval message with its updates and replies is one; every
    other post is in the line of its channel (the requester's DMs, an audit channel). A post never waits for
    one in another line: a DM Slack keeps refusing does not hold the approval message's updates back."""
    if render in tuple(Render):
        return "approval message"
    try:
        channel = json.loads(payload).get("channel")
    except (ValueError, AttributeError):
        channel = None
    return f"channel {channel}"


def held_back(*, session: Session, now: datetime) -> set[int]:
    """The requests with an owed post that is not simply on its way, by any process: refused by Slack at least
    once, put back to wait behind an earlier post, sent again by an operator, handed back at a stop, or left
    by a sender that died (its lease over). Their next posts look before they go."""
    stmt = (
        select(SlackPost.request_id)
        .distinct()
        .where(
            col(SlackPost.given_up_at).is_(None),
            col(SlackPost.request_id).is_not(None),
            or_(
                # Refused, put back or resent (a failed, deferred or requeued post is unclaimed until taken again):
                col(SlackPost.attempts) > 0,
                col(SlackPost.next_attempt_at) > col(SlackPost.created_at),
                # Nobody is sending it: handed back at a stop, or its sender died.
                col(SlackPost.claimed_until).is_(None),
                col(SlackPost.claimed_until) < now,
            ),
        )
    )
    return {request_id for request_id in session.exec(stmt) if request_id is not None}


def forget_posts(ids: Sequence[int], *, session: Session) -> None:
    """Delete posts Slack took."""
    if ids:
        session.execute(delete(SlackPost).where(col(SlackPost.id).in_(list(ids))))


def lease_posts(ids: Sequence[int], *, session: Session, owner: str, until: datetime | None) -> None:
    """Extend `owner`'s lease on posts it still holds until `until`; None gives them up (stopping), so that
    the next sender takes them at once."""
    if ids:
        session.execute(
            update(SlackPost)
            .where(col(SlackPost.id).in_(list(ids)), col(SlackPost.claimed_by) == owner)
            .values(claimed_until=until, **({"claimed_by": None} if until is None else {}))
        )


def post_failed(
    post_id: int, *, session: Session, error: str, next_attempt_at: datetime, given_up_at: datetime | None
) -> int:
    """Count a failed attempt; the post is tried again at `next_attempt_at`, or never once given up.
    Return the attempts so far."""
    post = session.get(SlackPost, post_id)
    if post is None:
        return 0
    post.attempts += 1
    post.last_error = error[:500]
    post.next_attempt_at = next_attempt_at
    post.claimed_by = post.claimed_until = None
    post.given_up_at = given_up_at
    return post.attempts


def defer_post(post_id: int, *, session: Session, until: datetime) -> None:
    """Put a post back, untried, for later."""
    session.execute(
        update(SlackPost)
        .where(col(SlackPost.id) == post_id)
        .values(next_attempt_at=until, claimed_by=None, claimed_until=None)
    )


def record_approval_message(request_id: int, *, session: Session, channel: str, ts: str) -> None:
    """Remember where a request's approval message was posted."""
    session.execute(
        update(AccessRequest)
        .where(col(AccessRequest.id) == request_id)
        .values(approval_channel=channel, approval_ts=ts)
    )


def posts_owed(*, session: Session) -> tuple[int, datetime | None]:
    """How many posts are owed (not given up), and when the oldest was written (or sent again by an operator)."""
    since = func.coalesce(SlackPost.requeued_at, SlackPost.created_at)
    owed = col(SlackPost.given_up_at).is_(None)
    count, oldest = session.exec(select(func.count(), func.min(since)).where(owed)).one()
    return int(count or 0), oldest


def find_posts(*, session: Session, limit: int) -> tuple[list[SlackPost], int, int]:
    """Up to `limit` posts still in the outbox, the given-up ones first, each group oldest first; and how many
    are owed and given up in all."""
    given_up = col(SlackPost.given_up_at).is_not(None)
    posts = session.exec(select(SlackPost).order_by(given_up.desc(), col(SlackPost.id)).limit(limit)).all()
    counts = session.exec(select(func.count(), func.count(col(SlackPost.given_up_at)))).one()
    total, gave_up = int(counts[0] or 0), int(counts[1] or 0)
    return list(posts), total - gave_up, gave_up


def requeue_posts(ids: Sequence[int] | None, *, session: Session, now: datetime) -> list[int]:
    """Send given-up posts again from `now`, their give-up bound counted afresh (their age is kept); all of them
    when `ids` is None. Return the IDs requeued (posts not given up are left alone)."""
    stmt = (
        update(SlackPost)
        .where(col(SlackPost.given_up_at).is_not(None))
        .values(given_up_at=None, attempts=0, requeued_at=now, next_attempt_at=now, claimed_by=None, claimed_until=None)
        .returning(col(SlackPost.id))
    )
    if ids is not None:
        stmt = stmt.where(col(SlackPost.id).in_(list(ids)))
    return sorted(i for i in session.scalars(stmt, execution_options={"synchronize_session": False}) if i is not None)


def drop_posts(ids: Sequence[int] | None, *, session: Session) -> list[int]:
    """Delete given-up posts for good; all of them when `ids` is None. Return the IDs deleted."""
    stmt = delete(SlackPost).where(col(SlackPost.given_up_at).is_not(None)).returning(col(SlackPost.id))
    if ids is not None:
        stmt = stmt.where(col(SlackPost.id).in_(list(ids)))
    return sorted(i for i in session.scalars(stmt, execution_options={"synchronize_session": False}) if i is not None)


def approvals_given_up(request_ids: Sequence[int], *, session: Session) -> dict[int, str]:
    """Of these requests (none of whose approval messages was posted), those whose approval message is not
    coming: given up, with Slack's last answer, or no longer in the outbox at all ("dropped")."""
    found = session.exec(
        select(SlackPost.request_id, SlackPost.last_error, SlackPost.given_up_at).where(
            col(SlackPost.request_id).in_(list(request_ids)), col(SlackPost.render) == "approval"
        )
    ).all()
    owed = {request_id for request_id, _error, given_up_at in found if given_up_at is None}
    given_up = {
        request_id: error or ""
        for request_id, error, given_up_at in found
        if request_id is not None and given_up_at is not None
    }
    known = owed | set(given_up)
    dropped = {request_id: "dropped" for request_id in request_ids if request_id not in known}
    return {**dropped, **given_up}
