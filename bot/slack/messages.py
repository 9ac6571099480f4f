"""Block Kit builders and message texts; pure functions of a request."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from bot.domain.lifecycle import Status
from bot.durations import format_duration
from bot.store.models import AccessRequest, Vote

ACTION_APPROVE = "accessbot_approve"
ACTION_DENY = "accessbot_deny"

Blocks = list[dict[str, Any]]


def _mention(user: str) -> str:
    return f"<@{user}>"


def _when(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    return f"<!date^{int(moment.timestamp())}^{{date_short_pretty}} {{time}}|{moment:%Y-%m-%d %H:%M} UTC>"


def duration_of(request: AccessRequest) -> str:
    """The requested duration, as people write it."""
    return format_duration(timedelta(seconds=request.duration_seconds))


def summary(request: AccessRequest) -> str:
    """One line that names the request."""
    return f"#{request.id} {_mention(request.requester_id)} → *{request.resource}* for {duration_of(request)}"


def approval_blocks(request: AccessRequest, votes: list[Vote]) -> Blocks:
    """The approval message: who wants what and why, progress, and the buttons while pending."""
    approved = [v.approver_id for v in votes if v.approve]
    blocks: Blocks = [
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": f"*Access request #{request.id}*\n{_mention(request.requester_id)} asks for "
                f"*{request.resource}* (`{request.kind}` {request.target}) for *{duration_of(request)}*.",
            },
            "fields": [
                {"type": "mrkdwn", "text": f"*Reason*\n{_escape(request.reason)}"},
                {"type": "mrkdwn", "text": f"*IAM user*\n{request.iam_user}"},
            ],
        },
        {"type": "context", "elements": [{"type": "mrkdwn", "text": _progress(request, approved)}]},
    ]
    if request.status == Status.PENDING:
        value = str(request.id)
        blocks.append(
            {
                "type": "actions",
                "block_id": f"decide-{request.id}",
                "elements": [
                    {
                        "type": "button",
                        "action_id": ACTION_APPROVE,
                        "style": "primary",
                        "value": value,
                        "text": {"type": "plain_text", "text": "Approve"},
                    },
                    {
                        "type": "button",
                        "action_id": ACTION_DENY,
                        "style": "danger",
                        "value": value,
                        "text": {"type": "plain_text", "text": "Deny"},
                    },
                ],
            }
        )
    return blocks


def approval_text(request: AccessRequest, votes: list[Vote]) -> str:
    """The plain-text fallback of the approval message (notifications, screen readers)."""
    approved = [v.approver_id for v in votes if v.approve]
    return f"Access request {summary(request)}: {_progress(request, approved)}"


def _progress(request: AccessRequest, approved: list[str]) -> str:
    status = Status(request.status)
    who = ", ".join(_mention(a) for a in approved)
    if status is Status.PENDING:
        done = f" (approved by {who})" if approved else ""
        return f"Waiting for approval: {len(approved)} of {request.approvals_required}{done}."
    if status is Status.DENIED:
        because = f": {_escape(request.deny_reason)}" if request.deny_reason else ""
        return f":x: Denied by {_mention(request.decided_by or '?')}{because}"
    if status is Status.TIMED_OUT:
        return ":hourglass: Timed out: nobody decided in time."
    if status is Status.CANCELLED:
        return f":leftwards_arrow_with_hook: Cancelled by {_mention(request.requester_id)}."
    if status is Status.FAILED:
        return f":warning: Approved by {who}, but AWS refused the grant: {_escape(request.last_error or '')}"
    return f":white_check_mark: Approved by {who}."


def requester_text(request: AccessRequest, event: str) -> str:
    """The DM the requester gets at each step."""
    name = f"*{request.resource}* (request #{request.id})"
    texts = {
        "filed": f"Your request for {name} for {duration_of(request)} is waiting for approval.",
        "approved": f"Your request for {name} was approved by {_mentions(request.decided_by)}; granting it now.",
        "denied": f"Your request for {name} was denied by {_mentions(request.decided_by)}"
        + (f": {_escape(request.deny_reason)}" if request.deny_reason else "."),
        "active": f"You now have {name} until {_when(request.expires_at)}.",
        "failed": f"Your request for {name} failed: {_escape(request.last_error or 'unknown error')}",
        "expiring": f"Your access to {name} ends at {_when(request.expires_at)}.",
        "ended": f"Your access to {name} has ended ({request.status.replace('_', ' ')}).",
        "timed_out": f"Your request for {name} timed out: no approver decided in time.",
        "cancelled": f"You cancelled request #{request.id}.",
    }
    return texts[event]


def _mentions(ids: str | None) -> str:
    return ", ".join(_mention(i.strip()) for i in (ids or "").split(",") if i.strip()) or "an approver"


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


HELP = """*accessbot* gives you time-limited AWS access after an approval.
• `/access request <resource> <duration> <reason…>` — ask for access, e.g. `/access request deploy-admins 1h deploy fix`
• `/access help` — this message
Durations look like `90s`, `45m`, `2h`, `1d` or `1h30m`. Request IDs are shown as `#<id>`."""
