"""The PagerDuty client against the fake PagerDuty (real HTTP on loopback): headers, cache, timeout."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot.oncall.pagerduty import PagerDuty, PagerDutyError
from bot.testing.fake_pagerduty import FakePagerDuty


@pytest.fixture
def fake() -> Iterator[FakePagerDuty]:
    with FakePagerDuty() as pagerduty:
        pagerduty.add_user("PALICE", "alice@example.com")
        pagerduty.add_schedule("PSCHED1", "payments-primary", ["PALICE"])
        pagerduty.add_policy("PPOL1", "payments-escalation", {1: ["PBOB"], 2: ["PALICE"]})
        yield pagerduty


def test_answers_are_kept_briefly_then_asked_again(fake: FakePagerDuty) -> None:
    now = [0.0]
    client = PagerDuty(fake.url, fake.token, cache_seconds=60, monotonic=lambda: now[0])
    assert client.schedule_on_call("PSCHED1") == frozenset({"PALICE"})
    now[0] = 59.0
    fake.add_schedule("PSCHED1", "payments-primary", [])  # the hand-off happened
    assert client.schedule_on_call("PSCHED1") == frozenset({"PALICE"}), "still the cached answer"
    assert len(fake.calls) == 1
    now[0] = 61.0
    assert client.schedule_on_call("PSCHED1") == frozenset()
    assert len(fake.calls) == 2


def test_a_policy_is_read_at_one_level_and_errors_are_not_cached(fake: FakePagerDuty) -> None:
    client = PagerDuty(fake.url, fake.token)
    assert client.policy_on_call("PPOL1", 1) == frozenset({"PBOB"})
    assert client.policy_on_call("PPOL1", 2) == frozenset({"PALICE"})
    fake.failing.add("PSCHED1")
    with pytest.raises(PagerDutyError, match="HTTP 500"):
        client.schedule_on_call("PSCHED1")
    fake.failing.clear()
    assert client.schedule_on_call("PSCHED1") == frozenset({"PALICE"}), "the failure was not remembered"


def test_a_slow_pagerduty_is_given_up_after_the_timeout(fake: FakePagerDuty) -> None:
    fake.hanging["users"] = 2.0
    client = PagerDuty(fake.url, fake.token, timeout=0.3)
    with pytest.raises(PagerDutyError, match="did not answer"):
        client.users_by_email("alice@example.com")


def test_a_wrong_token_is_refused(fake: FakePagerDuty) -> None:
    with pytest.raises(PagerDutyError, match="HTTP 401"):
        PagerDuty(fake.url, "wrong").check_token()
