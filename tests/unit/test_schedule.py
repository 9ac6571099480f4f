"""next_due and retry_delay: when a request next needs the scheduler, and how long to back off."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.domain.lifecycle import Status
from bot.domain.schedule import Timeline, next_due, retry_delay

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)
M = timedelta(minutes=1)


def due(**overrides: Any) -> datetime | None:
    """next_due for a request created at T0, active from T0+1m for an hour, warning 10m before the end."""
    values: dict[str, Any] = {
        "status": Status.ACTIVE,
        "created_at": T0,
        "pending_timeout": 4 * H,
        "expires_at": T0 + M + H,
        "warn_before": 10 * M,
        "warned": False,
        "activated_at": T0 + M,
    }
    values.update(overrides)
    return next_due(Timeline(**values))


@pytest.mark.parametrize(
    ("got", "expected"),
    [
        pytest.param(
            due(status=Status.PENDING, expires_at=None, activated_at=None), T0 + 4 * H, id="pending-times-out"
        ),
        pytest.param(
            due(status=Status.PENDING, pending_timeout=30 * M, expires_at=None, activated_at=None),
            T0 + 30 * M,
            id="pending-uses-its-own-timeout",
        ),
        pytest.param(due(), T0 + M + H - 10 * M, id="active-warns-first"),
        pytest.param(due(warned=True), T0 + M + H, id="active-already-warned-expires"),
        pytest.param(due(warn_before=H), T0 + M + H, id="warning-as-long-as-grant-skipped"),
        pytest.param(due(warn_before=2 * H), T0 + M + H, id="warning-longer-than-grant-skipped"),
        pytest.param(due(warn_before=H - timedelta(seconds=1)), T0 + M + timedelta(seconds=1), id="warn-just-fits"),
        pytest.param(due(warn_before=timedelta(0)), T0 + M + H, id="no-warning-period-due-at-expiry"),
        pytest.param(due(activated_at=None), T0 + M + H, id="active-without-activation-time-expires"),
        pytest.param(due(expires_at=None), None, id="active-without-expiry-never-due"),
        pytest.param(due(status=Status.APPROVED), T0, id="approved-owes-its-grant-from-approval"),
        pytest.param(due(status=Status.APPROVED, approved_at=T0 + M), T0 + M, id="approved-due-at-approval"),
        *[
            pytest.param(due(status=status), None, id=f"{status.value}-never-due")
            for status in (
                Status.EXPIRED,
                Status.REVOKED,
                Status.DENIED,
                Status.CANCELLED,
                Status.TIMED_OUT,
                Status.FAILED,
            )
        ],
    ],
)
def test_next_due(got: datetime | None, expected: datetime | None) -> None:
    assert got == expected


S = timedelta(seconds=1)


@pytest.mark.parametrize(
    ("attempts", "base", "ceiling", "expected"),
    [
        pytest.param(0, 10 * S, 15 * M, 10 * S, id="no-failures-yet-waits-base"),
        pytest.param(-3, 10 * S, 15 * M, 10 * S, id="negative-attempts-waits-base"),
        pytest.param(1, 10 * S, 15 * M, 10 * S, id="first-retry-waits-base"),
        pytest.param(2, 10 * S, 15 * M, 20 * S, id="second-doubles"),
        pytest.param(3, 10 * S, 15 * M, 40 * S, id="third-doubles-again"),
        pytest.param(7, 10 * S, 15 * M, 640 * S, id="still-under-ceiling"),
        pytest.param(8, 10 * S, 15 * M, 15 * M, id="capped-at-ceiling"),
        pytest.param(3, 10 * S, 30 * S, 30 * S, id="custom-ceiling"),
        pytest.param(1, 20 * M, 15 * M, 15 * M, id="base-over-ceiling-capped"),
        pytest.param(3, timedelta(milliseconds=200), 15 * M, timedelta(milliseconds=800), id="sub-second-base"),
        pytest.param(100, 10 * S, 15 * M, 15 * M, id="many-failures-capped"),
        pytest.param(10_000, S, 15 * M, 15 * M, id="beyond-timedelta-range-capped"),
    ],
)
def test_retry_delay(attempts: int, base: timedelta, ceiling: timedelta, expected: timedelta) -> None:
    assert retry_delay(attempts, base, ceiling) == expected


def test_retry_delay_default_ceiling_is_fifteen_minutes() -> None:
    assert retry_delay(50, S) == 15 * M


@settings(max_examples=200)
@given(
    attempts=st.integers(min_value=0, max_value=100_000),
    base=st.timedeltas(min_value=timedelta(milliseconds=1), max_value=H),
)
def test_retry_delay_never_decreases_and_stays_in_bounds(attempts: int, base: timedelta) -> None:
    delay = retry_delay(attempts, base)
    assert min(base, 15 * M) <= delay <= 15 * M
    assert retry_delay(attempts + 1, base) >= delay
