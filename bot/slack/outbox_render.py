"""Drawing an owed post: the call's arguments, from the request as it is when the post is sent."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, assert_never

from sqlalchemy.engine import Engine

from bot.catalog.tickets import Ticket
from bot.domain.posts import Render
from bot.slack import messages
from bot.store import queries
from bot.store.db import session_scope
from bot.store.models import AccessRequest, SlackPost, Vote


def render(
    post: SlackPost,
    *,
    engine: Engine,
    tickets: Callable[[AccessRequest], Ticket | None],
    clock: Callable[[], datetime],
    behind: Callable[[SlackPost], datetime | None],
    looked: bool,
) -> dict[str, Any] | datetime | None:
    """The call's arguments, drawn from the request as it is now where the post says so; None: nothing to
    send any more (an update of an approval message that was never posted); a moment: not before then (the
    approval message it updates or replies to is still owed, by this process or another; unless `looked`,
    the caller found nothing owed before it already)."""
    args: dict[str, Any] = json.loads(post.payload)
    if post.render is None or post.request_id is None:
        return args
    kind = Render(post.render)
    with session_scope(engine) as session:
        request = queries.get_request(post.request_id, session=session)
        drawing = request is not None and kind is not Render.THREAD
        votes = queries.open_votes(request, session=session) if request is not None and drawing else []
    if request is None:
        return None
    if not request.approval_ts and kind is not Render.APPROVAL and not looked:
        earlier = behind(post)
        if earlier is not None:
            return max(earlier, clock()) + timedelta(milliseconds=100)
    match kind:
        case Render.THREAD:
            if request.approval_ts:
                return {**args, "channel": request.approval_channel, "thread_ts": request.approval_ts}
            return args  # the approval message was given up: say it in the channel
        case Render.APPROVAL:
            return {**args, **_drawn(request, votes, tickets(request))}
        case Render.UPDATE:
            if not (request.approval_channel and request.approval_ts):
                return None
            drawn = _drawn(request, votes, tickets(request))
            return {**args, **drawn, "channel": request.approval_channel, "ts": request.approval_ts}
        case _:
            assert_never(kind)


def _drawn(request: AccessRequest, votes: list[Vote], ticket: Ticket | None) -> dict[str, Any]:
    """The approval message's text and blocks, as the request is now."""
    return {
        "text": messages.approval_text(request, votes, ticket),
        "blocks": messages.approval_blocks(request, votes, ticket),
    }
