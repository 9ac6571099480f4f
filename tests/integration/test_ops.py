"""The operator CLI against a database filled by real flows: requests, show, grants, revoke."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from bot.clock import utcnow
from tests.conftest import Bot, wait_until
from tests.integration.history import AUDIT_CHANNEL, AUDITED, History, make_history
from tests.support.aws import World
from tests.support.fake_slack import FakeSlack
from tests.support.operator import Operator, operator_for


@pytest.fixture
def catalog_file(tmp_path: Path) -> Path:
    path = tmp_path / "catalog.yaml"
    path.write_text(AUDITED)
    return path


@pytest.fixture
def operator(bot: Bot, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> Operator:
    return operator_for(bot.runtime.settings, monkeypatch, capsys, tmp_path)


@pytest.fixture
def history(bot: Bot, slack: FakeSlack) -> History:
    return make_history(bot, slack)


def rows(table: str) -> dict[str, list[str]]:
    """Table rows by their first cell (`#id`), split on runs of two or more spaces."""
    import re

    lines = table.strip().splitlines()
    assert set(lines[1].replace(" ", "")) == {"-"}, "a header and a rule come first"
    found = {}
    for line in lines[2:]:
        if line.startswith("#"):
            cells = re.split(r"\s{2,}", line.strip())
            found[cells[0]] = cells
    return found


@pytest.mark.both_databases
def test_requests_lists_and_filters(history: History, operator: Operator) -> None:
    result = operator("requests")
    assert result.code == 0, result.err
    assert result.out.splitlines()[0].split() == [
        "ID", "STATUS", "RESOURCE", "REQUESTER", "IAM", "USER", "FILED", "ACTIVE", "FROM", "UNTIL", "APPROVED", "BY",
        "REASON",
    ]  # fmt: skip
    listed = rows(result.out)
    assert list(listed) == [f"#{history.pending}", f"#{history.denied}", f"#{history.active}", f"#{history.expired}"]
    expired = listed[f"#{history.expired}"]
    assert expired[1:5] == ["expired", "deploy-admins", "U0ALICE", "alice"]
    assert expired[-2:] == ["U0BOB", "ship the hotfix"]
    assert listed[f"#{history.denied}"][1] == "denied" and listed[f"#{history.denied}"][-2] == "-"
    assert "4 request(s)" in result.out

    assert list(rows(operator("requests", "--status", "active").out)) == [f"#{history.active}"]
    assert list(rows(operator("requests", "--user", "U0BOB").out)) == [f"#{history.denied}"]
    assert list(rows(operator("requests", "--resource", "deploy-admins", "--status", "pending").out)) == [
        f"#{history.pending}"
    ]
    assert rows(operator("requests", "--user", "U0NOBODY").out) == {}
    assert operator("requests", "--status", "sleeping").code == 2


@pytest.mark.both_databases
def test_who_had_it_during_a_window_who_approved_and_why(bot: Bot, history: History, operator: Operator) -> None:
    expired = bot.request(history.expired)
    assert expired is not None and expired.activated_at is not None and expired.ended_at is not None
    during = expired.activated_at + (expired.ended_at - expired.activated_at) / 2
    window = ["--since", during.isoformat(), "--until", (during + timedelta(microseconds=1)).isoformat()]
    held = rows(operator("requests", "--resource", "deploy-admins", "--granted", *window).out)
    assert list(held) == [f"#{history.expired}"]
    assert held[f"#{history.expired}"][-2:] == ["U0BOB", "ship the hotfix"]
    later = (expired.ended_at + timedelta(seconds=1)).isoformat()
    assert rows(operator("requests", "--resource", "deploy-admins", "--granted", "--since", later).out) == {}


def test_show_prints_the_request_and_its_whole_timeline(history: History, operator: Operator) -> None:
    result = operator("show", f"#{history.expired}")
    assert result.code == 0, result.err
    facts, timeline = result.out.split("\n\n", 1)
    assert f"request      #{history.expired} expired" in facts
    assert "reason       ship the hotfix" in facts
    assert "approved by  U0BOB" in facts
    lines = timeline.strip().splitlines()
    assert lines[0].split() == ["TIME", "ACTOR", "ACTION", "STATE", "DETAILS"]
    steps = [line.split()[2:5] for line in lines[2:]]
    assert [s[:2] for s in steps] == [
        ["U0ALICE", "submitted"],
        ["U0BOB", "approved"],
        ["accessbot", "grant_started"],
        ["accessbot", "active"],
        ["accessbot", "expired"],
    ]
    assert "- -> pending" in lines[2] and 'reason="ship the hotfix"' in lines[2]
    assert "active -> expired" in lines[-1]

    missing = operator("show", "999")
    assert missing.code == 1 and "request #999 does not exist" in missing.err
    assert operator("show", "abc").code == 2


@pytest.mark.both_databases
def test_grants_shows_what_is_active_with_time_left(history: History, operator: Operator) -> None:
    result = operator("grants")
    assert result.code == 0
    listed = rows(result.out)
    assert list(listed) == [f"#{history.active}"]
    cells = listed[f"#{history.active}"]
    assert cells[1:5] == ["prod-readonly", "iam_role", "U0ALICE", "alice"]
    assert cells[7].startswith("59m") or cells[7] == "1h", cells
    assert cells[8] == "U0CAROL"
    assert "1 active grant(s)" in result.out


def test_admin_revoke_removes_the_grant_in_aws_then_tells_the_requester(
    bot: Bot, history: History, operator: Operator, slack: FakeSlack, world: World
) -> None:
    assert world.iam.list_user_policies(UserName="alice")["PolicyNames"] == [f"accessbot-{history.active}"]
    started = utcnow()
    result = operator("revoke", str(history.active), "--reason", "laptop reported stolen", "--as", "ops-jane")
    assert result.code == 0, result.err
    assert f"revoked #{history.active}: prod-readonly for U0ALICE (alice)" in result.out
    assert world.iam.list_user_policies(UserName="alice")["PolicyNames"] == []

    row = bot.request(history.active)
    assert row is not None and row.status == "revoked" and row.ended_by == "cli:ops-jane"
    assert row.ended_at is not None and row.ended_at >= started
    trail = [(e.actor, e.action, json.loads(e.details)) for e in bot.audit(history.active)]
    assert ("cli:ops-jane", "revoke_requested", {"reason": "laptop reported stolen"}) in trail
    assert trail[-1][:2] == ("cli:ops-jane", "revoked")

    told = [t.splitlines()[0] for t in slack.dms_to("U0ALICE") if "has ended (revoked" in t]
    assert told == [
        f"Your access to *prod-readonly* (request #{history.active}) has ended (revoked) by `cli:ops-jane`. "
        "Reason: laptop reported stolen"
    ]
    wait_until(
        lambda: slack.find(
            "chat.postMessage",
            lambda c: c.args["channel"] == AUDIT_CHANNEL and "revoked early by `cli:ops-jane`" in c.text(),
        )
    )
    assert rows(operator("grants").out) == {}
    assert operator("audit", "verify").code == 0

    again = operator("revoke", str(history.active), "--reason", "twice")
    assert again.code == 1 and "it has no grant to revoke" in again.err
    assert operator("revoke", str(history.pending)).code == 2, "--reason is required"
