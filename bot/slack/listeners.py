"""Thin listeners: parse, call the workflow, ack, hand slow work to the background.

The app runs with process_before_response, so an error raised here reaches the one error handler
in app.py while Slack's HTTP request is still open, and is answered privately there.
"""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App

from bot.background import Background
from bot.clock import utcnow
from bot.durations import format_duration
from bot.errors import UserError
from bot.slack import commands, messages, views
from bot.slack.notify import SlackNotifier
from bot.workflow import Workflow


def register(app: App, workflow: Workflow, background: Background, notifier: SlackNotifier) -> None:
    """Attach every listener to the app."""

    def reply(ack: Ack, text: str) -> None:
        ack(text=text, response_type="ephemeral")

    @app.command("/access")
    def on_access(ack: Ack, command: dict[str, Any]) -> None:
        user = str(command["user_id"])
        parsed = commands.parse_command(str(command.get("text") or ""))
        if isinstance(parsed, commands.Help):
            reply(ack, messages.HELP)
        elif isinstance(parsed, commands.OpenForm):
            form = views.request_view(workflow.catalog, workflow.requestable(user))
            notifier.open_view(str(command.get("trigger_id", "")), form)
            ack()
        elif isinstance(parsed, commands.Request):
            request = workflow.submit(
                requester=user,
                resource=parsed.resource,
                duration=parsed.duration,
                reason=parsed.reason,
                break_glass=parsed.break_glass,
            )
            reply(ack, _filed(request))
            background.submit(workflow.announce, request.id, request.claimed_by)
        elif isinstance(parsed, commands.Mine):
            now = utcnow()
            rows = workflow.mine(user)
            reply(ack, "\n".join(messages.line(r, now) for r in rows) or "You have no requests yet.")
        elif isinstance(parsed, commands.Pending):
            now = utcnow()
            rows = workflow.waiting_for(user)
            text = "\n".join(f"{messages.line(r, now)} from <@{r.requester_id}>" for r in rows)
            reply(ack, text or "Nothing waits for your approval.")
        elif isinstance(parsed, commands.ShowCatalog):
            reply(ack, _catalog(workflow, user))
        elif isinstance(parsed, commands.Cancel):
            workflow.cancel(request_id=parsed.request_id, actor=user)
            reply(ack, f"Request #{parsed.request_id} is cancelled.")
        elif isinstance(parsed, commands.Revoke):
            workflow.revoke_early(request_id=parsed.request_id, actor=user)
            reply(ack, f"Revoking #{parsed.request_id} now; you will get a message when AWS confirms.")
            background.submit(workflow.end, parsed.request_id)
        elif isinstance(parsed, commands.Extend):
            _extend(ack, user, parsed.request_id, parsed.duration)

    def _extend(ack: Ack, user: str, request_id: int, duration: str) -> None:
        request = workflow.request_extension(request_id=request_id, actor=user, duration=duration)
        claim = request.claimed_by
        if request.extension_approved_at is not None:
            reply(ack, f"Extension of #{request_id} by {duration} is approved automatically; applying it now.")
        else:
            reply(ack, f"Extension of #{request_id} by {duration} is waiting for approval.")
        background.submit(workflow.after_extension_request, request_id, claim)

    @app.action(messages.ACTION_APPROVE)
    def on_approve(ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        request_id, round = commands.parse_vote_value(str(action.get("value", "")))
        request = workflow.decide(request_id=request_id, actor=_user(body), approve=True, round=round)
        ack()
        background.submit(workflow.after_decision, request_id, request.claimed_by)

    @app.action(messages.ACTION_DENY)
    def on_deny(ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        request_id, round = commands.parse_vote_value(str(action.get("value", "")))
        request = workflow.check_vote(request_id=request_id, actor=_user(body), round=round)
        notifier.open_view(str(body.get("trigger_id", "")), views.deny_view(request_id, request.extension_round))
        ack()

    @app.view(views.DENY_VIEW)
    def on_deny_reason(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        request_id, round = commands.parse_vote_value(str(view.get("private_metadata", "")))
        reason = views.values(view).get("reason", "").strip()
        if not reason:
            raise UserError("Say why, so the requester knows what to change.", field="reason")
        workflow.decide(request_id=request_id, actor=_user(body), approve=False, comment=reason[:500], round=round)
        ack()
        background.submit(workflow.after_decision, request_id, None)

    @app.view(views.REQUEST_VIEW)
    def on_request_form(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        given = views.values(view)
        request = workflow.submit(
            requester=_user(body),
            resource=given.get("resource", ""),
            duration=given.get("duration") or None,
            reason=given.get("reason", ""),
        )
        ack()
        background.submit(workflow.announce, request.id, request.claimed_by)

    @app.action(messages.ACTION_EXTEND)
    def on_extend_button(ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        request_id = commands.parse_request_id(str(action.get("value", "")))
        request = workflow.mine_one(request_id=request_id, actor=_user(body))
        default = format_duration(workflow.catalog.defaults.default_duration)
        notifier.open_view(str(body.get("trigger_id", "")), views.extend_view(request.id or request_id, default))
        ack()

    @app.view(views.EXTEND_VIEW)
    def on_extend_form(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        request_id = commands.parse_request_id(str(view.get("private_metadata", "")))
        duration = views.values(view).get("duration", "")
        request = workflow.request_extension(request_id=request_id, actor=_user(body), duration=duration)
        ack()
        background.submit(workflow.after_extension_request, request_id, request.claimed_by)

    @app.action(messages.ACTION_REVOKE)
    def on_revoke_button(ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        request_id = commands.parse_request_id(str(action.get("value", "")))
        workflow.revoke_early(request_id=request_id, actor=_user(body))
        ack()
        background.submit(workflow.end, request_id)

    @app.action(messages.ACTION_CANCEL)
    def on_cancel_button(ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        workflow.cancel(request_id=commands.parse_request_id(str(action.get("value", ""))), actor=_user(body))
        ack()

    @app.action(messages.ACTION_ACK)
    def on_acknowledge(ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        workflow.acknowledge(request_id=commands.parse_request_id(str(action.get("value", ""))), actor=_user(body))
        ack()

    @app.event("app_home_opened")
    def on_home(event: dict[str, Any]) -> None:
        user = str(event.get("user", ""))
        if event.get("tab", "home") == "home" and user:
            notifier.publish_home(user, views.home_view(workflow.mine(user), workflow.waiting_for(user), utcnow()))


def _user(body: dict[str, Any]) -> str:
    user = body.get("user")
    if not isinstance(user, dict) or not isinstance(user.get("id"), str):
        raise UserError("This request has no user; nothing was done.")
    return str(user["id"])


def _filed(request: Any) -> str:
    if request.break_glass:
        return f"Break-glass #{request.id}: *{request.resource}* is being granted now; the approvers are told."
    if request.auto_approved:
        return f"Request #{request.id} for *{request.resource}* is auto-approved; granting it now."
    return (
        f"Request #{request.id} for *{request.resource}* ({messages.duration_of(request)}) "
        f"is waiting for approval in <#{request.approval_channel}>."
    )


def _catalog(workflow: Workflow, user: str) -> str:
    lines = []
    for name in workflow.requestable(user):
        item = workflow.catalog.resources[name]
        extras = " · break-glass" if item.break_glass else ""
        lines.append(
            f"• *{name}* ({item.kind.value}) — {item.description or item.target}; up to "
            f"{format_duration(item.max_duration)}, {item.approvals_required} approval(s){extras}"
        )
    return "\n".join(lines) or "There is nothing in the catalog you may request."
