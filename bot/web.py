"""HTTP: POST /slack/events, GET /healthz, GET /metrics, as a WSGI app."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from slack_bolt import App
from slack_bolt.request import BoltRequest
from sqlalchemy.engine import Engine

from bot.metrics import Metrics
from bot.store.db import ping

log = logging.getLogger(__name__)
MAX_BODY = 1024 * 1024
StartResponse = Callable[..., Any]


class WebApp:
    """The WSGI application the production server runs."""

    def __init__(self, *, bolt: App, engine: Engine, metrics: Metrics) -> None:
        self._bolt = bolt
        self._engine = engine
        self._metrics = metrics

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method, path = environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO", "/")
        if path == "/slack/events":
            if method != "POST":
                return _reply(start_response, 405, "text/plain", b"POST only")
            return self._slack(environ, start_response)
        if path == "/healthz" and method in ("GET", "HEAD"):
            healthy = ping(self._engine)
            body = json.dumps({"status": "ok" if healthy else "unavailable", "database": healthy})
            return _reply(start_response, 200 if healthy else 503, "application/json", body.encode())
        if path == "/metrics" and method == "GET":
            return _reply(start_response, 200, CONTENT_TYPE_LATEST, generate_latest(self._metrics.registry))
        return _reply(start_response, 404, "text/plain", b"not found")

    def _slack(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY:
            return _reply(start_response, 413, "text/plain", b"request body too large")
        body = environ["wsgi.input"].read(length).decode("utf-8", errors="replace")
        headers = {
            key[5:].replace("_", "-").lower(): value for key, value in environ.items() if key.startswith("HTTP_")
        }
        headers["content-type"] = environ.get("CONTENT_TYPE", "")
        try:
            answer = self._bolt.dispatch(BoltRequest(body=body, query=environ.get("QUERY_STRING", ""), headers=headers))
        except Exception:
            # Bolt raises on some signed but malformed payloads: answer 400, change nothing.
            log.warning("could not handle a Slack request", exc_info=True)
            return _reply(start_response, 400, "text/plain", b"cannot handle this request")
        status = answer.status
        if status >= 500:
            status = 400  # a payload bolt could not route or parse is the sender's problem, not ours
        content_type = (answer.headers.get("content-type") or ["text/plain"])[0]
        return _reply(start_response, status, content_type, (answer.body or "").encode())


def _reply(start_response: StartResponse, status: int, content_type: str, body: bytes) -> Iterable[bytes]:
    reason = {
        200: "OK",
        400: "Bad Request",
        401: "Unauthorized",
        404: "Not Found",
        405: "Method Not Allowed",
        413: "Payload Too Large",
        503: "Service Unavailable",
    }.get(status, "Status")
    start_response(f"{status} {reason}", [("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return [body]
