"""AWS side of the lifecycle: grant, extend, end, undo; intent first, then AWS, then the row.

Every AWS step on a request runs inside `advance`, which holds the request's lock (and, for shared state,
the user's lock on the target) for the whole step, reloads the row inside it and does what the row says
is owed now. So steps on one request never overlap, across threads or replicas, and none acts on a stale
read: an extension racing a revoke, two activations, a revoke during a slow grant all come out one after
the other. What a step cannot finish stays owed in the row (retry_at), and nothing moves it later.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

from bot.aws.errors import AwsError
from bot.aws.granters import Ended, Granter, GrantSpec
from bot.catalog import Kind
from bot.domain import policy
from bot.domain.audit import AuditAction
from bot.domain.lifecycle import Status
from bot.domain.schedule import Step, aws_step, retry_delay
from bot.durations import format_duration
from bot.errors import UserError
from bot.store import queries
from bot.store.db import session_scope
from bot.store.models import AccessRequest
from bot.workflow.base import OPERATOR_PREFIX, SHARED_STATE, SYSTEM, Base, log

# A step can leave another owed at once (a grant or an extension whose revoke was asked meanwhile): do
# both in one visit. The other steps end what is owed (a lift is due hours later).
MAX_STEPS = 4
CHAINED = frozenset({Step.GRANT, Step.EXTEND})


class GrantFlows(Base):
    """Use cases that change what AWS grants."""

    def advance(self, request_id: int, _claim: str | None = None, *, loaded: AccessRequest | None = None) -> None:
        """Do the AWS work the request is owed now (grant, extend, end, undo, lift a session deny), if any.

        Safe to call from anywhere, any number of times: when another thread or replica is working on the
        request, this returns at once and the row is looked at again shortly (the work stays owed in it).
        `loaded` (the row read just before, e.g. by the sweep) only names the locks; the row is read again
        once they are held.
        """
        with self._guard(loaded or self._load(request_id)) as held:
            if not held:
                self._busy(request_id)
                return
            with self._claims.working(request_id):
                for _ in range(MAX_STEPS):
                    row = self._load(request_id)
                    step = aws_step(self._timeline(row), self._clock())
                    if step is Step.NONE:
                        return
                    self._steps[step](self, row)
                    if step not in CHAINED:
                        return

    # The names callers know; each is the same visit.
    activate = advance
    apply_extension = advance
    end = advance

    def revoke_early(
        self, *, request_id: int, actor: str, reason: str | None = None, operator: bool = False
    ) -> AccessRequest:
        """Record that a grant must end now (requester, approver, or an `operator`); `advance` does it.

        Accepted while the grant is being applied as well as once it is active: the access then ends as
        soon as AWS has it. The end is owed from this moment, by whichever process gets to it first.
        """
        approvers = self._approvers(self._load(request_id))  # Slack lookups stay outside the row lock
        now = self._clock()
        with session_scope(self.engine) as session:
            request = self._locked(request_id, session)
            decision = policy.may_revoke(
                actor=actor,
                requester=request.requester_id,
                approvers=approvers,
                status=Status(request.status),
                operator=operator,
            )
            if not decision.allowed:
                if decision.reason is policy.Reason.NOT_AN_APPROVER:
                    raise UserError(
                        f"Only the requester or an approver of {request.resource} can revoke #{request_id}."
                    )
                raise UserError(
                    f"Request #{request_id} is {request.status.replace('_', ' ')}; it has no grant to revoke."
                )
            if request.end_requested_at is None:
                request.end_requested_at = now
                request.end_status, request.ended_by = Status.REVOKED.value, actor
                given: dict[str, Any] = {"reason": reason} if reason else {}
                queries.record_audit(
                    session=session,
                    actor=actor,
                    action=AuditAction.REVOKE_REQUESTED,
                    request_id=request_id,
                    at=now,
                    **given,
                )
            self._reschedule(request)
            # This process does it next (the caller runs `advance`); after a crash, the sweep a lease later.
            request.claimed_by, request.claimed_until = self.owner, now + self._tuning.lease
        return request

    # -- the steps -----------------------------------------------------------------------------

    def _grant(self, request: AccessRequest) -> None:
        """Apply an approved request's grant in AWS, then mark it active (or failed, with the grant undone)."""
        assert request.id is not None
        granter = self._granters[Kind(request.kind)]
        spec = self._spec(request)
        if request.grant_started_at is None:
            try:
                if self.catalog.resource(request.resource) is None:
                    raise AwsError(f"{request.resource} is no longer in the catalog", operation="catalog")
                self._refuse_if_held_elsewhere(request, granter, spec)
                spec = replace(spec, target_arn=granter.locate(spec))
            except AwsError as exc:
                self._fail(request.id, exc, None)
                return
            started = self._record_grant_intent(request.id, spec)
            if started is None:
                return  # an end was asked for meanwhile: nothing applied, the next step drops the grant
            spec = started
        try:
            grant_ref = granter.grant(spec)
        except AwsError as exc:
            self._fail(request.id, exc, spec)
            return
        now = self._clock()
        with session_scope(self.engine) as session:
            row = self._locked(request.id, session)
            self._move(session, row, Status.ACTIVE, SYSTEM, now, expires_at=row.expires_at, grant_ref=grant_ref)
            row.grant_ref, row.activated_at = grant_ref, now
            self._reschedule(row)
            votes = self._votes(row, session)
        self._notifier.tell_requester(row, "active")
        self._to_audit_channel(row, "active")
        if row.break_glass:
            self._notifier.request_changed(row, votes)
        self._notify_due(row)

    def _drop(self, request: AccessRequest) -> None:
        """An end asked for before anything was applied: the request ends without touching AWS."""
        assert request.id is not None
        now = self._clock()
        with session_scope(self.engine) as session:
            row = self._locked(request.id, session)
            self._move(session, row, Status.REVOKED, row.ended_by or SYSTEM, now, applied=False)
            row.ended_at = now
            self._reschedule(row)
            votes = self._votes(row, session)
            reason = queries.revoke_reason(request.id, session=session)
        self._after_end(row, Status.REVOKED, votes, reason)

    def _extend(self, request: AccessRequest) -> None:
        """Move an approved extension's expiry into AWS (the role policy's time condition) and the row."""
        assert request.id is not None and request.expires_at is not None and request.extension_seconds is not None
        new_expiry = request.expires_at + timedelta(seconds=request.extension_seconds)
        if Kind(request.kind) is Kind.IAM_ROLE:
            try:
                self._granters[Kind.IAM_ROLE].grant(replace(self._spec(request), expires_at=new_expiry))
            except AwsError as exc:
                self._metrics.aws_failures.labels(operation=exc.operation).inc()
                self._drop_extension(request.id, f"AWS refused to move the expiry: {exc}")
                return
        with session_scope(self.engine) as session:
            row = self._locked(request.id, session)
            if row.end_requested_at is not None or row.extension_seconds is None:
                # A revoke was asked for meanwhile: the end comes next and removes what was just written.
                row.extension_seconds = row.extension_approved_at = None
                self._reschedule(row)
                return
            queries.record_audit(
                session=session,
                actor=SYSTEM,
                action=AuditAction.EXTENDED,
                request_id=request.id,
                at=self._clock(),
                by=format_duration(timedelta(seconds=row.extension_seconds)),
                expires_at=new_expiry,
                previous=row.expires_at,
            )
            row.expires_at = new_expiry
            row.extensions_used += 1
            row.extension_seconds = row.extension_approved_at = row.warned_at = None
            self._reschedule(row)
            votes = self._votes(row, session)
        self._notifier.request_changed(row, votes)
        self._notifier.tell_requester(row, "extended")
        self._notify_due(row)

    def _end(self, request: AccessRequest) -> None:
        """Remove the grant from AWS, then mark it expired or revoked; retried with backoff on failure."""
        request_id = request.id
        assert request_id is not None
        now = self._clock()
        if request.revoke_started_at is None:
            with session_scope(self.engine) as session:
                row = self._locked(request_id, session)
                row.revoke_started_at = now
            request = row
        ended = self._remove(request)
        if ended is None:
            return
        now = self._clock()  # ended when AWS accepted the revoke, not when it was asked
        with session_scope(self.engine) as session:
            row = self._locked(request_id, session)
            # Read under the lock: a revoke recorded while AWS was being asked wins over the expiry.
            end_status = Status(row.end_status or Status.EXPIRED)
            self._move(session, row, end_status, row.ended_by or SYSTEM, now, attempts=row.attempts, **_noted(ended))
            self._ended(row, ended, now)
            votes = self._votes(row, session)
            reason = queries.revoke_reason(request_id, session=session) if end_status is Status.REVOKED else None
        if end_status is Status.EXPIRED and row.expires_at is not None:
            self._metrics.revoke_lag.observe(max(0.0, (self._clock() - row.expires_at).total_seconds()))
        self._after_end(row, end_status, votes, reason)

    def _cleanup(self, request: AccessRequest) -> None:
        """Remove what a failed (or finished) request may still hold in AWS: owed work, never dropped."""
        assert request.id is not None
        ended = self._remove(request)
        if ended is None:
            return
        now = self._clock()
        with session_scope(self.engine) as session:
            row = self._locked(request.id, session)
            queries.record_audit(
                session=session,
                actor=SYSTEM,
                action=AuditAction.UNDONE,
                request_id=request.id,
                at=now,
                attempts=row.attempts,
                **_noted(ended),
            )
            self._ended(row, ended, now)
        self._notify_due(row)

    def _lift(self, request: AccessRequest) -> None:
        """Remove a role's session deny once every session it was for has expired by itself."""
        assert request.id is not None
        try:
            self._granters[Kind(request.kind)].lift(self._spec(request))
        except AwsError as exc:
            self._aws_failed(request.id, exc, AuditAction.LIFT_FAILED)
            return
        with session_scope(self.engine) as session:
            row = self._locked(request.id, session)
            row.sessions_denied_until = row.retry_at = None
            queries.record_audit(
                session=session,
                actor=SYSTEM,
                action=AuditAction.SESSIONS_DENY_LIFTED,
                request_id=request.id,
                at=self._clock(),
            )
            self._reschedule(row)

    _steps = {
        Step.GRANT: _grant,
        Step.DROP: _drop,
        Step.EXTEND: _extend,
        Step.END: _end,
        Step.CLEANUP: _cleanup,
        Step.LIFT: _lift,
    }

    # -- helpers -------------------------------------------------------------------------------

    def _remove(self, request: AccessRequest) -> Ended | None:
        """Take the request's access away in AWS (unless another grant keeps it); None when AWS refused."""
        assert request.id is not None
        granter = self._granters[Kind(request.kind)]
        try:
            kept = self._kept_elsewhere(request)
            if kept and granter.shared:
                return Ended(note="another grant of the same access keeps it")
            return granter.revoke(replace(self._spec(request), end_sessions=not kept), request.grant_ref)
        except AwsError as exc:
            self._aws_failed(request.id, exc, AuditAction.REVOKE_FAILED)
            return None

    def _kept_elsewhere(self, request: AccessRequest) -> bool:
        """Whether another grant keeps the same shared AWS state (a membership, a role's sessions) for the user."""
        if Kind(request.kind) not in SHARED_STATE:
            return False
        with session_scope(self.engine) as session:
            return queries.other_holders(request, session=session) > 0

    def _ended(self, row: AccessRequest, ended: Ended, now: Any) -> None:
        """AWS accepted the removal: nothing is held any more (a session deny may still be owed its lifting)."""
        row.ended_at = now
        row.retry_at = None
        row.sessions_denied_until = ended.lift_at
        self._reschedule(row)

    def _after_end(self, row: AccessRequest, end_status: Status, votes: Any, reason: str | None) -> None:
        self._notifier.tell_requester(row, "ended", reason)
        self._to_audit_channel(row, end_status.value, reason)
        if end_status is Status.REVOKED:
            self._notifier.request_changed(row, votes)
            by = row.ended_by or SYSTEM
            who = f"`{by}`" if by.startswith(OPERATOR_PREFIX) else f"<@{by}>"
            self._notifier.in_thread(row, f"Request #{row.id} was revoked early by {who}.")
        self._notify_due(row)

    def _busy(self, request_id: int) -> None:
        """Another thread or replica holds the request's AWS lock: look again shortly (the work stays owed)."""
        with session_scope(self.engine) as session:
            row = self._locked(request_id, session)
            soon = self._clock() + self._tuning.busy_retry
            if row.next_due_at is None or row.next_due_at > soon:
                row.next_due_at = soon
            if row.claimed_by is not None and row.claimed_by.startswith(self.owner):
                row.claimed_by = row.claimed_until = None
        self._notify_due(row)

    def _refuse_if_held_elsewhere(self, request: AccessRequest, granter: Granter, spec: GrantSpec) -> None:
        if not granter.shared:
            return
        with session_scope(self.engine) as session:
            ours = queries.others_may_hold(request, session=session)
        if not ours and granter.holds(spec):
            raise AwsError(
                f"{request.iam_user} is already a member of {request.target} by other means, so nothing "
                "was granted (and the bot will never remove membership it did not add)",
                operation="iam:ListGroupsForUser",
                code="AlreadyHeld",
            )

    def _record_grant_intent(self, request_id: int, spec: GrantSpec) -> GrantSpec | None:
        """Commit that the grant is about to be applied (and where), so a crash after it is recoverable."""
        now = self._clock()
        with session_scope(self.engine) as session:
            row = self._locked(request_id, session)
            if row.status != Status.APPROVED or row.end_requested_at is not None:
                return None
            row.grant_started_at = now
            row.expires_at = now + timedelta(seconds=row.duration_seconds)
            row.target_arn = spec.target_arn
            where: dict[str, Any] = {"target_arn": spec.target_arn} if spec.target_arn else {}
            queries.record_audit(
                session=session,
                actor=SYSTEM,
                action=AuditAction.GRANT_STARTED,
                request_id=request_id,
                at=now,
                expires_at=row.expires_at,
                **where,
            )
        assert row.expires_at is not None
        return replace(spec, expires_at=row.expires_at)

    def _fail(self, request_id: int, error: AwsError, attempted: GrantSpec | None) -> None:
        """The grant failed: undo whatever part AWS applied, then mark the request failed.

        An undo that fails too stays owed (the row keeps holding access until AWS accepts it), retried
        with backoff and alerted like any revoke.
        """
        self._metrics.aws_failures.labels(operation=error.operation).inc()
        ended: Ended | None = Ended()
        undo_error: AwsError | None = None
        request = self._load(request_id)
        if attempted is not None:
            granter = self._granters[Kind(request.kind)]
            try:
                kept = self._kept_elsewhere(request)
                if not (kept and granter.shared):
                    ended = granter.revoke(replace(attempted, end_sessions=not kept), None)
            except AwsError as exc:
                ended, undo_error = None, exc
        now = self._clock()
        with session_scope(self.engine) as session:
            row = self._locked(request_id, session)
            self._move(session, row, Status.FAILED, SYSTEM, now, error=str(error), operation=error.operation)
            row.last_error = str(error)[:2000]
            if row.grant_started_at is not None:
                row.revoke_started_at = now
                if ended is not None:
                    self._ended(row, ended, now)
            self._reschedule(row)
            votes = self._votes(row, session)
        log.warning("grant failed: %s", error, extra={"request_id": request_id})
        if undo_error is not None:
            log.warning("undo after a failed grant failed too: %s", undo_error, extra={"request_id": request_id})
            self._aws_failed(request_id, undo_error, AuditAction.UNDO_FAILED)
        self._notifier.request_changed(row, votes)
        self._notifier.tell_requester(row, "failed")
        self._to_audit_channel(row, "failed")

    def _drop_extension(self, request_id: int, why: str) -> None:
        with session_scope(self.engine) as session:
            row = self._locked(request_id, session)
            row.extension_seconds = row.extension_approved_at = None
            row.last_error = why[:2000]
            queries.record_audit(
                session=session,
                actor=SYSTEM,
                action=AuditAction.EXTENSION_FAILED,
                request_id=request_id,
                at=self._clock(),
                error=why,
            )
            self._reschedule(row)
        self._notifier.tell_requester(row, "extension_failed")

    def _aws_failed(self, request_id: int, error: AwsError, action: AuditAction) -> None:
        """Owed AWS work failed: try again after a backoff that nothing moves later; alert when it keeps failing."""
        now = self._clock()
        self._metrics.aws_failures.labels(operation=error.operation).inc()
        with session_scope(self.engine) as session:
            row = self._locked(request_id, session)
            row.attempts += 1
            row.last_error = str(error)[:2000]
            row.retry_at = now + retry_delay(row.attempts, self._tuning.retry_base)
            self._reschedule(row)
            queries.record_audit(session=session, actor=SYSTEM, action=action, request_id=request_id, at=now,
                                 attempts=row.attempts, error=str(error))  # fmt: skip
            alert = row.attempts == self._tuning.alert_after
            if alert:
                queries.record_audit(
                    session=session,
                    actor=SYSTEM,
                    action=AuditAction.ALERT,
                    request_id=request_id,
                    at=now,
                    error=str(error),
                )
        work = "lifting the session deny" if action is AuditAction.LIFT_FAILED else "revoke"
        if alert:
            log.error("%s keeps failing (%d attempts): %s", work, row.attempts, error, extra={"request_id": request_id})
            what = "Lifting the session deny of" if action is AuditAction.LIFT_FAILED else "Revoking"
            text = f"{what} #{request_id} failed {row.attempts} times: {error}"
            self._notifier.alert(row, text)
            self._to_audit_channel(row, "alert", text)
        else:
            log.warning("%s failed, will retry: %s", work, error, extra={"request_id": request_id})
        self._notify_due(row)


def _noted(ended: Ended) -> dict[str, Any]:
    """Audit details of what an end left behind."""
    details: dict[str, Any] = {}
    if ended.lift_at is not None:
        details["sessions_denied_until"] = ended.lift_at
    if ended.note:
        details["note"] = ended.note
    return details
