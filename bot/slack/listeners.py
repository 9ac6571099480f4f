"""Thin listeners: parse, call the workflow, ack, hand slow work to the background.

The app runs with process_before_response, so an error raised here reaches the one error handler
in app.py while Slack's HTTP request is still open, and is answered privately there.
"""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App

from bot.background import Background
from bot.slack import commands, messages
from bot.workflow import Workflow


def register(app: App, workflow: Workflow, background: Background) -> None:
    """Attach every listener to the app."""

    @app.command("/access")
    def on_access(ack: Ack, command: dict[str, Any]) -> None:
        parsed = commands.parse_command(str(command.get("text") or ""))
        if isinstance(parsed, commands.Help):
            ack(text=messages.HELP, response_type="ephemeral")
            return
        request = workflow.submit(
            requester=str(command["user_id"]),
            resource=parsed.resource,
            duration=parsed.duration,
            reason=parsed.reason,
        )
        ack(
            text=f"Request #{request.id} for *{request.resource}* ({messages.duration_of(request)}) "
            f"is waiting for approval in <#{request.approval_channel}>.",
            response_type="ephemeral",
        )
        background.submit(workflow.announce, request.id)

    @app.action(messages.ACTION_APPROVE)
    def on_approve(ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        _decide(ack, body, action, approve=True)

    @app.action(messages.ACTION_DENY)
    def on_deny(ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        _decide(ack, body, action, approve=False)

    def _decide(ack: Ack, body: dict[str, Any], action: dict[str, Any], *, approve: bool) -> None:
        request_id = commands.parse_request_id(str(action.get("value", "")))
        workflow.decide(request_id=request_id, actor=str(body["user"]["id"]), approve=approve)
        ack()
        background.submit(workflow.after_decision, request_id)
