"""Filing and deciding: submit, break-glass, auto-approval, votes, cancel, extension requests."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlmodel import Session

from bot.catalog import GroupResource, KeyResource, RoleResource
from bot.domain import policy
from bot.domain.audit import AuditAction
from bot.domain.lifecycle import Status
from bot.durations import DurationError, format_duration, parse_duration
from bot.errors import UserError
from bot.store import queries
from bot.store.db import session_scope
from bot.store.models import AccessRequest, Vote
from bot.workflow.base import SYSTEM
from bot.workflow.grants import GrantFlows

MAX_REASON = 500
Resource = GroupResource | RoleResource | KeyResource


class RequestFlows(GrantFlows):
    """Use cases that start with a person asking or deciding."""

    def requestable(self, user: str) -> list[str]:
        """Names of the resources `user` may request."""
        return [name for name in sorted(self.catalog.resources) if self._may_request(user, name)]

    def submit(
        self, *, requester: str, resource: str, duration: str | None, reason: str, break_glass: bool = False
    ) -> AccessRequest:
        """Validate and store a new request; raise UserError (naming the field) for any bad input."""
        item = self.catalog.resource(resource)
        if item is None or not self._may_request(requester, resource):
            known = ", ".join(self.requestable(requester)[:20]) or "nothing"
            raise UserError(f"Unknown resource '{_short(resource)}'. Available: {known}.", field="resource")
        wanted = self._duration(duration, item, resource)
        reason = " ".join(reason.split())
        if not reason:
            raise UserError("Say why you need access: /access request <resource> <duration> <reason>.", field="reason")
        if len(reason) > MAX_REASON:
            raise UserError(f"The reason is {len(reason)} characters long; keep it under {MAX_REASON}.", field="reason")
        if break_glass and not item.break_glass:
            raise UserError(f"{resource} does not allow break-glass access; use /access request.", field="resource")
        user = self._identity.resolve(requester)
        if item.require_mfa and not self._identity.has_mfa(user):
            raise UserError(
                f"{resource} requires MFA, and your IAM user '{user.name}' has no MFA device. "
                "Register one (IAM console -> Security credentials -> Assign MFA device), then ask again."
            )
        now = self._clock()
        with session_scope(self.engine) as session:
            self._enforce_limits(session, requester, item, now)
            request = AccessRequest(
                requester_id=requester,
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
            )
            session.add(request)
            session.flush()
            queries.record_audit(
                session=session,
                actor=requester,
                action=AuditAction.SUBMITTED,
                request_id=request.id,
                to_status=Status.PENDING,
                at=now,
                resource=resource,
                duration=format_duration(wanted),
                reason=reason,
                iam_user=user.name,
                break_glass=break_glass,
            )
            if break_glass:
                request.break_glass = True
                self._approve(session, request, requester, now, how="break_glass")
            elif self._auto_approvable(session, requester, item, wanted, now):
                request.auto_approved = True
                self._approve(session, request, SYSTEM, now, how="auto_approve")
            else:
                self._reschedule(request)
        self._notify_due(request)
        return request

    def announce(self, request_id: int, claim: str | None = None) -> None:
        """Post the approval message, tell the requester, and grant at once when no vote is needed."""
        request = self._load(request_id)
        where = self._notifier.request_filed(request, [])
        if where is not None:
            with session_scope(self.engine) as session:
                row = self._locked(request_id, session)
                row.approval_channel, row.approval_ts = where
                votes = self._votes(row, session)
            if row.status != request.status or votes:
                # A vote landed before the message existed: bring the message up to date now.
                self._notifier.request_changed(row, votes)
            request.approval_channel, request.approval_ts = where
        if request.status == Status.APPROVED:
            self._notifier.tell_requester(request, "approved")
            if request.break_glass:
                self._to_audit_channel(request, "break_glass")
            self.advance(request_id, claim, loaded=request)
        else:
            self._notifier.tell_requester(request, "filed")

    def decide(
        self, *, request_id: int, actor: str, approve: bool, comment: str | None = None, round: int | None = None
    ) -> AccessRequest:
        """Record a vote on a request (round 0) or on its pending extension; one short transaction."""
        approvers = self._approvers(self._load(request_id))  # Slack lookups stay outside the row lock
        now = self._clock()
        with session_scope(self.engine) as session:
            request = self._locked(request_id, session)
            votes = self._votes(request, session)
            self._ensure_may_vote(request, votes, actor, round, approvers)
            extending = _extending(request)
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
            if extending:
                self._decide_extension(session, request, actor, approve, approved_by, comment, now)
            elif not approve:
                self._move(session, request, Status.DENIED, actor, now, comment=comment)
                request.decided_by, request.decided_at, request.deny_reason = actor, now, comment
                self._reschedule(request)
            elif policy.quorum_reached(approved_by, request.approvals_required):
                self._approve(session, request, ", ".join(approved_by), now, how="approvers")
            else:
                _record_vote(session, request, actor, approved_by, now)
        return request

    def check_vote(self, *, request_id: int, actor: str, round: int | None) -> AccessRequest:
        """Raise UserError unless `actor` may vote on the request now (before a form is opened)."""
        with session_scope(self.engine) as session:
            request = self._locked(request_id, session)
            votes = self._votes(request, session)
        self._ensure_may_vote(request, votes, actor, round, self._approvers(request))
        return request

    def _ensure_may_vote(
        self, request: AccessRequest, votes: list[Vote], actor: str, round: int | None, approvers: frozenset[str]
    ) -> None:
        if round is not None and round != request.extension_round:
            raise UserError(f"That vote is about an earlier decision on request #{request.id}; it is closed.")
        item = self.catalog.resource(request.resource)
        decision = policy.may_decide(
            actor=actor,
            requester=request.requester_id,
            approvers=approvers,
            allow_self_approval=bool(item and item.allow_self_approval),
            status=Status.PENDING if _extending(request) else Status(request.status),
            voted={v.approver_id for v in votes},
        )
        if not decision.allowed:
            raise UserError(_refusal(decision, request))

    def mine_one(self, *, request_id: int, actor: str) -> AccessRequest:
        """The actor's own request, or a UserError."""
        request = self._load(request_id)
        if request.requester_id != actor:
            raise UserError(f"Request #{request_id} is not yours.")
        return request

    def after_decision(self, request_id: int, claim: str | None = None) -> None:
        """Update the approval message, tell the requester, grant or extend (off the request thread)."""
        with session_scope(self.engine) as session:
            request = self._locked(request_id, session)
            votes = self._votes(request, session)
        self._notifier.request_changed(request, votes)
        if request.status == Status.DENIED:
            self._notifier.tell_requester(request, "denied")
            self._to_audit_channel(request, "denied")
        elif request.status == Status.APPROVED:
            self._notifier.tell_requester(request, "approved")
            self.advance(request_id, claim, loaded=request)
        elif request.status == Status.ACTIVE and request.extension_approved_at is not None:
            self.advance(request_id, claim, loaded=request)
        elif request.status == Status.ACTIVE and any(not v.approve for v in votes):
            self._notifier.tell_requester(request, "extension_denied")

    def cancel(self, *, request_id: int, actor: str) -> AccessRequest:
        """Withdraw a pending request (its requester only)."""
        now = self._clock()
        with session_scope(self.engine) as session:
            request = self._locked(request_id, session)
            decision = policy.may_cancel(actor=actor, requester=request.requester_id, status=Status(request.status))
            if not decision.allowed:
                raise UserError(_refusal(decision, request, verb="cancel"))
            self._move(session, request, Status.CANCELLED, actor, now)
            request.decided_by, request.decided_at = actor, now
            self._reschedule(request)
            votes = self._votes(request, session)
        self._notifier.request_changed(request, votes)
        return request

    def request_extension(self, *, request_id: int, actor: str, duration: str) -> AccessRequest:
        """Ask for more time on an active grant; approved at once when it fits auto_approve."""
        now = self._clock()
        with session_scope(self.engine) as session:
            request = self._locked(request_id, session)
            item = self.catalog.resource(request.resource)
            if actor != request.requester_id:
                raise UserError(f"Only the requester can extend request #{request_id}.")
            if request.status != Status.ACTIVE or item is None:
                raise UserError(
                    f"Request #{request_id} is {request.status.replace('_', ' ')}; only active grants extend."
                )
            if request.extension_seconds is not None:
                raise UserError(f"An extension of request #{request_id} is already waiting for approval.")
            if request.extensions_used >= item.max_extensions:
                raise UserError(
                    f"Request #{request_id} was already extended {request.extensions_used} time(s), "
                    f"the most {request.resource} allows; file a new request instead."
                )
            more = self._duration(duration, item, request.resource, field="duration", minimum=timedelta(seconds=1))
            request.extension_round += 1
            request.extension_seconds = int(more.total_seconds())
            queries.record_audit(
                session=session,
                actor=actor,
                action=AuditAction.EXTENSION_REQUESTED,
                request_id=request_id,
                at=now,
                extension=format_duration(more),
                round=request.extension_round,
            )
            if self._auto_approvable(session, actor, item, more, now):
                self._decide_extension(session, request, SYSTEM, True, [SYSTEM], "auto_approve", now)
        return request

    def after_extension_request(self, request_id: int, claim: str | None = None) -> None:
        """Apply an auto-approved extension, or post it for approval (off the request thread)."""
        request = self._load(request_id)
        if request.extension_approved_at is not None:
            self.advance(request_id, claim, loaded=request)
            return
        where = self._notifier.request_filed(request, [])
        if where is not None:
            with session_scope(self.engine) as session:
                row = self._locked(request_id, session)
                row.approval_channel, row.approval_ts = where

    def acknowledge(self, *, request_id: int, actor: str) -> AccessRequest:
        """An approver acknowledges a break-glass activation; reminders stop."""
        approvers = self._approvers(self._load(request_id))  # Slack lookups stay outside the row lock
        now = self._clock()
        with session_scope(self.engine) as session:
            request = self._locked(request_id, session)
            decision = policy.may_acknowledge(actor=actor, requester=request.requester_id, approvers=approvers)
            if decision.reason is policy.Reason.SELF_APPROVAL:
                raise UserError(f"You used break-glass access on #{request_id}; another approver must acknowledge it.")
            if not decision.allowed:
                raise UserError(f"Only the approvers of {request.resource} can acknowledge request #{request_id}.")
            if not request.break_glass:
                raise UserError(f"Request #{request_id} is not a break-glass request.")
            if request.acknowledged_by:
                raise UserError(f"Request #{request_id} was already acknowledged by <@{request.acknowledged_by}>.")
            request.acknowledged_by, request.acknowledged_at = actor, now
            queries.record_audit(
                session=session, actor=actor, action=AuditAction.ACKNOWLEDGED, request_id=request_id, at=now
            )
            self._reschedule(request)
            votes = self._votes(request, session)
        self._notifier.request_changed(request, votes)
        return request

    def mine(self, user: str) -> list[AccessRequest]:
        """A requester's recent requests, newest first."""
        with session_scope(self.engine) as session:
            return list(queries.requests_of(user, session=session))

    def waiting_for(self, user: str) -> list[AccessRequest]:
        """Requests and extensions `user` could approve now."""
        with session_scope(self.engine) as session:
            rows = queries.in_status([Status.PENDING, Status.ACTIVE], session=session, limit=500)
        waiting = [r for r in rows if r.status == Status.PENDING or r.extension_seconds is not None]
        return [r for r in waiting if r.requester_id != user and user in self._approvers(r)]

    # -- helpers -------------------------------------------------------------------------------

    def _approve(self, session: Session, request: AccessRequest, actor: str, now: datetime, *, how: str) -> None:
        self._move(session, request, Status.APPROVED, actor, now, how=how)
        request.decided_by, request.decided_at = actor, now
        self._claim_now(request, now)

    def _claim_now(self, request: AccessRequest, now: datetime) -> None:
        """Work is owed from now on; this process holds the claim and does it next (or the sweep, after a crash)."""
        request.next_due_at = now
        # A token of its own, so that only this decision's follow-up (or, after a crash, the sweep) acts on it.
        request.claimed_by, request.claimed_until = f"{self.owner}#{secrets.token_hex(4)}", now + self._tuning.lease

    def _decide_extension(
        self,
        session: Session,
        request: AccessRequest,
        actor: str,
        approve: bool,
        approved_by: list[str],
        comment: str | None,
        now: datetime,
    ) -> None:
        if not approve:
            request.extension_seconds = None
            queries.record_audit(
                session=session,
                actor=actor,
                action=AuditAction.EXTENSION_DENIED,
                request_id=request.id,
                at=now,
                comment=comment,
            )
        elif actor == SYSTEM or policy.quorum_reached(approved_by, request.approvals_required):
            queries.record_audit(
                session=session,
                actor=actor,
                action=AuditAction.EXTENSION_APPROVED,
                request_id=request.id,
                at=now,
                how=comment,
            )
            request.extension_approved_at = now
            self._claim_now(request, now)
        else:
            _record_vote(session, request, actor, approved_by, now)

    def _enforce_limits(self, session: Session, requester: str, item: Resource, now: datetime) -> None:
        """Per-user rate limit and cap on open requests (checked in the inserting transaction)."""
        limit = item.rate_limit
        if queries.filed_since(requester, now - limit.per, session=session) >= limit.requests:
            raise UserError(
                f"You filed {limit.requests} requests in the last {format_duration(limit.per)}, the most allowed; "
                "try again later."
            )
        if queries.open_count(requester, session=session) >= item.max_open_requests:
            raise UserError(
                f"You already have {item.max_open_requests} open requests; cancel or finish one first (/access list)."
            )

    def _may_request(self, user: str, resource: str) -> bool:
        allowed = self.catalog.requesters_of(resource)
        return allowed is None or user in self._directory.expand(allowed)

    def _auto_approvable(
        self, session: Session, requester: str, item: Resource, wanted: timedelta, now: datetime
    ) -> bool:
        ceiling = item.auto_approve_max
        if ceiling is None or wanted > ceiling:
            return False
        since = now - timedelta(days=1)
        return queries.auto_approved_since(requester, since, session=session) < item.auto_approve_limit

    def _duration(
        self,
        text: str | None,
        item: Resource,
        resource: str,
        *,
        field: str = "duration",
        minimum: timedelta | None = None,
    ) -> timedelta:
        try:
            wanted = parse_duration(text) if text else item.default_duration
        except DurationError as exc:
            raise UserError(f"{exc}.", field=field) from None
        low = item.min_duration if minimum is None else minimum
        if not low <= wanted <= item.max_duration:
            raise UserError(
                f"{resource} can be granted for {format_duration(low)} to "
                f"{format_duration(item.max_duration)}; you asked for {format_duration(wanted)}.",
                field=field,
            )
        return wanted


