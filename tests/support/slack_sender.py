"""Sends requests to the bot exactly as Slack does: form-encoded and signed with the signing secret."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any
from urllib.parse import urlencode

import requests


def sign(secret: str, body: str, timestamp: int) -> dict[str, str]:
    """The headers Slack adds to a request: timestamp and v0 HMAC-SHA256 signature."""
    base = f"v0:{timestamp}:{body}".encode()
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": str(timestamp), "X-Slack-Signature": f"v0={digest}"}


class SlackSender:
    """A stand-in for Slack's servers calling the bot's Request URL."""

    def __init__(self, url: str, secret: str, response_base: str = "http://127.0.0.1:9/response/") -> None:
        self.url = url.rstrip("/") + "/slack/events"
        self.secret = secret
        self.response_base = response_base
        self.session = requests.Session()

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

    def command(self, user: str, text: str, *, channel: str = "C0GENERAL", **kw: Any) -> requests.Response:
        """Send `/access <text>` as `user`."""
        body = urlencode(
            {
                "token": "legacy",
                "team_id": "T0TEAM",
                "team_domain": "acme",
                "channel_id": channel,
                "channel_name": "general",
                "user_id": user,
                "user_name": user.lower(),
                "command": "/access",
                "text": text,
                "api_app_id": "A0BOT",
                "response_url": self.response_base + "cmd",
                "trigger_id": "1337.42.abcd",
            }
        )
        return self.post(body, **kw)

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
        payload = {
            "type": "block_actions",
            "team": {"id": "T0TEAM"},
            "user": {"id": user, "username": user.lower()},
            "api_app_id": "A0BOT",
            "token": "legacy",
            "trigger_id": "1337.42.abcd",
            "channel": {"id": channel},
            "container": {"type": "message", "message_ts": message_ts},
            "message": {"ts": message_ts, "text": "", "blocks": []},
            "response_url": self.response_base + "action",
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
        """Submit a modal the bot opened, with `values` typed into its inputs (by block ID)."""
        state: dict[str, Any] = {}
        for block in view.get("blocks", []):
            if block.get("type") != "input":
                continue
            block_id = block["block_id"]
            typed = values.get(block_id)
            if block["element"]["type"] == "static_select":
                answer = {"type": "static_select", "selected_option": {"value": typed} if typed else None}
            else:
                answer = {"type": "plain_text_input", "value": typed}
            state[block_id] = {block["element"]["action_id"]: answer}
        payload = {
            "type": "view_submission",
            "team": {"id": "T0TEAM"},
            "user": {"id": user, "username": user.lower()},
            "api_app_id": "A0BOB",
            "token": "legacy",
            "trigger_id": "1337.42.abcd",
            "view": {**view, "id": "V0VIEW", "state": {"values": state}},
        }
        return self.interactive(payload, **kw)

    def event(self, event: dict[str, Any], **kw: Any) -> requests.Response:
        """Deliver an Events API event (JSON body)."""
        body = json.dumps(
            {
                "token": "legacy",
                "team_id": "T0TEAM",
                "api_app_id": "A0BOT",
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
