"""Block Kit builders and message texts for channels and DMs; pure functions of a request."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from bot.catalog.tickets import Ticket
from bot.domain.lifecycle import Status
from bot.durations import format_duration
from bot.store.models import AccessRequest, Vote
from bot.workflow.base import Alert

ACTION_APPROVE = "accessbot_approve"
ACTION_DENY = "accessbot_deny"
ACTION_ACK = "accessbot_acknowledge"
ACTION_EXTEND = "accessbot_extend"
ACTION_REVOKE = "accessbot_revoke"
ACTION_CANCEL = "accessbot_cancel"

Blocks = list[dict[str, Any]]
SLACK_USER = re.compile(r"^[UW][A-Z0-9]{2,}$")
SLACK_GROUP = re.compile(r"^S[A-Z0-9]{2,}$")


def mention(user: str) -> str:
    """A Slack user (or user-group) mention; an actor that is no Slack user (`cli:alice`, the bot) as plain text."""
    if SLACK_GROUP.match(user):
        return f"<!subteam^{user}>"
    return f"<@{user}>" if SLACK_USER.match(user) else f"`{escape(user)}`"


def when(moment: datetime | None) -> str:
    """A date Slack shows in the reader's time zone (UTC in the fallback)."""
    if moment is None:
        return "-"
    return f"<!date^{int(moment.timestamp())}^{{date_short_pretty}} {{time}}|{moment:%Y-%m-%d %H:%M} UTC>"


def left(request: AccessRequest, now: datetime) -> str:
    """Time left on an active grant, as people write durations."""
    if request.expires_at is None:
        return "-"
    return format_duration(request.expires_at - now) + " left"


def working_on(resource: str, duration: str) -> str:
    """The ack of `/access request`: filing follows at once, and its answer replaces nothing but follows this."""
    return f"Filing your request for *{resource}* ({duration})…"


def duration_of(request: AccessRequest) -> str:
    """The requested duration, as people write it."""
    return format_duration(timedelta(seconds=request.duration_seconds))


def button(label: str, action_id: str, value: str, style: str | None = None) -> dict[str, Any]:
    """A Block Kit button."""
    element: dict[str, Any] = {
        "type": "button",
        "action_id": action_id,
        "value": value,
        "text": {"type": "plain_text", "text": label},
    }
    if style:
        element["style"] = style
    return element


def _is_extension(request: AccessRequest) -> bool:
    return request.extension_round > 0 and request.status == Status.ACTIVE


def approval_blocks(request: AccessRequest, votes: list[Vote], ticket: Ticket | None = None) -> Blocks:
    """The approval message: who wants what and why (its ticket linked), progress, and the buttons while open."""
    blocks: Blocks = [
        {"type": "section", "text": {"type": "mrkdwn", "text": _headline(request)}, "fields": _fields(request, ticket)},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": progress(request, votes)}]},
    ]
    if request.warning:  # at the top: the approver reads it before anything else
        blocks.insert(0, {"type": "section", "text": {"type": "mrkdwn", "text": warning_line(request.warning)}})
    if request.on_call_note and not request.auto_approved:
        note = f":grey_question: {escape(capitalized(request.on_call_note))}, so it waits for a person."
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": note}]})
    if request.notify and deciding(request):
        who = " ".join(mention(n) for n in request.notify.split(",") if n)
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"For {who}"}]})
    buttons = []
    if deciding(request):
        value = f"{request.id}:{request.extension_round}"
        buttons = [button("Approve", ACTION_APPROVE, value, "primary"), button("Deny", ACTION_DENY, value, "danger")]
    elif request.break_glass and request.acknowledged_at is None and request.status == Status.ACTIVE:
        buttons = [button("Acknowledge", ACTION_ACK, str(request.id), "primary")]
    if buttons:
        blocks.append({"type": "actions", "block_id": f"decide-{request.id}", "elements": buttons})
    return blocks


