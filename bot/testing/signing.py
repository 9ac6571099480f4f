"""Sends requests to the bot exactly as Slack does: form-encoded (events as JSON) and signed with the secret."""

from __future__ import annotations

import itertools
import json
import secrets
import time
from typing import Any
from urllib.parse import urlencode

import requests
from slack_sdk.signature import SignatureVerifier

TEAM = "T0TEAM"
APP = "A0BOT"
TRIGGER = "1337.42.abcd"


def sign(secret: str, body: str, timestamp: int) -> dict[str, str]:
    """The headers Slack adds to a request: timestamp and v0 HMAC-SHA256 signature."""
    signature = SignatureVerifier(secret).generate_signature(timestamp=str(timestamp), body=body)
    return {"X-Slack-Request-Timestamp": str(timestamp), "X-Slack-Signature": signature or ""}


class SlackSender:
    """A stand-in for Slack's servers calling the bot's Request URL."""

    def __init__(self, url: str, secret: str, response_base: str = "http://127.0.0.1:9/response/") -> None:
        self.url = url.rstrip("/") + "/slack/events"
        self.secret = secret
        self.response_base = response_base  # where response_url points; a fake Slack records it
        self.session = requests.Session()
        self._numbers = itertools.count(1)
        # response_url -> (user, channel) it answers: whoever shows its answers knows who sees them, and where
        self.answers_to: dict[str, tuple[str, str]] = {}

    def post(
        self,
        body: str,
        *,
        timestamp: int | None = None,
        secret: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> requests.Response:
        """POST a raw form body, signed (with another secret or timestamp when a test says so)."""
        stamp = int(time.time()) if timestamp is None else timestamp
        sent = {"Content-Type": "application/x-www-form-urlencoded", **sign(secret or self.secret, body, stamp)}
        sent.update(headers or {})
        return self.session.post(self.url, data=body.encode(), headers=sent, timeout=15)

    def command(
        self,
        user: str,
        text: str,
        *,
        channel: str = "C0GENERAL",
        trigger_id: str | None = None,
        response_url: str | None = None,
        **kw: Any,
    ) -> requests.Response:
        """Send `/access <text>` as `user`; like Slack, a fresh trigger and response_url each time unless given."""
        number = next(self._numbers)
        url = response_url or self.response_url_of(number)
        self.answers_to[url] = (user, channel)
        body = urlencode(
            {
                "token": "legacy",
                "team_id": TEAM,
                "team_domain": "acme",
                "channel_id": channel,
                "channel_name": "general",
                "user_id": user,
                "user_name": user.lower(),
                "command": "/access",
                "text": text,
                "api_app_id": APP,
                "response_url": url,
                "trigger_id": trigger_id or f"{number}.{secrets.token_hex(6)}",  # unique, as Slack's are
            }
        )
        return self.post(body, **kw)

    def response_url_of(self, number: int) -> str:
        """The response_url of the `number`th command sent (see `ask`)."""
        return f"{self.response_base}cmd/{number}"

    def click(
        self,
        user: str,
        action_id: str,
        value: str,
        *,
        channel: str = "C0APPROVALS",
        message_ts: str = "1700000000.000001",
        **kw: Any,
    ) -> requests.Response:
        """Click a button in a message as `user`."""
        response_url = f"{self.response_base}action/{next(self._numbers)}"
        self.answers_to[response_url] = (user, channel)
        payload = {
            "type": "block_actions",
            "team": {"id": TEAM},
            "user": {"id": user, "username": user.lower()},
            "api_app_id": APP,
            "token": "legacy",
            "trigger_id": TRIGGER,
            "channel": {"id": channel},
            "container": {"type": "message", "message_ts": message_ts},
            "message": {"ts": message_ts, "text": "", "blocks": []},
            "response_url": response_url,
            "actions": [
                {
                    "type": "button",
                    "action_id": action_id,
                    "block_id": "b",
                    "value": value,
                    "action_ts": str(time.time()),
                }
            ],
        }
        return self.interactive(payload, **kw)

    def submit_view(self, user: str, view: dict[str, Any], values: dict[str, str], **kw: Any) -> requests.Response:
        """Submit a modal with `values` typed into its inputs (by block ID); the rest keep their initial value."""
        state: dict[str, Any] = {}
        for block in view.get("blocks", []):
            if block.get("type") != "input":
                continue
            block_id, element = block["block_id"], block["element"]
            typed = values.get(block_id, element.get("initial_value"))
            if element["type"] == "static_select":
                # Slack sends the whole option chosen; a value that is not among them is a forged one.
                listed = [o for o in element.get("options", []) if o.get("value") == typed]
                forged = {"value": typed} if typed else None
                answer = {"type": "static_select", "selected_option": listed[0] if listed else forged}
            else:
                answer = {"type": "plain_text_input", "value": typed}
            state[block_id] = {element["action_id"]: answer}
        payload = {
            "type": "view_submission",
            "team": {"id": TEAM},
            "user": {"id": user, "username": user.lower()},
            "api_app_id": APP,
            "token": "legacy",
            "trigger_id": TRIGGER,
            "view": {"id": "V0VIEW", **view, "state": {"values": state}},
        }
        return self.interactive(payload, **kw)

    def event(self, event: dict[str, Any], **kw: Any) -> requests.Response:
        """Deliver an Events API event (JSON body)."""
        body = json.dumps(
            {
                "token": "legacy",
                "team_id": TEAM,
                "api_app_id": APP,
                "type": "event_callback",
                "event_id": f"Ev{int(time.time() * 1000)}",
                "event_time": int(time.time()),
                "event": event,
            }
        )
        return self.post(body, headers={"Content-Type": "application/json"}, **kw)

    def interactive(self, payload: Any, **kw: Any) -> requests.Response:
        """Send any interactivity payload (form field `payload`)."""
        return self.post(urlencode({"payload": json.dumps(payload)}), **kw)
