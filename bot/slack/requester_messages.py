"""The DMs a requester (and whoever filed for them) gets at each step; pure functions of a request."""

from __future__ import annotations

from bot.domain.lifecycle import Status
from bot.slack.messages import (
    ACTION_EXTEND,
    ACTION_REVOKE,
    Blocks,
    because,
    button,
    capitalized,
    duration_of,
    escape,
    mention,
    mentions,
    starting,
    warning_line,
    when,
)
from bot.store.models import AccessRequest

# KMS Developer Guide, "Grants in AWS KMS", "Eventual consistency": a revoked grant may take up to about
# five minutes to be seen throughout KMS, so the key may keep working for the grantee that long.
KMS_LINGERS = "AWS KMS may keep honouring the grant for a few minutes while the revoke reaches all of KMS."


def requester_text(request: AccessRequest, event: str, note: str | None = None) -> str:
    """The DM the requester gets at each step (an operator's note, such as a revoke reason, appended)."""
    text = _requester_text(request, event)
    if event in ("approved", "scheduled") and request.auto_approved and request.on_call_note:
        text = text.replace(f"approved by {mentions(request.decided_by)}", f"approved: {request.on_call_note}")
    if event == "filed" and request.on_call_note:
        text += f" {escape(capitalized(request.on_call_note))}."
    if event == "filed" and request.warning:
        text = f"{warning_line(request.warning)}\n{text}"
    if request.filed_by and event in ("filed", "approved", "scheduled"):
        text += f" {mention(request.filed_by)} filed it for you."
    if event == "ended" and request.status == Status.REVOKED and request.ended_by:
        text = text.removesuffix(".") + f" by {mention(request.ended_by)}."
    if event == "ended" and request.kind == "kms_key":
        text += f" {KMS_LINGERS}"
    return f"{text} Reason: {escape(note)}" if note else text


def filer_copy(request: AccessRequest, text: str) -> str:
    """The copy of a requester's DM sent to whoever filed the request on their behalf."""
    return f"About the request you filed for {mention(request.requester_id)}, who was told: {text}"


def _requester_text(request: AccessRequest, event: str) -> str:
    name = f"*{request.resource}* (request #{request.id})"
    texts = {
        "filed": f"Your request for {name} for {duration_of(request)}{starting(request)} is waiting for approval.",
        "approved": f"Your request for {name} was approved by {mentions(request.decided_by)}; granting it now.",
        "scheduled": f"Your request for {name} was approved by {mentions(request.decided_by)}; it starts at "
        f"{when(request.starts_at)}, for {duration_of(request)} from then. You can still cancel it until then.",
        "denied": f"Your request for {name} was denied by {mentions(request.decided_by)}"
        + because(request.deny_reason),
        "active": f"You now have {name} until {when(request.expires_at)}." + _how_to_use(request),
        "failed": f"Your request for {name} failed: {escape(request.last_error or 'unknown error')}",
        "expiring": f"Your access to {name} ends at {when(request.expires_at)}. Need longer? Extend it.",
        "ended": f"Your access to {name} has ended ({request.status.replace('_', ' ')}).",
        "timed_out": f"Your request for {name} timed out: no approver decided in time.",
        "extended": f"Your access to {name} was extended; it now ends at {when(request.expires_at)}.",
        "extension_denied": f"The extension of {name} was denied; it still ends at {when(request.expires_at)}.",
        "extension_failed": f"The extension of {name} failed: {escape(request.last_error or '')}",
    }
    return texts[event]


def _how_to_use(request: AccessRequest) -> str:
    """For a role: the source identity its sessions must carry; for a permission set: where to use it."""
    if request.kind == "sso_permission_set":
        return " Open it from your AWS access portal (or `aws sso login`); it may take a minute to appear."
    if request.kind != "iam_role":
        return ""
    return (
        f" Assume it with your IAM user as the source identity: `aws sts assume-role --role-arn {request.target} "
        f"--role-session-name {request.iam_user} --source-identity {request.iam_user}`."
    )


def requester_blocks(request: AccessRequest, event: str) -> Blocks | None:
    """Buttons that go with a DM, where there are any (Extend on the expiring-soon warning)."""
    if event != "expiring":
        return None
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": requester_text(request, event)}},
        {
            "type": "actions",
            "elements": [
                button("Extend", ACTION_EXTEND, str(request.id), "primary"),
                button("End now", ACTION_REVOKE, str(request.id)),
            ],
        },
    ]
