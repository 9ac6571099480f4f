"""`start=`: a request approved ahead is granted at its start, and its duration counts from the grant."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.domain.audit import AuditAction
from bot.starts import parse_start
from tests.conftest import Bot, wait_until
from tests.integration.flows import approval_update, approve, catalog_with, dm_containing, file_request
from tests.support.aws import World, members
from tests.support.fake_slack import FakeSlack

ALICE, BOB = "U0ALICE", "U0BOB"


def test_a_request_approved_ahead_is_granted_at_its_start(bot: Bot, slack: FakeSlack, world: World) -> None:
    # The start leaves room for filing and approving on a loaded machine; the grant must wait for it.
    said = bot.ask(ALICE, "request deploy-admins 1h start=+8s release")
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

    active = bot.wait_status(request_id, "active", timeout=20)
    assert "alice" in members(world.iam, "deploy-admins")
    assert active.activated_at is not None and active.expires_at is not None and active.grant_started_at is not None
    assert active.grant_started_at >= row.starts_at
    # The hour counts from the grant, not from the approval.
    assert active.expires_at - active.grant_started_at == timedelta(hours=1)
    assert abs((active.expires_at - active.activated_at) - timedelta(hours=1)) < timedelta(seconds=2)


def test_a_start_on_the_clock_or_in_iso_is_read_in_the_requesters_slack_zone(bot: Bot, slack: FakeSlack) -> None:
    tokyo = ZoneInfo("Asia/Tokyo")
    slack.timezones = {ALICE: "Asia/Tokyo"}
    local = (datetime.now(UTC) + timedelta(days=2)).astimezone(tokyo).replace(second=0, microsecond=0)
    iso = file_request(bot, ALICE, f"request deploy-admins 1h start={local:%Y-%m-%dT%H:%M} release")
    row = bot.request(iso)
    assert row is not None and row.starts_at == local.astimezone(UTC)

    before = parse_start("14:00", datetime.now(UTC), tokyo)
    clock = file_request(bot, ALICE, "request deploy-admins 1h start=14:00 release")
    after = parse_start("14:00", datetime.now(UTC), tokyo)
    row = bot.request(clock)
    assert row is not None and row.starts_at in (before, after)
    assert row.starts_at is not None and row.starts_at.astimezone(tokyo).strftime("%H:%M") == "14:00"
    submitted = [e for e in bot.audit(clock) if e.action == AuditAction.SUBMITTED]
    assert submitted and "starts_at" in submitted[0].details


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


def test_an_approved_request_can_be_cancelled_before_its_start_and_is_never_granted(
    bot: Bot, slack: FakeSlack, world: World
) -> None:
    request_id = file_request(bot, ALICE, "request deploy-admins 1h start=+8s release")
    approve(bot, request_id)
    dm_containing(slack, ALICE, "was approved")
    assert "has not started yet" in bot.ask(ALICE, f"extend #{request_id} 30m")
    assert bot.ask(ALICE, f"cancel #{request_id}") == f"Request #{request_id} is cancelled."
    row = bot.wait_status(request_id, "cancelled")
    assert row.decided_by == BOB  # who approved it stays on the row; the audit says who cancelled
    approval_update(slack, request_id, "Cancelled by")
    assert row.starts_at is not None
    starts_at = row.starts_at
    wait_until(lambda: datetime.now(UTC) > starts_at + timedelta(seconds=1.5), timeout=20)  # the start has passed
    row = bot.wait_status(request_id, "cancelled")
    assert row.grant_started_at is None and row.next_due_at is None
    assert "alice" not in members(world.iam, "deploy-admins")
    cancelled = [e for e in bot.audit(request_id) if e.action == AuditAction.CANCELLED]
    assert cancelled and cancelled[0].actor == ALICE and cancelled[0].from_status == "approved"


def test_the_start_shows_in_access_list(bot: Bot) -> None:
    request_id = file_request(bot, ALICE, "request deploy-admins 1h start=+1h release")
    listed = bot.ask(ALICE, "list")
    assert f"#{request_id} *deploy-admins* — pending, 1h, starts <!date^" in listed, listed


def test_a_restart_between_approval_and_start_still_grants_at_the_start(
    make_bot: Callable[..., Bot], world: World
) -> None:
    bot = make_bot()
    request_id = file_request(bot, ALICE, "request deploy-admins 1h start=+4s release")
    bot.runtime.workflow.decide(request_id=request_id, actor=BOB, approve=True)
    assert bot.status(request_id) == "approved"
    bot.runtime.stop()
    second = make_bot()
    row = second.request(request_id)
    assert row is not None and row.starts_at is not None
    active = second.wait_status(request_id, "active", timeout=12)
    assert active.grant_started_at is not None and active.grant_started_at >= row.starts_at
    assert "alice" in members(world.iam, "deploy-admins")


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


TEAM_ONLY = """
  team-admins:
    kind: iam_group
    group_name: deploy-admins
    approvers: [platform]
    requesters: [S0TEAM]
"""


def test_who_may_request_is_asked_again_at_the_start(
    make_bot: Callable[..., Bot], catalog_file: Path, slack: FakeSlack, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.slack import notify

    monkeypatch.setattr(notify, "GROUP_CACHE_SECONDS", 0.0)  # read the user group afresh each time
    slack.usergroups["S0TEAM"] = ["U0ALICE"]
    catalog_file.write_text(catalog_with(TEAM_ONLY))
    bot = make_bot()
    request_id = file_request(bot, "U0ALICE", "request team-admins 1h start=+8s release")
    approve(bot, request_id)
    wait_until(lambda: bot.status(request_id) == "approved")
    slack.usergroups["S0TEAM"] = []  # Alice left the team after the approval, before the start
    failed = bot.wait_status(request_id, "failed", timeout=20)
    assert "may no longer request team-admins" in (failed.last_error or "")
    assert "alice" not in members(world.iam, "deploy-admins")
