"""A fake Slack Web API: a real HTTP server on 127.0.0.1 that records every call it receives."""

from __future__ import annotations

import contextlib
import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlparse


@dataclass
class Call:
    """One Web API call as it reached the fake."""

    method: str
    args: dict[str, Any]

    def text(self) -> str:
        """The message text plus every text inside its blocks, for assertions."""
        parts = [str(self.args.get("text", ""))]
        blocks = self.args.get("blocks") or []
        if isinstance(blocks, str):
            blocks = json.loads(blocks)
        parts.append(json.dumps(blocks))
        return "\n".join(parts)

    def buttons(self) -> list[dict[str, Any]]:
        """Every button in the message's blocks."""
        blocks = self.args.get("blocks") or []
        if isinstance(blocks, str):
            blocks = json.loads(blocks)
        return [e for b in blocks if b.get("type") == "actions" for e in b.get("elements", [])]


@dataclass
class FakeSlack:
    """State and recordings of the fake; tests configure emails, user groups and failures."""

    emails: dict[str, str] = field(default_factory=dict)
    usergroups: dict[str, list[str]] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _ts: Any = field(default_factory=lambda: itertools.count(1))
    url: str = ""

    def record(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self.calls.append(Call(method, args))
            if method in self.failures:
                return {"ok": False, "error": self.failures[method]}
            return self._answer(method, args)

    def _answer(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        if method == "chat.postMessage":
            channel = str(args.get("channel", ""))
            if channel.startswith(("U", "W")):
                channel = "D" + channel[1:]
            ts = f"1700000000.{next(self._ts):06d}"
            return {"ok": True, "channel": channel, "ts": ts, "message": {"text": args.get("text")}}
        if method == "chat.update":
            return {"ok": True, "channel": args.get("channel"), "ts": args.get("ts")}
        if method == "chat.postEphemeral":
            return {"ok": True, "message_ts": f"1700000001.{next(self._ts):06d}"}
        if method == "users.info":
            user = str(args.get("user", ""))
            profile = {"email": self.emails[user]} if user in self.emails else {}
            return {"ok": True, "user": {"id": user, "profile": profile}}
        if method == "usergroups.users.list":
            return {"ok": True, "users": self.usergroups.get(str(args.get("usergroup")), [])}
        if method == "conversations.open":
            return {"ok": True, "channel": {"id": "D" + str(args.get("users", "X"))[1:]}}
        return {"ok": True}

    def reset(self) -> None:
        """Forget recorded calls and configured failures."""
        with self._lock:
            self.calls.clear()
            self.failures.clear()

    def find(self, method: str, where: Callable[[Call], bool] = lambda _c: True) -> list[Call]:
        """Recorded calls of a method that match."""
        with self._lock:
            return [c for c in self.calls if c.method == method and where(c)]

    def wait_for(self, method: str, where: Callable[[Call], bool] = lambda _c: True, *, timeout: float = 10.0) -> Call:
        """Poll until a matching call arrives; fail the test with what did arrive otherwise."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.find(method, where)
            if found:
                return found[-1]
            time.sleep(0.02)
        seen = [(c.method, c.args.get("channel"), str(c.args.get("text", ""))[:80]) for c in self.calls]
        raise AssertionError(f"no {method} call matched within {timeout}s; calls: {seen}")

    def dms_to(self, user: str) -> list[str]:
        """Texts of direct messages sent to a user."""
        return [c.text() for c in self.find("chat.postMessage", lambda c: c.args.get("channel") == user)]


def start_fake_slack() -> tuple[FakeSlack, ThreadingHTTPServer]:
    """Start the fake on an OS-chosen loopback port."""
    fake = FakeSlack()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_args: Any) -> None:
            pass

        def _handle(self) -> None:
            parsed = urlparse(self.path)
            args: dict[str, Any] = dict(parse_qsl(parsed.query))
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode() if length else ""
            if raw:
                if "json" in (self.headers.get("Content-Type") or ""):
                    args.update(json.loads(raw))
                else:
                    args.update(dict(parse_qsl(raw)))
            for key in ("blocks", "view"):
                if isinstance(args.get(key), str):
                    with contextlib.suppress(ValueError):
                        args[key] = json.loads(args[key])
            method = parsed.path.rsplit("/", 1)[-1]
            if parsed.path.startswith("/response/"):
                method = "response_url"
            answer = json.dumps(fake.record(method, args)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        do_GET = _handle
        do_POST = _handle

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True, name="fake-slack").start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}/api/"
    return fake, server
