"""The activity report's pure parts: summing up, wording, right-sizing, who may read it, the command."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.activity.render import home_note, report_text, right_sizing
from bot.activity.sizing import Used, sizing
from bot.activity.summary import Call, Reading, summarize
from bot.domain.policy_activity import may_read_activity
from bot.slack.commands import Activity, parse_command

T0 = datetime(2026, 12, 8, 1, 0, tzinfo=UTC)


def call(n: int, name: str = "ListBuckets", *, write: bool = False, error: str | None = None) -> Call:
    return Call(f"id-{n}", T0 + timedelta(minutes=n), "s3", name, not write, error, "us-east-1")


def body_of(calls: list[Call], *, partial: bool = False) -> dict:
    return summarize(calls, Reading(lines=["x"], partial=partial, pages=3), "every call of IAM user alice")


@pytest.mark.parametrize(
    ("last_minute", "asked", "expected"),
    [
        pytest.param(12, timedelta(hours=4), "Asked for 4h, last call 12m in (of 4h held).", id="used early"),
        pytest.param(None, timedelta(hours=1), "Asked for 1h, never used.", id="never used"),
        pytest.param(0, timedelta(hours=1), "Asked for 1h, last call 0s in (of 4h held).", id="at once"),
    ],
)
def test_right_sizing_says_how_far_into_the_grant_the_last_call_was(
    last_minute: int | None, asked: timedelta, expected: str
) -> None:
    body = body_of([call(last_minute)] if last_minute is not None else [])
    assert right_sizing(body, asked=asked, started=T0, ended=T0 + timedelta(hours=4)) == expected


def test_writes_are_listed_twenty_then_and_n_more_and_every_denial_is_listed() -> None:
    calls = [call(i, "PutObject", write=True) for i in range(25)] + [call(30, "GetObject", error="AccessDenied")]
    text = report_text(7, body_of(calls), asked=timedelta(hours=1), started=T0, ended=T0 + timedelta(hours=1))
    assert text.count("s3:PutObject") == 21  # once among the calls by name, twenty times as writes
    assert "…and 5 more" in text
    assert "*AccessDenied:*" in text and "s3:GetObject" in text
    assert "26 calls, 25 writes, 1 AccessDenied" in text
    assert "data events" in text


def test_no_calls_and_a_partial_read_are_said() -> None:
    text = report_text(7, body_of([], partial=True), asked=timedelta(hours=1), started=T0, ended=T0)
    assert "no calls (partial)" in text and "Partial: stopped after 3 page(s)" in text


def test_an_event_seen_twice_counts_once() -> None:
    assert body_of([call(1), call(1)])["calls"] == 1


def test_home_note() -> None:
    assert home_note(None, None) is None
    assert home_note(0, 0) == "no calls"
    assert home_note(1200, 3) == "1,200 calls, 3 writes"


def test_sizing_per_resource_median_and_never_used() -> None:
    hour = timedelta(hours=1)
    rows = sizing(
        [
            Used("db", T0, T0 + hour, T0 + hour / 4),
            Used("db", T0, T0 + hour, T0 + hour / 2),
            Used("db", T0, T0 + hour, None),
            Used("admin", T0, T0 + hour, T0 + hour),
        ]
    )
    assert [(s.resource, s.grants, s.median_used, s.never_used) for s in rows] == [
        ("admin", 1, 1.0, 0),
        ("db", 3, 0.25, 1),
    ]


@pytest.mark.parametrize(
    ("user", "allowed"),
    [("U0ALICE", True), ("U0BOB", True), ("U0AUDIT", True), ("U0MALLORY", False)],
)
def test_who_may_read_a_report(user: str, allowed: bool) -> None:
    assert may_read_activity(user, requester="U0ALICE", approvers={"U0BOB"}, auditors={"U0AUDIT"}) is allowed


def test_the_activity_command_parses() -> None:
    assert parse_command("activity #12") == Activity(12)


def test_auditors_are_slack_ids_and_a_bad_one_is_named(tmp_path: pytest.TempPathFactory) -> None:
    from pathlib import Path

    from bot.catalog import load_catalog
    from bot.errors import ConfigError
    from tests.support.catalogs import BASIC

    path = Path(str(tmp_path)) / "catalog.yaml"
    path.write_text("auditors: [U0AUDIT, S0SEC]\n" + BASIC)
    assert load_catalog(path).auditors == ("U0AUDIT", "S0SEC")
    path.write_text("auditors: [U0AUDIT, alice]\n" + BASIC)
    with pytest.raises(ConfigError, match="auditors: 'alice' is not a Slack user or user-group ID"):
        load_catalog(path)
