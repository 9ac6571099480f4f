"""The sweep: claim what is due, and do it (grant, extend, end, warn, remind, time out)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from bot.domain.audit import AuditAction
from bot.domain.lifecycle import Status
from bot.domain.schedule import Step, active_action, aws_step, pending_action
from bot.errors import UserError
from bot.logs import about_request
from bot.store import queries
from bot.store.db import session_scope
from bot.store.models import AccessRequest
from bot.workflow.base import SYSTEM, log
from bot.workflow.context import Context
from bot.workflow.grants import GrantService


class SweepService:
    """Finds what is due and does it: AWS work through the grant service, the rest (timeouts, reminders) here."""

    def __init__(self, ctx: Context, grants: GrantService) -> None:
        self.ctx = ctx
        self._grants = grants

    def run_due(self) -> int:
        """Claim and process everything due now; return how many rows were handled."""
        handled = 0
        while True:
            now = self.ctx.clock()
            with session_scope(self.ctx.engine) as session:
                rows = queries.claim_due(
                    session=session,
                    now=now,
                    owner=self.ctx.owner,
                    lease=self.ctx.tuning.lease,
                    limit=self.ctx.tuning.batch,
                )
            threads = min(self.ctx.tuning.sweep_threads, len(rows))
            if threads > 1:
                # Each row waits mostly on AWS and the database, so a few threads multiply the throughput;
                # rows sharing one group membership still serialise on its lock.
                with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="sweep") as pool:
                    list(pool.map(self._claimed, rows))
            else:
                for row in rows:
                    self._claimed(row)
            handled += len(rows)
            if len(rows) < self.ctx.tuning.batch:
                return handled

    def next_due_at(self) -> datetime | None:
        """The earliest moment anything is owed."""
        with session_scope(self.ctx.engine) as session:
            return queries.next_due_at(session=session, now=self.ctx.clock())

    def process(self, request_id: int) -> None:
        """Do whatever one claimed row is owed now, if the claim is still this process's."""
        with about_request(request_id):
            self._process(request_id)

    def _claimed(self, claimed: AccessRequest) -> None:
        """Do what a row this sweep just claimed is owed, routed by the row as the claim read it.

        AWS work goes straight to the grant service, which checks and renews the claim in the transaction
        that reloads the row under its locks; anything else reads the row again first (see _process).
        """
        assert claimed.id is not None
        with about_request(claimed.id):
            try:
                aws = aws_step(self.ctx.timeline(claimed), self.ctx.clock()) is not Step.NONE
                if aws:
                    self._grants.advance(claimed.id, loaded=claimed, claimed_by=self.ctx.owner)
            except Exception:
                # The scheduler's error boundary: the claim's lease runs out and the row is tried again.
                log.exception("processing request failed", extra={"request_id": claimed.id})
                return
            if not aws:
                self._process(claimed.id)

    def _process(self, request_id: int) -> None:
        try:
            request = self._take(request_id)
            if request is None:
                return
            status = Status(request.status)
            now = self.ctx.clock()
            line = self.ctx.timeline(request)
            if aws_step(line, now) is not Step.NONE:
                self._grants.advance(request_id, loaded=request, claimed_by=self.ctx.owner)
            elif status is Status.ACTIVE:
                action = active_action(line, now, revoke_started=False)
                {"warn": self._warn, "remind_ack": self._remind_ack}.get(action, self._release)(request_id)
            elif status is Status.PENDING and pending_action(line, now) == "time_out":
                self._time_out(request_id)
            elif status is Status.PENDING and pending_action(line, now) == "remind":
                self._remind(request)
            else:
                self._release(request_id)
        except Exception:
            # The scheduler's error boundary: the claim's lease runs out and the row is tried again.
            log.exception("processing request failed", extra={"request_id": request_id})

    def _take(self, request_id: int) -> AccessRequest | None:
        """Renew the lease and load the row just before the work; None when another replica took it over."""
        with session_scope(self.ctx.engine) as session:
            mine = queries.renew_claim(
                request_id, session=session, owner=self.ctx.owner, now=self.ctx.clock(), lease=self.ctx.tuning.lease
            )
            row = queries.get_request(request_id, session=session) if mine else None
        if row is None:
            log.info("request was taken over by another replica; skipping it", extra={"request_id": request_id})
        return row

    def _time_out(self, request_id: int) -> None:
        now = self.ctx.clock()
        with session_scope(self.ctx.engine) as session:
            row = self.ctx.locked(request_id, session)
            if row.status != Status.PENDING:
                return
            self.ctx.move(session, row, Status.TIMED_OUT, SYSTEM, now)
            self.ctx.reschedule(row)
            self.ctx.notifier.request_changed(row, session=session)
            self.ctx.notifier.tell_requester(row, "timed_out", session=session)

    def _remind(self, loaded: AccessRequest) -> None:
        """Remind the approvers of a pending request, the post owed in the transaction that records it.

        Who to mention is asked of Slack first (user groups), outside the row lock, for the same moment the
        reminder is judged at (escalated or not); under the lock the reminder is checked to be still due, since
        the request may have been decided in between (then it is left to whoever decided it).
        """
        assert loaded.id is not None
        now = self.ctx.clock()
        try:
            approvers = sorted(a for a in self.ctx.notified(loaded, at=now) if a != loaded.requester_id)
        except UserError:
            approvers = []  # Slack cannot list the approvers now: remind without mentions
        with session_scope(self.ctx.engine) as session:
            row = self.ctx.locked(loaded.id, session)
            if row.status != Status.PENDING:
                return
            line = self.ctx.timeline(row)
            if pending_action(line, now) == "remind":
                escalating = (
                    line.escalate_at is not None
                    and now >= line.escalate_at
                    and (row.reminded_at is None or row.reminded_at < line.escalate_at)
                )
                row.reminders_sent += 1
                row.reminded_at = now
                action = AuditAction.ESCALATED if escalating else AuditAction.REMINDED
                queries.record_audit(session=session, actor=SYSTEM, action=action, request_id=row.id, at=now,
                                     reminder=row.reminders_sent)  # fmt: skip
                self.ctx.notifier.remind(row, approvers, escalated=escalating, session=session)
            self.ctx.reschedule(row)
        self.ctx.notify_due(row)

    def _remind_ack(self, request_id: int) -> None:
        now = self.ctx.clock()
        with session_scope(self.ctx.engine) as session:
            row = self.ctx.locked(request_id, session)
            row.reminded_at = now
            row.reminders_sent += 1
            self.ctx.reschedule(row)
            self.ctx.notifier.nag_acknowledgement(row, session=session)
        self.ctx.notify_due(row)

    def _warn(self, request_id: int) -> None:
        with session_scope(self.ctx.engine) as session:
            row = self.ctx.locked(request_id, session)
            row.warned_at = self.ctx.clock()
            self.ctx.reschedule(row)
            self.ctx.notifier.tell_requester(row, "expiring", session=session)
        self.ctx.notify_due(row)

    def _release(self, request_id: int) -> None:
        with session_scope(self.ctx.engine) as session:
            self.ctx.reschedule(self.ctx.locked(request_id, session))
