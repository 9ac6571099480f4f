"""The durable Slack outbox: every post the bot owes is written to the database first, then sent.

A post is sent at once by a small pool of sender threads (a request's posts always by the same thread, in
order); what Slack refuses (an outage, a timeout, 429) stays in the table and is tried again with backoff,
`Retry-After` honoured, by whichever process runs next (a crashed sender's posts once its lease ends). A post
that keeps failing is given up after a bound (`slack_give_up`), with an error in the log and a metric.
Nothing here ever waits on a grant or a revoke, and no grant or revoke waits on Slack: the workflow only
writes rows.
"""

from __future__ import annotations

import json
import logging
import queue
import random
import threading
import time
import zlib
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy import event, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from bot.catalog.tickets import Ticket
from bot.clock import utcnow
from bot.domain.slack_backoff import outage_delay, retry_after_delay
from bot.metrics import Metrics
from bot.slack import messages
from bot.store import queries
from bot.store.db import session_scope
from bot.store.models import AccessRequest, SlackPost
from bot.workflow.base import Tuning

log = logging.getLogger(__name__)
_NEW = "accessbot.outbox.new"  # Session.info key: posts written in the transaction, sent once it commits
SENDERS = 4
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
SENT_FLUSH_SECONDS = 1.0  # posts Slack took are deleted in batches, at most this late
CLAIM_BATCH = 50
STOP_GRACE_SECONDS = 2.0


