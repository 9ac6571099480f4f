"""GET /metrics as Prometheus scrapes it, before and after real flows."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Bot, wait_until
from tests.integration.flows import approve, file_request
from tests.integration.history import deny
from tests.support.fake_slack import FakeSlack

Sample = tuple[str, frozenset[tuple[str, str]]]


def scrape(bot: Bot) -> dict[Sample, float]:
    answer = bot.sender.session.get(bot.url + "/metrics", timeout=5)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/plain")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(answer.text)
        for s in family.samples
    }


def value(samples: dict[Sample, float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.mark.both_databases
def test_metrics_follow_a_grant_from_request_to_expiry(bot: Bot) -> None:
    before = scrape(bot)
    assert value(before, "accessbot_active_grants", kind="iam_group") == 0
    assert ("accessbot_active_grants", frozenset({("kind", "kms_key")})) in before, "every kind is exported"
    assert value(before, "accessbot_revoke_lag_seconds_count") == 0

    request_id = file_request(bot, "U0ALICE", "request deploy-admins 2s hotfix")
    approve(bot, request_id)
    bot.wait_status(request_id, "active")
    active = scrape(bot)
    assert value(active, "accessbot_active_grants", kind="iam_group") == 1
    assert value(active, "accessbot_transitions_total", kind="iam_group", status="active") == 1
    assert value(active, "accessbot_requests_total", kind="iam_group", status="expired") == 0

    bot.wait_status(request_id, "expired", timeout=8)
    after = scrape(bot)
    assert value(after, "accessbot_active_grants", kind="iam_group") == 0
    assert value(after, "accessbot_requests_total", kind="iam_group", status="expired") == 1
    assert value(after, "accessbot_revoke_lag_seconds_count") == 1
    assert 0 <= value(after, "accessbot_revoke_lag_seconds_sum") < 5  # seconds (timeliness: test_lifecycle)
    assert value(after, "accessbot_sweep_duration_seconds_count") > value(
        before, "accessbot_sweep_duration_seconds_count"
    )
    assert value(after, "accessbot_aws_failures_total", operation="iam:AddUserToGroup") == 0


def test_denials_aws_failures_and_slack_failures_are_counted(bot: Bot, slack: FakeSlack) -> None:
    denied = file_request(bot, "U0ALICE", "request prod-readonly 1h look around")
    deny(bot, slack, denied, "U0BOB", "not today")
    failed = file_request(bot, "U0ALICE", "request ghost-group 1h the group is gone")
    approve(bot, failed)
    bot.wait_status(failed, "failed")
    slack.failures["chat.update"] = "message_not_found"
    other = file_request(bot, "U0ALICE", "request auditors 1h audit")
    approve(bot, other)
    bot.wait_status(other, "active")
    wait_until(lambda: slack.find("chat.update"))

    samples = wait_until(
        lambda: (s := scrape(bot)) and value(s, "accessbot_slack_failures_total", method="chat_update") >= 1 and s
    )
    assert value(samples, "accessbot_requests_total", kind="iam_role", status="denied") == 1
    assert value(samples, "accessbot_requests_total", kind="iam_group", status="failed") == 1
    assert value(samples, "accessbot_aws_failures_total", operation="iam:AddUserToGroup") == 1
    assert value(samples, "accessbot_active_grants", kind="iam_group") == 1
    assert value(samples, "accessbot_slack_failures_total", method="chat_postMessage") == 0
