"""What the request use cases share: who may request what, the requests a person sees, approving."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session

from bot.domain.lifecycle import Status
from bot.errors import UserError
from bot.store import queries
from bot.store.db import session_scope
from bot.store.models import AccessRequest
from bot.workflow import checks
from bot.workflow.context import Context
from bot.workflow.extensions import ExtensionService
from bot.workflow.grants import GrantService

# Lines of /access pending: Slack folds an ephemeral message after about 50 lines; the rest is counted.
WAITING_PAGE = 25


class RequestBase:
    """The request use cases' context, lists and shared steps."""

    def __init__(self, ctx: Context, grants: GrantService, extensions: ExtensionService) -> None:
        self.ctx = ctx
        self._grants = grants
        self._extensions = extensions

    def requestable(self, user: str) -> list[str]:
        """Names of the resources `user` may request."""
        return [name for name in sorted(self.ctx.catalog.resources) if checks.may_request(self.ctx, user, name)]

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

    def _unknown(self, user: str, resource: str) -> None:
        known = ", ".join(self.requestable(user)[:20]) or "nothing"
        raise UserError(f"Unknown resource '{checks.short(resource)}'. Available: {known}.", field="resource")

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
