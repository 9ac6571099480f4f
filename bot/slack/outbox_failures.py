"""What a refused post is owed next: Slack's error read, the retry delay or the give-up, and the log line."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from slack_sdk.errors import SlackApiError

from bot.domain.slack_backoff import outage_delay, retry_after_delay
from bot.store.models import SlackPost
from bot.workflow.base import Tuning

log = logging.getLogger("bot.slack.outbox")  # the outbox's own logger: its lines keep their name
# Errors a retry will not cure unless somebody changes something (a channel, a scope, the token): given up
# after this many attempts rather than at the time bound.
HOPELESS = frozenset(
    {
        "channel_not_found", "not_in_channel", "is_archived", "msg_too_long", "invalid_blocks", "user_not_found",
        "cannot_dm_bot", "invalid_arguments", "no_text", "invalid_auth", "account_inactive", "token_revoked",
        "missing_scope", "not_authed", "message_not_found", "cant_update_message", "no_permission",
        "restricted_action", "restricted_action_read_only_channel", "restricted_action_thread_only_channel",
        "restricted_action_non_threadable_channel", "ekm_access_denied", "too_many_attachments",
        "as_user_not_supported", "invalid_arg_name", "invalid_charset", "invalid_form_data", "invalid_post_type",
        "missing_post_type",
    }
)  # fmt: skip
HOPELESS_ATTEMPTS = 3


@dataclass(frozen=True)
class Failure:
    """One refused attempt: Slack's error, the attempts so far, and when (or whether) to try again."""

    error: str
    attempts: int
    delay: timedelta
    give_up: bool
    retry_after: bool  # Slack asked for the pause (429): the method pauses for `delay`


def judge(post: SlackPost, exc: Exception, *, now: datetime, tuning: Tuning) -> Failure:
    """Read a failed attempt: given up (hopeless, or past the bound), or tried again after a delay."""
    error, retry_after = error_of(exc)
    attempts = post.attempts + 1
    age = now - (post.requeued_at or post.created_at)
    hopeless = error in HOPELESS and attempts >= HOPELESS_ATTEMPTS
    give_up = hopeless or age >= tuning.slack_give_up
    if retry_after is not None:
        delay = retry_after_delay(retry_after)  # what Slack asked for, for this method: not a floor under backoff
    else:
        delay = outage_delay(
            attempts, age, base=tuning.slack_retry_base, ceiling=tuning.slack_retry_ceiling, jitter=random.random()
        )
    return Failure(error, attempts, delay, give_up, retry_after is not None)


def report(post: SlackPost, failure: Failure, *, now: datetime) -> None:
    """Log a failed attempt: an error once given up, else a warning with the retry."""
    tags: dict[str, Any] = {"slack_method": post.method} | (
        {"request_id": post.request_id} if post.request_id is not None else {}
    )
    if failure.give_up:
        log.error(
            "Slack %s given up after %d attempts over %s: %s",
            post.method,
            failure.attempts,
            _age(now - post.created_at),
            failure.error,
            extra=tags,
        )
        return
    log.warning("Slack %s failed (attempt %d), will retry in %.0fs: %s", post.method, failure.attempts,
                failure.delay.total_seconds(), failure.error, extra=tags)  # fmt: skip


def error_of(exc: Exception) -> tuple[str, float | None]:
    """Slack's error code (or the network error's name), and the Retry-After it asked for, if any."""
    if not isinstance(exc, SlackApiError):
        return type(exc).__name__, None
    response = exc.response
    status = getattr(response, "status_code", 200)
    error = str(response.get("error", "") or f"http_{status}") if isinstance(response.data, dict) else f"http_{status}"
    headers = {str(k).lower(): v for k, v in (getattr(response, "headers", None) or {}).items()}
    retry_after = None
    if status == 429 or error == "ratelimited":
        raw = headers.get("retry-after")
        value = raw[0] if isinstance(raw, list) else raw
        try:
            retry_after = max(1.0, float(value)) if value is not None else 30.0
        except ValueError:
            retry_after = 30.0
    return error, retry_after


def _age(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds}s"
