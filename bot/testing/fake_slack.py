"""A fake Slack Web API: a real HTTP server on 127.0.0.1 that records every call and answers like Slack.

Response URLs (any path under /response) are recorded as the method "response_url".
"""

from __future__ import annotations

import contextlib
import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qsl, urlparse
from zoneinfo import ZoneInfo

Where = Callable[["Call"], bool]
_HTTP = "__http__"  # key of the status and headers `record` asks the handler to answer with


def _anything(_call: Call) -> bool:
    return True


@dataclass(frozen=True)
class Call:
    """One Web API call as it reached the fake, with the answer it got."""

    method: str
    args: dict[str, Any]
    answer: dict[str, Any] = field(default_factory=dict)
    status: int = 200  # the HTTP status it was answered with
    at: float = field(default_factory=time.monotonic)  # when it arrived

    @property
    def ok(self) -> bool:
        """Whether Slack took it."""
        return self.status == 200 and bool(self.answer.get("ok"))

    @property
    def channel(self) -> str:
        """The channel (or user, for a DM) the call is about."""
        return str(self.args.get("channel", ""))

    @property
    def ts(self) -> str:
        """The message's timestamp: the one Slack gave a new post, or the one an update changed."""
        return str(self.answer.get("ts") or self.args.get("ts") or "")

    def blocks(self) -> list[dict[str, Any]]:
        """The message's Block Kit blocks."""
        blocks = self.args.get("blocks")
        return blocks if isinstance(blocks, list) else []

    def text(self) -> str:
        """The message text plus every text inside its blocks, for assertions."""
        return "\n".join([str(self.args.get("text", "")), json.dumps(self.blocks())])

    def buttons(self) -> list[dict[str, Any]]:
        """Every element of the message's actions blocks."""
        return [e for b in self.blocks() if b.get("type") == "actions" for e in b.get("elements", [])]

    def button(self, label: str) -> dict[str, Any] | None:
        """The button with that label, as a person would find it in the message."""
        for element in self.buttons():
            if element.get("type") == "button" and element.get("text", {}).get("text") == label:
                return dict(element)
        return None


