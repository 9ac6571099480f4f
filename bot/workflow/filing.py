"""Filing a request: checks, break-glass, auto-approval, the filing itself and telling people of it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from bot.catalog import AnyResource
from bot.domain import policy
from bot.domain.audit import AuditAction
from bot.domain.lifecycle import Status
from bot.durations import format_duration
from bot.errors import UserError
from bot.store import queries
from bot.store.db import session_scope
from bot.store.models import AccessRequest
from bot.workflow import checks
from bot.workflow.base import SYSTEM
from bot.workflow.request_base import RequestBase

MAX_REASON = 500
Resource = AnyResource


@dataclass(frozen=True)
class Filed:
    """What filing gave: the request, and whether this submission filed it (false for a retry of one)."""

    request: AccessRequest
    new: bool


class Filing(RequestBase):
    """Use cases that start with a person asking."""

    def precheck(self, *, resource: str, duration: str | None, reason: str, break_glass: bool = False) -> None:
        """The checks that need neither the database, Slack nor AWS: run before the ack, so bad input is
        answered at once. Only for resources open to everyone: the answer must not reveal a restricted one.
        """
        item = self.ctx.catalog.resource(resource)
        if item is not None and self.ctx.catalog.requesters_of(resource) is None:
            self._checked(item, resource, duration, reason, break_glass)

    def filed_from(self, submission: str) -> AccessRequest | None:
        """The request a Slack submission (trigger or view ID) already filed, if any."""
        with session_scope(self.ctx.engine) as session:
            return queries.filed_from(submission, session=session)

    def submit(
        self,
        *,
        requester: str,
        resource: str,
        duration: str | None,
        reason: str,
        break_glass: bool = False,
        submission: str | None = None,
        filed_by: str | None = None,
        start: str | None = None,
    ) -> Filed:
        """Validate and store a new request; raise UserError (naming the field) for any bad input.

        `requester` gets the access; `filed_by` is whoever filed it on their behalf (None: the requester did).
        `start` (`+30m`, `14:00`, ISO 8601) schedules the start, read in the Slack time zone of whoever filed it.
        `submission` identifies the Slack submission it came from: a retry of it, or a second click on the
        same form, returns the request the first one filed (`new` false) instead of filing another.
        """
        if submission is not None and (earlier := self.filed_from(submission)) is not None:
            return Filed(earlier, new=False)
        try:
            filer = filed_by if filed_by != requester else None  # `for=` oneself is an ordinary request
            filed = self._file(requester, resource, duration, reason, break_glass, submission, filer, start)
            return Filed(filed, new=True)
        except IntegrityError:
            # Two deliveries of one submission raced past the check above; the unique index kept one.
            earlier = self.filed_from(submission) if submission is not None else None
            if earlier is None:
                raise
            return Filed(earlier, new=False)

    def _checked(
        self, item: Resource, resource: str, duration: str | None, reason: str, break_glass: bool
    ) -> tuple[timedelta, str]:
        wanted = checks.requested_duration(duration, item, resource)
        reason = " ".join(reason.split())
        if not reason:
            raise UserError("Say why you need access: /access request <resource> <duration> <reason>.", field="reason")
        if len(reason) > MAX_REASON:
            raise UserError(f"The reason is {len(reason)} characters long; keep it under {MAX_REASON}.", field="reason")
        # After the length check: it bounds the regex search (Python's re has no timeout).
        checks.require_ticket(item, resource, reason)
        if break_glass and not item.break_glass:
            raise UserError(f"{resource} does not allow break-glass access; use /access request.", field="resource")
        return wanted, reason

    def _file(
        self,
        requester: str,
        resource: str,
        duration: str | None,
        reason: str,
        break_glass: bool,
        submission: str | None,
        filed_by: str | None = None,
        start: str | None = None,
    ) -> AccessRequest:
        item = self.ctx.catalog.resource(resource)
        if filed_by is not None:
            self._ensure_may_file_for(filed_by, requester, resource)
        elif item is None or not checks.may_request(self.ctx, requester, resource):
            self._unknown(requester, resource)
        assert item is not None  # _ensure_may_file_for and _unknown raise for an unknown resource
        wanted, reason = self._checked(item, resource, duration, reason, break_glass)
        starts_at = None
        if start is not None:
            starts_at = checks.scheduled_start(self.ctx, start, filed_by or requester, item, break_glass=break_glass)
        # For the Identity Center kinds `user` is the Identity Store user (UserName, UserId): stored in the
        # iam_user / iam_user_arn columns, which hold the principal a grant names, whichever kind it is.
        user = self.ctx.identity.resolve(requester, item.kind)
        # Identity Center enforces its own MFA at sign-in; the IAM MFA device check is for IAM users.
        if item.require_mfa and not item.kind.identity_center and not self.ctx.identity.has_mfa(user):
            whose, one = ("your", "one") if filed_by is None else (f"<@{requester}>'s", "one (they can)")
            raise UserError(
                f"{resource} requires MFA, and {whose} IAM user '{user.name}' has no MFA device. "
                f"Register {one} (IAM console -> Security credentials -> Assign MFA device), then ask again."
            )
        # Asked before the transaction: PagerDuty or Slack may take seconds, and no row waits on them.
        on_call = checks.on_call(self.ctx, requester, item, wanted, break_glass=break_glass, filed_by=filed_by)
        now = self.ctx.clock()
        with session_scope(self.ctx.engine) as session:
            checks.enforce_limits(session, requester, item, now, filed_by=filed_by)
            request = AccessRequest(
                requester_id=requester,
                filed_by=filed_by,
                resource=resource,
                kind=item.kind.value,
                target=item.target,
                iam_user=user.name,
                iam_user_arn=user.arn,
                duration_seconds=int(wanted.total_seconds()),
                reason=reason,
                status=Status.PENDING.value,
                approvals_required=item.approvals_required,
                approval_channel=item.approval_channel,
                created_at=now,
                updated_at=now,
                submission=submission,
                starts_at=starts_at,
                warning=item.warning,
                notify=",".join(sorted(self.ctx.catalog.notified_of(resource))) if item.notify else None,
                on_call_note=on_call.note if on_call is not None and on_call.unchecked else None,
            )
            session.add(request)
            session.flush()
            # The actor is who filed it; `for` names the beneficiary when that is someone else.
            on_behalf: dict[str, Any] = {"for": requester} if filed_by is not None else {}
            if starts_at is not None:
                on_behalf["starts_at"] = starts_at.isoformat()
            if request.on_call_note:
                on_behalf["on_call"] = request.on_call_note  # why on-call could not approve it
            queries.record_audit(
                session=session,
                actor=filed_by or requester,
                action=AuditAction.SUBMITTED,
                request_id=request.id,
                to_status=Status.PENDING,
                at=now,
                resource=resource,
                duration=format_duration(wanted),
                reason=reason,
                iam_user=user.name,
                break_glass=break_glass,
                **on_behalf,
            )
            if break_glass:
                request.break_glass = True
                self._approve(session, request, requester, now, how="break_glass")
            elif (
                filed_by is None
                and (on_call is None or on_call.approved)
                and checks.auto_approvable(session, requester, item, wanted, now)
            ):
                # Filed for someone else, it always waits for a person: nobody puts access on a teammate unasked.
                request.auto_approved = True
                if on_call is not None:
                    request.on_call_note = on_call.note  # "on call for payments-primary"
                    self._approve(session, request, SYSTEM, now, how="on_call", on_call=on_call.note)
                else:
                    self._approve(session, request, SYSTEM, now, how="auto_approve")
            else:
                self.ctx.reschedule(request)
            self._tell_filed(session, request)
        self.ctx.notify_due(request)
        return request

    def _tell_filed(self, session: Session, request: AccessRequest) -> None:
        """Owe the approval message and the requester's first DM in the filing's own transaction: a request is
        never filed with nobody told, whatever Slack or a crash does next. With `quiet_auto_approvals`, an
        auto-approved request posts no approval message (the audit channel still gets its grant)."""
        item = self.ctx.catalog.resource(request.resource)
        quiet = request.auto_approved and item is not None and item.quiet_auto_approvals
        if not quiet:
            self.ctx.notifier.request_filed(request, session=session)
        if request.status != Status.APPROVED:
            self.ctx.notifier.tell_requester(request, "filed", session=session)
        elif self._waits_for_start(request):
            self.ctx.notifier.tell_requester(request, "scheduled", session=session)  # granted at the start
        else:
            self.ctx.notifier.tell_requester(request, "approved", session=session)
            if request.break_glass:
                self.ctx.to_audit_channel(request, "break_glass", session=session)

    def announce(self, request_id: int, claim: str | None = None) -> None:
        """Grant at once a request that needed no vote (its messages were owed when it was filed)."""
        request = self.ctx.load(request_id)
        if request.status == Status.APPROVED and not self._waits_for_start(request):
            self._grants.advance(request_id, claim, loaded=request)

    def _ensure_may_file_for(self, filer: str, beneficiary: str, resource: str) -> None:
        """Raise UserError unless `filer` may file `resource` for `beneficiary` (approvers and delegates only)."""
        catalog, expand = self.ctx.catalog, self.ctx.directory.expand
        if catalog.resource(resource) is None:
            self._unknown(filer, resource)
        decision = policy.may_file_for(
            filer=filer,
            approvers=expand(catalog.approvers_of(resource)),
            delegates=expand(catalog.delegates_of(resource)),
            beneficiary_may_request=checks.may_request(self.ctx, beneficiary, resource),
        )
        if decision.reason is policy.Reason.NOT_A_DELEGATE:
            if not checks.may_request(self.ctx, filer, resource):
                self._unknown(filer, resource)  # a resource hidden from the filer stays hidden
            raise UserError(
                f"Only the approvers and delegates of {resource} can file it on someone's behalf; "
                f"ask for yourself with /access request {resource} <duration> <reason>.",
                field="resource",
            )
        if decision.reason is policy.Reason.BENEFICIARY_NOT_A_REQUESTER:
            raise UserError(f"<@{beneficiary}> may not request {resource} (it is limited to its requesters).")
