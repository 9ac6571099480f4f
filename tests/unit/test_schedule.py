"""next_due and retry_delay: when a request next needs the scheduler, and how long to back off."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.domain.lifecycle import Status
from bot.domain.schedule import Step, Timeline, aws_step, next_due, retry_delay

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


# -- AWS work: which step is owed, and when ------------------------------------------------------


def line(**overrides: Any) -> Timeline:
    """An active grant from T0+1m to T0+1m+1h (a warning due 10m before its end), as in `due`."""
    values: dict[str, Any] = {
        "status": Status.ACTIVE,
        "created_at": T0,
        "pending_timeout": 4 * H,
        "expires_at": T0 + M + H,
        "warn_before": 10 * M,
        "warned": False,
        "activated_at": T0 + M,
        "approved_at": T0 + M,
        "grant_started": True,
    }
    values.update(overrides)
    return Timeline(**values)


NOW = T0 + 2 * M


@pytest.mark.parametrize(
    ("timeline", "step"),
    [
        pytest.param(line(status=Status.APPROVED, grant_started=False), Step.GRANT, id="approved-owes-its-grant"),
        pytest.param(line(status=Status.APPROVED), Step.GRANT, id="a-started-grant-is-finished"),
        pytest.param(
            line(status=Status.APPROVED, grant_started=False, end_owed_since=T0 + M),
            Step.DROP,
            id="revoked-before-anything-was-applied-ends-without-aws",
        ),
        pytest.param(
            line(status=Status.APPROVED, end_owed_since=T0 + M), Step.END, id="revoked-while-the-grant-was-in-flight"
        ),
        pytest.param(line(), Step.NONE, id="active-not-due"),
        pytest.param(line(expires_at=NOW), Step.END, id="active-expired"),
        pytest.param(line(end_owed_since=T0 + M), Step.END, id="active-revoke-asked"),
        pytest.param(
            line(end_owed_since=T0 + M, extension_approved_at=T0 + M), Step.END, id="an-end-comes-before-an-extension"
        ),
        pytest.param(line(extension_approved_at=T0 + M), Step.EXTEND, id="approved-extension"),
        pytest.param(line(end_owed_since=T0 + M, retry_at=NOW + M), Step.NONE, id="a-failed-end-waits-its-backoff"),
        pytest.param(line(end_owed_since=T0 + M, retry_at=NOW), Step.END, id="and-is-tried-again-then"),
        pytest.param(line(status=Status.FAILED), Step.CLEANUP, id="failed-grant-still-held-is-undone"),
        pytest.param(line(status=Status.FAILED, ended=True), Step.NONE, id="failed-grant-undone"),
        pytest.param(line(status=Status.FAILED, grant_started=False), Step.NONE, id="failed-before-any-aws-call"),
        pytest.param(line(status=Status.REVOKED, ended=True, lift_at=NOW), Step.LIFT, id="session-deny-lifted"),
        pytest.param(line(status=Status.EXPIRED, ended=True, lift_at=NOW + H), Step.NONE, id="session-deny-kept"),
        pytest.param(line(status=Status.DENIED, grant_started=False), Step.NONE, id="denied-owes-nothing"),
    ],
)
def test_aws_step(timeline: Timeline, step: Step) -> None:
    assert aws_step(timeline, NOW) is step


@pytest.mark.parametrize(
    ("timeline", "expected"),
    [
        pytest.param(line(end_owed_since=T0 + M), T0 + M, id="an-asked-end-is-due-at-once"),
        pytest.param(
            line(end_owed_since=T0 + M, retry_at=T0 + 50 * M), T0 + 50 * M, id="a-retry-ignores-the-earlier-warning"
        ),
        pytest.param(
            line(end_owed_since=T0 + M, retry_at=T0 + 3 * H), T0 + 3 * H, id="and-nothing-else-moves-it-either"
        ),
        pytest.param(line(extension_approved_at=T0 + 2 * M), T0 + 2 * M, id="an-approved-extension-is-due"),
        pytest.param(line(status=Status.FAILED, end_owed_since=T0 + 3 * M), T0 + 3 * M, id="an-owed-undo-is-due"),
        pytest.param(line(status=Status.REVOKED, ended=True, lift_at=T0 + 2 * H), T0 + 2 * H, id="lift-when-due"),
        pytest.param(line(status=Status.REVOKED, ended=True), None, id="ended-owes-nothing"),
    ],
)
def test_next_due_includes_owed_aws_work(timeline: Timeline, expected: datetime | None) -> None:
    assert next_due(timeline) == expected
