"""`accessbot outbox`: the Slack posts the bot still owes or gave up on, and sending given-up ones again.

A post is given up after a bound (a day of failures, or three answers no retry cures, such as
`not_in_channel`). Once the cause is fixed (the bot invited to the channel, a token renewed), `retry` puts
those posts back in the outbox, where a running bot sends them within a second or two; `drop` forgets them.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from sqlmodel import Session

from bot.clock import utcnow
from bot.config import Settings
from bot.domain.posts import Render
from bot.ops import clip, stamp, table
from bot.store import queries
from bot.store.db import session_scope
from bot.store.models import SlackPost
from bot.wiring import open_database

LIST_LIMIT = 1000
WHAT: dict[str, str] = {
    Render.APPROVAL: "approval message",
    Render.UPDATE: "approval update",
    Render.THREAD: "reply under it",
}


def add_command(sub: Any) -> None:
    """Register `accessbot outbox [retry|drop]` on the `accessbot` parser."""
    outbox = sub.add_parser("outbox", help="Slack posts still owed or given up; send given-up ones again")
    what = outbox.add_subparsers(dest="outbox_command")
    for name, says in (
        ("retry", "send given-up posts again (a running bot sends them within seconds; DMs as written, however old)"),
        ("drop", "forget given-up posts for good"),
    ):
        action = what.add_parser(name, help=says)
        action.add_argument("post_ids", nargs="*", type=_post_id, metavar="ID", help="post IDs from `accessbot outbox`")
        action.add_argument("--all", action="store_true", help="every given-up post")


def run(args: argparse.Namespace, settings: Settings) -> int:
    """List the outbox, or retry/drop given-up posts; 1 when a post named is missing or not given up."""
    engine = open_database(settings.database_url, migrate=False)
    try:
        if args.outbox_command is None:
            with session_scope(engine) as session:
                posts, owed, given_up = queries.find_posts(session=session, limit=LIST_LIMIT)
            return _list(posts, owed=owed, given_up=given_up)
        if bool(args.post_ids) == bool(args.all):
            print(f"accessbot: outbox {args.outbox_command}: name post IDs, or --all", file=sys.stderr)
            return 2
        ids = None if args.all else sorted(set(args.post_ids))
        with session_scope(engine) as session:
            if args.outbox_command == "retry":
                done = queries.requeue_posts(ids, session=session, now=utcnow())
                print(f"{len(done)} given-up post(s) queued again: {_ids(done)}")
            else:
                done = queries.drop_posts(ids, session=session)
                print(f"{len(done)} given-up post(s) dropped: {_ids(done)}")
            # Told after the fact, from the same transaction: a post another operator took meanwhile counts too.
            problems = [] if ids is None else _why_not(sorted(set(ids) - set(done)), session=session)
        for problem in problems:
            print(f"accessbot: {problem}", file=sys.stderr)
        return 1 if problems else 0
    finally:
        engine.dispose()


def _list(posts: Sequence[SlackPost], *, owed: int, given_up: int) -> int:
    rows = [
        [
            str(post.id),
            _state(post),
            f"#{post.request_id}" if post.request_id else "-",
            _what(post),
            str(_payload(post).get("channel") or "-"),
            str(post.attempts),
            stamp(post.created_at),
            stamp(post.given_up_at) if post.given_up_at else stamp(post.next_attempt_at),
            clip(post.last_error or "-", 40),
        ]
        for post in posts
    ]
    headers = ["ID", "STATE", "REQUEST", "WHAT", "TO", "TRIES", "WRITTEN", "NEXT TRY / GIVEN UP", "LAST ERROR"]
    print(table(headers, rows))
    shown = f" (the first {len(posts)} shown, given-up ones first)" if len(posts) < owed + given_up else ""
    print(f"{owed} owed, {given_up} given up{shown}")
    if given_up:
        print(
            "once the cause is fixed: accessbot outbox retry ID … (or --all); DMs and reminders are sent as "
            "written, however old; approval messages show the request as it is then. drop forgets them"
        )
    return 0


def _state(post: SlackPost) -> str:
    if post.given_up_at:
        return "given up"
    return "owed (retried)" if post.requeued_at else "owed"


def _why_not(ids: Sequence[int], *, session: Session) -> list[str]:
    """Why each of `ids` was not retried or dropped: missing, or still being tried."""
    problems = []
    for post_id in ids:
        post = session.get(SlackPost, post_id)
        if post is None:
            problems.append(f"post {post_id} is not in the outbox (sent, dropped, or never written)")
        else:
            problems.append(f"post {post_id} is still being tried; only given-up posts are retried or dropped")
    return problems


def _what(post: SlackPost) -> str:
    if post.render in WHAT:
        return WHAT[post.render]
    channel = str(_payload(post).get("channel") or "")
    kind = "DM" if channel.startswith(("U", "W")) else "message"
    text = str(_payload(post).get("text") or "")
    return f"{kind}: {clip(text, 40)}" if text else kind


def _payload(post: SlackPost) -> dict[str, Any]:
    try:
        value = json.loads(post.payload)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _ids(ids: Sequence[int]) -> str:
    return ", ".join(str(i) for i in ids) if ids else "none"


def _post_id(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a post ID (a positive number)")
    return int(text)
