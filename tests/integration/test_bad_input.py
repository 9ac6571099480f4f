"""Bad input of every kind gets a clear, private answer, and nothing is stored for it."""

from __future__ import annotations

import time

import pytest

from bot.slack.messages import ACTION_APPROVE
from tests.conftest import SECRET, Bot, wait_until
from tests.integration.flows import file_request
from tests.support.aws import World, members
from tests.support.fake_slack import FakeSlack


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("request nope 1h fix", "Unknown resource 'nope'. Available: ", id="unknown resource"),
        pytest.param("request deploy-admins", "Usage: /access request", id="missing duration and reason"),
        pytest.param("request deploy-admins 1h", "Usage: /access request", id="missing reason"),
        pytest.param("request deploy-admins soon fix", "'soon' is not a duration", id="not a duration"),
        pytest.param("request deploy-admins 0s fix", "longer than zero", id="zero duration"),
        pytest.param("request deploy-admins 9h fix", "1s to 8h; you asked for 9h", id="over max_duration"),
        pytest.param("request prod-readonly 5h fix", "1s to 4h; you asked for 5h", id="over resource max"),
        pytest.param("request deploy-admins 99999d fix", "at most 3650d", id="absurd duration"),
        pytest.param("request deploy-admins 1h " + "x" * 600, "keep it under 500", id="reason too long"),
        pytest.param("frobnicate", "Unknown command 'frobnicate'", id="unknown subcommand"),
    ],
)
def test_bad_commands_get_a_specific_private_answer(bot: Bot, slack: FakeSlack, text: str, expected: str) -> None:
    assert expected in bot.ask("U0ALICE", text)
    assert all(c.args.get("response_type") == "ephemeral" for c in slack.find("response_url"))
    assert bot.count() == 0
    assert bot.audit() == []
    assert slack.find("chat.postMessage") == []


def test_unknown_iam_identity_is_refused_with_what_to_fix(bot: Bot, slack: FakeSlack) -> None:
    assert "No IAM user has the tag email=mallory@example.com" in bot.ask("U0MALLORY", "request deploy-admins 1h fix")
    slack.emails.pop("U0ALICE")
    assert "Slack profile has no email" in bot.ask("U0ALICE", "request deploy-admins 1h fix")
    assert bot.count() == 0


def test_help_lists_the_commands(bot: Bot) -> None:
    body = bot.sender.command("U0ALICE", "help").json()
    for usage in (
        "/access request <resource> <duration> <reason…>",
        "/access list",
        "/access pending",
        "/access cancel <id>",
        "/access revoke <id>",
        "/access extend <id> <duration>",
        "/access catalog",
    ):
        assert usage in body["text"]


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param({"secret": "wrong-secret"}, id="bad signature"),
        pytest.param({"timestamp": int(time.time()) - 600}, id="stale timestamp"),
        pytest.param({"timestamp": int(time.time()) + 600}, id="future timestamp"),
    ],
)
def test_unsigned_or_stale_requests_are_rejected(bot: Bot, slack: FakeSlack, tamper: dict[str, object]) -> None:
    answer = bot.sender.command("U0ALICE", "request deploy-admins 1h fix", **tamper)  # type: ignore[arg-type]
    assert answer.status_code == 401
    assert bot.count() == 0
    assert slack.calls == []


def test_missing_signature_headers_are_rejected(bot: Bot) -> None:
    answer = bot.sender.session.post(
        bot.sender.url,
        data=b"command=/access&text=help&user_id=U0ALICE",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=5,
    )
    assert answer.status_code == 401
    assert SECRET not in answer.text


def test_a_click_by_someone_who_is_not_an_approver_changes_nothing(bot: Bot, slack: FakeSlack, world: World) -> None:
    request_id = file_request(bot, "U0ALICE", "request deploy-admins 1h fix")
    assert bot.sender.click("U0MALLORY", ACTION_APPROVE, str(request_id)).status_code == 200
    told = slack.wait_for("chat.postEphemeral", lambda c: c.args.get("user") == "U0MALLORY")
    assert f"Only the approvers of deploy-admins can decide request #{request_id}" in told.text()
    assert bot.status(request_id) == "pending"
    assert slack.find("chat.update") == []
    assert [e.action for e in bot.audit(request_id)] == ["submitted"]
    assert "alice" not in members(world.iam, "deploy-admins")


def test_requesters_cannot_approve_their_own_request(bot: Bot, slack: FakeSlack, world: World) -> None:
    request_id = file_request(bot, "U0BOB", "request deploy-admins 1h fix")
    bot.sender.click("U0BOB", ACTION_APPROVE, str(request_id))
    told = slack.wait_for("chat.postEphemeral", lambda c: c.args.get("user") == "U0BOB")
    assert f"cannot approve or deny your own request #{request_id}" in told.text()
    assert bot.status(request_id) == "pending"
    assert "bob" not in members(world.iam, "deploy-admins")


def test_self_approval_works_where_the_catalog_allows_it(bot: Bot, world: World) -> None:
    request_id = file_request(bot, "U0BOB", "request auditors 1h quarterly review")
    bot.sender.click("U0BOB", ACTION_APPROVE, str(request_id))
    bot.wait_status(request_id, "active")
    assert "bob" in members(world.iam, "auditors")


def test_a_repeated_click_is_processed_once(bot: Bot, slack: FakeSlack, world: World) -> None:
    request_id = file_request(bot, "U0ALICE", "request deploy-admins 1h fix")
    bot.sender.click("U0BOB", ACTION_APPROVE, str(request_id))
    bot.sender.click("U0BOB", ACTION_APPROVE, str(request_id), headers={"X-Slack-Retry-Num": "1"})
    bot.wait_status(request_id, "active")
    wait_until(lambda: slack.find("chat.postEphemeral", lambda c: c.args.get("user") == "U0BOB"))
    wait_until(lambda: slack.find("chat.update", lambda c: "Approved by <@U0BOB>" in c.text()))
    time.sleep(0.3)
    actions = [e.action for e in bot.audit(request_id)]
    assert (actions.count("approved"), actions.count("grant_started"), actions.count("active")) == (1, 1, 1)


def test_a_button_value_that_is_not_a_request_id_is_refused(bot: Bot, slack: FakeSlack) -> None:
    for value in ("abc", "0", "#-3", "9999"):
        assert bot.sender.click("U0BOB", ACTION_APPROVE, value).status_code == 200
    wait_until(lambda: len(slack.find("chat.postEphemeral")) == 4)
    texts = [c.text() for c in slack.find("chat.postEphemeral")]
    assert sum("is not a request ID" in t for t in texts) == 3
    assert any("Request #9999 does not exist" in t for t in texts)
    assert bot.count() == 0
