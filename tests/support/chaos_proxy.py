"""A fault-injecting HTTP reverse proxy in front of moto, for tests where the bot runs in other processes.

botocore event hooks only reach clients in the test's own process; a bot started as a subprocess is
pointed at `ChaosProxy.url` instead (AWS_ENDPOINT_URL) and the proxy decides, request by request, to
pass it to moto, answer an AWS error (with or without letting moto apply the change first), throttle,
delay it, or drop the connection after moto applied it. Error bodies are shaped as AWS sends them:
XML for the query protocol (IAM, STS), JSON for the JSON protocol (KMS, SSO admin, Identity Store).

Only 127.0.0.1 is bound and only the upstream (a loopback moto) is contacted.
"""

from __future__ import annotations

import http.client
import json
import random
import re
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Self
from urllib.parse import parse_qs, urlsplit

# "stall": forward at once (AWS applies the change), then hold the answer for `delay` seconds.
MODES = ("error", "applied_then_error", "throttle", "slow", "drop", "stall")
RANDOM_MODES = ("error", "applied_then_error", "throttle", "slow")
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
# The X-Amz-Target prefix of the JSON-protocol services, for requests without a SigV4 credential scope.
TARGET_SERVICES = {
    "TrentService": "kms",
    "SWBExternalService": "sso-admin",
    "AWSIdentityStore": "identitystore",
}
JSON_SERVICES = frozenset(TARGET_SERVICES.values())
_SCOPE = re.compile(r"Credential=[^/,\s]+/\d{8}/[^/,\s]+/([^/,\s]+)/aws4_request")
_QUERY_SCOPE = re.compile(r"^[^/]+/\d{8}/[^/]+/([^/]+)/aws4_request$")


@dataclass(frozen=True)
class Call:
    """One AWS request the proxy saw: what it was, what the proxy did, the status the client got (None: dropped)."""

    service: str
    operation: str
    mode: str
    status: int | None
    at: float


@dataclass
class Rule:
    """Answer `operation` (None: every operation) of `service` (None: any) in `mode`, with some probability."""

    operation: str | None
    mode: str
    probability: float = 1.0
    times: int | None = None
    code: str | None = None
    status: int | None = None
    delay: float = 0.0
    service: str | None = None
    fired: int = 0

    def matches(self, service: str, operation: str) -> bool:
        """Whether this rule is about the request and still has uses left."""
        if self.operation is not None and self.operation != operation:
            return False
        if self.service is not None and self.service != service:
            return False
        return self.times is None or self.fired < self.times


def identify(headers: Mapping[str, str], body: bytes, path: str = "/") -> tuple[str, str]:
    """The (service, operation) of an AWS request; '' for a part that cannot be told."""
    lowered = {k.lower(): v for k, v in headers.items()}
    target = lowered.get("x-amz-target", "")
    prefix, _, target_operation = target.partition(".")
    query = parse_qs(urlsplit(path).query)

    service = ""
    scope = _SCOPE.search(lowered.get("authorization", ""))
    if scope:
        service = scope.group(1)
    else:
        presigned = _QUERY_SCOPE.match(query.get("X-Amz-Credential", [""])[0])
        if presigned:
            service = presigned.group(1)
        elif prefix:
            service = TARGET_SERVICES.get(prefix, prefix)

    if target_operation:
        return service, target_operation
    if "Action" in query:
        return service, query["Action"][0]
    if body and "x-www-form-urlencoded" in lowered.get("content-type", "x-www-form-urlencoded"):
        try:
            form = parse_qs(body.decode("utf-8"))
        except UnicodeDecodeError:
            form = {}
        if "Action" in form:
            return service, form["Action"][0]
    return service, ""


def is_json_protocol(service: str, headers: Mapping[str, str]) -> bool:
    """Whether errors for this request are JSON (X-Amz-Target services) rather than query-protocol XML."""
    if service in JSON_SERVICES:
        return True
    return any(k.lower() == "x-amz-target" for k in headers)


