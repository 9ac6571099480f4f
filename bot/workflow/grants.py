"""AWS side of the lifecycle: grant, extend, end, undo; intent first, then AWS, then the row.

Every AWS step on a request runs inside `advance`, which holds the request's lock (and, for shared state,
the user's lock on the target) for the whole step, reloads the row inside it and does what the row says
is owed now. So steps on one request never overlap, across threads or replicas, and none acts on a stale
read: an extension racing a revoke, two activations, a revoke during a slow grant all come out one after
the other. What a step cannot finish stays owed in the row (retry_at), and nothing moves it later.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from bot.aws.errors import AwsError
from bot.aws.granters import Granter, GrantSpec
from bot.catalog import Kind
from bot.domain import policy
from bot.domain.audit import AuditAction
from bot.domain.lifecycle import Status
from bot.domain.schedule import Step, aws_step
from bot.durations import format_duration
from bot.errors import UserError
from bot.store import queries
from bot.store.db import session_scope
from bot.store.models import AccessRequest
from bot.workflow import checks
from bot.workflow.base import SYSTEM, log
from bot.workflow.context import Context
from bot.workflow.ending import Ends

# A step can leave another owed at once (a grant or an extension whose revoke was asked meanwhile): do
# both in one visit. The other steps end what is owed (a lift is due hours later).
MAX_STEPS = 4
CHAINED = frozenset({Step.GRANT, Step.EXTEND})  # a failed grant chains to its CLEANUP


@dataclass(frozen=True)
class Visit:
    """One step owed to a request, read under its locks: the row, the step, and (for a removal) whether
    another grant keeps the same shared AWS state."""

    row: AccessRequest
    step: Step
    kept: bool = False


# How "already has it by other means" reads for each shared kind (see Granter.shared), and the AWS call that found it.
HELD_ELSEWHERE = {
    Kind.IAM_GROUP: ("is already a member of {target}", "iam:ListGroupsForUser"),
    Kind.SSO_PERMISSION_SET: ("already has the permission set {target}", "sso:ListAccountAssignments"),
    Kind.SSO_GROUP: ("is already a member of the Identity Center group {target}", "identitystore:GetGroupMembershipId"),
}


class GrantService:
    """Use cases that change what AWS grants."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._ends = Ends(ctx)
        self._steps: dict[Step, Callable[[Visit], None]] = {
            Step.GRANT: lambda visit: self._grant(visit.row),
            Step.DROP: lambda visit: self._ends.drop(visit.row),
            Step.EXTEND: lambda visit: self._extend(visit.row),
            Step.END: lambda visit: self._ends.end(visit.row, kept=visit.kept),
            Step.CLEANUP: lambda visit: self._ends.cleanup(visit.row, kept=visit.kept),
            Step.LIFT: lambda visit: self._ends.lift(visit.row),
        }

    def advance(
        self,
        request_id: int,
        _claim: str | None = None,
        *,
        loaded: AccessRequest | None = None,
        claimed_by: str | None = None,
    ) -> None:
        """Do the AWS work the request is owed now (grant, extend, end, undo, lift a session deny), if any.

        Safe to call from anywhere, any number of times: when another thread or replica is working on the
        request, this returns at once and the row is looked at again shortly (the work stays owed in it).
        `loaded` (the row read just before, e.g. by the sweep) only names the locks; the row is read again
        once they are held. `claimed_by` (the sweep's claim): the work goes on only while the row is still
        claimed so, and the lease is renewed in the same transaction that reads the row.
        """
        with self.ctx.guard(loaded or self.ctx.load(request_id)) as held:
            if not held:
                self._busy(request_id)
                return
            with self.ctx.claims.working(request_id):
                for _ in range(MAX_STEPS):
                    visit = self._visit(request_id, claimed_by)
                    if visit is None:
                        return
                    self._steps[visit.step](visit)
                    if visit.step not in CHAINED:
                        return
                    claimed_by = None  # the step released the claim; what it left owed is done in this visit

    def _visit(self, request_id: int, claimed_by: str | None) -> Visit | None:
        """Read the row under its lock (the AWS locks are held) and say which step is owed; None when none is.

        One transaction: the reload, the claim's check and renewal, an end's intent (committed before any
        AWS call, so a crash in between leaves the end owed) and, for a removal, whether another grant keeps
        the shared state. The locks held since before the read make it current until the step is done.
        """
        now = self.ctx.clock()
        with session_scope(self.ctx.engine) as session:
            row = self.ctx.locked(request_id, session)
            if claimed_by is not None:
                if row.claimed_by != claimed_by:
                    log.info("request was taken over by another replica; skipping it", extra={"request_id": request_id})
                    return None
                row.claimed_until = now + self.ctx.tuning.lease
            step = aws_step(self.ctx.timeline(row), now)
            if step is Step.NONE and claimed_by is not None:
                self.ctx.reschedule(row)  # owed nothing after all: the claim goes, the next due time is set
            if step is Step.END and row.revoke_started_at is None:
                row.revoke_started_at = now
            kept = step in (Step.END, Step.CLEANUP) and self._ends.kept_elsewhere(row, session)
        if step is Step.NONE:
            if claimed_by is not None:
                self.ctx.notify_due(row)
            return None
        return Visit(row, step, kept)

    def revoke_early(
        self, *, request_id: int, actor: str, reason: str | None = None, operator: bool = False
    ) -> AccessRequest:
        """Record that a grant must end now (requester, approver, or an `operator`); `advance` does it.

        Accepted while the grant is being applied as well as once it is active: the access then ends as
        soon as AWS has it. The end is owed from this moment, by whichever process gets to it first.
        """
        approvers = self.ctx.approvers(self.ctx.load(request_id))  # Slack lookups stay outside the row lock
        now = self.ctx.clock()
        with session_scope(self.ctx.engine) as session:
            request = self.ctx.locked(request_id, session)
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
            self.ctx.reschedule(request)
            # This process does it next (the caller runs `advance`); after a crash, the sweep a lease later.
            request.claimed_by, request.claimed_until = self.ctx.owner, now + self.ctx.tuning.lease
        return request

    # -- the steps -----------------------------------------------------------------------------

    def _grant(self, request: AccessRequest) -> None:
        """Apply an approved request's grant in AWS, then mark it active (or failed, with the grant undone)."""
        assert request.id is not None
        granter = self.ctx.granters[Kind(request.kind)]
        spec = self.ctx.spec(request)
        if request.grant_started_at is None:
            try:
                if self.ctx.catalog.resource(request.resource) is None:
                    raise AwsError(f"{request.resource} is no longer in the catalog", operation="catalog")
                if request.starts_at is not None and not checks.may_request(
                    self.ctx, request.requester_id, request.resource
                ):
                    # Approved days ahead: who may request it is asked again at the start, not taken as read.
                    raise AwsError(
                        f"{request.requester_id} may no longer request {request.resource} (the catalog's requesters "
                        "changed since it was approved), so nothing was granted",
                        operation="catalog",
                        code="NoLongerAllowed",
                    )
                self._refuse_if_held_elsewhere(request, granter, spec)
                spec = replace(spec, target_arn=granter.locate(spec))
            except AwsError as exc:
                self._fail(request.id, exc)
                return
            started = self._record_grant_intent(request.id, spec)
            if started is None:
                return  # an end was asked for meanwhile: nothing applied, the next step drops the grant
            spec = started
        try:
            grant_ref = granter.grant(spec)
        except AwsError as exc:
            self._fail(request.id, exc)
            return
        now = self.ctx.clock()
        with session_scope(self.ctx.engine) as session:
            row = self.ctx.locked(request.id, session)
            self.ctx.move(session, row, Status.ACTIVE, SYSTEM, now, expires_at=row.expires_at, grant_ref=grant_ref)
            row.grant_ref, row.activated_at = grant_ref, now
            self.ctx.reschedule(row)
            self.ctx.notifier.tell_requester(row, "active", session=session)
            self.ctx.to_audit_channel(row, "active", session=session)
            if row.break_glass:
                self.ctx.notifier.request_changed(row, session=session)
        self.ctx.notify_due(row)

    def _extend(self, request: AccessRequest) -> None:
        """Move an approved extension's expiry into AWS (the role policy's time condition) and the row."""
        assert request.id is not None and request.expires_at is not None and request.extension_seconds is not None
        new_expiry = request.expires_at + timedelta(seconds=request.extension_seconds)
        if Kind(request.kind) is Kind.IAM_ROLE:
            try:
                self.ctx.granters[Kind.IAM_ROLE].grant(replace(self.ctx.spec(request), expires_at=new_expiry))
            except AwsError as exc:
                self.ctx.metrics.aws_failures.labels(operation=exc.operation).inc()
                self._drop_extension(request.id, f"AWS refused to move the expiry: {exc}")
                return
        with session_scope(self.ctx.engine) as session:
            row = self.ctx.locked(request.id, session)
            if row.end_requested_at is not None or row.extension_seconds is None:
                # A revoke was asked for meanwhile: the end comes next and removes what was just written.
                row.extension_seconds = row.extension_approved_at = None
                self.ctx.reschedule(row)
                return
            queries.record_audit(
                session=session,
                actor=SYSTEM,
                action=AuditAction.EXTENDED,
                request_id=request.id,
                at=self.ctx.clock(),
                by=format_duration(timedelta(seconds=row.extension_seconds)),
                expires_at=new_expiry,
                previous=row.expires_at,
            )
            row.expires_at = new_expiry
            row.extensions_used += 1
            row.extension_seconds = row.extension_approved_at = row.warned_at = None
            self.ctx.reschedule(row)
            self.ctx.notifier.request_changed(row, session=session)
            self.ctx.notifier.tell_requester(row, "extended", session=session)
        self.ctx.notify_due(row)

    # -- helpers -------------------------------------------------------------------------------

    def _busy(self, request_id: int) -> None:
        """Another thread or replica holds the request's AWS lock: look again shortly (the work stays owed)."""
        with session_scope(self.ctx.engine) as session:
            row = self.ctx.locked(request_id, session)
            soon = self.ctx.clock() + self.ctx.tuning.busy_retry
            if row.next_due_at is None or row.next_due_at > soon:
                row.next_due_at = soon
            if row.claimed_by is not None and row.claimed_by.startswith(self.ctx.owner):
                row.claimed_by = row.claimed_until = None
        self.ctx.notify_due(row)

    def _refuse_if_held_elsewhere(self, request: AccessRequest, granter: Granter, spec: GrantSpec) -> None:
        if not granter.shared:
            return
        with session_scope(self.ctx.engine) as session:
            ours = queries.others_may_hold(request, session=session)
        if not ours and granter.holds(spec):
            having, checked = HELD_ELSEWHERE.get(Kind(request.kind), HELD_ELSEWHERE[Kind.IAM_GROUP])
            raise AwsError(
                f"{request.iam_user} {having.format(target=request.target)} by other means, so nothing was "
                "granted (and the bot will never remove access it did not add)",
                operation=checked,
                code="AlreadyHeld",
            )

    def _record_grant_intent(self, request_id: int, spec: GrantSpec) -> GrantSpec | None:
        """Commit that the grant is about to be applied (and where), so a crash after it is recoverable."""
        now = self.ctx.clock()
        with session_scope(self.ctx.engine) as session:
            row = self.ctx.locked(request_id, session)
            if row.status != Status.APPROVED or row.end_requested_at is not None:
                return None
            if row.starts_at is not None and now < row.starts_at:
                return None  # never before a scheduled start (the schedule owes nothing until then)
            row.grant_started_at = now
            row.expires_at = now + timedelta(seconds=row.duration_seconds)
            row.target_arn = spec.target_arn
            if Kind(row.kind) is Kind.IAM_ROLE:
                self._ends.take_over_denies(session, row, now)
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

    def _fail(self, request_id: int, error: AwsError) -> None:
        """The grant failed: mark the request failed. Whatever part AWS may have applied stays held by the
        row (grant started, not ended), so the next step is the same CLEANUP as every owed removal: retried
        with backoff and alerted until AWS accepts it."""
        self.ctx.metrics.aws_failures.labels(operation=error.operation).inc()
        now = self.ctx.clock()
        with session_scope(self.ctx.engine) as session:
            row = self.ctx.locked(request_id, session)
            self.ctx.move(session, row, Status.FAILED, SYSTEM, now, error=str(error), operation=error.operation)
            row.last_error = str(error)[:2000]
            if row.grant_started_at is not None:
                row.revoke_started_at = now
            self.ctx.reschedule(row)
            self.ctx.notifier.request_changed(row, session=session)
            self.ctx.notifier.tell_requester(row, "failed", session=session)
            self.ctx.to_audit_channel(row, "failed", session=session)
        log.warning("grant failed: %s", error, extra={"request_id": request_id})

    def _drop_extension(self, request_id: int, why: str) -> None:
        with session_scope(self.ctx.engine) as session:
            row = self.ctx.locked(request_id, session)
            row.extension_seconds = row.extension_approved_at = None
            row.last_error = why[:2000]
            queries.record_audit(
                session=session,
                actor=SYSTEM,
                action=AuditAction.EXTENSION_FAILED,
                request_id=request_id,
                at=self.ctx.clock(),
                error=why,
            )
            self.ctx.reschedule(row)
            self.ctx.notifier.tell_requester(row, "extension_failed", session=session)