def warning_line(warning: str) -> str:
    """A resource's warning, as shown in the form, the confirmation and the approval message."""
    return f":warning: *{escape(warning)}*"


def capitalized(text: str) -> str:
    """The text with its first letter in upper case (notes are kept in lower case to fit mid-sentence)."""
    return text[:1].upper() + text[1:]


def deciding(request: AccessRequest) -> bool:
    """Whether the request (or its extension) waits for approvers."""
    if request.status == Status.PENDING:
        return True
    return _is_extension(request) and request.extension_seconds is not None and request.extension_approved_at is None


def approval_text(request: AccessRequest, votes: list[Vote], ticket: Ticket | None = None) -> str:
    """The plain-text fallback of the approval message (notifications, screen readers)."""
    about = f" ({ticket_link(ticket)})" if ticket else ""
    if request.filed_by:
        about += f" for {mention(request.requester_id)}, filed by {mention(request.filed_by)}"
    return f"Access request #{request.id} for {request.resource}{starting(request)}{about}: {progress(request, votes)}"


def ticket_link(ticket: Ticket) -> str:
    """The ticket reference, as a Slack link where the resource has a `ticket_url`."""
    return f"<{escape(ticket.url)}|{escape(ticket.reference)}>" if ticket.url else f"`{escape(ticket.reference)}`"


def _headline(request: AccessRequest) -> str:
    who = mention(request.requester_id)
    if request.filed_by:
        who += f" (filed by {mention(request.filed_by)})"
    if _is_extension(request):
        more = (
            f"*{format_duration(timedelta(seconds=request.extension_seconds))}* more"
            if request.extension_seconds
            else "more time"
        )
        return (
            f"*Extension {request.extension_round} of request #{request.id}*\n{who} asks for {more} on "
            f"*{request.resource}* (now until {when(request.expires_at)})."
        )
    if request.break_glass:
        return (
            f":rotating_light: *BREAK-GLASS access #{request.id}*\n{who} activated *{request.resource}* "
            f"for *{duration_of(request)}* without waiting for approval."
        )
    if request.filed_by:
        return (
            f"*Access request #{request.id}* for {mention(request.requester_id)}, filed by "
            f"{mention(request.filed_by)}\n*{request.resource}* (`{request.kind}` {request.target}) "
            f"for *{duration_of(request)}*{starting(request)}."
        )
    return (
        f"*Access request #{request.id}*\n{who} asks for *{request.resource}* "
        f"(`{request.kind}` {request.target}) for *{duration_of(request)}*{starting(request)}."
    )


def starting(request: AccessRequest) -> str:
    """`, starting at <time>` for a request with a scheduled start; empty for one granted on approval."""
    return f", starting at {when(request.starts_at)}" if request.starts_at is not None else ""


def scheduled(request: AccessRequest) -> bool:
    """Whether the request waits for its scheduled start: approved, its grant not begun."""
    return request.starts_at is not None and request.grant_started_at is None and request.status == Status.APPROVED


def _fields(request: AccessRequest, ticket: Ticket | None) -> list[dict[str, str]]:
    fields = [
        {"type": "mrkdwn", "text": f"*Reason*\n{escape(request.reason)}"},
        {"type": "mrkdwn", "text": f"*{principal_label(request)}*\n{escape(request.iam_user)}"},
    ]
    if ticket:
        fields.insert(1, {"type": "mrkdwn", "text": f"*Ticket*\n{ticket_link(ticket)}"})
    return fields