def error_answer(
    json_protocol: bool, service: str, mode: str, *, code: str | None, status: int | None, request_id: str
) -> tuple[int, dict[str, str], bytes]:
    """The status, headers and body AWS would send for an injected error (mode 'throttle' or an error)."""
    message = f"injected by the chaos proxy ({mode})"
    if json_protocol:
        if mode == "throttle":
            default_code, default_status = "ThrottlingException", 400
        elif service == "kms":
            default_code, default_status = "KMSInternalException", 500
        else:
            default_code, default_status = "InternalServerException", 500
        final_code = code or default_code
        body = json.dumps({"__type": final_code, "message": message}).encode()
        content_type = "application/x-amz-json-1.1"
    else:
        default_code, default_status = ("Throttling", 400) if mode == "throttle" else ("ServiceUnavailable", 503)
        final_code = code or default_code
        body = (
            '<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><Error><Type>Sender</Type>'
            f"<Code>{final_code}</Code><Message>{message}</Message></Error><RequestId>{request_id}</RequestId>"
            "</ErrorResponse>"
        ).encode()
        content_type = "text/xml"
    headers = {"Content-Type": content_type, "x-amzn-RequestId": request_id}
    return status or default_status, headers, body


class _Server(ThreadingHTTPServer):
    """The listening server; handlers reach the proxy through it."""

    daemon_threads = True
    proxy: ChaosProxy


