"""AWS side of the lifecycle: activate, extend, end early or at expiry; intent first, then AWS, then the row."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

from bot.aws.errors import AwsError
from bot.aws.granters import Granter, GrantSpec
from bot.catalog import Kind
from bot.domain import policy
from bot.domain.lifecycle import Status
from bot.domain.schedule import retry_delay
from bot.durations import format_duration
from bot.errors import UserError
from bot.store import queries
from bot.store.db import session_scope
from bot.store.models import AccessRequest
from bot.workflow.base import OPERATOR_PREFIX, SYSTEM, Base, log


class GrantFlows(Base):
    """Use cases that change what AWS grants."""

    def activate(self, request_id: int, claim: str | None = None) -> None:
        """Apply an approved request's grant in AWS, then mark it active (or failed).

        Only the holder of the row's claim acts: the vote that reached the quorum (its `claim` token), or
        this process's sweep (claim None means the owner's batch claim). Every other caller returns, so
        two votes finishing at once, or a slow thread and the sweep, never apply a grant twice.
        """
        request = self._load(request_id)
        if request.status != Status.APPROVED or request.claimed_by != (claim or self.owner):
            return
        granter = self._granters[Kind(request.kind)]
        spec = self._spec(request)
        try:
            with self._exclusive(request, granter):
                if request.grant_started_at is None:
                    if self.catalog.resource(request.resource) is None:
                        raise AwsError(f"{request.resource} is no longer in the catalog", operation="catalog")
                    self._refuse_if_held_elsewhere(request, granter, spec)
                    spec = self._record_grant_intent(request_id, spec)
                try:
                    grant_ref = granter.grant(spec)
                except AwsError:
                    self._undo(request, granter, spec)
                    raise
        except AwsError as exc:
            self._fail(request_id, exc)
            return
        now = self._clock()
        with session_scope(self.engine) as session:
            row = self._locked(request_id, session)
            if row.status != Status.APPROVED:
                return  # another replica finished this activation first (after our lease ran out)
            self._move(session, row, Status.ACTIVE, SYSTEM, now, expires_at=row.expires_at, grant_ref=grant_ref)
            row.grant_ref, row.activated_at = grant_ref, now
            self._reschedule(row)
            votes = self._votes(row, session)
        self._notifier.tell_requester(row, "active")
        self._to_audit_channel(row, "active")
        if row.break_glass:
            self._notifier.request_changed(row, votes)
        self._notify_due(row)

    def apply_extension(self, request_id: int, claim: str | None = None) -> None:
        """Move an approved extension's expiry into AWS (the role policy's time condition) and the row."""
        request = self._load(request_id)
        if request.status != Status.ACTIVE or request.extension_seconds is None or request.expires_at is None:
            return
        if request.claimed_by != (claim or self.owner):
            return  # see activate: only the claim holder applies it
        new_expiry = request.expires_at + timedelta(seconds=request.extension_seconds)
        granter = self._granters[Kind(request.kind)]
        if request.revoke_started_at is None and Kind(request.kind) is Kind.IAM_ROLE:
            try:
                granter.grant(replace(self._spec(request), expires_at=new_expiry))
            except AwsError as exc:
                self._metrics.aws_failures.labels(operation=exc.operation).inc()
                self._drop_extension(request_id, f"AWS refused to move the expiry: {exc}")
                return
        with session_scope(self.engine) as session:
            row = self._locked(request_id, session)
            if row.revoke_started_at is not None or row.extension_seconds is None:
                row.extension_seconds = row.extension_approved_at = None
                self._reschedule(row)
                return
            queries.record_audit(
                session=session,
                actor=SYSTEM,
                action="extended",
                request_id=request_id,
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

    def revoke_early(
        self, *, request_id: int, actor: str, reason: str | None = None, operator: bool = False
    ) -> AccessRequest:
        """Mark an active grant to end now (requester, approver, or an `operator`); `end` removes it from AWS."""
        now = self._clock()
        with session_scope(self.engine) as session:
            request = self._locked(request_id, session)
            decision = policy.may_revoke(
                actor=actor,
                requester=request.requester_id,
                approvers=self._approvers(request),
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
            if request.end_status is None:
                request.end_status, request.ended_by = Status.REVOKED.value, actor
                given: dict[str, Any] = {"reason": reason} if reason else {}
                queries.record_audit(
                    session=session, actor=actor, action="revoke_requested", request_id=request_id, at=now, **given
                )
            request.next_due_at = now
            request.claimed_by, request.claimed_until = self.owner, now + self._tuning.lease
        return request

    def end(self, request_id: int) -> None:
        """Remove an active grant from AWS, then mark it expired or revoked; retry later on failure."""
        request = self._load(request_id)
        if request.status != Status.ACTIVE:
            return
        now = self._clock()
        end_status = Status(request.end_status or Status.EXPIRED)
        if request.revoke_started_at is None:
            with session_scope(self.engine) as session:
                row = self._locked(request_id, session)
                if row.status != Status.ACTIVE:
                    return
                row.revoke_started_at, row.end_status = now, end_status.value
            request = row
        granter = self._granters[Kind(request.kind)]
        try:
            with self._exclusive(request, granter):
                if not self._shared_elsewhere(request, granter):
                    granter.revoke(self._spec(request), request.grant_ref)
        except AwsError as exc:
            self._revoke_failed(request_id, exc)
            return
        now = self._clock()  # ended when AWS accepted the revoke, not when it was asked
        with session_scope(self.engine) as session:
            row = self._locked(request_id, session)
            if row.status != Status.ACTIVE:
                return  # another replica ended it first (after our lease ran out): one transition, one audit
            self._move(session, row, end_status, row.ended_by or SYSTEM, now, attempts=row.attempts)
            row.ended_at = now
            self._reschedule(row)
            votes = self._votes(row, session)
            reason = queries.revoke_reason(request_id, session=session) if end_status is Status.REVOKED else None
        if end_status is Status.EXPIRED and row.expires_at is not None:
            self._metrics.revoke_lag.observe(max(0.0, (self._clock() - row.expires_at).total_seconds()))
        self._notifier.tell_requester(row, "ended", reason)
        self._to_audit_channel(row, end_status.value, reason)
        if end_status is Status.REVOKED:
            self._notifier.request_changed(row, votes)
            by = row.ended_by or SYSTEM
            who = f"`{by}`" if by.startswith(OPERATOR_PREFIX) else f"<@{by}>"
            self._notifier.in_thread(row, f"Request #{request_id} was revoked early by {who}.")

    # -- helpers -------------------------------------------------------------------------------

    def _refuse_if_held_elsewhere(self, request: AccessRequest, granter: Granter, spec: GrantSpec) -> None:
        if not granter.shared:
            return
        with session_scope(self.engine) as session:
            ours = queries.other_holders(request, session=session)
        if not ours and granter.holds(spec):
            raise AwsError(
                f"{request.iam_user} is already a member of {request.target} by other means, so nothing "
                "was granted (and the bot will never remove membership it did not add)",
                operation="iam:ListGroupsForUser",
                code="AlreadyHeld",
            )

    def _record_grant_intent(self, request_id: int, spec: GrantSpec) -> GrantSpec:
        now = self._clock()
        with session_scope(self.engine) as session:
            row = self._locked(request_id, session)
            row.grant_started_at = now
            row.expires_at = now + timedelta(seconds=row.duration_seconds)
            queries.record_audit(
                session=session,
                actor=SYSTEM,
                action="grant_started",
                request_id=request_id,
                at=now,
                expires_at=row.expires_at,
            )
        assert row.expires_at is not None
        return replace(spec, expires_at=row.expires_at)

    def _undo(self, request: AccessRequest, granter: Granter, spec: GrantSpec) -> None:
        """After a failed grant, remove whatever part of it AWS may have applied."""
        try:
            if not self._shared_elsewhere(request, granter):
                granter.revoke(spec, None)
        except AwsError as exc:
            self._metrics.aws_failures.labels(operation=exc.operation).inc()
            log.warning("undo after a failed grant failed too: %s", exc, extra={"request_id": request.id})

    def _shared_elsewhere(self, request: AccessRequest, granter: Granter) -> bool:
        if not granter.shared:
            return False
        with session_scope(self.engine) as session:
            return queries.other_holders(request, session=session) > 0

    def _fail(self, request_id: int, error: AwsError) -> None:
        now = self._clock()
        self._metrics.aws_failures.labels(operation=error.operation).inc()
        with session_scope(self.engine) as session:
            row = self._locked(request_id, session)
            self._move(session, row, Status.FAILED, SYSTEM, now, error=str(error), operation=error.operation)
            row.last_error = str(error)[:2000]
            self._reschedule(row)
            votes = self._votes(row, session)
        log.warning("grant failed: %s", error, extra={"request_id": request_id})
        self._notifier.request_changed(row, votes)
        self._notifier.tell_requester(row, "failed")
        self._to_audit_channel(row, "failed")

    def _drop_extension(self, request_id: int, why: str) -> None:
        with session_scope(self.engine) as session:
            row = self._locked(request_id, session)
            row.extension_seconds = row.extension_approved_at = None
            row.last_error = why[:2000]
            queries.record_audit(session=session, actor=SYSTEM, action="extension_failed", request_id=request_id,
                                 at=self._clock(), error=why)  # fmt: skip
            self._reschedule(row)
        self._notifier.tell_requester(row, "extension_failed")

    def _revoke_failed(self, request_id: int, error: AwsError) -> None:
        now = self._clock()
        self._metrics.aws_failures.labels(operation=error.operation).inc()
        with session_scope(self.engine) as session:
            row = self._locked(request_id, session)
            row.attempts += 1
            row.last_error = str(error)[:2000]
            row.next_due_at = now + retry_delay(row.attempts, self._tuning.retry_base)
            row.claimed_by = row.claimed_until = None
            queries.record_audit(
                session=session,
                actor=SYSTEM,
                action="revoke_failed",
                request_id=request_id,
                at=now,
                attempts=row.attempts,
                error=str(error),
            )
            alert = row.attempts == self._tuning.alert_after
            if alert:
                queries.record_audit(
                    session=session, actor=SYSTEM, action="alert", request_id=request_id, at=now, error=str(error)
                )
        if alert:
            log.error("revoke keeps failing (%d attempts): %s", row.attempts, error, extra={"request_id": request_id})
            text = f"Revoking #{request_id} failed {row.attempts} times: {error}"
            self._notifier.alert(row, text)
            self._to_audit_channel(row, "alert", text)
        else:
            log.warning("revoke failed, will retry: %s", error, extra={"request_id": request_id})
        self._notify_due(row)
