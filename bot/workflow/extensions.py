"""Extensions: asking for more time on an active grant, and deciding on it (votes, or auto-approval)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import Session

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
from bot.workflow.context import Context
from bot.workflow.grants import GrantService


class ExtensionService:
    """Use cases about an active grant's extension."""

    def __init__(self, ctx: Context, grants: GrantService) -> None:
        self.ctx = ctx
        self._grants = grants

    def request(self, *, request_id: int, actor: str, duration: str) -> AccessRequest:
        """Ask for more time on an active grant; approved at once when it fits auto_approve."""
        now = self.ctx.clock()
        with session_scope(self.ctx.engine) as session:
            request = self.ctx.locked(request_id, session)
            item = self.ctx.catalog.resource(request.resource)
            if actor != request.requester_id:
                raise UserError(f"Only the requester can extend request #{request_id}.")
            if request.status in (Status.PENDING, Status.APPROVED) and request.starts_at is not None:
                raise UserError(
                    f"Request #{request_id} has not started yet (it starts at {request.starts_at:%Y-%m-%d %H:%M} "
                    "UTC); only active grants extend. Cancel it and ask again for the duration you need."
                )
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
            more = checks.requested_duration(
                duration, item, request.resource, field="duration", minimum=timedelta(seconds=1)
            )
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
            # On-call auto-approval is for filing (checked outside any transaction); more time goes to people.
            if item.on_call is None and checks.auto_approvable(session, actor, item, more, now):
                self.decide(session, request, SYSTEM, True, [SYSTEM], "auto_approve", now)
            else:
                self.ctx.notifier.request_filed(request, session=session)  # a new approval message, for this round
        return request

    def after_request(self, request_id: int, claim: str | None = None) -> None:
        """Apply an auto-approved extension (off the request thread)."""
        request = self.ctx.load(request_id)
        if request.extension_approved_at is not None:
            self._grants.advance(request_id, claim, loaded=request)

    def decide(
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
            self.ctx.claim_now(request, now)
        else:
            checks.record_vote(session, request, actor, approved_by, now)