class _Handler(BaseHTTPRequestHandler):
    """Reads one request, lets the proxy decide, and answers (or doesn't)."""

    protocol_version = "HTTP/1.1"
    timeout = 60
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        """Stay quiet: pytest output is for the tests."""

    def _read_body(self) -> bytes:
        """The request body, by Content-Length or chunked transfer encoding."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        """Any method: hand the request to the proxy."""
        body = self._read_body()
        self.server.proxy._serve(self, body)

    def send(self, status: int, headers: Iterable[tuple[str, str]], body: bytes) -> None:
        """Write a full response (Content-Length framed, so the connection can be kept alive)."""
        self.send_response_only(status)
        has_length = False
        for name, value in headers:
            if name.lower() in HOP_BY_HOP:
                continue
            if name.lower() == "content-length":
                if self.command != "HEAD":
                    continue
                has_length = True
            self.send_header(name, value)
        if not has_length:
            self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and status not in (204, 304):
            self.wfile.write(body)
        self.wfile.flush()

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _handle


class ChaosProxy:
    """A reverse proxy to `upstream` (moto) that injects AWS failures by rule; reproducible given `seed`."""

    def __init__(self, upstream: str, *, seed: int = 0) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"upstream must be an http:// URL, not {upstream!r}")
        self.upstream = upstream
        self._host = parts.hostname
        self._port = parts.port or 80
        self._netloc = parts.netloc
        self._base_path = parts.path.rstrip("/")
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._rules: list[Rule] = []
        self._calls: list[Call] = []
        self._request_ids = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> Self:
        """Listen on 127.0.0.1 at an OS-chosen port, serving from a daemon thread."""
        if self._server is not None:
            raise RuntimeError("the chaos proxy is already started")
        server = _Server(("127.0.0.1", 0), _Handler)
        server.proxy = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="chaos-proxy", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """http://127.0.0.1:<port> of the running proxy."""
        if self._server is None:
            raise RuntimeError("the chaos proxy is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # -- rules -----------------------------------------------------------------------------------

    def add_rule(
        self,
        operation: str | None,
        mode: str,
        *,
        probability: float = 1.0,
        times: int | None = None,
        code: str | None = None,
        status: int | None = None,
        delay: float = 0.0,
        service: str | None = None,
    ) -> Rule:
        """Add a rule (checked after the ones already added); `delay` is slept before acting in any mode."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"probability must be within [0, 1], not {probability}")
        if times is not None and times < 0:
            raise ValueError(f"times must be >= 0, not {times}")
        if delay < 0:
            raise ValueError(f"delay must be >= 0, not {delay}")
        rule = Rule(operation, mode, probability, times, code, status, delay, service)
        with self._lock:
            self._rules.append(rule)
        return rule

    def randomize(self, operations: Iterable[str], *, rate: float, delay: float = 0.3) -> None:
        """For each (mutating) operation: with probability `rate`, one of error/applied_then_error/throttle/slow."""
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"rate must be within [0, 1], not {rate}")
        share = rate / len(RANDOM_MODES)
        for operation in operations:
            for index, mode in enumerate(RANDOM_MODES):
                # Rules are tried in order, so each one's probability is conditional on the earlier ones not firing.
                remaining = 1.0 - index * share
                probability = min(1.0, share / remaining) if remaining > 0 else 0.0
                self.add_rule(operation, mode, probability=probability, delay=delay if mode == "slow" else 0.0)

    def clear_rules(self) -> None:
        """Forget every rule: from now on every request passes."""
        with self._lock:
            self._rules.clear()

    # -- recording -------------------------------------------------------------------------------

    @property
    def calls(self) -> list[Call]:
        """A copy of every AWS request seen so far, in arrival order (moto-api requests are not recorded)."""
        with self._lock:
            return list(self._calls)

    def count(self, operation: str | None, mode: str | None = None) -> int:
        """How many requests for `operation` (None: any) were seen, in `mode` (None: any; 'pass': forwarded)."""
        with self._lock:
            return sum(
                1
                for call in self._calls
                if (operation is None or call.operation == operation) and (mode is None or call.mode == mode)
            )

    def clear_calls(self) -> None:
        """Forget the recorded calls."""
        with self._lock:
            self._calls.clear()

    # -- serving ---------------------------------------------------------------------------------

    def _decide(self, service: str, operation: str) -> Rule | None:
        """The first matching rule that fires for this request, its use counted; None: pass through."""
        with self._lock:
            for rule in self._rules:
                if not rule.matches(service, operation):
                    continue
                if rule.probability < 1.0 and self._random.random() >= rule.probability:
                    continue
                rule.fired += 1
                return rule
        return None

    def _next_request_id(self) -> str:
        with self._lock:
            self._request_ids += 1
            return f"chaos-{self._request_ids}"

    def _record(self, service: str, operation: str, mode: str, status: int | None, at: float) -> None:
        with self._lock:
            self._calls.append(Call(service, operation, mode, status, at))

    def _forward(self, handler: _Handler, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        """Send the request to upstream as it came (Host rewritten); its status, headers and body."""
        connection = http.client.HTTPConnection(self._host, self._port, timeout=60)
        try:
            connection.putrequest(
                handler.command, self._base_path + handler.path, skip_host=True, skip_accept_encoding=True
            )
            for name, value in handler.headers.items():
                if name.lower() in HOP_BY_HOP or name.lower() in ("host", "content-length", "expect"):
                    continue
                connection.putheader(name, value)
            connection.putheader("Host", self._netloc)
            if body or handler.command in ("POST", "PUT", "PATCH"):
                connection.putheader("Content-Length", str(len(body)))
            connection.endheaders(body or None)
            response = connection.getresponse()
            data = response.read()
            return response.status, response.getheaders(), data
        finally:
            connection.close()

    def _forward_or_502(self, handler: _Handler, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        """Like _forward, but an unreachable upstream becomes a 502 answer."""
        try:
            return self._forward(handler, body)
        except (OSError, http.client.HTTPException) as exc:
            return 502, [("Content-Type", "text/plain")], f"chaos proxy: upstream failed: {exc}".encode()

    def _serve(self, handler: _Handler, body: bytes) -> None:
        """Decide what to do with one request and do it."""
        if urlsplit(handler.path).path.startswith("/moto-api"):
            handler.send(*self._forward_or_502(handler, body))
            return
        at = time.monotonic()
        headers = dict(handler.headers.items())
        service, operation = identify(headers, body, handler.path)
        rule = self._decide(service, operation)
        if rule is None:
            status, response_headers, data = self._forward_or_502(handler, body)
            self._record(service, operation, "pass", status, at)
            handler.send(status, response_headers, data)
            return
        mode = rule.mode
        if mode == "stall":
            status, response_headers, data = self._forward_or_502(handler, body)
            self._record(service, operation, mode, status, at)
            time.sleep(rule.delay)
            handler.send(status, response_headers, data)
            return
        if rule.delay > 0:
            time.sleep(rule.delay)
        if mode == "slow":
            status, response_headers, data = self._forward_or_502(handler, body)
            self._record(service, operation, mode, status, at)
            handler.send(status, response_headers, data)
            return
        if mode == "drop":
            self._forward_or_502(handler, body)
            self._record(service, operation, mode, None, at)
            handler.close_connection = True
            return
        if mode == "applied_then_error":
            self._forward_or_502(handler, body)
        status, error_headers, data = error_answer(
            is_json_protocol(service, headers),
            service,
            mode,
            code=rule.code,
            status=rule.status,
            request_id=self._next_request_id(),
        )
        self._record(service, operation, mode, status, at)
        handler.send(status, error_headers.items(), data)
