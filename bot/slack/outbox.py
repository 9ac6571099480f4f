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
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from slack_sdk import WebClient
from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.catalog.tickets import Ticket
from bot.clock import utcnow
from bot.domain.posts import Render
from bot.metrics import Metrics
from bot.slack import outbox_render
from bot.slack.outbox_failures import judge, report
from bot.slack.outbox_senders import Senders
from bot.store import queries
from bot.store.db import after_commit, session_scope
from bot.store.models import AccessRequest, SlackPost
from bot.workflow.base import Tuning

log = logging.getLogger(__name__)
SENDERS = 4
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
        self._senders = Senders(
            senders, send=lambda post, pumped: self._deliver(post, pumped=pumped), after=self._forget_sent
        )
        self._pump: threading.Thread | None = None
        self._lock = threading.Lock()
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
        render: Render | None = None,
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
            after_commit(session, lambda: self._dispatch(post))  # sent once it commits; never if rolled back
            return
        with session_scope(self._engine) as own:
            own.add(post)
        self._dispatch(post)

    # -- sending -------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the pump: it resends due posts (this process's, and those of processes that stopped)."""
        self._senders.start()
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
        self._senders.stop(STOP_GRACE_SECONDS)
        with self._lock:
            unsent, self._unsent = self._unsent, []
        self._write(lambda session: queries.lease_posts(unsent, session=session, owner=self._owner, until=None))
        self._forget_sent(force=True)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every post handed to the senders was tried; False when some still were not."""
        return self._senders.flush(timeout)

    def _dispatch(self, post: SlackPost, *, pumped: bool = False) -> None:
        """Hand a post to its sender: a request's posts always to the same one, so they leave in order."""
        self._senders.start()
        self._senders.put(post, pumped=pumped)

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
                self._write(lambda session: queries.defer_post(post.id or 0, session=session, until=until))
                self._due_at(until)
                with self._lock:
                    self._stalled.add(line)
                return
            if not pumped:  # the request's newest post, and nothing before it owed: the request is clear
                with self._lock:
                    self._stalled.discard(line)
        try:
            args = outbox_render.render(
                post, engine=self._engine, tickets=self._tickets, clock=self._clock, behind=self._behind, looked=looked
            )
            if isinstance(args, datetime):
                # An update or reply to an approval message that is itself still owed: after it, not never.
                self._write(lambda session: queries.defer_post(post.id or 0, session=session, until=args))
                self._due_at(args)
                return
            if args is not None:
                answer = getattr(self._client, post.method)(**args)
                if post.render == Render.APPROVAL:
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

    def _posted_approval(self, post: SlackPost, answer: Any) -> None:
        """Remember where the approval message is, so that updates, replies and buttons find it."""
        channel, ts = str(answer["channel"]), str(answer["ts"])
        for attempt in range(3):
            try:
                self._write(
                    lambda session: queries.record_approval_message(
                        post.request_id or 0, session=session, channel=channel, ts=ts
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
        now = self._clock()
        failure = judge(post, exc, now=now, tuning=self._tuning)
        self._metrics.slack_failures.labels(method=post.method).inc()
        if failure.retry_after:
            with self._lock:
                until = time.monotonic() + failure.delay.total_seconds()
                self._paused_until[post.method] = max(self._paused_until.get(post.method, 0.0), until)
        self._write(
            lambda session: queries.post_failed(
                post.id or 0,
                session=session,
                error=failure.error,
                next_attempt_at=now + failure.delay,
                given_up_at=now if failure.give_up else None,
            )
        )
        if not failure.give_up:
            self._due_at(now + failure.delay)
        if post.request_id is not None:
            with self._lock:
                # its later posts in the same line look before they go
                self._stalled.add((post.request_id, queries.line_of(post.render, post.payload)))
        if failure.give_up:
            self._metrics.slack_given_up.labels(method=post.method).inc()
        report(post, failure, now=now)

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
        held = self._senders.held()
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
        room = CLAIM_BATCH - self._senders.in_flight()
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
