"""A fake Slack Socket Mode endpoint: a real WebSocket server on 127.0.0.1 that speaks Slack's Socket Mode protocol.

The fake Slack Web API answers `apps.connections.open` with `url()`: a fresh single-use ws:// URL, as Slack hands
out a fresh ticket on every call, so a client that reconnects without asking again is refused. On connect the
client gets `hello`; a test pushes envelopes (`slash_commands`, `interactive`, `events_api`) and reads the acks
the client sends back; it can close the socket, reset it, or send `disconnect` as Slack does before maintenance.
The WebSocket layer itself (handshake, framing, masking, ping/pong) is the `websockets` library, so what the
client is checked against is RFC 6455 as a well-tested server implements it, not this module's idea of it.
"""

from __future__ import annotations

import itertools
import json
import socket
import struct
import threading
import uuid
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Self
from urllib.parse import parse_qs, parse_qsl, urlparse

import requests
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.sync.server import Server, ServerConnection, serve

from bot.testing.fake_slack import FakeSlack
from bot.testing.signing import APP, SlackSender

# Kinds of envelope Slack sends; only events cannot carry a response payload.
ANSWERABLE = ("slash_commands", "interactive")


@dataclass
class Session:
    """One WebSocket connection the client opened, with the ticket it came with."""

    number: int
    ticket: str
    connection: ServerConnection
    closed: threading.Event = field(default_factory=threading.Event)

    @property
    def open(self) -> bool:
        """Whether the connection is still up."""
        return not self.closed.is_set()


@dataclass(frozen=True)
class Ack:
    """What the client sent back for an envelope: its ID and, for commands and clicks, the response payload."""

    envelope_id: str
    payload: dict[str, Any] | None
    session: int  # the number of the session it came on


