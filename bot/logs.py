"""Logging: one event per line, as text or JSON (LOG_FORMAT=json), with the request ID when known."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TextIO

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}
_request_id: ContextVar[int | None] = ContextVar("accessbot_request_id", default=None)
REDACTED = "[redacted]"


@contextmanager
def about_request(request_id: int | None) -> Iterator[None]:
    """Every log event in this block (and this thread) carries `request_id`."""
    token = _request_id.set(request_id)
    try:
        yield
    finally:
        _request_id.reset(token)


class RequestIdFilter(logging.Filter):
    """Attach the request ID of the surrounding `about_request` block, unless the event has one."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Add request_id; never drop an event."""
        if getattr(record, "request_id", None) is None:
            current = _request_id.get()
            if current is not None:
                record.request_id = current
        return True


class _Redacting(logging.Formatter):
    """Replaces known secret values anywhere in the rendered line, whatever logged them."""

    def __init__(self, fmt: str | None = None, *, secrets: Iterable[str] = ()) -> None:
        super().__init__(fmt)
        self._secrets = sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True)

    def redact(self, line: str) -> str:
        """The line with every secret replaced."""
        for secret in self._secrets:
            line = line.replace(secret, REDACTED)
        return line


class JsonFormatter(_Redacting):
    """A JSON object per line: time, level, logger, message, and any extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        """Render one record."""
        event = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        event.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD})
        if record.exc_info:
            event["exception"] = self.formatException(record.exc_info)
        return self.redact(json.dumps(event, default=str))


class TextFormatter(_Redacting):
    """`time level logger: message [request_id=…]` on one line (a traceback's newlines escaped)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        """The message line, with the request ID before any traceback."""
        line = super().formatMessage(record)
        request_id = getattr(record, "request_id", None)
        return f"{line} [request_id={request_id}]" if request_id is not None else line

    def format(self, record: logging.LogRecord) -> str:
        """Render one record."""
        return self.redact(super().format(record).replace("\n", "\\n"))


def setup_logging(level: int, fmt: str, *, secrets: Iterable[str] = (), stream: TextIO | None = None) -> None:
    """Send every log line to stderr (or `stream`) in the chosen format, with `secrets` redacted."""
    handler = logging.StreamHandler(stream or sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter(secrets=secrets))
    else:
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s", secrets=secrets))
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("alembic", "apscheduler", "botocore", "urllib3", "waitress.queue"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
