"""Deciding: votes, cancel, acknowledging break-glass, and what follows a decision."""

from __future__ import annotations

from sqlmodel import Session

from bot.domain import policy
from bot.domain.audit import AuditAction
from bot.domain.lifecycle import Status
from bot.errors import UserError
from bot.store import queries
from bot.store.db import session_scope
from bot.store.models import AccessRequest, Vote
from bot.workflow import checks
from bot.workflow.filing import Filing


class RequestService(Filing):
    """Use cases that start with a person asking or deciding."""

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
