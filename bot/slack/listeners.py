"""Thin listeners: ack, parse, call the workflow, render. Errors go to the one handler in app.py."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App

from bot.slack import commands, messages
from bot.workflow import Workflow


def register(app: App, workflow: Workflow) -> None:
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
        assert request.id is not None
        workflow.announce(request.id)

    @app.action(messages.ACTION_APPROVE)
    def on_approve(ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        ack()
        workflow.decide(
            request_id=commands.parse_request_id(str(action.get("value", ""))),
            actor=str(body["user"]["id"]),
            approve=True,
        )

    @app.action(messages.ACTION_DENY)
    def on_deny(ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        ack()
        workflow.decide(
            request_id=commands.parse_request_id(str(action.get("value", ""))),
            actor=str(body["user"]["id"]),
            approve=False,
        )
