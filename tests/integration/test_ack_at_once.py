"""Slack hears back at once: a command or click is acknowledged after parsing, before any identity,
database or AWS work; the work follows, answers through response_url or privately, and a retried or
doubled submission files one request.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from bot.domain.audit import AuditAction
from bot.slack import views
from bot.slack.messages import ACTION_APPROVE
from tests.conftest import Bot, wait_until
from tests.integration.flows import file_request
from tests.support.fake_slack import FakeSlack

RETRY = {"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}


@contextlib.contextmanager
def database_locked(database_url: str) -> Iterator[None]:
    """Hold the requests table so nobody else may write it (SQLite: the whole database) until the block ends."""
    if database_url.startswith("sqlite"):
        lite = sqlite3.connect(database_url.removeprefix("sqlite:///"), isolation_level=None)
        lite.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            lite.execute("ROLLBACK")
            lite.close()
        return
    with psycopg.connect(database_url.replace("postgresql+psycopg://", "postgresql://")) as pg:
        pg.execute("LOCK TABLE access_requests IN ACCESS EXCLUSIVE MODE")
        yield
        pg.rollback()


def response_url(bot: Bot) -> str:
    return f"{bot.sender.response_base}test/{uuid.uuid4().hex}"


def answered(slack: FakeSlack, url: str) -> str:
    return str(slack.wait_for("response_url", lambda c: c.args.get("response_url") == url).args.get("text", ""))


def test_a_request_is_acknowledged_before_the_requester_is_looked_up(bot: Bot, slack: FakeSlack) -> None:
    url = response_url(bot)
    with slack.holding("users.info"):
        answer = bot.sender.command("U0ALICE", "request deploy-admins 1h hotfix", response_url=url)
        # The ack came back while the email lookup (the first step of filing) was still waiting on Slack.
        assert answer.status_code == 200
        assert answer.json() == {"text": "Filing your request for *deploy-admins* (1h)…", "response_type": "ephemeral"}
        # The filing is under way in the background, held at its first step: only then do the checks below
        # say that it waits for the lookup (before it started, they would pass whatever the bot does).
        wait_until(lambda: slack.waiting.get("users.info", 0) >= 1)
        assert bot.count() == 0
        assert slack.find("response_url") == []
    said = answered(slack, url)
    assert said.startswith("Request #1 for *deploy-admins* (1h) is waiting for approval"), said
    assert bot.status(1) == "pending"


def test_bad_input_is_answered_in_the_ack_itself(bot: Bot, slack: FakeSlack) -> None:
    answer = bot.sender.command("U0ALICE", "request deploy-admins 9h fix")
    assert answer.json()["text"] == "deploy-admins can be granted for 1s to 8h; you asked for 9h."
    assert slack.find("users.info") == [] and bot.count() == 0


@pytest.mark.both_databases
def test_commands_and_clicks_are_acknowledged_while_the_database_is_busy(
    bot: Bot, slack: FakeSlack, database_url: str
) -> None:
    request_id = file_request(bot, "U0ALICE", "request deploy-admins 1h hotfix")
    wait_until(lambda: (row := bot.request(request_id)) is not None and row.approval_ts is not None)
    listing = response_url(bot)
    with database_locked(database_url):
        click = bot.sender.click("U0BOB", ACTION_APPROVE, f"{request_id}:0")
        command = bot.sender.command("U0ALICE", "list", response_url=listing)
        assert (click.status_code, command.status_code) == (200, 200)
        assert command.content == b""  # the list follows on the response_url
        assert slack.find("response_url", lambda c: c.args.get("response_url") == listing) == []
    bot.wait_status(request_id, "active")
    assert f"#{request_id}" in answered(slack, listing)


def test_a_slack_retry_of_a_command_files_one_request(bot: Bot, slack: FakeSlack) -> None:
    first, second = response_url(bot), response_url(bot)
    trigger = "4242.1337.retry"
    bot.sender.command("U0ALICE", "request deploy-admins 1h hotfix", trigger_id=trigger, response_url=first)
    said = answered(slack, first)
    retried = bot.sender.command(
        "U0ALICE", "request deploy-admins 1h hotfix", trigger_id=trigger, response_url=second, headers=RETRY
    )
    assert retried.status_code == 200
    assert answered(slack, second) == said  # the retry hears what the first delivery heard
    assert said.startswith("Request #1 ")
    assert bot.count() == 1
    approval = slack.wait_for("chat.postMessage", lambda c: c.args.get("channel") == "C0APPROVALS")
    assert approval.text().startswith("Access request #1")
    assert len(slack.find("chat.postMessage", lambda c: c.args.get("channel") == "C0APPROVALS")) == 1
    assert [e.action for e in bot.audit(1)].count(AuditAction.SUBMITTED.value) == 1


@pytest.mark.both_databases
def test_two_deliveries_of_one_command_at_the_same_moment_file_one_request(bot: Bot, slack: FakeSlack) -> None:
    urls = [response_url(bot) for _ in range(4)]
    start = threading.Barrier(len(urls))

    def deliver(url: str) -> None:
        start.wait()
        bot.sender.command("U0ALICE", "request deploy-admins 1h hotfix", trigger_id="77.same.trigger", response_url=url)

    threads = [threading.Thread(target=deliver, args=(url,)) for url in urls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    answers = {answered(slack, url) for url in urls}
    assert len(answers) == 1 and next(iter(answers)).startswith("Request #"), answers
    assert bot.count() == 1


def test_a_form_submitted_twice_files_one_request(bot: Bot, slack: FakeSlack) -> None:
    bot.sender.command("U0ALICE", "request")
    form = slack.wait_for("views.open").args["view"]
    assert form["callback_id"] == views.REQUEST_VIEW
    wanted = {"resource": "deploy-admins", "duration": "1h", "reason": "hotfix"}
    for _ in range(2):
        assert bot.sender.submit_view("U0ALICE", form, wanted).status_code == 200
    slack.wait_for(
        "chat.postMessage", lambda c: c.args.get("channel") == "U0ALICE" and "waiting for approval" in c.text()
    )
    wait_until(lambda: bot.count() == 1)
    assert len(slack.find("chat.postMessage", lambda c: c.args.get("channel") == "C0APPROVALS")) == 1
    assert bot.count() == 1


def test_an_error_after_the_ack_reaches_the_person_privately(bot: Bot, slack: FakeSlack) -> None:
    url = response_url(bot)
    answer = bot.sender.command("U0MALLORY", "request deploy-admins 1h fix", response_url=url)
    assert answer.json()["text"].startswith("Filing your request")
    said = answered(slack, url)
    assert "No IAM user has the tag email=mallory@example.com" in said
    call = slack.wait_for("response_url", lambda c: c.args.get("response_url") == url)
    assert call.args.get("response_type") == "ephemeral"
    assert bot.count() == 0


def test_a_click_refused_after_the_ack_is_told_privately_in_the_channel(bot: Bot, slack: FakeSlack) -> None:
    request_id = file_request(bot, "U0ALICE", "request deploy-admins 1h hotfix")
    wait_until(lambda: (row := bot.request(request_id)) is not None and row.approval_ts is not None)
    assert bot.sender.click("U0MALLORY", ACTION_APPROVE, f"{request_id}:0").status_code == 200
    told = slack.wait_for("chat.postEphemeral", lambda c: c.args.get("user") == "U0MALLORY")
    assert told.args["channel"] == "C0APPROVALS" and "approvers" in told.text()
    assert bot.status(request_id) == "pending"
