"""A local stand-in for Slack: a Web API that shows each message as a person would read it, and a
sender that calls the bot's Request URL form-encoded and signed, exactly as Slack does."""

from __future__ import annotations

import contextlib
import html
import itertools
import json
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlparse

from slack_sdk.signature import SignatureVerifier

MESSAGE_METHODS = ("chat.postMessage", "chat.update", "chat.postEphemeral", "response_url", "views.open")
EMOJI = {
    ":white_check_mark:": "✅",
    ":x:": "❌",
    ":hourglass:": "⌛",
    ":warning:": "⚠️",
    ":rotating_light:": "🚨",
    ":leftwards_arrow_with_hook:": "↩️",
}


@dataclass(frozen=True)
class Person:
    """Someone in the demo workspace."""

    user_id: str
    name: str
    email: str


@dataclass(frozen=True)
class Call:
    """One Web API call as it reached the stand-in."""

    method: str
    args: dict[str, Any]
    answer: dict[str, Any] = field(default_factory=dict)

    @property
    def channel(self) -> str:
        """The channel (or user, for a DM) the call is about."""
        return str(self.args.get("channel", ""))

    def blocks(self) -> list[dict[str, Any]]:
        """The message's Block Kit blocks."""
        blocks = self.args.get("blocks") or []
        return blocks if isinstance(blocks, list) else []

    def button(self, label: str) -> dict[str, Any] | None:
        """The button with that label, as a person would find it in the message."""
        for block in self.blocks():
            for element in block.get("elements", []) if block.get("type") == "actions" else []:
                if element.get("type") == "button" and element.get("text", {}).get("text") == label:
                    return dict(element)
        return None