class FakeSocketMode:
    """The endpoint on an OS-chosen loopback port; `attach` it to a FakeSlack so apps.connections.open finds it."""

    def __init__(self, *, ping_interval: float | None = 1.0) -> None:
        self.sessions: list[Session] = []
        self.acks: dict[str, Ack] = {}  # envelope ID -> the client's ack
        self.refused: list[str] = []  # paths of handshakes refused (unknown or reused ticket)
        self._issued: set[str] = set()
        self._lock = threading.Condition()
        self._numbers = itertools.count(1)
        # Server pings (answered by the client's pong) as Slack's edge sends them; the client pings too.
        self.server: Server = serve(
            self._session,
            "127.0.0.1",
            0,
            process_request=self._admit,
            compression=None,
            ping_interval=ping_interval,
            ping_timeout=10,
            close_timeout=1,
        )
        self.port = int(self.server.socket.getsockname()[1])
        self._slack: FakeSlack | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Serve from a background thread."""
        threading.Thread(target=self.server.serve_forever, daemon=True, name="fake-socket-mode").start()

    def stop(self) -> None:
        """Close every connection, stop serving and detach from the fake Slack."""
        self.detach()
        for session in self.open_sessions():
            session.connection.close_socket()
        self.server.shutdown()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def attach(self, slack: FakeSlack) -> None:
        """Make `slack` answer apps.connections.open with a URL of this endpoint."""
        slack.socket_mode_url = self.url
        self._slack = slack

    def detach(self) -> None:
        """Undo `attach`."""
        if self._slack is not None:
            self._slack.socket_mode_url = None
            self._slack = None

    def url(self) -> str:
        """A new single-use URL, like the one apps.connections.open returns (`wss://…/link/?ticket=…`)."""
        ticket = uuid.uuid4().hex
        with self._lock:
            self._issued.add(ticket)
        return f"ws://127.0.0.1:{self.port}/link/?ticket={ticket}&app_id={APP}"

    # -- what a test does -----------------------------------------------------------------------

    def open_sessions(self) -> list[Session]:
        """The connections still up, oldest first."""
        with self._lock:
            return [s for s in self.sessions if s.open]

    def wait_session(self, number: int, timeout: float = 10.0) -> Session:
        """The `number`th connection (1 is the first), once it is up and has had its hello."""
        with self._lock:
            if not self._lock.wait_for(lambda: len(self.sessions) >= number, timeout):
                raise AssertionError(f"connection {number} never came within {timeout}s; refused: {self.refused}")
            return self.sessions[number - 1]

    def push(self, kind: str, payload: dict[str, Any], *, session: Session | None = None) -> str:
        """Send an envelope on `session` (else the newest open connection); return its envelope ID."""
        target = session or self._newest()
        envelope_id = str(uuid.uuid4())
        envelope: dict[str, Any] = {
            "envelope_id": envelope_id,
            "type": kind,
            "payload": payload,
            "accepts_response_payload": kind in ANSWERABLE,
        }
        if kind == "events_api":
            envelope.update(retry_attempt=0, retry_reason="")
        target.connection.send(json.dumps(envelope))
        return envelope_id

    def wait_ack(self, envelope_id: str, timeout: float = 10.0) -> Ack:
        """The client's ack of an envelope, or fail the test when none comes within `timeout` seconds."""
        with self._lock:
            if not self._lock.wait_for(lambda: envelope_id in self.acks, timeout):
                raise AssertionError(f"no ack for envelope {envelope_id} within {timeout}s")
            return self.acks[envelope_id]

    def ask_to_reconnect(self, reason: str = "refresh_requested") -> None:
        """Send `disconnect` on the newest connection, as Slack does a few seconds before it closes one."""
        message = {"type": "disconnect", "reason": reason, "debug_info": {"host": "fake-socket-mode"}}
        self._newest().connection.send(json.dumps(message))

    def close(self, session: Session | None = None) -> None:
        """Close a connection (the newest open one) from the server's side with a close frame ("going away")."""
        (session or self._newest()).connection.close(1001, "going away")

    def reset(self, session: Session | None = None) -> None:
        """Drop a connection with a TCP reset and no close frame, as a load balancer or NAT that lost it does."""
        sock = (session or self._newest()).connection.socket
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close() sends RST, not FIN
        sock.close()

    # -- the server side ------------------------------------------------------------------------

    def _newest(self) -> Session:
        sessions = self.open_sessions()
        if not sessions:
            raise AssertionError("no Socket Mode connection is open")
        return sessions[-1]

    def _admit(self, connection: ServerConnection, request: Request) -> Response | None:
        """Accept a handshake only with a ticket apps.connections.open issued and nobody used yet."""
        ticket = _ticket(request.path)
        with self._lock:
            if ticket in self._issued:
                self._issued.discard(ticket)
                return None
            self.refused.append(request.path)
        return connection.respond(HTTPStatus.UNAUTHORIZED, "unknown or used ticket\n")

    def _session(self, connection: ServerConnection) -> None:
        ticket = _ticket(connection.request.path if connection.request else "")
        hello = {
            "type": "hello",
            "num_connections": len(self.open_sessions()) + 1,
            "debug_info": {"host": "fake-socket-mode", "approximate_connection_time": 18060},
            "connection_info": {"app_id": APP},
        }
        connection.send(json.dumps(hello))
        with self._lock:
            session = Session(next(self._numbers), ticket, connection)
            self.sessions.append(session)
            self._lock.notify_all()
        try:
            for message in connection:
                self._received(session, message)
        except ConnectionClosed:
            pass
        finally:
            with self._lock:
                session.closed.set()
                self._lock.notify_all()

    def _received(self, session: Session, message: str | bytes) -> None:
        try:
            data = json.loads(message)
        except ValueError:
            return  # Slack ignores what it cannot read; so does the fake
        if not isinstance(data, dict) or "envelope_id" not in data:
            return
        payload = data.get("payload")
        ack = Ack(str(data["envelope_id"]), payload if isinstance(payload, dict) else None, session.number)
        with self._lock:
            self.acks[ack.envelope_id] = ack
            self._lock.notify_all()


class SocketModeSender(SlackSender):
    """SlackSender's commands, clicks, modal submissions and events, delivered as Socket Mode envelopes.

    Each call pushes an envelope and waits for its ack; the ack's payload comes back as the body of a 200
    response, just as the same answer comes back over HTTP, so a test reads both transports alike.
    """

    def __init__(self, endpoint: FakeSocketMode, response_base: str, *, timeout: float = 10.0) -> None:
        super().__init__("http://socket-mode.invalid", "no-signing-in-socket-mode", response_base)
        self.endpoint = endpoint
        self.timeout = timeout
        self.envelopes: list[str] = []  # IDs of the envelopes sent, oldest first

    def post(
        self,
        body: str,
        *,
        timestamp: int | None = None,
        secret: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> requests.Response:
        """Deliver what SlackSender would have POSTed: form fields or an interactivity or event payload."""
        fields = dict(parse_qsl(body))
        if "json" in (headers or {}).get("Content-Type", ""):
            kind, payload = "events_api", json.loads(body)
        elif "payload" in fields:
            kind, payload = "interactive", json.loads(fields["payload"])
        else:
            kind, payload = "slash_commands", fields
        envelope_id = self.endpoint.push(kind, payload)
        self.envelopes.append(envelope_id)
        ack = self.endpoint.wait_ack(envelope_id, timeout=self.timeout)
        answer = requests.Response()
        answer.status_code = 200
        answer.headers["Content-Type"] = "application/json"
        answer._content = json.dumps(ack.payload).encode() if ack.payload is not None else b""
        return answer


def _ticket(path: str) -> str:
    return (parse_qs(urlparse(path).query).get("ticket") or [""])[0]
