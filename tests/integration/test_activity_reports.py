"""Activity reports through the running bot: posted after every end, on demand, for those who may read them."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from bot.store.activity_tables import ActivityReport
from bot.store.db import session_scope
from bot.testing.fake_cloudtrail import FakeCloudTrail, event, iam_user, running
from bot.testing.fake_slack import FakeSlack
from tests.conftest import Bot, wait_until
from tests.integration.flows import approve, catalog_with, file_request

GLASS = """
  glass:
    kind: iam_group
    group_name: deploy-admins
    approvers: [platform]
    break_glass: true
"""


@pytest.fixture(scope="module")
def _served() -> Iterator[FakeCloudTrail]:
    with running() as fake:
        yield fake


@pytest.fixture
def cloudtrail(_served: FakeCloudTrail, monkeypatch: pytest.MonkeyPatch) -> FakeCloudTrail:
    _served.reset()
    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDTRAIL", _served.url)
    return _served


@pytest.fixture
def reporting_bot(make_bot: Callable[..., Bot], catalog_file: Path, cloudtrail: FakeCloudTrail) -> Bot:
    catalog_file.write_text("auditors: [U0AUDIT]\n" + catalog_with(GLASS))
    return make_bot(accessbot_activity_delay=timedelta(0), accessbot_activity_regions="us-east-1")


def ended_with_calls(bot: Bot, cloudtrail: FakeCloudTrail, text: str, *, approved: bool = True) -> int:
    """File, (approve,) use and revoke a grant; seed the calls CloudTrail recorded for it; return its ID."""
    request_id = file_request(bot, "U0ALICE", text)
    if approved:
        approve(bot, request_id)
    row = bot.wait_status(request_id, "active")
    assert row.activated_at is not None
    user = iam_user(row.iam_user)
    at = row.activated_at  # seeded before the end: the reporter may read as soon as it comes (no delay here)
    cloudtrail.add(
        "us-east-1",
        event("ListBuckets", "s3.amazonaws.com", at, user),
        event("ListBuckets", "s3.amazonaws.com", at, user),
        event("PutObjectAcl", "s3.amazonaws.com", at, user, read_only=False),
        event("DeleteStack", "cloudformation.amazonaws.com", at, user, read_only=False, error="AccessDenied"),
    )
    said = bot.ask("U0ALICE", f"revoke #{request_id}")
    assert "Revoking" in said
    bot.wait_status(request_id, "revoked")
    return request_id


def reported(bot: Bot, request_id: int) -> ActivityReport:
    """Make due reports until this one is made (the reporter's own thread may make it first)."""
    assert bot.runtime.activity is not None

    def made() -> ActivityReport | None:
        bot.runtime.activity.run_due()  # type: ignore[union-attr]
        with session_scope(bot.runtime.workflow.engine) as session:
            row = session.get(ActivityReport, request_id)
            return row if row is not None and row.reported_at is not None else None

    found: ActivityReport = wait_until(made, timeout=20)
    return found


def test_the_report_is_posted_in_the_approval_thread_and_audited_after_a_revoke(
    reporting_bot: Bot, cloudtrail: FakeCloudTrail, slack: FakeSlack
) -> None:
    request_id = ended_with_calls(reporting_bot, cloudtrail, "request deploy-admins 4h hotfix")

    row = reported(reporting_bot, request_id)

    assert (row.calls, row.writes, row.denied) == (4, 2, 1)
    post = slack.wait_for("chat.postMessage", lambda c: f"Activity of #{request_id}" in c.text())
    assert post.args.get("thread_ts") == reporting_bot.request(request_id).approval_ts  # type: ignore[union-attr]
    text = post.text()
    assert "4 calls, 2 writes, 1 AccessDenied" in text
    assert "s3:PutObjectAcl" in text and "cloudformation:DeleteStack (AccessDenied)" in text
    assert "Asked for 4h, last call" in text and "data events" in text
    audit = [e for e in reporting_bot.audit(request_id) if e.action == "activity_reported"]
    assert len(audit) == 1 and '"calls": 4' in audit[0].details and '"writes": 2' in audit[0].details


def test_activity_on_demand_for_requester_approvers_and_auditors_only(
    reporting_bot: Bot, cloudtrail: FakeCloudTrail
) -> None:
    request_id = ended_with_calls(reporting_bot, cloudtrail, "request deploy-admins 1h hotfix")
    reported(reporting_bot, request_id)

    for reader in ("U0ALICE", "U0BOB", "U0AUDIT"):
        assert "4 calls, 2 writes" in reporting_bot.ask(reader, f"activity #{request_id}")
    reporting_bot.sender.event({"type": "app_home_opened", "user": "U0ALICE", "tab": "home"})
    home = reporting_bot.slack.wait_for("views.publish", lambda c: c.args.get("user_id") == "U0ALICE")
    shown = json.dumps(home.args["view"])
    assert "Recently ended" in shown and "4 calls, 2 writes" in shown
    refused = reporting_bot.ask("U0MALLORY", f"activity #{request_id}")
    assert refused.startswith("Only the requester") and "calls" not in refused
    assert reporting_bot.ask("U0MALLORY", "activity #99999").startswith("Only the requester")


def test_a_break_glass_report_also_goes_to_those_who_must_acknowledge_it(
    reporting_bot: Bot, cloudtrail: FakeCloudTrail, slack: FakeSlack
) -> None:
    request_id = ended_with_calls(reporting_bot, cloudtrail, "breakglass glass 1h prod is down", approved=False)
    reported(reporting_bot, request_id)

    for approver in ("U0BOB", "U0CAROL"):
        slack.wait_for(
            "chat.postMessage",
            lambda c, a=approver: c.args.get("channel") == a and f"Activity of #{request_id}" in c.text(),
        )


def test_a_throttled_cloudtrail_leaves_the_report_owed_and_the_end_done(
    reporting_bot: Bot, cloudtrail: FakeCloudTrail
) -> None:
    cloudtrail.unavailable = True
    request_id = ended_with_calls(reporting_bot, cloudtrail, "request deploy-admins 1h hotfix")
    assert reporting_bot.runtime.activity is not None

    def tried() -> ActivityReport | None:
        reporting_bot.runtime.activity.run_due()  # type: ignore[union-attr]
        with session_scope(reporting_bot.runtime.workflow.engine) as session:
            row = session.get(ActivityReport, request_id)
            return row if row is not None and row.attempts > 0 else None

    row = wait_until(tried, timeout=20)
    assert row.reported_at is None and row.next_attempt_at is not None and "ServiceUnavailable" in row.last_error
    assert reporting_bot.status(request_id) == "revoked"  # the end itself was never held up
    cloudtrail.unavailable = False
    with session_scope(reporting_bot.runtime.workflow.engine) as session:
        owed = session.get(ActivityReport, request_id)
        assert owed is not None
        owed.next_attempt_at = owed.ended_at  # the retry time has come
    assert reported(reporting_bot, request_id).calls == 4


def test_operators_read_a_report_and_the_right_sizing_table(
    reporting_bot: Bot, cloudtrail: FakeCloudTrail, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot import ops_activity as commands
    from bot.audit import parse_moment
    from bot.clock import utcnow

    used = ended_with_calls(reporting_bot, cloudtrail, "request deploy-admins 1h hotfix")
    reported(reporting_bot, used)
    cloudtrail.reset()  # nothing more by alice: the next grant goes unused
    unused = file_request(reporting_bot, "U0ALICE", "request auditors 1h look around")
    approve(reporting_bot, unused)
    bot_row = reporting_bot.wait_status(unused, "active")
    assert bot_row.activated_at is not None
    reporting_bot.ask("U0ALICE", f"revoke #{unused}")
    reporting_bot.wait_status(unused, "revoked")
    assert reported(reporting_bot, unused).calls == 0
    engine = reporting_bot.runtime.workflow.engine
    settings = reporting_bot.runtime.settings
    capsys.readouterr()

    assert commands.activity(settings, engine, used, as_json=True) == 0
    body = json.loads(capsys.readouterr().out)
    assert (body["request_id"], body["calls"], body["writes"], body["so_far"]) == (used, 4, 2, False)
    assert commands.activity(settings, engine, unused, as_json=False) == 0
    assert "no calls" in capsys.readouterr().out
    assert commands.report(engine, since=parse_moment("30d", now=utcnow()), as_json=True, as_csv=False) == 0
    lines = {line["resource"]: line for line in json.loads(capsys.readouterr().out)}
    assert lines["auditors"] == {"resource": "auditors", "grants": 1, "median_used": 0.0, "never_used": 1}
    assert lines["deploy-admins"]["grants"] == 1 and lines["deploy-admins"]["never_used"] == 0
    assert commands.report(engine, since=parse_moment("30d", now=utcnow()), as_json=False, as_csv=True) == 0
    assert capsys.readouterr().out.splitlines()[0] == "resource,grants,median_used,never_used"
