"""`start=` through Slack: the answers, messages, list line and form of a scheduled request, and refusals.

The start itself (granted then, its duration counted from the grant, a restart, a cancel or a change of
requesters in between, the filer's time zone): tests/inprocess/test_schedule.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import Bot, wait_until
from tests.integration.flows import approval_update, approve, dm_containing, file_request
from tests.support.aws import World, members
from tests.support.fake_slack import FakeSlack

ALICE, BOB = "U0ALICE", "U0BOB"


def test_a_request_approved_ahead_says_when_it_starts_and_waits(bot: Bot, slack: FakeSlack, world: World) -> None:
    # The grant at the start, its hour counted from the grant, a restart or a cancel in between, the requesters
    # asked again: tests/inprocess/test_schedule.py. Here: the command's answer and what Slack shows.
    said = bot.ask(ALICE, "request deploy-admins 1h start=+1h release")
    assert "starting at <!date^" in said and "is waiting for approval" in said, said
    request_id = int(said.split("#", 1)[1].split()[0])
    row = bot.request(request_id)
    assert row is not None and row.starts_at is not None
    posted = slack.wait_for("chat.postMessage", lambda c: c.args.get("channel") == "C0APPROVALS").text()
    assert "starting at" in posted
    assert "starting at" in dm_containing(slack, ALICE, "is waiting for approval")

    approve(bot, request_id)
    assert "starts at" in approval_update(slack, request_id, "Approved by")
    assert "it starts at" in dm_containing(slack, ALICE, "was approved")
    assert bot.status(request_id) == "approved"
    assert "alice" not in members(world.iam, "deploy-admins")


@pytest.mark.parametrize(
    ("text", "says"),
    [
        pytest.param("request deploy-admins 1h start=2020-01-01T09:00 fix", "is in the past", id="past"),
        pytest.param("request deploy-admins 1h start=+8d fix", "at most 7d ahead", id="beyond-max-start-ahead"),
        pytest.param("request deploy-admins 1h start=later fix", "is not a start time", id="not-a-time"),
        pytest.param("breakglass deploy-admins 1h start=+1h fix", "takes no start=", id="break-glass"),
    ],
)
def test_a_start_that_cannot_be_is_refused_privately_and_nothing_is_stored(bot: Bot, text: str, says: str) -> None:
    said = bot.ask(ALICE, text)
    assert says in said, said
    assert bot.count() == 0


def test_the_start_shows_in_access_list(bot: Bot) -> None:
    request_id = file_request(bot, ALICE, "request deploy-admins 1h start=+1h release")
    listed = bot.ask(ALICE, "list")
    assert f"#{request_id} *deploy-admins* — pending, 1h, starts <!date^" in listed, listed


def test_the_form_takes_an_optional_start(bot: Bot, slack: FakeSlack) -> None:
    assert bot.sender.command(ALICE, "").status_code == 200
    form = slack.wait_for("views.open").args["view"]
    start = next(b for b in form["blocks"] if b["block_id"] == "start")
    assert start["optional"] is True
    answers = {"resource": "deploy-admins", "duration": "1h", "start": "+2h", "reason": "release"}
    assert bot.sender.submit_view(ALICE, form, answers).status_code == 200
    wait_until(lambda: bot.count() == 1)
    row = bot.request(1)
    assert row is not None and row.starts_at is not None
    assert timedelta(hours=1, minutes=59) < row.starts_at - datetime.now(UTC) <= timedelta(hours=2)
    assert "starting at" in dm_containing(slack, ALICE, "is waiting for approval")
    form = {**form, "id": "V0VIEW2"}  # another form: a resubmitted one files nothing new
    late = {"resource": "deploy-admins", "duration": "1h", "start": "+30d", "reason": "release"}
    assert bot.sender.submit_view(ALICE, form, late).status_code == 200
    assert "at most 7d ahead" in dm_containing(slack, ALICE, "ahead")
    assert bot.count() == 1