class Outbox:
    """Writes owed posts, sends them, and keeps trying the ones Slack refused."""

    def __init__(
        self,
        engine: Engine,
        client: WebClient,
        metrics: Metrics,
        *,
        owner: str,
        tuning: Tuning,
        tickets: Callable[[AccessRequest], Ticket | None],
        clock: Callable[[], datetime] = utcnow,
        senders: int = SENDERS,
    ) -> None:
        self._engine = engine
        self._client = client
        self._metrics = metrics
        self._owner = f"{owner}/outbox"
        self._tuning = tuning
        self._tickets = tickets
        self._clock = clock
        self._queues: list[queue.SimpleQueue[tuple[SlackPost, bool] | None]] = [
            queue.SimpleQueue() for _ in range(senders)
        ]
        self._senders: list[threading.Thread] = []
        self._pump: threading.Thread | None = None
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._in_flight = 0
        self._held: set[int] = set()  # posts queued or being sent here: never claimed twice, their lease renewed
        self._sent: list[int] = []
        self._sent_at = time.monotonic()
        # method -> monotonic: Slack asked us to wait (429 Retry-After) until then; its limits are per method
        self._paused_until: dict[str, float] = {}
        # (request, line) with an earlier post this process could not send (yet): see queries.line_of
        self._stalled: set[tuple[int, str]] = set()
        self._held_back: set[int] = set()  # requests with a held-back post anywhere, as of the pump's last poll
        self._held_back_at = float("-inf")
        self._unsent: list[int] = []  # claimed posts left unsent at stop, released for the next process
        self._wake = threading.Event()
        self._next_due = float("inf")  # monotonic: the earliest retry this process scheduled
        self._stopping = threading.Event()
        self._give_up_at = float("inf")  # monotonic: after it, queued posts are released, not sent (stopping)

    # -- writing -------------------------------------------------------------------------------------------

    def add(
        self,
        method: str,
        args: dict[str, Any],
        *,
        about: int | None = None,
        render: str | None = None,
        session: Session | None = None,
    ) -> None:
        """Owe a Slack call: written in `session`'s transaction (sent once it commits) or in one of its own."""
        now = self._clock()
        post = SlackPost(
            request_id=about,
            method=method,
            payload=json.dumps(args),
            render=render,
            created_at=now,
            next_attempt_at=now,
            claimed_by=self._owner,  # this process sends it now; another takes it over only after a crash
            claimed_until=now + self._tuning.slack_lease,
        )
        if session is not None:
            session.add(post)
            session.info.setdefault(_NEW, []).append((self, post))
            return
        with session_scope(self._engine) as own:
            own.add(post)
        self._dispatch(post)

    # -- sending -------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the pump: it resends due posts (this process's, and those of processes that stopped)."""
        self._start_senders()
        with self._lock:
            if self._pump is not None:
                return
            self._pump = threading.Thread(target=self._run_pump, name="slack-outbox", daemon=True)
        self._pump.start()

    def stop(self) -> None:
        """Send what is queued for a moment longer, then hand the rest back to the table for the next process."""
        self._give_up_at = time.monotonic() + STOP_GRACE_SECONDS
        self._stopping.set()
        self._wake.set()
        if self._pump is not None:
            self._pump.join(timeout=5)
        self.flush(timeout=STOP_GRACE_SECONDS)
        for line in self._queues:
            line.put(None)
        deadline = time.monotonic() + STOP_GRACE_SECONDS  # a sender stuck on a hung call is left behind
        for thread in self._senders:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        with self._lock:
            unsent, self._unsent = self._unsent, []
        self._write(lambda session: queries.lease_posts(unsent, session=session, owner=self._owner, until=None))
        self._forget_sent(force=True)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every post handed to the senders was tried; False when some still were not."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._in_flight:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def _dispatch(self, post: SlackPost, *, pumped: bool = False) -> None:
        """Hand a post to its sender: a request's posts always to the same one, so they leave in order."""
        self._start_senders()
        key = post.request_id if post.request_id is not None else zlib.crc32(post.payload.encode())
        with self._lock:
            if post.id in self._held:
                return  # already queued here (its lease ran out while it waited): one send, not two
            self._held.add(post.id or 0)
            self._in_flight += 1
        self._queues[key % len(self._queues)].put((post, pumped))

    def _start_senders(self) -> None:
        with self._lock:
            if self._senders:
                return
            self._senders = [
                threading.Thread(target=self._serve, args=(line,), name=f"slack-sender-{i}", daemon=True)
                for i, line in enumerate(self._queues)
            ]
        for thread in self._senders:
            thread.start()

    def _serve(self, line: queue.SimpleQueue[tuple[SlackPost, bool] | None]) -> None:
        while (item := line.get()) is not None:
            post, pumped = item
            try:
                self._deliver(post, pumped=pumped)
            except Exception:
                log.exception("Slack outbox: post %s could not be handled", post.id)
            finally:
                with self._idle:
                    self._in_flight -= 1
                    self._held.discard(post.id or 0)
                    self._idle.notify_all()
            try:
                self._forget_sent()
            except Exception:
                log.exception("Slack outbox: could not forget sent posts; trying again later")

    def _deliver(self, post: SlackPost, *, pumped: bool) -> None:
        """Send one post, never before an earlier post about its request that is still owed. A post the pump
        found looks for one, and so does a fresh one about a request with a post that was held back, here or
        (as of the pump's last poll) in another process; any other fresh post needs no look: its request's
        earlier posts went through this same sender before it, or went out elsewhere without a hitch."""
        assert post.id is not None
        if time.monotonic() > self._give_up_at:
            with self._lock:
                self._unsent.append(post.id)
            return
        self._wait_for_slack(post.method)
        line = (post.request_id or 0, queries.line_of(post.render, post.payload))
        looked = pumped or line in self._stalled or post.request_id in self._held_back
        if looked:
            earlier = self._behind(post)
            if earlier is not None:
                # An earlier post about the same request is still owed: this one goes after it, not before (a
                # moment after its next try, or a little later when that is past: it is being sent elsewhere).
                until = max(earlier + timedelta(milliseconds=100), self._clock() + timedelta(milliseconds=500))
                self._write(lambda session: _defer(session, post, until))
                self._due_at(until)
                with self._lock:
                    self._stalled.add(line)
                return
            if not pumped:  # the request's newest post, and nothing before it owed: the request is clear
                with self._lock:
                    self._stalled.discard(line)
        try:
            args = self._render(post, looked=looked)
            if isinstance(args, datetime):
                # An update or reply to an approval message that is itself still owed: after it, not never.
                self._write(lambda session: _defer(session, post, args))
                self._due_at(args)
                return
            if args is not None:
                answer = getattr(self._client, post.method)(**args)
                if post.render == "approval":
                    self._posted_approval(post, answer)
        except Exception as exc:  # Slack's refusal, the network, or anything drawing the post: all tried again
            self._failed(post, exc)
            return
        with self._lock:
            self._sent.append(post.id)

    def _behind(self, post: SlackPost) -> datetime | None:
        with self._lock:
            sent = list(self._sent)
        with session_scope(self._engine) as session:
            return queries.waits_behind(post, session=session, besides=sent)

    def _wait_for_slack(self, method: str) -> None:
        """Hold sending with `method` while Slack asked for a pause of it (Retry-After), unless stopping."""
        while (left := self._paused_until.get(method, 0.0) - time.monotonic()) > 0 and not self._stopping.is_set():
            time.sleep(min(left, 0.5))

    def _render(self, post: SlackPost, *, looked: bool) -> dict[str, Any] | datetime | None:
        """The call's arguments, drawn from the request as it is now where the post says so; None: nothing to
        send any more (an update of an approval message that was never posted); a moment: not before then (the
        approval message it updates or replies to is still owed, by this process or another; unless `looked`,
        the caller found nothing owed before it already)."""
        args: dict[str, Any] = json.loads(post.payload)
        if post.render is None or post.request_id is None:
            return args
        with session_scope(self._engine) as session:
            request = queries.get_request(post.request_id, session=session)
            drawing = request is not None and post.render != "thread"
            votes = queries.open_votes(request, session=session) if request is not None and drawing else []
        if request is None:
            return None
        if not request.approval_ts and post.render != "approval" and not looked:
            earlier = self._behind(post)
            if earlier is not None:
                return max(earlier, self._clock()) + timedelta(milliseconds=100)
        if post.render == "thread":
            if request.approval_ts:
                return {**args, "channel": request.approval_channel, "thread_ts": request.approval_ts}
            return args  # the approval message was given up: say it in the channel
        ticket = self._tickets(request)
        drawn = {
            "text": messages.approval_text(request, votes, ticket),
            "blocks": messages.approval_blocks(request, votes, ticket),
        }
        if post.render == "approval":
            return {**args, **drawn}
        if not (request.approval_channel and request.approval_ts):
            return None
        return {**args, **drawn, "channel": request.approval_channel, "ts": request.approval_ts}

    def _posted_approval(self, post: SlackPost, answer: Any) -> None:
        """Remember where the approval message is, so that updates, replies and buttons find it."""
        channel, ts = str(answer["channel"]), str(answer["ts"])
        for attempt in range(3):
            try:
                self._write(
                    lambda session: session.execute(
                        update(AccessRequest)
                        .where(col(AccessRequest.id) == post.request_id)
                        .values(approval_channel=channel, approval_ts=ts)
                    )
                )
                return
            except Exception:
                if attempt == 2:
                    # Slack has the message: sending it again would make two. Its buttons work without this;
                    # it will not be updated in place.
                    log.exception(
                        "approval message posted (%s %s) but not recorded", channel, ts,
                        extra={"request_id": post.request_id},
                    )  # fmt: skip
                    return
                time.sleep(0.2 * (attempt + 1))

    def _failed(self, post: SlackPost, exc: Exception) -> None:
        assert post.id is not None
        error, retry_after = _error_of(exc)
        self._metrics.slack_failures.labels(method=post.method).inc()
        now = self._clock()
        attempts = post.attempts + 1
        hopeless = error in HOPELESS and attempts >= HOPELESS_ATTEMPTS
        give_up = hopeless or now - (post.requeued_at or post.created_at) >= self._tuning.slack_give_up
        if retry_after is not None:
            delay = retry_after_delay(retry_after)  # what Slack asked for, for this method: not a floor under backoff
            with self._lock:
                until = time.monotonic() + delay.total_seconds()
                self._paused_until[post.method] = max(self._paused_until.get(post.method, 0.0), until)
        else:
            age = now - (post.requeued_at or post.created_at)
            delay = outage_delay(
                attempts,
                age,
                base=self._tuning.slack_retry_base,
                ceiling=self._tuning.slack_retry_ceiling,
                jitter=random.random(),
            )
        self._write(
            lambda session: queries.post_failed(
                post.id or 0,
                session=session,
                error=error,
                next_attempt_at=now + delay,
                given_up_at=now if give_up else None,
            )
        )
        if not give_up:
            self._due_at(now + delay)
        tags: dict[str, Any] = {"slack_method": post.method} | (
            {"request_id": post.request_id} if post.request_id is not None else {}
        )
        if post.request_id is not None:
            with self._lock:
                # its later posts in the same line look before they go
                self._stalled.add((post.request_id, queries.line_of(post.render, post.payload)))
        if give_up:
            self._metrics.slack_given_up.labels(method=post.method).inc()
            log.error(
                "Slack %s given up after %d attempts over %s: %s",
                post.method,
                attempts,
                _age(now - post.created_at),
                error,
                extra=tags,
            )
            return
        log.warning("Slack %s failed (attempt %d), will retry in %.0fs: %s", post.method, attempts,
                    delay.total_seconds(), error, extra=tags)  # fmt: skip

    # -- the pump ------------------------------------------------------------------------------------------

    def _run_pump(self) -> None:
        """Forget what Slack took, and hand due posts nobody is sending to the senders: when a retry this
        process scheduled falls due, and every poll for the posts other processes left."""
        while not self._stopping.is_set():
            try:
                self._forget_sent()
                self._renew_leases()
                self._read_held_back()
                self._claim_due()  # a method Slack paused has its posts due after the pause, and its sender waits
            except Exception:
                log.exception("Slack outbox: the pump failed; trying again")
            with self._lock:
                until, self._next_due = self._next_due, float("inf")
            poll = self._tuning.slack_poll.total_seconds()
            self._wake.wait(max(0.0, min(until - time.monotonic() + 0.01, poll)))
            self._wake.clear()

    def _read_held_back(self) -> None:
        """Once a poll: which requests have a post held back anywhere (another process's refused post too)."""
        if time.monotonic() - self._held_back_at < self._tuning.slack_poll.total_seconds():
            return
        with session_scope(self._engine) as session:
            held_back = queries.held_back(session=session, now=self._clock())
        with self._lock:
            self._held_back, self._held_back_at = held_back, time.monotonic()

    def _renew_leases(self) -> None:
        """Keep the posts queued here this process's while they wait (behind a slow Slack, a Retry-After)."""
        with self._lock:
            held = list(self._held)
        if held:
            until = self._clock() + self._tuning.slack_lease
            self._write(lambda session: queries.lease_posts(held, session=session, owner=self._owner, until=until))

    def _due_at(self, moment: datetime) -> None:
        """Have the pump look again at `moment` (its regular poll is only for posts other processes left)."""
        at = time.monotonic() + max(0.0, (moment - self._clock()).total_seconds())
        with self._lock:
            self._next_due = min(self._next_due, at)
        self._wake.set()

    def _claim_due(self) -> None:
        with self._lock:
            room = CLAIM_BATCH - self._in_flight
        if room <= 0:
            return
        with session_scope(self._engine) as session:
            posts = queries.claim_posts(
                session=session, now=self._clock(), owner=self._owner, lease=self._tuning.slack_lease, limit=room
            )
        for post in posts:
            self._dispatch(post, pumped=True)

    def _forget_sent(self, *, force: bool = False) -> None:
        """Delete, in one statement, the posts Slack took (a second at most after it took them)."""
        with self._lock:
            if not self._sent or not (force or time.monotonic() - self._sent_at >= SENT_FLUSH_SECONDS):
                return
            sent, self._sent = self._sent, []
            self._sent_at = time.monotonic()
        try:
            self._write(lambda session: queries.forget_posts(sent, session=session))
        except Exception:
            with self._lock:
                self._sent.extend(sent)  # tried again next time; until then a takeover would send them twice
            raise

    def _write(self, work: Callable[[Session], object]) -> None:
        with session_scope(self._engine) as session:
            work(session)


def _defer(session: Session, post: SlackPost, until: datetime) -> None:
    """Put a post back, untried, for later."""
    session.execute(
        update(SlackPost)
        .where(col(SlackPost.id) == post.id)
        .values(next_attempt_at=until, claimed_by=None, claimed_until=None)
    )


def _error_of(exc: Exception) -> tuple[str, float | None]:
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


@event.listens_for(Session, "after_commit")
def _send_committed(session: Session) -> None:
    """Posts written in a transaction are sent once it committed (never for one that rolled back)."""
    for outbox, post in session.info.pop(_NEW, ()):
        outbox._dispatch(post)


@event.listens_for(Session, "after_rollback")
def _drop_rolled_back(session: Session) -> None:
    session.info.pop(_NEW, None)
