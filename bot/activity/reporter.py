"""Makes the reports owed after every end, and answers `/access activity` and `accessbot activity`.

A report never holds up an end: the end only writes a row (owed.owe); this reporter, on its own thread,
claims the rows whose delay has passed (CloudTrail delivers an event within about 15 minutes of the call;
CloudTrail User Guide, "Working with CloudTrail event history"), reads CloudTrail and posts through the
durable Slack outbox. A throttled or unavailable CloudTrail leaves the row owed, tried again later.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy.engine import Engine

from bot.activity import owed, render
from bot.activity.attribution import Grant
from bot.activity.lookup import Lookup, Unavailable, Window
from bot.activity.summary import parse_time, summarize
from bot.clock import utcnow
from bot.domain.audit import AuditAction
from bot.domain.posts import Render
from bot.store import queries
from bot.store.activity_tables import ActivityReport
from bot.store.db import session_scope
from bot.store.models import AccessRequest

log = logging.getLogger(__name__)
SYSTEM = "accessbot"
RETRY_FIRST = timedelta(minutes=1)
RETRY_MOST = timedelta(hours=1)


class Poster(Protocol):
    """The Slack outbox's `add` (bot.slack.outbox.Outbox)."""

    def add(
        self,
        method: str,
        args: dict[str, Any],
        *,
        about: int | None = None,
        render: Render | None = None,
        session: Any = None,
    ) -> None: ...


@dataclass(frozen=True)
class Shown:
    """A report as read on demand: its text, its body, and whether it is still to come (made live)."""

    text: str
    body: dict[str, Any]
    so_far: bool


class ActivityReporter:
    """Claims owed reports, reads CloudTrail for them, records and posts them."""

    def __init__(
        self,
        engine: Engine,
        lookup: Lookup,
        poster: Poster,
        *,
        delay: timedelta,
        owner: str,
        acknowledgers: Callable[[AccessRequest], frozenset[str]] = lambda _r: frozenset(),
        lease: timedelta = timedelta(minutes=10),
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._engine = engine
        self._lookup = lookup
        self._poster = poster
        self._delay = delay
        self._owner = f"{owner}/activity"
        self._acknowledgers = acknowledgers
        self._lease = lease
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_due(self) -> int:
        """Make every report that is due now; return how many were made."""
        made = 0
        while not self._stop.is_set():
            with session_scope(self._engine) as session:
                ids = owed.claim_due(
                    session, now=self._clock(), delay=self._delay, owner=self._owner, lease=self._lease
                )
            if not ids:
                return made
            made += sum(self.make(request_id) for request_id in ids)
        return made

    def make(self, request_id: int) -> bool:
        """Read CloudTrail for one ended grant, record and post its report; False when it stays owed."""
        with session_scope(self._engine) as session:
            request = session.get(AccessRequest, request_id)
            assert request is not None
        try:
            body = self.read(request, until=request.ended_at)
        except Unavailable as exc:
            self._failed(request_id, str(exc))
            return False
        now = self._clock()
        with session_scope(self._engine) as session:
            row = session.get(ActivityReport, request_id, with_for_update=True)
            if row is None or row.reported_at is not None:
                return False  # made by another replica meanwhile (its claim had lapsed)
            row.reported_at, row.claimed_by, row.claimed_until, row.last_error = now, None, None, None
            row.calls, row.writes, row.denied, row.partial = (
                body["calls"],
                body["writes"],
                body["denied"],
                body["partial"],
            )
            row.last_call_at = parse_time(body["last"]) if body["last"] else None
            row.body = json.dumps(body, sort_keys=True)  # read back by show() and the CLI
            queries.record_audit(
                session=session,
                actor=SYSTEM,
                action=AuditAction.ACTIVITY_REPORTED,
                request_id=request_id,
                at=now,
                calls=body["calls"],
                writes=body["writes"],
                denied=body["denied"],
                partial=body["partial"],
                pages=body["pages"],
            )
            text = self.text(request, body)
            args = {"channel": request.approval_channel, "text": text}
            self._poster.add("chat_postMessage", args, about=request_id, render=Render.THREAD, session=session)
            if request.break_glass:
                for person in sorted(self._acknowledgers(request) - {request.requester_id}):
                    self._poster.add(
                        "chat_postMessage", {"channel": person, "text": text}, about=request_id, session=session
                    )
        return True

    def read(self, request: AccessRequest, *, until: datetime | None) -> dict[str, Any]:
        """The report body for a grant, read from CloudTrail from its start until `until` (or now)."""
        # A grant revoked while it was being applied never became active: its window opens at the grant's start.
        start = request.activated_at or request.grant_started_at or request.ended_at or self._clock()
        grant = Grant(request.kind, request.iam_user, request.iam_user_arn, request.target, request.target_arn)
        # CloudTrail's eventTime has whole seconds: the window is widened to them, or a call in the grant's
        # first second would fall before it.
        end = until or self._clock()
        window = Window(start.replace(microsecond=0), end.replace(microsecond=0) + timedelta(seconds=1))
        calls, reading, coverage = self._lookup.read(grant, window)
        return summarize(calls, reading, coverage)

    def text(self, request: AccessRequest, body: dict[str, Any], *, so_far: bool = False) -> str:
        """The report as posted."""
        assert request.id is not None
        return render.report_text(
            request.id,
            body,
            asked=timedelta(seconds=request.duration_seconds),
            started=request.activated_at,
            ended=request.ended_at,
            so_far=so_far,
        )

    def show(self, request: AccessRequest) -> Shown:
        """The stored report, or for a grant still held (or not reported yet) one read now; Unavailable passes."""
        assert request.id is not None
        if request.grant_started_at is None:
            raise LookupError(f"#{request.id} was never granted, so it has no activity.")
        with session_scope(self._engine) as session:
            row = session.get(ActivityReport, request.id)
            stored = json.loads(row.body) if row is not None and row.body else None
        if stored is not None:
            return Shown(self.text(request, stored), stored, so_far=False)
        body = self.read(request, until=request.ended_at)
        return Shown(self.text(request, body, so_far=True), body, so_far=True)

    def _failed(self, request_id: int, error: str) -> None:
        with session_scope(self._engine) as session:
            row = session.get(ActivityReport, request_id, with_for_update=True)
            if row is None:
                return
            row.attempts += 1
            wait = min(RETRY_MOST, RETRY_FIRST * 2 ** min(row.attempts - 1, 10))
            row.next_attempt_at = self._clock() + wait
            row.last_error, row.claimed_by, row.claimed_until = error[:500], None, None
        log.warning("activity report of #%s owed: %s; trying again in %s", request_id, error, wait)

    def start(self, every: float = 30.0) -> None:
        """Make due reports every `every` seconds on a thread of its own."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, args=(every,), name="activity-reports", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop after the report under way."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def _loop(self, every: float) -> None:
        while not self._stop.is_set():
            try:
                self.run_due()
            except Exception:
                log.exception("activity reports failed; trying again at the next round")
            self._stop.wait(every)