class FakeSlack:
    """The fake on an OS-chosen loopback port; tests configure emails, user groups and failures."""

    def __init__(
        self,
        *,
        emails: dict[str, str] | None = None,
        usergroups: dict[str, list[str]] | None = None,
        observer: Callable[[Call], None] | None = None,
        timezones: dict[str, str] | None = None,
    ) -> None:
        self.emails: dict[str, str] = dict(emails or {})
        # users.info's `tz` (an IANA name) per user; a user not listed is in UTC, as Slack's default.
        self.timezones: dict[str, str] = dict(timezones or {})
        self.usergroups: dict[str, list[str]] = dict(usergroups or {})
        # method, or "method channel" for one channel only -> the `error` Slack answers it with
        self.failures: dict[str, str] = {}
        # method -> (HTTP status, Retry-After seconds or None): an outage (503) or a rate limit (429).
        self.outages: dict[str, tuple[int, int | None]] = {}
        self.held: dict[str, threading.Event] = {}  # method -> released when its calls may be answered
        # method -> calls that arrived while it was held (they wait in `record`): proof that the bot got there.
        self.waiting: dict[str, int] = {}
        # apps.connections.open answers with the ws:// URL this returns (a FakeSocketMode's `url`); unset: an error.
        self.socket_mode_url: Callable[[], str] | None = None
        self.calls: list[Call] = []
        # Called with each call as it is recorded, under the lock, so it sees calls in order.
        self.observer = observer
        self._lock = threading.RLock()
        self._ts = itertools.count(1)
        self._views = itertools.count(1)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.url = self.base + "/api/"  # what SLACK_API_URL points at

    def start(self) -> None:
        """Serve from a background thread."""
        threading.Thread(target=self.server.serve_forever, daemon=True, name="fake-slack").start()

    def stop(self) -> None:
        """Stop serving and free the port."""
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    @contextlib.contextmanager
    def holding(self, method: str) -> Iterator[threading.Event]:
        """Keep every call of `method` waiting (its answer unsent) until the block ends or the event is set."""
        release = threading.Event()
        self.held[method] = release
        try:
            yield release
        finally:
            release.set()
            self.held.pop(method, None)

    def record(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        """Remember a call and answer it as Slack would, or with the failure configured for its method."""
        held = self.held.get(method)
        if held is not None:
            with self._lock:
                self.waiting[method] = self.waiting.get(method, 0) + 1
            held.wait(timeout=30)
        with self._lock:
            status, retry_after = self.outages.get(method, (200, None))
            if status != 200:
                answer: dict[str, Any] = {
                    "ok": False,
                    "error": "ratelimited" if status == 429 else "service_unavailable",
                }
            elif (
                failure := self.failures.get(f"{method} {args.get('channel')}", self.failures.get(method))
            ) is not None:
                answer = {"ok": False, "error": failure}
            else:
                answer = self._answer(method, args)
            call = Call(method, args, answer, status)
            self.calls.append(call)
            if self.observer is not None:
                self.observer(call)
            if status != 200:
                # Read (and removed) by the HTTP handler: the status and headers to answer with.
                return answer | {_HTTP: (status, {"Retry-After": str(retry_after)} if retry_after else {})}
            return answer

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
            tz = self.timezones.get(user, "UTC")
            offset = ZoneInfo(tz).utcoffset(datetime.now(UTC)) or timedelta(0)
            return {
                "ok": True,
                "user": {"id": user, "profile": profile, "tz": tz, "tz_offset": int(offset.total_seconds())},
            }
        if method == "usergroups.users.list":
            return {"ok": True, "users": self.usergroups.get(str(args.get("usergroup")), [])}
        if method == "views.open":
            view = args["view"] if isinstance(args.get("view"), dict) else {}
            return {"ok": True, "view": {**view, "id": f"V0VIEW{next(self._views)}"}}
        if method == "conversations.open":
            return {"ok": True, "channel": {"id": "D" + str(args.get("users", "X"))[1:]}}
        if method == "apps.connections.open":
            if self.socket_mode_url is None:
                return {"ok": False, "error": "socket_mode_not_enabled"}
            return {"ok": True, "url": self.socket_mode_url()}
        return {"ok": True}

    def reset(self) -> None:
        """Forget recorded calls and configured failures."""
        with self._lock:
            self.calls.clear()
            self.failures.clear()
            self.outages.clear()
            self.waiting.clear()

    def mark(self) -> int:
        """A position in the record; `find`, `poll` and `wait_for` take it as `after` to look only later."""
        with self._lock:
            return len(self.calls)

    def find(self, method: str, where: Where = _anything, *, after: int = 0) -> list[Call]:
        """Recorded calls of a method that match, oldest first."""
        with self._lock:
            return [c for c in self.calls[after:] if c.method == method and where(c)]

    def poll(self, method: str, where: Where = _anything, *, after: int = 0, timeout: float = 10.0) -> Call | None:
        """The newest matching call once one has arrived, or None when none does within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.find(method, where, after=after)
            if found:
                return found[-1]
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.02)

    def wait_for(self, method: str, where: Where = _anything, *, after: int = 0, timeout: float = 10.0) -> Call:
        """Like `poll`, but fail the test with the calls that did arrive when none matched."""
        found = self.poll(method, where, after=after, timeout=timeout)
        if found is None:
            with self._lock:
                seen = [(c.method, c.args.get("channel"), str(c.args.get("text", ""))[:80]) for c in self.calls]
            raise AssertionError(f"no {method} call matched within {timeout}s; calls: {seen}")
        return found

    def dms_to(self, user: str) -> list[str]:
        """Texts of direct messages sent to a user."""
        return [c.text() for c in self.find("chat.postMessage", lambda c: c.args.get("channel") == user)]


def start_fake_slack() -> tuple[FakeSlack, ThreadingHTTPServer]:
    """Start a fake on an OS-chosen loopback port; shut the server down to stop it."""
    fake = FakeSlack()
    fake.start()
    return fake, fake.server


def _handler(fake: FakeSlack) -> type[BaseHTTPRequestHandler]:
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
            if method == "response_url":
                args["response_url"] = fake.base + parsed.path  # which command or click it answers
            # Looked up on each call: a benchmark replaces `record` to answer without keeping anything.
            recorded = dict(fake.record(method, args))
            status, headers = recorded.pop(_HTTP, (200, {}))
            answer = json.dumps(recorded).encode()
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        do_GET = _handle
        do_POST = _handle

    return Handler
