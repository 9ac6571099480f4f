"""A fake PagerDuty REST API v2 on an OS-chosen loopback port: users, schedules and escalation policies.

It answers the calls bot.oncall.pagerduty makes, with the shapes PagerDuty's API reference documents
(see that module), checks the token and the Accept header, and can be told to fail (HTTP 500) or hang for
a schedule or policy. Shared by the tests, the demo and the benchmark.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

ACCEPT = "application/vnd.pagerduty+json;version=2"


@dataclass
class Rotation:
    """A schedule or an escalation policy: its name, and who is on call now (per level for a policy)."""

    name: str
    on_call: dict[int, list[str]] = field(default_factory=dict)


class FakePagerDuty:
    """The fake; tests set `users`, `schedules`, `policies`, `failing` and `hanging`, and read `calls`."""

    def __init__(self, token: str = "pd-test-token") -> None:
        self.token = token
        self.users: dict[str, str] = {}  # user ID -> email
        self.schedules: dict[str, Rotation] = {}
        self.policies: dict[str, Rotation] = {}
        self.failing: set[str] = set()  # schedule or policy IDs (or "users") answered with HTTP 500
        self.hanging: dict[str, float] = {}  # ID (or "users") -> seconds to wait before answering
        self.calls: list[str] = []  # request paths with query, in order
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> None:
        """Serve from a background thread."""
        threading.Thread(target=self.server.serve_forever, daemon=True, name="fake-pagerduty").start()

    def stop(self) -> None:
        """Stop serving and free the port."""
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def add_user(self, user_id: str, email: str) -> None:
        """A PagerDuty user."""
        self.users[user_id] = email

    def add_schedule(self, schedule_id: str, name: str, on_call: list[str]) -> None:
        """A schedule with `on_call` (user IDs) on call now."""
        self.schedules[schedule_id] = Rotation(name, {1: list(on_call)})

    def add_policy(self, policy_id: str, name: str, levels: dict[int, list[str]]) -> None:
        """An escalation policy with the users on call now at each level."""
        self.policies[policy_id] = Rotation(name, {k: list(v) for k, v in levels.items()})

    def answer(self, path: str, query: dict[str, list[str]]) -> tuple[int, Any, str]:
        """(HTTP status, JSON body, the ID whose failure or delay applies) for one GET."""
        parts = [p for p in path.split("/") if p]
        if parts == ["users"]:
            text = (query.get("query") or [""])[0].lower()
            found = [_user(i, e) for i, e in sorted(self.users.items()) if text in e.lower()]
            return 200, {"users": found, "limit": 100, "offset": 0, "more": False}, "users"
        if len(parts) == 3 and parts[0] == "schedules" and parts[2] == "users":
            schedule = self.schedules.get(parts[1])
            if schedule is None:
                return 404, _not_found(), parts[1]
            users = [_user(u, self.users.get(u, "")) for u in schedule.on_call.get(1, [])]
            return 200, {"users": users}, parts[1]
        if len(parts) == 2 and parts[0] in ("schedules", "escalation_policies"):
            schedule_asked = parts[0] == "schedules"
            kind, table = ("schedule", self.schedules) if schedule_asked else ("escalation_policy", self.policies)
            rotation = table.get(parts[1])
            if rotation is None:
                return 404, _not_found(), parts[1]
            name = rotation.name
            return 200, {kind: {"id": parts[1], "type": kind, "name": name, "summary": name}}, parts[1]
        if parts == ["oncalls"]:
            ids = query.get("escalation_policy_ids[]", [])
            entries = [
                {"user": _user(u, self.users.get(u, "")), "escalation_level": level,
                 "escalation_policy": {"id": pid, "type": "escalation_policy_reference"}, "schedule": None}
                for pid in ids if pid in self.policies
                for level, users in sorted(self.policies[pid].on_call.items()) for u in users
            ]  # fmt: skip
            return 200, {"oncalls": entries, "limit": 100, "offset": 0, "more": False}, ids[0] if ids else ""
        return 404, _not_found(), ""


def _user(user_id: str, email: str) -> dict[str, Any]:
    return {"id": user_id, "type": "user", "email": email, "name": email.split("@")[0], "summary": email}


def _not_found() -> dict[str, Any]:
    return {"error": {"message": "Not Found", "code": 2100}}


def _handler(fake: FakePagerDuty) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_args: Any) -> None:
            pass

        def do_GET(self) -> None:
            parsed = urllib.parse.urlsplit(self.path)
            with fake._lock:
                fake.calls.append(self.path)
            if self.headers.get("Authorization") != f"Token token={fake.token}":
                self._send(401, {"error": {"message": "Unauthorized", "code": 2006}})
                return
            if self.headers.get("Accept") != ACCEPT:
                self._send(406, {"error": {"message": "Not Acceptable"}})
                return
            status, body, about = fake.answer(parsed.path, urllib.parse.parse_qs(parsed.query))
            if about in fake.hanging:
                time.sleep(fake.hanging[about])
            if about in fake.failing:
                status, body = 500, {"error": {"message": "Internal Server Error"}}
            self._send(status, body)

        def _send(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except OSError:
                pass  # the client gave up (a timeout test)

    return Handler
