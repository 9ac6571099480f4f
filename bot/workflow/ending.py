"""Taking access away: ends (expiry, early revoke), undoing a failed grant, lifting a role's session deny.

Called by GrantService.advance with the request's locks held; what AWS refuses stays owed (retry_at).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlmodel import Session

from bot.aws.errors import AwsError
from bot.aws.granters import Ended
from bot.aws.granters.role_store import CAPACITY_CODE
from bot.catalog import Kind
from bot.domain.audit import AuditAction
from bot.domain.lifecycle import Status
from bot.domain.schedule import retry_delay
from bot.store import queries
from bot.store.db import session_scope
from bot.store.models import AccessRequest
from bot.workflow.base import SHARED_STATE, SYSTEM, Alert, log
from bot.workflow.context import Context


class Ends:
    """The steps that end access in AWS, and what they share with an undo."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def drop(self, request: AccessRequest) -> None:
        """An end asked for before anything was applied: the request ends without touching AWS."""
        assert request.id is not None
        now = self.ctx.clock()
        with session_scope(self.ctx.engine) as session:
            row = self.ctx.locked(request.id, session)
            self.ctx.move(session, row, Status.REVOKED, row.ended_by or SYSTEM, now, applied=False)
            row.ended_at = now
            self.ctx.reschedule(row)
            self.tell_ended(session, row, Status.REVOKED, queries.revoke_reason(request.id, session=session))
        self.ctx.notify_due(row)

    def end(self, request: AccessRequest, *, kept: bool) -> None:
        """Remove the grant from AWS, then mark it expired or revoked; retried with backoff on failure.

        The visit that chose this step committed its intent (revoke_started_at) and read `kept` (whether
        another grant keeps the same shared access) under the locks still held.
        """
        request_id = request.id
        assert request_id is not None and request.revoke_started_at is not None
        ended = self.remove(request, kept=kept)
        if ended is None:
            return
        now = self.ctx.clock()  # ended when AWS accepted the revoke, not when it was asked
        with session_scope(self.ctx.engine) as session:
            row = self.ctx.locked(request_id, session)
            # Read under the lock: a revoke recorded while AWS was being asked wins over the expiry.
            end_status = Status(row.end_status or Status.EXPIRED)
            self.ctx.move(session, row, end_status, row.ended_by or SYSTEM, now, attempts=row.attempts, **_noted(ended))
            self.ended(row, ended, now)
            # Only an early revoke tells why; an expiry needs no read for it.
            revoked = end_status is Status.REVOKED
            reason = queries.revoke_reason(request_id, session=session) if revoked else None
            self.tell_ended(session, row, end_status, reason)
        if end_status is Status.EXPIRED and row.expires_at is not None:
            self.ctx.metrics.revoke_lag.observe(max(0.0, (self.ctx.clock() - row.expires_at).total_seconds()))
        self.ctx.notify_due(row)

    def cleanup(self, request: AccessRequest, *, kept: bool) -> None:
        """Remove what a failed (or finished) request may still hold in AWS: owed work, never dropped."""
        assert request.id is not None
        ended = self.remove(request, kept=kept)
        if ended is None:
            return
        now = self.ctx.clock()
        with session_scope(self.ctx.engine) as session:
            row = self.ctx.locked(request.id, session)
            queries.record_audit(
                session=session,
                actor=SYSTEM,
                action=AuditAction.UNDONE,
                request_id=request.id,
                at=now,
                attempts=row.attempts,
                **_noted(ended),
            )
            self.ended(row, ended, now)
        self.ctx.notify_due(row)

    def lift(self, request: AccessRequest) -> None:
        """Remove a role's session deny once every session it was for has expired by itself."""
        assert request.id is not None
        try:
            self.ctx.granters[Kind(request.kind)].lift(self.ctx.spec(request))
        except AwsError as exc:
            self.aws_failed(request.id, exc, AuditAction.LIFT_FAILED)
            return
        with session_scope(self.ctx.engine) as session:
            row = self.ctx.locked(request.id, session)
            row.sessions_denied_until = row.sessions_denied_before = row.retry_at = None
            queries.record_audit(
                session=session,
                actor=SYSTEM,
                action=AuditAction.SESSIONS_DENY_LIFTED,
                request_id=request.id,
                at=self.ctx.clock(),
            )
            self.ctx.reschedule(row)

    def take_over_denies(self, session: Session, row: AccessRequest, now: datetime) -> None:
        """This grant removes the person's session deny from the role (RoleGranter.grant): earlier ends owe it no more.

        Committed with the grant's intent, before AWS is asked: from here on this request holds the role for the
        person, and its own end (or, should the grant fail, its undo) writes the deny again with a cutoff no
        earlier than theirs. The access lock held for the step serialises this with their lifts.
        """
        for earlier in queries.denies_of(row, session=session):
            queries.record_audit(
                session=session,
                actor=SYSTEM,
                action=AuditAction.SESSIONS_DENY_SUPERSEDED,
                request_id=earlier.id,
                at=now,
                by=row.id,
                cutoff=earlier.sessions_denied_before,
            )
            earlier.sessions_denied_until = earlier.sessions_denied_before = None
            self.ctx.reschedule(earlier)

    def remove(self, request: AccessRequest, *, kept: bool) -> Ended | None:
        """Take the request's access away in AWS (unless another grant keeps it); None when AWS refused."""
        assert request.id is not None
        granter = self.ctx.granters[Kind(request.kind)]
        try:
            if kept and granter.shared:
                return Ended(note="another grant of the same access keeps it")
            return granter.revoke(replace(self.ctx.spec(request), end_sessions=not kept), request.grant_ref)
        except AwsError as exc:
            undo = request.status == Status.FAILED  # removing what a failed grant applied
            self.aws_failed(request.id, exc, AuditAction.UNDO_FAILED if undo else AuditAction.REVOKE_FAILED)
            return None

    def kept_elsewhere(self, request: AccessRequest, session: Session) -> bool:
        """Whether another grant keeps the same shared AWS state (a membership, a role's sessions) for the user."""
        if Kind(request.kind) not in SHARED_STATE:
            return False
        return queries.other_holders(request, session=session) > 0

    def ended(self, row: AccessRequest, ended: Ended, now: Any) -> None:
        """AWS accepted the removal: nothing is held any more (a session deny may still be owed its lifting)."""
        row.ended_at = now
        row.retry_at = None
        row.sessions_denied_until = ended.lift_at
        row.sessions_denied_before = ended.cutoff
        self.ctx.reschedule(row)

    def tell_ended(self, session: Session, row: AccessRequest, end_status: Status, reason: str | None) -> None:
        """Owe the news of an end in the transaction that records it (an early revoke: on the approval message too)."""
        self.ctx.notifier.tell_requester(row, "ended", reason, session=session)
        self.ctx.to_audit_channel(row, end_status.value, reason, session=session)
        if end_status is Status.REVOKED:
            self.ctx.notifier.request_changed(row, session=session)
            self.ctx.notifier.revoked_early(row, session=session)

    def aws_failed(self, request_id: int, error: AwsError, action: AuditAction) -> None:
        """Owed AWS work failed: try again after a backoff that nothing moves later; alert when it keeps failing."""
        now = self.ctx.clock()
        self.ctx.metrics.aws_failures.labels(operation=error.operation).inc()
        with session_scope(self.ctx.engine) as session:
            row = self.ctx.locked(request_id, session)
            row.attempts += 1
            row.last_error = str(error)[:2000]
            row.retry_at = now + retry_delay(row.attempts, self.ctx.tuning.retry_base)
            self.ctx.reschedule(row)
            queries.record_audit(session=session, actor=SYSTEM, action=action, request_id=request_id, at=now,
                                 attempts=row.attempts, error=str(error))  # fmt: skip
            # A role with no room for the deny is said at once: only a person can make room.
            full = error.code == CAPACITY_CODE
            alert = row.attempts == (1 if full else self.ctx.tuning.alert_after)
            if alert:
                queries.record_audit(
                    session=session,
                    actor=SYSTEM,
                    action=AuditAction.ALERT,
                    request_id=request_id,
                    at=now,
                    error=str(error),
                )
                kind = Alert.LIFT_FAILING if action is AuditAction.LIFT_FAILED else Alert.REVOKE_FAILING
                kind = Alert.DENY_CAPACITY if full else kind
                self.ctx.alert(row, kind, attempts=row.attempts, error=str(error), session=session)
        work = "lifting the session deny" if action is AuditAction.LIFT_FAILED else "revoke"
        if alert:
            log.error("%s keeps failing (%d attempts): %s", work, row.attempts, error, extra={"request_id": request_id})
        else:
            log.warning("%s failed, will retry: %s", work, error, extra={"request_id": request_id})
        self.ctx.notify_due(row)


def _noted(ended: Ended) -> dict[str, Any]:
    """Audit details of what an end left behind."""
    details: dict[str, Any] = {}
    if ended.lift_at is not None:
        details["sessions_denied_until"] = ended.lift_at
    if ended.cutoff is not None:
        details["sessions_denied_before"] = ended.cutoff
    if ended.note:
        details["note"] = ended.note
    return details
