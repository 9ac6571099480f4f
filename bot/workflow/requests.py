"""Filing and deciding: submit, break-glass, auto-approval, votes, cancel, extension requests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
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
from bot.store.models import AccessRequest, Vote
from bot.workflow import checks
from bot.workflow.base import SYSTEM
from bot.workflow.context import Context
from bot.workflow.extensions import ExtensionService
from bot.workflow.grants import GrantService

MAX_REASON = 500
# Lines of /access pending: Slack folds an ephemeral message after about 50 lines; the rest is counted.
WAITING_PAGE = 25
Resource = AnyResource


@dataclass(frozen=True)
class Filed:
    """What filing gave: the request, and whether this submission filed it (false for a retry of one)."""

    request: AccessRequest
    new: bool


class RequestService:
    """Use cases that start with a person asking or deciding."""

    def __init__(self, ctx: Context, grants: GrantService, extensions: ExtensionService) -> None:
        self.ctx = ctx
        self._grants = grants
        self._extensions = extensions

    def requestable(self, user: str) -> list[str]:
        """Names of the resources `user` may request."""
        return [name for name in sorted(self.ctx.catalog.resources) if checks.may_request(self.ctx, user, name)]

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

    def decide(
        self, *, request_id: int, actor: str, approve: bool, comment: str | None = None, round: int | None = None
    ) -> AccessRequest:
        """Record a vote on a request (round 0) or on its pending extension; one short transaction."""
        approvers = self.ctx.approvers(self.ctx.load(request_id))  # Slack lookups stay outside the row lock
        now = self.ctx.clock()
        with session_scope(self.ctx.engine) as session:
            request = self.ctx.locked(request_id, session)
            votes = self.ctx.votes(request, session)
            self._ensure_may_vote(request, votes, actor, round, approvers)
            extending = checks.extending(request)
            vote = Vote(
                request_id=request_id,
                round=request.extension_round,
                approver_id=actor,
                approve=approve,
                comment=comment,
                created_at=now,
            )
            session.add(vote)
            approved_by = [v.approver_id for v in [*votes, vote] if v.approve]
            told: str | None = None  # what the requester is told of this vote
            if extending:
                self._extensions.decide(session, request, actor, approve, approved_by, comment, now)
                told = None if approve else "extension_denied"
            elif not approve:
                self.ctx.move(session, request, Status.DENIED, actor, now, comment=comment)
                request.decided_by, request.decided_at, request.deny_reason = actor, now, comment
                self.ctx.reschedule(request)
                told = "denied"
            elif policy.quorum_reached(approved_by, request.approvals_required):
                self._approve(session, request, ", ".join(approved_by), now, how="approvers")
                told = "scheduled" if self._waits_for_start(request, now) else "approved"
            else:
                checks.record_vote(session, request, actor, approved_by, now)
            self._tell_decided(session, request, told)
        if request.status == Status.APPROVED and self._waits_for_start(request, now):
            self.ctx.notify_due(request)  # approved ahead of its start: the scheduler wakes at the start
        return request

    def check_vote(self, *, request_id: int, actor: str, round: int | None) -> AccessRequest:
        """Raise UserError unless `actor` may vote on the request now (before a form is opened)."""
        with session_scope(self.ctx.engine) as session:
            request = self.ctx.locked(request_id, session)
            votes = self.ctx.votes(request, session)
        self._ensure_may_vote(request, votes, actor, round, self.ctx.approvers(request))
        return request

    def _ensure_may_vote(
        self, request: AccessRequest, votes: list[Vote], actor: str, round: int | None, approvers: frozenset[str]
    ) -> None:
        if round is not None and round != request.extension_round:
            raise UserError(f"That vote is about an earlier decision on request #{request.id}; it is closed.")
        item = self.ctx.catalog.resource(request.resource)
        decision = policy.may_decide(
            actor=actor,
            requester=request.requester_id,
            approvers=approvers,
            allow_self_approval=bool(item and item.allow_self_approval),
            status=Status.PENDING if checks.extending(request) else Status(request.status),
            voted={v.approver_id for v in votes},
            filed_by=request.filed_by,
        )
        if not decision.allowed:
            raise UserError(checks.refusal(decision, request), people=checks.deciders(request))

    def mine_one(self, *, request_id: int, actor: str) -> AccessRequest:
        """The actor's own request, or a UserError."""
        request = self.ctx.load(request_id)
        if request.requester_id != actor:
            raise UserError(f"Request #{request_id} is not yours.")
        return request

    def _tell_decided(self, session: Session, request: AccessRequest, told: str | None) -> None:
        """Owe, in the vote's own transaction, the approval message brought up to date and the requester's DM."""
        self.ctx.notifier.request_changed(request, session=session)
        if told is not None:
            self.ctx.notifier.tell_requester(request, told, session=session)
        if told == "denied":
            self.ctx.to_audit_channel(request, "denied", session=session)

    def after_decision(self, request_id: int, claim: str | None = None) -> None:
        """Grant or extend what the vote approved (off the request thread); its news was owed with the vote.
        A request approved ahead of its start waits for the scheduler."""
        request = self.ctx.load(request_id)
        granting = request.status == Status.APPROVED and not self._waits_for_start(request)
        extending = request.status == Status.ACTIVE and request.extension_approved_at is not None
        if granting or extending:
            self._grants.advance(request_id, claim, loaded=request)

    def cancel(self, *, request_id: int, actor: str) -> AccessRequest:
        """Withdraw a pending request, or an approved one before its scheduled start (its requester only)."""
        now = self.ctx.clock()
        with session_scope(self.ctx.engine) as session:
            request = self.ctx.locked(request_id, session)
            decision = policy.may_cancel(
                actor=actor,
                requester=request.requester_id,
                status=Status(request.status),
                filed_by=request.filed_by,
                not_started=self._waits_for_start(request, now),
            )
            if not decision.allowed:
                raise UserError(checks.refusal(decision, request, verb="cancel"), people=checks.deciders(request))
            if request.status == Status.PENDING:
                request.decided_by, request.decided_at = actor, now  # an approved one keeps who approved it
            self.ctx.move(session, request, Status.CANCELLED, actor, now)
            self.ctx.reschedule(request)
            self.ctx.notifier.request_changed(request, session=session)
        return request

    def acknowledge(self, *, request_id: int, actor: str) -> AccessRequest:
        """An approver acknowledges a break-glass activation; reminders stop."""
        approvers = self.ctx.approvers(self.ctx.load(request_id))  # Slack lookups stay outside the row lock
        now = self.ctx.clock()
        with session_scope(self.ctx.engine) as session:
            request = self.ctx.locked(request_id, session)
            decision = policy.may_acknowledge(actor=actor, requester=request.requester_id, approvers=approvers)
            if decision.reason is policy.Reason.SELF_APPROVAL:
                raise UserError(f"You used break-glass access on #{request_id}; another approver must acknowledge it.")
            if not decision.allowed:
                raise UserError(f"Only the approvers of {request.resource} can acknowledge request #{request_id}.")
            if not request.break_glass:
                raise UserError(f"Request #{request_id} is not a break-glass request.")
            if request.acknowledged_by:
                raise UserError(
                    f"Request #{request_id} was already acknowledged by {{people}}.", people=[request.acknowledged_by]
                )
            request.acknowledged_by, request.acknowledged_at = actor, now
            queries.record_audit(
                session=session, actor=actor, action=AuditAction.ACKNOWLEDGED, request_id=request_id, at=now
            )
            self.ctx.reschedule(request)
            self.ctx.notifier.request_changed(request, session=session)
        return request

    def mine(self, user: str) -> list[AccessRequest]:
        """A requester's open requests however old, and their most recent ones, newest first."""
        with session_scope(self.ctx.engine) as session:
            # An 8-hour grant can be older than a busy requester's 20 latest requests; it must still show.
            still_open = queries.open_requests_of(user, session=session)
            rows = {r.id: r for r in (*still_open, *queries.requests_of(user, session=session))}
        return sorted(rows.values(), key=lambda r: r.id or 0, reverse=True)

    def waiting_page(self, user: str, *, limit: int = WAITING_PAGE) -> queries.Page:
        """Requests and extensions `user` could decide now, oldest first, up to `limit`, and how many in all."""
        approvable = self._approvable(user)
        with session_scope(self.ctx.engine) as session:
            return queries.awaiting_decision(user, approvable, session=session, limit=limit)

    def waiting_for(self, user: str) -> list[AccessRequest]:
        """Requests and extensions `user` could decide now, oldest first: the rows of waiting_page()."""
        return self.waiting_page(user).rows

    def _approvable(self, user: str) -> dict[str, datetime | None]:
        """The resources `user` may decide on, as Context.approvers has it, each resolved once.

        None: every request for it; a moment: only requests filed by then, for an escalation contact (who
        may decide once a request has escalated, escalate_after after it was filed).
        """
        catalog, expand, now = self.ctx.catalog, self.ctx.directory.expand, self.ctx.clock()
        found: dict[str, datetime | None] = {}
        for name, item in catalog.resources.items():
            if user in expand(catalog.approvers_of(name)):
                found[name] = None
            elif item.escalate_to and user in expand(catalog.approvers_of(name, escalated=True)):
                found[name] = now - item.escalate_after
        return found

    # -- helpers -------------------------------------------------------------------------------

    def _unknown(self, user: str, resource: str) -> None:
        known = ", ".join(self.requestable(user)[:20]) or "nothing"
        raise UserError(f"Unknown resource '{checks.short(resource)}'. Available: {known}.", field="resource")

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

    def _waits_for_start(self, request: AccessRequest, now: datetime | None = None) -> bool:
        """Whether the request has a scheduled start still to come, and no grant begun."""
        return (
            request.starts_at is not None
            and request.grant_started_at is None
            and (now or self.ctx.clock()) < request.starts_at
        )

    def _approve(
        self, session: Session, request: AccessRequest, actor: str, now: datetime, *, how: str, **details: Any
    ) -> None:
        self.ctx.move(session, request, Status.APPROVED, actor, now, how=how, **details)
        request.decided_by, request.decided_at = actor, now
        if self._waits_for_start(request, now):
            self.ctx.reschedule(request)  # nothing is owed before the start; the scheduler grants it then
        else:
            self.ctx.claim_now(request, now)
