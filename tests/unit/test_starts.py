"""`start=`: the moment a scheduled start names, read in the requester's time zone, and its limits."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.domain.lifecycle import Status
from bot.domain.policy import Reason, may_cancel
from bot.domain.schedule import Step, Timeline, aws_step, next_due
from bot.errors import UserError
from bot.slack.commands import Request, parse_command
from bot.starts import StartError, check_start, parse_start, zone_of

NOW = datetime(2026, 11, 29, 15, 0, tzinfo=UTC)  # 16:00 in Paris, 10:00 in New York, 00:00 (30 Nov) in Tokyo
PARIS, NEW_YORK, TOKYO = ZoneInfo("Europe/Paris"), ZoneInfo("America/New_York"), ZoneInfo("Asia/Tokyo")


@pytest.mark.parametrize(
    ("text", "zone", "expected"),
    [
        pytest.param("+30m", PARIS, NOW + timedelta(minutes=30), id="relative-ignores-the-zone"),
        pytest.param("+1h30m", UTC, NOW + timedelta(hours=1, minutes=30), id="relative-any-duration"),
        pytest.param("17:00", PARIS, datetime(2026, 11, 29, 16, 0, tzinfo=UTC), id="clock-later-today-paris"),
        pytest.param("14:00", PARIS, datetime(2026, 11, 30, 13, 0, tzinfo=UTC), id="clock-already-past-is-tomorrow"),
        pytest.param("16:00", PARIS, datetime(2026, 11, 30, 15, 0, tzinfo=UTC), id="clock-exactly-now-is-tomorrow"),
        pytest.param("14:00", NEW_YORK, datetime(2026, 11, 29, 19, 0, tzinfo=UTC), id="clock-in-new-york"),
        pytest.param("9:05", TOKYO, datetime(2026, 11, 30, 0, 5, tzinfo=UTC), id="clock-tokyo-next-day-local"),
        pytest.param("2026-12-01T09:00", PARIS, datetime(2026, 12, 1, 8, 0, tzinfo=UTC), id="iso-in-the-zone"),
        pytest.param("2026-12-01 09:00", UTC, datetime(2026, 12, 1, 9, 0, tzinfo=UTC), id="iso-with-a-space"),
        pytest.param("2026-12-01T09:00+02:00", NEW_YORK, datetime(2026, 12, 1, 7, 0, tzinfo=UTC), id="iso-offset-wins"),
        pytest.param("2026-12-01T09:00Z", PARIS, datetime(2026, 12, 1, 9, 0, tzinfo=UTC), id="iso-zulu"),
    ],
)
def test_a_start_is_read_in_the_requesters_zone(text: str, zone: ZoneInfo, expected: datetime) -> None:
    assert parse_start(text, NOW, zone) == expected


@pytest.mark.parametrize(
    ("text", "says"),
    [
        pytest.param("+", "is not a duration", id="relative-without-duration"),
        pytest.param("+0s", "longer than zero", id="relative-zero"),
        pytest.param("soon", "is not a start time", id="a-word"),
        pytest.param("25:00", "is not a start time", id="no-such-hour"),
        pytest.param("14:7", "is not a start time", id="one-digit-minutes"),
        pytest.param("2026-13-01T09:00", "is not a start time", id="no-such-month"),
    ],
)
def test_text_that_is_no_start_is_refused_saying_how_to_write_one(text: str, says: str) -> None:
    with pytest.raises(StartError, match=says):
        parse_start(text, NOW, UTC)


@pytest.mark.parametrize(
    ("start", "says"),
    [
        pytest.param(NOW - timedelta(seconds=1), "in the past", id="a-second-ago"),
        pytest.param(NOW + timedelta(days=7, seconds=1), "at most 7d ahead", id="beyond-the-limit"),
    ],
)
def test_a_start_in_the_past_or_too_far_ahead_is_refused(start: datetime, says: str) -> None:
    with pytest.raises(StartError, match=says):
        check_start(start, NOW, timedelta(days=7))


def test_a_start_within_the_limit_is_accepted() -> None:
    check_start(NOW, NOW, timedelta(days=7))
    check_start(NOW + timedelta(days=7), NOW, timedelta(days=7))


@given(st.text(max_size=40))
def test_any_text_parses_to_an_aware_utc_moment_or_a_start_error(text: str) -> None:
    try:
        moment = parse_start(text, NOW, PARIS)
    except StartError:
        return
    assert moment.tzinfo is UTC


@pytest.mark.parametrize(
    ("name", "offset", "expected"),
    [
        pytest.param("Europe/Paris", 3600, PARIS, id="iana-name"),
        pytest.param("Not/AZone", -18000, timezone(timedelta(hours=-5)), id="unknown-name-uses-the-offset"),
        pytest.param(None, None, UTC, id="nothing-is-utc"),
    ],
)
def test_a_slack_users_zone(name: str | None, offset: int | None, expected: object) -> None:
    assert zone_of(name, offset) == expected


def _approved(**overrides: object) -> Timeline:
    values: dict[str, object] = {
        "status": Status.APPROVED,
        "created_at": NOW,
        "pending_timeout": timedelta(hours=4),
        "approved_at": NOW + timedelta(minutes=1),
        "starts_at": NOW + timedelta(hours=2),
    }
    values.update(overrides)
    return Timeline(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("line", "now", "step"),
    [
        pytest.param(_approved(), NOW + timedelta(hours=1), Step.NONE, id="approved-ahead-owes-nothing-yet"),
        pytest.param(_approved(), NOW + timedelta(hours=2), Step.GRANT, id="grant-owed-at-the-start"),
        pytest.param(_approved(starts_at=None), NOW, Step.GRANT, id="no-start-grant-on-approval"),
        pytest.param(
            _approved(end_owed_since=NOW + timedelta(minutes=5)), NOW + timedelta(hours=1), Step.DROP, id="revoked"
        ),
        pytest.param(_approved(grant_started=True), NOW + timedelta(hours=1), Step.GRANT, id="grant-in-flight"),
    ],
)
def test_the_grant_of_a_scheduled_request_is_owed_from_its_start(line: Timeline, now: datetime, step: Step) -> None:
    assert aws_step(line, now) is step


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        pytest.param(_approved(), NOW + timedelta(hours=2), id="approved-ahead-is-due-at-the-start"),
        pytest.param(
            _approved(starts_at=NOW - timedelta(hours=1)), NOW + timedelta(minutes=1), id="late-approval-due-at-once"
        ),
        pytest.param(
            _approved(status=Status.PENDING, approved_at=None), NOW + timedelta(minutes=30), id="pending-reminds"
        ),
    ],
)
def test_a_scheduled_request_is_next_due(line: Timeline, expected: datetime) -> None:
    assert next_due(replace_reminders(line)) == expected


def replace_reminders(line: Timeline) -> Timeline:
    """Reminders every 30m, so a pending request's due time shows they still apply."""
    return replace(line, max_reminders=3, remind_after=timedelta(minutes=30))


