"""The bot's logs while real flows run: one JSON event per line, request IDs on them, and neither the
bot token nor the signing secret anywhere, even at DEBUG."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from bot.logs import setup_logging
from tests.conftest import SECRET, TOKEN, Bot, wait_until
from tests.integration.flows import approve, file_request
from tests.integration.history import make_history
from tests.support.fake_slack import FakeSlack


class Everything(logging.Handler):
    """Keeps every record, to check what the code logged before any formatter could redact it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def raw_text(self) -> str:
        parts = []
        for record in self.records:
            parts.append(record.getMessage())
            parts.extend(str(v) for v in record.__dict__.values())
            if record.exc_info:
                parts.append(logging.Formatter().formatException(record.exc_info))
        return "\n".join(parts)


@pytest.fixture
def logged() -> Iterator[tuple[io.StringIO, Everything]]:
    """The bot's own logging set-up (as `accessbot serve` makes it, with LOG_FORMAT=json) at DEBUG."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    quiet = {name: logging.getLogger(name).level for name in ("alembic", "apscheduler", "botocore", "urllib3")}
    stream, everything = io.StringIO(), Everything()
    setup_logging(logging.DEBUG, "json", secrets=(TOKEN, SECRET), stream=stream)
    root.addHandler(everything)
    yield stream, everything
    root.handlers[:], _ = saved[0], root.setLevel(saved[1])
    for name, level in quiet.items():
        logging.getLogger(name).setLevel(level)


def test_flows_log_one_json_event_per_line_with_request_ids_and_no_secrets(
    logged: tuple[io.StringIO, Everything], bot: Bot, slack: FakeSlack
) -> None:
    stream, everything = logged
    history = make_history(bot, slack)
    failed = file_request(bot, "U0ALICE", "request ghost-group 1h nothing there")
    approve(bot, failed)
    bot.wait_status(failed, "failed")
    slack.failures["chat.update"] = "message_not_found"
    cancelled = file_request(bot, "U0BOB", "request deploy-admins 1h changed my mind")
    assert bot.sender.command("U0BOB", f"cancel {cancelled}").status_code == 200
    bot.wait_status(cancelled, "cancelled")
    # The cancel's own failed update, not the failed grant's (which may race the switch to failing).
    wait_until(
        lambda: any(
            line.startswith("{")
            and json.loads(line).get("request_id") == cancelled
            and json.loads(line)["message"].startswith("Slack chat_update failed")
            for line in stream.getvalue().splitlines()
        )
    )

    lines = stream.getvalue().splitlines()
    events = [json.loads(line) for line in lines]  # every line is one whole JSON event
    assert len(events) > 20
    assert all({"time", "level", "logger", "message"} <= set(e) for e in events)
    assert any(e["level"] == "DEBUG" for e in events), "the test must run at DEBUG to mean anything"

    assert TOKEN not in stream.getvalue() and SECRET not in stream.getvalue()
    raw = everything.raw_text()
    assert TOKEN not in raw and SECRET not in raw, "something logs a secret (the formatter only hid it)"

    moves = {(e.get("request_id"), e["message"].split(": ", 1)[-1].split(" by ")[0]) for e in events}
    assert (history.expired, "approved -> active") in moves
    assert (history.expired, "active -> expired") in moves
    assert (history.denied, "pending -> denied") in moves
    assert (failed, "approved -> failed") in moves
    grant_failed = [e for e in events if e["message"].startswith("grant failed")]
    assert [e["request_id"] for e in grant_failed] == [failed]
    slack_failed = [e for e in events if e["message"].startswith("Slack chat_update failed")]
    # The failed grant's own update may race the switch to failing; the cancel's cannot.
    assert cancelled in {e.get("request_id") for e in slack_failed}
    assert {e.get("request_id") for e in slack_failed} <= {failed, cancelled}
