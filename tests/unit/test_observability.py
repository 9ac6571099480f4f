"""Log formatting (one line, request IDs, secrets redacted) and the scrape-time gauge."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from prometheus_client import generate_latest

from bot.logs import REDACTED, about_request, setup_logging
from bot.metrics import Metrics

TOKEN = "xoxb-UNIT-token-99"


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level for name in ("alembic", "apscheduler", "botocore", "urllib3")}
    yield
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_an_event_is_one_line_with_its_request_id_and_no_secret(restore_logging: None, fmt: str) -> None:
    stream = io.StringIO()
    setup_logging(logging.INFO, fmt, secrets=(TOKEN,), stream=stream)
    log = logging.getLogger("bot.test")
    with about_request(42):
        try:
            raise RuntimeError(f"boom with {TOKEN}\nsecond line")
        except RuntimeError:
            log.exception("failed calling Slack with %s", TOKEN)
    log.info("explicit", extra={"request_id": 7})
    log.info("none")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3
    assert TOKEN not in stream.getvalue() and REDACTED in lines[0]
    if fmt == "json":
        events = [json.loads(line) for line in lines]
        assert [e.get("request_id") for e in events] == [42, 7, None]
        assert "RuntimeError" in events[0]["exception"]
    else:
        assert "failed calling Slack with [redacted] [request_id=42]\\nTraceback" in lines[0]
        assert "RuntimeError: boom with [redacted]\\nsecond line" in lines[0]
        assert lines[1].endswith("explicit [request_id=7]")
        assert "request_id" not in lines[2]


def test_the_active_grants_gauge_is_read_at_scrape_time_and_survives_a_failing_database() -> None:
    metrics = Metrics()
    counts = {"iam_group": 2, "kms_key": 0}
    metrics.watch_active_grants(lambda: counts)
    assert b'accessbot_active_grants{kind="iam_group"} 2.0' in generate_latest(metrics.registry)
    counts["iam_group"] = 1
    assert b'accessbot_active_grants{kind="iam_group"} 1.0' in generate_latest(metrics.registry)

    def broken() -> dict[str, int]:
        raise OSError("database is gone")

    failing = Metrics()
    failing.watch_active_grants(broken)
    text = generate_latest(failing.registry)
    assert b"accessbot_active_grants{" not in text and b"accessbot_transitions" in text