def _record_vote(session: Session, request: AccessRequest, actor: str, approved_by: list[str], now: datetime) -> None:
    """Audit a vote that did not yet reach the quorum (on a request or on its extension)."""
    queries.record_audit(
        session=session,
        actor=actor,
        action=AuditAction.APPROVAL_VOTE,
        request_id=request.id,
        at=now,
        approvals=len(approved_by),
        required=request.approvals_required,
    )


def _extending(request: AccessRequest) -> bool:
    """Whether the open decision is about an extension of an active grant."""
    return (
        request.extension_seconds is not None
        and request.extension_approved_at is None
        and request.status == Status.ACTIVE
    )


def _refusal(decision: policy.Decision, request: AccessRequest, verb: str = "decide") -> str:
    reason = policy.Reason
    state = request.status.replace("_", " ")
    messages = {
        reason.SELF_APPROVAL: f"You cannot approve or deny your own request #{request.id}.",
        reason.NOT_AN_APPROVER: f"Only the approvers of {request.resource} can {verb} request #{request.id}.",
        reason.ALREADY_DECIDED: f"Request #{request.id} is already {state}"
        + (f" (by {_mentions(request.decided_by)})." if request.decided_by else "."),
        reason.ALREADY_VOTED: f"You already voted on request #{request.id}; it needs "
        f"{request.approvals_required} distinct approvers.",
        reason.NOT_THE_REQUESTER: f"Only the requester can {verb} request #{request.id}.",
        reason.WRONG_STATE: f"Request #{request.id} is {state}, so it cannot be {verb}led now."
        if verb == "cancel"
        else f"Request #{request.id} is {state}; nothing to {verb}.",
    }
    return messages.get(decision.reason, f"You cannot do that to request #{request.id}.")


def _mentions(ids: str | None) -> str:
    return ", ".join(f"<@{i.strip()}>" for i in (ids or "").split(",") if i.strip())


def _short(text: str) -> str:
    return text if len(text) <= 40 else text[:40] + "…"
