"""The checks a request and a vote go through: who may ask, for how long, how often; how a refusal reads."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import Session

from bot.catalog import AnyResource
from bot.domain import policy
from bot.domain.audit import AuditAction
from bot.domain.lifecycle import Status
from bot.domain.oncall import FILED_FOR_SOMEONE, OnCallDecision
from bot.durations import DurationError, format_duration, parse_duration
from bot.errors import UserError
from bot.starts import StartError, check_start, parse_start
from bot.store import queries
from bot.store.models import AccessRequest
from bot.workflow.context import Context

Resource = AnyResource


def enforce_limits(
    session: Session, requester: str, item: Resource, now: datetime, *, filed_by: str | None = None
) -> None:
    """Per-user rate limit and cap on open requests (checked in the inserting transaction).

    On someone's behalf the beneficiary's limits apply, and the filer's rate limit counts what they filed
    for others: an approver or delegate cannot flood the approvers by filing for many people.
    """
    limit = item.rate_limit
    since = now - limit.per
    who, has = ("You", "You already have") if filed_by is None else (f"<@{requester}>", f"<@{requester}> already has")
    if queries.filed_since(requester, since, session=session) >= limit.requests:
        raise UserError(
            f"{who} filed {limit.requests} requests in the last {format_duration(limit.per)}, the most allowed; "
            "try again later."
        )
    if filed_by is not None and queries.filed_for_others_since(filed_by, since, session=session) >= limit.requests:
        raise UserError(
            f"You filed {limit.requests} requests on others' behalf in the last {format_duration(limit.per)}, "
            "the most allowed; try again later."
        )
    if queries.open_count(requester, session=session) >= item.max_open_requests:
        raise UserError(f"{has} {item.max_open_requests} open requests; cancel or finish one first (/access list).")


def may_request(ctx: Context, user: str, resource: str) -> bool:
    allowed = ctx.catalog.requesters_of(resource)
    return allowed is None or user in ctx.directory.expand(allowed)


def on_call(
    ctx: Context, requester: str, item: Resource, wanted: timedelta, *, break_glass: bool, filed_by: str | None
) -> OnCallDecision | None:
    """Whether the requester is on call, for a resource that auto-approves on-call; None when it does not
    matter (no `on_call`, break-glass, or longer than auto-approval allows: nobody is asked)."""
    ceiling = item.auto_approve_max
    if item.on_call is None or break_glass or ceiling is None or wanted > ceiling:
        return None
    if filed_by is not None:
        return FILED_FOR_SOMEONE
    return ctx.on_call(requester, item.on_call)


def auto_approvable(session: Session, requester: str, item: Resource, wanted: timedelta, now: datetime) -> bool:
    ceiling = item.auto_approve_max
    if ceiling is None or wanted > ceiling:
        return False
    since = now - timedelta(days=1)
    return queries.auto_approved_since(requester, since, session=session) < item.auto_approve_limit


def requested_duration(
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


def require_ticket(item: Resource, resource: str, reason: str) -> None:
    """Refuse a reason without the ticket reference the resource's `reason_pattern` asks for."""
    if item.reason_pattern is None or item.ticket_in(reason) is not None:
        return
    # Slack reads &, < and > as markup even inside backticks.
    pattern = item.reason_pattern.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    # Short enough for a form's field error (Slack shows 300 characters); the same words answer the command.
    raise UserError(
        f"{resource} needs a ticket reference in the reason: text matching `{pattern}`. "
        "Yours has none; add the ticket to your reason and ask again.",
        field="reason",
    )


def record_vote(session: Session, request: AccessRequest, actor: str, approved_by: list[str], now: datetime) -> None:
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


def extending(request: AccessRequest) -> bool:
    """Whether the open decision is about an extension of an active grant."""
    return (
        request.extension_seconds is not None
        and request.extension_approved_at is None
        and request.status == Status.ACTIVE
    )


def refusal(decision: policy.Decision, request: AccessRequest, verb: str = "decide") -> str:
    reason = policy.Reason
    state = request.status.replace("_", " ")
    messages = {
        reason.SELF_APPROVAL: f"You cannot approve or deny your own request #{request.id}"
        + (f" (filed for you by <@{request.filed_by}>)." if request.filed_by else "."),
        reason.NOT_AN_APPROVER: f"Only the approvers of {request.resource} can {verb} request #{request.id}.",
        reason.ALREADY_DECIDED: f"Request #{request.id} is already {state}"
        + (" (by {people})." if request.decided_by else "."),
        reason.ALREADY_VOTED: f"You already voted on request #{request.id}; it needs "
        f"{request.approvals_required} distinct approvers.",
        reason.NOT_THE_REQUESTER: f"Only the requester can {verb} request #{request.id}.",
        reason.FILED_IT: f"You filed request #{request.id} on <@{request.requester_id}>'s behalf, so you cannot "
        "approve or deny it; another approver must.",
        reason.WRONG_STATE: f"Request #{request.id} is {state}, so it cannot be {verb}led now."
        if verb == "cancel"
        else f"Request #{request.id} is {state}; nothing to {verb}.",
    }
    return messages.get(decision.reason, f"You cannot do that to request #{request.id}.")


def deciders(request: AccessRequest) -> list[str]:
    """The IDs of who decided the request, for a refusal that names them."""
    return [i.strip() for i in (request.decided_by or "").split(",") if i.strip()]


def short(text: str) -> str:
    return text if len(text) <= 40 else text[:40] + "…"


def scheduled_start(ctx: Context, start: str, who: str, item: AnyResource, *, break_glass: bool) -> datetime:
    """The moment `start=` names, read in `who`'s Slack time zone; UserError unless it is to come, within
    the resource's max_start_ahead."""
    if break_glass:
        raise UserError("Break-glass access starts at once; it takes no start=.", field="start")
    now = ctx.clock()
    try:
        moment = parse_start(start, now, ctx.directory.tz_of(who))
        check_start(moment, now, item.max_start_ahead)
    except StartError as exc:
        raise UserError(str(exc), field="start") from exc
    return moment