def progress(request: AccessRequest, votes: list[Vote]) -> str:
    """Where the decision stands, and who made it."""
    approved = [v.approver_id for v in votes if v.approve]
    denied = [v for v in votes if not v.approve]
    who = ", ".join(mention(a) for a in approved)
    status = Status(request.status)
    waiting = f"Waiting for approval: {len(approved)} of {request.approvals_required}" + (
        f" (approved by {who})." if approved else "."
    )
    if status is Status.PENDING or deciding(request):
        return waiting
    if _is_extension(request):
        if denied:
            return f":x: Extension denied by {mention(denied[-1].approver_id)}{because(denied[-1].comment)}"
        return f":white_check_mark: Extension approved by {who or 'auto-approval'}."
    ended = {
        Status.DENIED: f":x: Denied by {mention(request.decided_by or '?')}{because(request.deny_reason)}",
        Status.TIMED_OUT: ":hourglass: Timed out: nobody decided in time.",
        Status.CANCELLED: f":leftwards_arrow_with_hook: Cancelled by {mention(request.requester_id)}.",
        Status.FAILED: f":warning: Approved, but AWS refused the grant: {escape(request.last_error or '')}",
        Status.REVOKED: f":no_entry: Revoked early by {mention(request.ended_by or request.requester_id)}.",
        Status.EXPIRED: ":checkered_flag: Expired; the access was removed.",
    }
    if status in ended:
        return ended[status]
    if request.break_glass:
        ack = request.acknowledged_by
        return f"Acknowledged by {mention(ack)}." if ack else ":warning: Needs acknowledgement by an approver."
    if request.auto_approved and request.on_call_note:
        return f":robot_face: Approved: {escape(request.on_call_note)}."
    if request.auto_approved:
        return ":robot_face: Auto-approved (within the catalog's auto_approve limit)."
    approved_by = f":white_check_mark: Approved by {who or mentions(request.decided_by)}"
    return approved_by + (f"; starts at {when(request.starts_at)}." if scheduled(request) else ".")


def because(reason: str | None) -> str:
    """A reason given, as the end of a sentence."""
    return f": {escape(reason)}" if reason else "."


def principal_label(request: AccessRequest) -> str:
    """What the request's principal is: an IAM user, or for the Identity Center kinds an Identity Center user."""
    return "Identity Center user" if request.kind in ("sso_permission_set", "sso_group") else "IAM user"


def revoked_early_text(request: AccessRequest) -> str:
    """The note under the approval message when a grant is ended early."""
    return f"Request #{request.id} was revoked early by {mention(request.ended_by or request.requester_id)}."


def reminder_text(request: AccessRequest, approvers: Sequence[str], *, escalated: bool) -> str:
    """A reminder (or an escalation) under the approval message, mentioning who may decide."""
    lead = "Escalated" if escalated else "Reminder"
    who = " ".join(mention(a) for a in approvers)
    return f"{lead}: request #{request.id} is still waiting for a decision. {who}".strip()


def acknowledgement_nag_text(request: AccessRequest) -> str:
    """The nag under a break-glass message until an approver acknowledges it."""
    return f":rotating_light: Break-glass request #{request.id} is still not acknowledged by an approver."


def alert_text(request: AccessRequest, alert: Alert, *, attempts: int, error: str) -> str:
    """An alert about owed AWS work that keeps failing."""
    if alert is Alert.SESSIONS_AT_RISK:
        return f"#{request.id} ended, but {error}"
    if alert is Alert.DENY_CAPACITY:
        return f":rotating_light: Ending #{request.id}: {error}"
    what = "Lifting the session deny of" if alert is Alert.LIFT_FAILING else "Revoking"
    return f"{what} #{request.id} failed {attempts} times: {error}"


def line(request: AccessRequest, now: datetime, given_up: str | None = None) -> str:
    """One line per request in lists: id, resource, state, and time left or duration (`given_up`: Slack's last
    answer when its approval message was given up)."""
    state = request.status.replace("_", " ")
    extra = left(request, now) if request.status == Status.ACTIVE else duration_of(request)
    if request.starts_at is not None and request.status in (Status.PENDING, Status.APPROVED):
        extra += f", starts {when(request.starts_at)}"
    pending_extension = " (extension waiting)" if request.extension_seconds is not None else ""
    if request.status == Status.PENDING and not request.approval_ts:
        pending_extension += " — :warning: " + _unposted(given_up)
    return f"#{request.id} *{request.resource}* — {state}, {extra}{pending_extension}"


