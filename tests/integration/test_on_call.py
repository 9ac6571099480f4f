"""On-call approval (issue 24, point 1): PagerDuty schedules and escalation policies, a Slack user group.

A fake PagerDuty (bot.testing.fake_pagerduty, real HTTP on loopback) answers as PagerDuty's REST API v2.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bot.cli import main
from bot.testing.fake_pagerduty import FakePagerDuty
from tests.conftest import Bot, wait_until
from tests.support.aws import World, members
from tests.support.catalogs import BASIC
from tests.support.fake_slack import FakeSlack

ON_CALL = """
  payments-admins:
    kind: iam_group
    group_name: deploy-admins
    approvers: [platform]
    auto_approve: {max_duration: 2h, on_call: {pagerduty: {schedules: [PSCHED1]}}}
  payments-policy:
    kind: iam_group
    group_name: deploy-admins
    approvers: [platform]
    auto_approve: {on_call: {pagerduty: {escalation_policies: [PPOLICY1], escalation_level: 2}}}
  oncall-slack:
    kind: iam_group
    group_name: deploy-admins
    approvers: [platform]
    auto_approve: {on_call: {slack_user_group: S0ONCALL}}
"""


@pytest.fixture
def pagerduty() -> Iterator[FakePagerDuty]:
    with FakePagerDuty() as fake:
        fake.add_user("PALICE", "alice@example.com")
        fake.add_user("PALICE2", "alice@example.com.evil")  # a search for alice's email finds it too: not her
        fake.add_user("PBOB", "bob@example.com")
        fake.add_schedule("PSCHED1", "payments-primary", ["PALICE"])
        fake.add_policy("PPOLICY1", "payments-escalation", {1: ["PBOB"], 2: ["PALICE"]})
        yield fake


@pytest.fixture
def on_call_bot(make_bot: Callable[..., Bot], catalog_file: Path, pagerduty: FakePagerDuty) -> Bot:
    catalog_file.write_text(BASIC + ON_CALL)
    return make_bot(accessbot_pagerduty_token=pagerduty.token, accessbot_pagerduty_url=pagerduty.url)


def filed(bot: Bot, user: str, text: str) -> tuple[int, str]:
    said = bot.ask(user, text)
    found = re.search(r"Request #(\d+)", said)
    assert found, said
    return int(found.group(1)), said


@pytest.mark.both_databases
def test_the_engineer_on_call_in_the_schedule_is_approved_at_once_and_every_record_names_the_schedule(
    on_call_bot: Bot, slack: FakeSlack, world: World, pagerduty: FakePagerDuty
) -> None:
    request_id, said = filed(on_call_bot, "U0ALICE", "request payments-admins 1h incident 42")
    assert "approved: on call for payments-primary" in said
    on_call_bot.wait_status(request_id, "active")
    assert "alice" in members(world.iam, "deploy-admins")
    message = slack.wait_for("chat.postMessage", lambda c: c.channel == "C0APPROVALS" and f"#{request_id}" in c.text())
    assert "Approved: on call for payments-primary" in str(message.blocks())
    wait_until(lambda: any("approved: on call for payments-primary" in t for t in slack.dms_to("U0ALICE")))
    approved = [e for e in on_call_bot.audit(request_id) if e.action == "approved"]
    assert approved and "on call for payments-primary" in approved[0].details
    # PagerDuty was asked as documented: the exact user by email, the schedule's on-call now, the token.
    assert any(c.startswith("/users?query=alice%40example.com") for c in pagerduty.calls)
    assert any(c.startswith("/schedules/PSCHED1/users?since=") for c in pagerduty.calls)


def test_someone_not_on_call_waits_for_a_person(on_call_bot: Bot, slack: FakeSlack) -> None:
    request_id, said = filed(on_call_bot, "U0BOB", "request payments-admins 1h incident 42")
    assert "waiting for approval" in said
    assert on_call_bot.status(request_id) == "pending"


def test_an_escalation_policy_is_read_at_the_level_the_resource_names(on_call_bot: Bot) -> None:
    alice, _ = filed(on_call_bot, "U0ALICE", "request payments-policy 1h incident 42")  # on call at level 2
    bob, _ = filed(on_call_bot, "U0BOB", "request payments-policy 1h incident 42")  # level 1 only
    on_call_bot.wait_status(alice, "active")
    assert on_call_bot.status(bob) == "pending"


def test_a_schedule_that_cannot_be_read_sends_the_request_to_people_and_says_why(
    on_call_bot: Bot, slack: FakeSlack, pagerduty: FakePagerDuty
) -> None:
    pagerduty.failing.add("PSCHED1")
    request_id, said = filed(on_call_bot, "U0ALICE", "request payments-admins 1h incident 42")
    assert on_call_bot.status(request_id) == "pending"
    assert "On-call could not be checked" in said and "HTTP 500" in said
    message = slack.wait_for("chat.postMessage", lambda c: c.channel == "C0APPROVALS" and f"#{request_id}" in c.text())
    # Neither its name nor its on-call could be read: it is named by its ID.
    assert "On-call could not be checked (PSCHED1: PagerDuty answered HTTP 500)" in json.dumps(message.blocks())
    assert message.button("Approve") is not None


def test_a_pagerduty_that_hangs_is_not_waited_for_beyond_the_timeout(
    on_call_bot: Bot, pagerduty: FakePagerDuty
) -> None:
    pagerduty.hanging["users"] = 5.0  # longer than the client's 3 s timeout
    request_id, said = filed(on_call_bot, "U0ALICE", "request payments-admins 1h incident 42")
    assert on_call_bot.status(request_id) == "pending"
    assert "PagerDuty did not answer" in said


def test_a_wrong_token_is_no_approval(
    make_bot: Callable[..., Bot], catalog_file: Path, pagerduty: FakePagerDuty
) -> None:
    catalog_file.write_text(BASIC + ON_CALL)
    bot = make_bot(accessbot_pagerduty_token="wrong", accessbot_pagerduty_url=pagerduty.url)
    request_id, said = filed(bot, "U0ALICE", "request payments-admins 1h incident 42")
    assert bot.status(request_id) == "pending" and "HTTP 401" in said


def test_a_request_filed_for_the_engineer_on_call_still_waits_for_a_person(on_call_bot: Bot) -> None:
    # bob approves payments-admins, so he may file for alice; on call or not, she gets nothing unasked.
    request_id, _ = filed(on_call_bot, "U0BOB", "request payments-admins 1h incident 42 for=<@U0ALICE|alice>")
    assert on_call_bot.status(request_id) == "pending"


def test_longer_than_auto_approval_allows_is_not_looked_up(on_call_bot: Bot, pagerduty: FakePagerDuty) -> None:
    request_id, _ = filed(on_call_bot, "U0ALICE", "request payments-admins 3h incident 42")
    assert on_call_bot.status(request_id) == "pending"
    assert pagerduty.calls == []


def test_the_auto_approve_limit_still_applies_to_on_call(on_call_bot: Bot) -> None:
    ids = [filed(on_call_bot, "U0ALICE", f"request payments-admins 1h incident {n}")[0] for n in range(4)]
    statuses = [on_call_bot.status(i) for i in ids]
    assert statuses[3] == "pending" and all(s != "pending" for s in statuses[:3]), statuses


def test_a_member_of_the_on_call_slack_user_group_is_approved_at_once(on_call_bot: Bot, slack: FakeSlack) -> None:
    slack.usergroups["S0ONCALL"] = ["U0ALICE"]
    alice, said = filed(on_call_bot, "U0ALICE", "request oncall-slack 1h incident 42")
    bob, _ = filed(on_call_bot, "U0BOB", "request oncall-slack 1h incident 42")
    assert "on call for the Slack user group" in said
    on_call_bot.wait_status(alice, "active")
    assert on_call_bot.status(bob) == "pending"


def test_check_config_checks_the_token_and_that_each_schedule_and_policy_exists(
    world: World,
    catalog_file: Path,
    pagerduty: FakePagerDuty,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    catalog = BASIC[: BASIC.index("  ghost-group:")] + ON_CALL.replace("[PPOLICY1]", "[PPOLICY1, PGONE]")
    catalog_file.write_text(catalog)
    monkeypatch.setenv("ACCESSBOT_CATALOG", str(catalog_file))
    monkeypatch.setenv("ACCESSBOT_PAGERDUTY_URL", pagerduty.url)
    monkeypatch.setenv("ACCESSBOT_PAGERDUTY_TOKEN", pagerduty.token)
    assert main(["check-config"]) == 1
    out = capsys.readouterr().out.splitlines()
    key = "payments-policy.auto_approve.on_call.pagerduty.escalation_policies"
    assert "ok   ACCESSBOT_PAGERDUTY_TOKEN: PagerDuty accepts it" in out
    assert "ok   payments-admins.auto_approve.on_call.pagerduty.schedules: schedule PSCHED1 (payments-primary)" in out
    assert f"ok   {key}: escalation policy PPOLICY1 (payments-escalation)" in out
    assert f"FAIL {key}: escalation policy PGONE: PagerDuty answered HTTP 404 (does it exist?)" in out

    monkeypatch.setenv("ACCESSBOT_PAGERDUTY_TOKEN", "wrong")
    catalog_file.write_text(BASIC[: BASIC.index("  ghost-group:")] + ON_CALL)
    assert main(["check-config"]) == 1
    assert "FAIL ACCESSBOT_PAGERDUTY_TOKEN: PagerDuty answered HTTP 401" in capsys.readouterr().out.splitlines()
