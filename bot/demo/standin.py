"""The demo's Slack: bot.testing's fake Web API, with people in it and each message shown as a person would read it."""

from __future__ import annotations

import html
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.testing.fake_slack import Call, FakeSlack

MESSAGE_METHODS = ("chat.postMessage", "chat.update", "chat.postEphemeral", "response_url", "views.open")
EMOJI = {
    ":white_check_mark:": "✅",
    ":x:": "❌",
    ":hourglass:": "⌛",
    ":warning:": "⚠️",
    ":rotating_light:": "🚨",
    ":leftwards_arrow_with_hook:": "↩️",
    ":robot_face:": "🤖",
    ":grey_question:": "❔",
}


@dataclass(frozen=True)
class Person:
    """Someone in the demo workspace."""

    user_id: str
    name: str
    email: str


class Workspace(FakeSlack):
    """The fake Slack Web API with the demo's people and channels; prints the bot's messages when told to."""

    def __init__(self, people: list[Person], channels: dict[str, str], out: Callable[[str], None] = print) -> None:
        super().__init__(emails={p.user_id: p.email for p in people}, observer=self._arrived)
        self.people = {p.user_id: p for p in people}
        self.channels = channels
        self._out = out
        self._unshown: list[Call] = []
        # response_url -> (user, channel) it answers (the demo's SlackSender.answers_to): Slack itself knows
        # where a response_url's answer goes; the recorded call does not say.
        self.answers_to: dict[str, tuple[str, str]] = {}

    @property
    def api_url(self) -> str:
        """What SLACK_API_URL points at."""
        return self.url

    def _arrived(self, call: Call) -> None:
        if call.method in MESSAGE_METHODS:
            self._unshown.append(call)

    def settle(self, *, quiet: float = 0.2, timeout: float = 3.0) -> None:
        """Wait until the bot has stopped talking for a moment."""
        deadline = time.monotonic() + timeout
        seen = self.mark()
        while time.monotonic() < deadline:
            time.sleep(quiet)
            now = self.mark()
            if now == seen:
                return
            seen = now

    def show_new(self) -> None:
        """Print every message the bot sent since the last call, as people in Slack would see them."""
        with self._lock:
            calls, self._unshown = self._unshown, []
        for call in calls:
            self._out(self.render(call))

    def show_reply(self, user: str, channel: str, reply: dict[str, Any]) -> None:
        """Print the bot's immediate answer to a slash command (only the sender sees it)."""
        if reply.get("text") or reply.get("blocks"):
            self._out(self.render(Call("chat.postEphemeral", {**reply, "channel": channel, "user": user})))

    def render(self, call: Call) -> str:
        """One message as plain text: where it is, who sees it, its text, fields and buttons."""
        where = self._where(call)
        lines = self._body(call.args)
        return "\n".join([f"    ┌ {where}", *(f"    │ {line}" for line in lines or ["(empty)"]), "    └"])

    def _where(self, call: Call) -> str:
        channel, user = call.channel, str(call.args.get("user", ""))
        if call.method == "response_url":
            user, channel = self.answers_to.get(str(call.args.get("response_url", "")), (user, channel))
        if call.method == "views.open":
            view = call.args.get("view") or {}
            return f"dialog “{_text(view.get('title'))}” · [{_text(view.get('submit')) or 'Submit'}] [Cancel]"
        if channel.startswith(("U", "W", "D")):
            place = f"DM to @{self.name(channel)}"
        else:
            place = "#" + self.channels.get(channel, channel)
        if call.method == "chat.update":
            return f"{place} · accessbot · (message updated)"
        if call.method in ("chat.postEphemeral", "response_url"):
            return f"{place} · accessbot · only @{self.name(user)} can see this"
        return f"{place} · accessbot"

    def _body(self, args: dict[str, Any]) -> list[str]:
        blocks = args.get("blocks") or (args.get("view") or {}).get("blocks") or []
        if not blocks:
            return self.plain(str(args.get("text", ""))).splitlines()
        lines: list[str] = []
        for block in blocks:
            kind = block.get("type")
            if kind in ("section", "header"):
                lines += self.plain(_text(block.get("text"))).splitlines()
                for field in block.get("fields", []):
                    label, _, value = self.plain(_text(field)).partition("\n")
                    lines.append(f"{label}: {value}" if value else label)
            elif kind == "context":
                lines += [self.plain(_text(e)) for e in block.get("elements", [])]
            elif kind == "actions":
                labels = [_text(e.get("text")) for e in block.get("elements", []) if e.get("type") == "button"]
                lines.append("  ".join(f"[{label}]" for label in labels))
            elif kind == "input":
                element = block.get("element") or {}
                choices = [_text(o.get("text")) for o in element.get("options", [])]
                shown = f"choose one of {', '.join(choices)}" if choices else element.get("initial_value") or "____"
                lines.append(f"{_text(block.get('label'))}: {shown}")
        return [line for line in lines if line.strip()]

    def name(self, user: str) -> str:
        """A user's name for display ('alice'), or the ID when unknown."""
        key = "U" + user[1:] if user.startswith("D") else user
        person = self.people.get(key)
        return person.name if person else user

    def plain(self, text: str) -> str:
        """Slack mrkdwn as a person reads it: names for mentions, local times for dates, no markup."""
        text = re.sub(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>", lambda m: "@" + self.name(m[1]), text)
        text = re.sub(
            r"<#([CG][A-Z0-9]+)(?:\|([^>]*))?>", lambda m: "#" + (m[2] or self.channels.get(m[1], m[1])), text
        )
        text = re.sub(r"<!date\^(\d+)\^[^|>]*(?:\|[^>]*)?>", lambda m: _local_time(int(m[1])), text)
        text = re.sub(r"<(https?://[^|>]+)\|([^>]+)>", r"\2 (\1)", text)
        text = re.sub(r"(?<![\w*])\*([^*\n]+)\*(?![\w*])", r"\1", text)
        text = text.replace("`", "")
        for code, symbol in EMOJI.items():
            text = text.replace(code, symbol)
        return html.unescape(text)


def reply_of(body: str) -> dict[str, Any]:
    """The bot's immediate HTTP answer to a slash command as a message: JSON as sent, plain text as its text."""
    try:
        reply = json.loads(body) if body.strip() else {}
    except ValueError:
        reply = {"text": body}
    return reply if isinstance(reply, dict) else {}


def _text(value: Any) -> str:
    return str(value.get("text", "")) if isinstance(value, dict) else str(value or "")


def _local_time(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp).strftime("%H:%M:%S")