def _unposted(given_up: str | None) -> str:
    """Why the approvers of a pending request may not know of it: its approval message is not in Slack."""
    if given_up is None:  # the outbox keeps trying
        return "approval message not posted yet (retrying); approvers may not know"
    if given_up == "dropped":
        return "no approval message is on its way (dropped, or posted but not recorded); tell the approvers"
    return (
        f"the approval message could not be posted (Slack: {given_up or 'no answer'}); approvers were not told: "
        "tell them, or ask an operator to resend it (`accessbot outbox retry`)"
    )


def mentions(ids: str | None) -> str:
    """Who decided, as mentions (the bot by name); "an approver" when nobody is recorded."""
    names = [i.strip() for i in (ids or "").split(",") if i.strip()]
    return ", ".join("accessbot (automatic)" if n == "accessbot" else mention(n) for n in names) or "an approver"


def escape(text: str) -> str:
    """Escape Slack's control characters in user-supplied text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


HELP = """*accessbot* gives you time-limited AWS access after an approval.
• `/access` or `/access request` — open a form to ask for access
• `/access request <resource> <duration> <reason…>` — e.g. `/access request deploy-admins 1h deploy fix`
• `/access request <resource> <duration> for=@someone <reason…>` — for a teammate (approvers, delegates)
• `/access request <resource> <duration> start=<when> <reason…>` — later: `+30m`, `14:00` (your zone), ISO
• `/access list` — your requests and grants, with time left
• `/access pending` — requests waiting for your approval
• `/access cancel <id>` — withdraw a pending request (or an approved one before its start)
• `/access revoke <id>` — end your grant (or, as an approver, someone's) now
• `/access extend <id> <duration>` — ask for more time on an active grant
• `/access catalog` — what you may request
• `/access activity <id>` — what a grant was used for, from CloudTrail (requester, approvers, auditors)
• `/access breakglass <resource> <duration> <reason…>` — emergency access without waiting (where allowed)
Durations look like `90s`, `45m`, `2h`, `1d` or `1h30m`. Request IDs are shown as `#<id>`.
Some resources need a ticket reference in the reason (e.g. `OPS-123`); `/access catalog` shows which."""


AUDIT_LINES = {
    "active": ":key: {id} {who} now has {name} ({iam}) until {until}; approved by {approvers}. Reason: {reason}",
    "expired": ":checkered_flag: {id} {name} for {who} expired; the access was removed.",
    "revoked": ":no_entry: {id} {name} for {who} was revoked early by {ended_by}; the access was removed.",
    "denied": ":x: {id} {who}'s request for {name} was denied by {approvers}{because}",
    "failed": ":warning: {id} {name} for {who} was approved, but AWS refused the grant: {error}",
    "break_glass": ":rotating_light: {id} BREAK-GLASS: {who} took {name} for {duration} without approval. "
    "Reason: {reason}",
    "alert": ":rotating_light: {id} alert about {name} for {who}: {note}",
}


def audit_line(request: AccessRequest, event: str, note: str | None = None) -> str:
    """One line for the audit channel about a grant, end, denial, failure, break-glass or alert."""
    line = AUDIT_LINES[event].format(
        id=f"#{request.id}",
        who=mention(request.requester_id),
        name=f"*{request.resource}*",
        iam=escape(request.iam_user),
        until=when(request.expires_at),
        approvers=mentions(request.decided_by),
        ended_by=mention(request.ended_by or request.requester_id),
        because=because(request.deny_reason),
        error=escape(request.last_error or "unknown error"),
        duration=duration_of(request),
        reason=escape(request.reason),
        note=escape(note or ""),
    )
    if note and event == "revoked":
        line += f" Reason: {escape(note)}"
    if request.filed_by:
        line += f" (Filed by {mention(request.filed_by)} for {mention(request.requester_id)}.)"
    if event == "active" and request.auto_approved and request.on_call_note:
        line = line.replace(f"approved by {mentions(request.decided_by)}", f"approved: {request.on_call_note}")
    return line