class Workspace:
    """The fake Slack Web API on 127.0.0.1:0: records every call, answers like Slack, prints messages."""

    def __init__(self, people: list[Person], channels: dict[str, str], out: Callable[[str], None] = print) -> None:
        self.people = {p.user_id: p for p in people}
        self.channels = channels
        self._out = out
        self._calls: list[Call] = []
        self._shown = 0
        self._lock = threading.Lock()
        self._ts = itertools.count(1)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def api_url(self) -> str:
        """What SLACK_API_URL points at."""
        return self.base + "/api/"

    def start(self) -> None:
        """Serve from a background thread."""
        threading.Thread(target=self._server.serve_forever, daemon=True, name="slack-standin").start()

    def stop(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()

    def record(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        """Remember a call and answer it the way Slack would."""
        with self._lock:
            answer = self._answer(method, args)
            self._calls.append(Call(method, args, answer))
            return answer

    def _answer(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        channel = str(args.get("channel", ""))
        if method == "chat.postMessage":
            where = "D" + channel[1:] if channel.startswith(("U", "W")) else channel
            return {"ok": True, "channel": where, "ts": f"1700000000.{next(self._ts):06d}"}
        if method == "chat.update":
            return {"ok": True, "channel": channel, "ts": args.get("ts")}
        if method == "chat.postEphemeral":
            return {"ok": True, "message_ts": f"1700000001.{next(self._ts):06d}"}
        if method == "users.info":
            person = self.people.get(str(args.get("user")))
            profile = {"email": person.email, "real_name": person.name} if person else {}
            return {"ok": True, "user": {"id": args.get("user"), "profile": profile}}
        if method == "usergroups.users.list":
            return {"ok": True, "users": []}
        if method == "views.open":
            view = args["view"] if isinstance(args.get("view"), dict) else {}
            return {"ok": True, "view": {**view, "id": f"V0DEMO{next(self._ts)}"}}
        if method == "conversations.open":
            return {"ok": True, "channel": {"id": "D" + str(args.get("users", "X"))[1:]}}
        return {"ok": True}

    def mark(self) -> int:
        """A position in the call log; `wait_for` looks only after it."""
        with self._lock:
            return len(self._calls)

    def wait_for(self, where: Callable[[Call], bool], *, after: int = 0, timeout: float = 10.0) -> Call | None:
        """The first call after `after` that matches, or None when none arrives in time."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                found = [c for c in self._calls[after:] if where(c)]
            if found or time.monotonic() > deadline:
                return found[0] if found else None
            time.sleep(0.02)

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
            calls, self._shown = self._calls[self._shown :], len(self._calls)
        for call in calls:
            if call.method in MESSAGE_METHODS:
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
        channel = call.channel
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
            return f"{place} · accessbot · only @{self.name(str(call.args.get('user', '')))} can see this"
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


class Signer:
    """Calls the bot's Request URL as Slack does: form-encoded bodies with a v0 HMAC signature."""

    def __init__(self, bot_url: str, signing_secret: str, response_url: str) -> None:
        self.url = bot_url.rstrip("/") + "/slack/events"
        self._verifier = SignatureVerifier(signing_secret)
        self._response_url = response_url

    def command(self, user: Person, text: str, *, channel: str) -> tuple[int, dict[str, Any]]:
        """Send `/access <text>` as the user; return the HTTP status and the bot's immediate answer."""
        body = urlencode(
            {
                "token": "unused",
                "team_id": "T0DEMO",
                "team_domain": "demo",
                "channel_id": channel,
                "channel_name": "general",
                "user_id": user.user_id,
                "user_name": user.name,
                "command": "/access",
                "text": text,
                "api_app_id": "A0ACCESSBOT",
                "response_url": self._response_url,
                "trigger_id": f"{int(time.time())}.1.demo",
            }
        )
        status, answer = self._post(body)
        try:
            reply = json.loads(answer) if answer.strip() else {}
        except ValueError:
            reply = {"text": answer}
        return status, reply if isinstance(reply, dict) else {}

    def click(self, user: Person, message: Call, button: dict[str, Any]) -> int:
        """Click a button of a message as the user; return the HTTP status."""
        ts = str(message.answer.get("ts") or message.args.get("ts") or "")
        payload = {
            "type": "block_actions",
            "team": {"id": "T0DEMO", "domain": "demo"},
            "user": {"id": user.user_id, "username": user.name, "team_id": "T0DEMO"},
            "api_app_id": "A0ACCESSBOT",
            "token": "unused",
            "trigger_id": f"{int(time.time())}.2.demo",
            "channel": {"id": message.channel},
            "container": {"type": "message", "message_ts": ts, "channel_id": message.channel},
            "message": {"ts": ts, "text": message.args.get("text", ""), "blocks": message.blocks()},
            "response_url": self._response_url,
            "actions": [
                {
                    "type": "button",
                    "action_id": button.get("action_id"),
                    "block_id": "demo",
                    "value": button.get("value"),
                    "text": button.get("text"),
                    "action_ts": f"{time.time():.6f}",
                }
            ],
        }
        status, _ = self._post(urlencode({"payload": json.dumps(payload)}))
        return status

    def submit(self, user: Person, view: dict[str, Any], answers: dict[str, str]) -> tuple[int, str]:
        """Fill a dialog's inputs (by block ID; others keep their initial value) and submit it, as the user."""
        values: dict[str, Any] = {}
        for block in [b for b in view.get("blocks", []) if b.get("type") == "input"]:
            element = block.get("element") or {}
            action_id = str(element.get("action_id", "value"))
            answer = answers.get(str(block.get("block_id")), element.get("initial_value", ""))
            if element.get("type") == "static_select":
                option = next(o for o in element.get("options", []) if o.get("value") == answer)
                filled = {"type": "static_select", "selected_option": option}
            else:
                filled = {"type": element.get("type", "plain_text_input"), "value": answer}
            values[str(block.get("block_id"))] = {action_id: filled}
        payload = {
            "type": "view_submission",
            "team": {"id": "T0DEMO", "domain": "demo"},
            "user": {"id": user.user_id, "username": user.name, "team_id": "T0DEMO"},
            "api_app_id": "A0ACCESSBOT",
            "token": "unused",
            "trigger_id": f"{int(time.time())}.3.demo",
            "view": {**view, "state": {"values": values}, "team_id": "T0DEMO", "app_id": "A0ACCESSBOT"},
        }
        return self._post(urlencode({"payload": json.dumps(payload)}))

    def _post(self, body: str) -> tuple[int, str]:
        stamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": self._verifier.generate_signature(timestamp=stamp, body=body) or "",
        }
        request = urllib.request.Request(self.url, data=body.encode(), headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=15) as answer:
                return int(answer.status), answer.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace")


def _text(value: Any) -> str:
    return str(value.get("text", "")) if isinstance(value, dict) else str(value or "")


def _local_time(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp).strftime("%H:%M:%S")


def _handler(workspace: Workspace) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_args: Any) -> None:
            pass

        def _handle(self) -> None:
            parsed = urlparse(self.path)
            args: dict[str, Any] = dict(parse_qsl(parsed.query))
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode() if length else ""
            if raw and "json" in (self.headers.get("Content-Type") or ""):
                args.update(json.loads(raw))
            elif raw:
                args.update(dict(parse_qsl(raw)))
            for key in ("blocks", "view"):
                if isinstance(args.get(key), str):
                    with contextlib.suppress(ValueError):
                        args[key] = json.loads(args[key])
            method = "response_url" if parsed.path.startswith("/response") else parsed.path.rsplit("/", 1)[-1]
            answer = json.dumps(workspace.record(method, args)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        do_GET = _handle
        do_POST = _handle

    return Handler
