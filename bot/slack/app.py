"""build_app(): the Bolt app with its listeners and the one error boundary."""

from __future__ import annotations

import json
import logging
from typing import Any

from slack_bolt import App, BoltResponse
from slack_sdk import WebClient

from bot.activity.reporter import ActivityReporter
from bot.background import Background
from bot.slack import listeners
from bot.slack.deferred import explain
from bot.slack.notify import SlackNotifier
from bot.workflow import Workflow


def build_app(
    *,
    client: WebClient,
    signing_secret: str | None,
    workflow: Workflow,
    notifier: SlackNotifier,
    background: Background,
    activity: ActivityReporter | None = None,
) -> App:
    """The Slack app: listeners registered, errors answered privately."""
    app = App(
        client=client,
        signing_secret=signing_secret or "socket-mode-does-not-sign",
        token_verification_enabled=False,
        request_verification_enabled=signing_secret is not None,
        raise_error_for_unhandled_request=False,
        process_before_response=True,
        logger=logging.getLogger("bot.slack.bolt"),
    )
    listeners.register(app, workflow, background, notifier, activity)

    @app.error
    def on_error(error: Exception, body: dict[str, Any], response: BoltResponse | None) -> BoltResponse | None:
        text = explain(error)
        user, channel = _who_and_where(body)
        if body.get("type") == "view_submission":
            field = getattr(error, "field", None) or _first_input(body)
            return BoltResponse(
                status=200,
                body=json.dumps({"response_action": "errors", "errors": {field: text[:300]}}),
                headers={"content-type": "application/json"},
            )
        if "command" in body:
            return BoltResponse(
                status=200,
                body=json.dumps({"response_type": "ephemeral", "text": text}),
                headers={"content-type": "application/json"},
            )
        if user:
            notifier.private(channel, user, text)
        return BoltResponse(status=200, body="")

    return app


def _who_and_where(body: dict[str, Any]) -> tuple[str | None, str | None]:
    user = body.get("user_id") or _id(body.get("user"))
    channel = body.get("channel_id") or _id(body.get("channel"))
    return (str(user) if user else None), (str(channel) if channel else None)


def _first_input(body: dict[str, Any]) -> str:
    view = body.get("view")
    values = view.get("state", {}).get("values", {}) if isinstance(view, dict) else {}
    return next(iter(values), "reason") if isinstance(values, dict) else "reason"


def _id(value: object) -> object:
    return value.get("id") if isinstance(value, dict) else None
