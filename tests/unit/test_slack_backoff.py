"""The outbox's retry schedule after an outage, on a simulated clock: no real waiting."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.domain.slack_backoff import SHORT_CAP, outage_delay, retry_after_delay

BASE = timedelta(seconds=2)  # Tuning.slack_retry_base in production
CEILING = timedelta(minutes=5)
POLL = 1.0  # the pump looks for due posts at least this often


def delivered_at(outage: float, retry_after: float | None, jitter: float) -> tuple[float, int]:
    """When a post first tried at 0 goes out, Slack answering 503 until `outage`, then (optionally) one 429."""
    now, attempts, limited = 0.0, 0, retry_after is None
    while True:
        if now >= outage and limited:
            return now + POLL, attempts  # at worst found by the next poll
        attempts += 1
        if now >= outage:
            assert retry_after is not None
            now, limited = now + retry_after_delay(retry_after).total_seconds(), True
            continue
        now += outage_delay(attempts, timedelta(seconds=now), base=BASE, ceiling=CEILING, jitter=jitter).total_seconds()


@pytest.mark.parametrize("jitter", [0.0, 0.3, 0.7, 1.0])
@pytest.mark.parametrize("outage", [5.0, 20.0, 45.0, 60.0])
def test_a_post_owed_through_an_outage_of_up_to_a_minute_goes_out_within_10s_of_slack_answering(
    outage: float, jitter: float
) -> None:
    # Slack answers 503 for `outage` seconds, then 429 Retry-After: 1, then takes the post (issue 24's case).
    at, _ = delivered_at(outage, 1.0, jitter)
    assert at - outage <= 10.0


@pytest.mark.parametrize("jitter", [0.0, 1.0])
def test_a_slack_that_stays_down_is_not_hammered(jitter: float) -> None:
    # An hour down: each owed post is tried about every eighth of its age, not every few seconds.
    _, attempts = delivered_at(3600.0, None, jitter)
    assert attempts <= 60


def test_the_wait_never_exceeds_the_cap_jitter_included() -> None:
    for attempts in range(1, 40):
        for jitter in (0.0, 0.5, 1.0):
            delay = outage_delay(attempts, timedelta(seconds=30), base=BASE, ceiling=CEILING, jitter=jitter)
            assert delay <= SHORT_CAP
    assert outage_delay(30, timedelta(hours=10), base=BASE, ceiling=CEILING, jitter=1.0) == CEILING


def test_a_rate_limit_waits_exactly_what_slack_asked_not_a_growing_backoff() -> None:
    assert retry_after_delay(1) == timedelta(seconds=1)
    assert retry_after_delay(30) == timedelta(seconds=30)
    assert retry_after_delay(0) == timedelta(seconds=1)