@pytest.mark.parametrize(
    ("status", "not_started", "reason"),
    [
        pytest.param(Status.PENDING, False, Reason.ALLOWED, id="pending"),
        pytest.param(Status.APPROVED, True, Reason.ALLOWED, id="approved-before-its-start"),
        pytest.param(Status.APPROVED, False, Reason.WRONG_STATE, id="approved-started"),
        pytest.param(Status.ACTIVE, False, Reason.WRONG_STATE, id="active"),
    ],
)
def test_a_request_may_be_cancelled_until_its_start(status: Status, not_started: bool, reason: Reason) -> None:
    decision = may_cancel(actor="U1", requester="U1", status=status, not_started=not_started)
    assert decision.reason is reason


def test_start_is_an_option_between_the_duration_and_the_reason() -> None:
    parsed = parse_command("request deploy-admins 1h start=14:00 for=<@U0ALICE> the release")
    assert parsed == Request(
        resource="deploy-admins", duration="1h", reason="the release", on_behalf_of="U0ALICE", start="14:00"
    )


@pytest.mark.parametrize(
    ("text", "says"),
    [
        pytest.param("breakglass deploy-admins 1h start=+1h fire", "takes no start=", id="break-glass"),
        pytest.param("request deploy-admins 1h start= the release", "start= needs a time", id="empty"),
        pytest.param("request deploy-admins 1h start=+1h start=+2h fix", "given twice", id="twice"),
    ],
)
def test_start_is_refused_where_it_cannot_apply(text: str, says: str) -> None:
    with pytest.raises(UserError, match=says):
        parse_command(text)
