"""`/access pending` and App Home with 10,000 open requests: what each person may decide, found in SQL.

The rows are inserted straight into the database (filing 10,000 through Slack would take minutes); the
newest request is filed through Slack, and everything is read back the way a person sees it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert
from sqlmodel import col

from bot.clock import utcnow
from bot.slack import views
from bot.slack.messages import ACTION_APPROVE, ACTION_CANCEL, ACTION_REVOKE
from bot.store.db import session_scope
from bot.store.models import AccessRequest, Vote
from tests.conftest import Bot, wait_until
from tests.support.fake_slack import FakeSlack

CATALOG = """
defaults:
  approval_channel: C0APPROVALS
  min_duration: 1s
  default_duration: 1h
  max_duration: 8h
identity:
  strategy: email_tag
  tag_key: email
approver_groups:
  platform: [U0BOB, U0CAROL]
  oncall: [S0ONCALL]
resources:
  deploy-admins:
    kind: iam_group
    group_name: deploy-admins
    approvers: [platform]
  prod-readonly:
    kind: iam_role
    role_arn: arn:aws:iam::123456789012:role/prod-readonly
    approvers: [oncall]
  payments-key:
    kind: kms_key
    key_id: alias/payments
    operations: [Decrypt]
    approvers: [U0DAVE, U0ERIN]
  auditors:
    kind: iam_group
    group_name: auditors
    approvers: [U0ERIN]
    escalate_to: [U0BOB]
    escalate_after: 1h
"""
KINDS = {"deploy-admins": "iam_group", "prod-readonly": "iam_role", "payments-key": "kms_key", "auditors": "iam_group"}


@pytest.fixture
def bot(make_bot: Callable[..., Bot], catalog_file: Path, slack: FakeSlack) -> Bot:
    catalog_file.write_text(CATALOG)
    slack.usergroups = {"S0ONCALL": ["U0BOB"]}
    return make_bot()


def _row(resource: str, requester: str, status: str, filed: datetime, **more: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "requester_id": requester,
        "resource": resource,
        "kind": KINDS[resource],
        "target": resource,
        "iam_user": requester.lower(),
        "iam_user_arn": f"arn:aws:iam::123456789012:user/{requester.lower()}",
        "duration_seconds": 3600,
        "reason": f"{status} {resource}",
        "status": status,
        "created_at": filed,
        "updated_at": filed,
        **more,
    }
    if status == "active":
        row.update(grant_started_at=filed, activated_at=filed, expires_at=utcnow() + timedelta(hours=1))
    return row


def _fill(bot: Bot) -> dict[str, list[int]]:
    """10,000 open and 1,000 ended requests, in groups by what each approver may decide; their IDs by group.

    None is due (no next_due_at): the running bot's sweep leaves them alone.
    """
    now = utcnow()
    ago = [now - timedelta(hours=3) + timedelta(seconds=i) for i in range(10_000)]
    groups: dict[str, list[dict[str, Any]]] = {
        "dave only": [_row("payments-key", f"U0R{i:04d}", "pending", ago[i]) for i in range(9_000)],
        "bob's own": [_row("deploy-admins", "U0BOB", "pending", ago[i]) for i in range(300)],
        "active": [_row("deploy-admins", f"U0R{i:04d}", "active", ago[i]) for i in range(499)],
        "mallory's grant": [_row("deploy-admins", "U0MALLORY", "active", ago[0])],
        "bob voted": [_row("deploy-admins", f"U0V{i}", "pending", ago[10 + i]) for i in range(5)],
        "extension asked": [
            _row("deploy-admins", f"U0X{i}", "active", ago[20 + i], extension_seconds=1800, extension_round=1)
            for i in range(3)
        ],
        "extension approved": [
            _row("deploy-admins", f"U0Y{i}", "active", ago[30 + i], extension_seconds=1800, extension_approved_at=now)
            for i in range(2)
        ],
        "user group": [_row("prod-readonly", f"U0G{i}", "pending", ago[40 + i]) for i in range(3)],
        "escalated": [_row("auditors", f"U0E{i}", "pending", now - timedelta(hours=2, minutes=i)) for i in range(2)],
        "not escalated yet": [
            _row("auditors", f"U0N{i:03d}", "pending", now - timedelta(minutes=10)) for i in range(183)
        ],
        "for bob": [_row("deploy-admins", f"U0P{i}", "pending", ago[50 + i]) for i in range(2)],
        "ended": [
            _row("deploy-admins", "U0MALLORY", status, ago[60 + i], ended_at=now)
            for i, status in enumerate(["expired", "denied", "cancelled", "timed_out"] * 250)
        ],
    }
    assert sum(len(rows) for name, rows in groups.items() if name != "ended") == 10_000
    ids: dict[str, list[int]] = {}
    with session_scope(bot.runtime.workflow.engine) as session:
        for name, rows in groups.items():
            stmt = insert(AccessRequest).returning(col(AccessRequest.id), sort_by_parameter_order=True)
            ids[name] = [int(i) for i in session.execute(stmt, rows).scalars()]
        votes = [{"request_id": i, "round": 0, "approver_id": "U0BOB", "approve": True, "created_at": now}
                 for i in ids["bob voted"]]  # fmt: skip
        session.execute(insert(Vote), votes)
    return ids


def _ask(bot: Bot, slack: FakeSlack, user: str, text: str) -> str:
    """What the person sees for `/access <text>`: the ack's text, or, when the command is acknowledged
    at once and answered later, the first message sent to its response_url."""
    mark = slack.mark()
    answer = bot.sender.command(user, text)
    assert answer.status_code == 200, (answer.status_code, answer.text)
    said = str(answer.json().get("text", "")) if answer.content else ""
    if said and not said.startswith("Filing"):
        return said
    later = wait_until(lambda: [c for c in slack.find("response_url", after=mark) if c.args.get("text")])
    return str(later[0].args["text"])


def _home(bot: Bot, slack: FakeSlack, user: str) -> dict[str, Any]:
    mark = slack.mark()
    assert bot.sender.event({"type": "app_home_opened", "user": user, "tab": "home"}).status_code == 200
    published = slack.wait_for("views.publish", lambda c: c.args.get("user_id") == user, after=mark)
    view: dict[str, Any] = published.args["view"]
    return view


def _buttons(view: dict[str, Any], action_id: str) -> dict[int, str]:
    """An App Home's buttons of one action: request ID -> the button's value (an ID, or ID:round for votes)."""
    values = [e["value"] for b in view["blocks"] if b["type"] == "actions" for e in b["elements"]
              if e["action_id"] == action_id]  # fmt: skip
    return {int(v.split(":")[0]): v for v in values}


def _notes(view: dict[str, Any], header: str) -> list[str]:
    """The context lines ("Nothing pending.", "…and 3 more.") of an App Home's section under `header`."""
    titles = [b["text"]["text"] if b["type"] == "header" else None for b in view["blocks"]]
    start = titles.index(header) + 1
    end = next((i for i in range(start, len(titles)) if titles[i] is not None), len(titles))
    return [e["text"] for b in view["blocks"][start:end] if b["type"] == "context" for e in b["elements"]]


@pytest.mark.both_databases
def test_pending_and_app_home_at_10000_open_requests(bot: Bot, slack: FakeSlack) -> None:
    ids = _fill(bot)
    filed = _ask(bot, slack, "U0ALICE", "request deploy-admins 1h the newest")
    assert filed.startswith("Request #"), filed
    newest = int(filed.split("#", 1)[1].split()[0])
    assert newest > max(i for group in ids.values() for i in group)

    expected = set(ids["extension asked"] + ids["user group"] + ids["escalated"] + ids["for bob"] + [newest])
    hidden = set().union(*(ids[g] for g in ids if g not in ("extension asked", "user group", "escalated", "for bob")))
    pending = _ask(bot, slack, "U0BOB", "pending")
    listed = {int(n) for n in re.findall(r"#(\d+)", pending)}
    assert listed == expected, (sorted(listed - expected), sorted(expected - listed))
    assert not listed & hidden
    page = bot.runtime.workflow.waiting_page("U0BOB")
    assert page.total == len(expected) == 11 and page.more == 0
    assert [r.created_at for r in page.rows] == sorted(r.created_at for r in page.rows), "oldest first"

    home = _home(bot, slack, "U0BOB")
    buttons = _buttons(home, ACTION_APPROVE)
    assert set(buttons) == expected
    assert {buttons[i] for i in ids["extension asked"]} == {f"{i}:1" for i in ids["extension asked"]}
    assert _notes(home, "Waiting for your approval") == []
    assert _notes(home, "Your pending requests") == [f"…and {300 - views.HOME_ROWS} more."]

    # The requester sees the request among their own, and an old grant still shows beside newer requests.
    assert list(_buttons(_home(bot, slack, "U0ALICE"), ACTION_CANCEL)) == [newest]
    assert list(_buttons(_home(bot, slack, "U0MALLORY"), ACTION_REVOKE)) == ids["mallory's grant"]

    # An approver with 9,000 waiting: the oldest first, within Slack's limits, and how many more.
    dave = bot.runtime.workflow.waiting_page("U0DAVE")
    assert dave.total == 9_000 and [r.id for r in dave.rows] == ids["dave only"][: len(dave.rows)]
    dave_home = _home(bot, slack, "U0DAVE")
    assert len(_buttons(dave_home, ACTION_APPROVE)) == views.HOME_ROWS and len(dave_home["blocks"]) <= 100
    # "…and 8,985 more." once the listener hands home_view the whole Page; "…and more." with the rows alone.
    assert _notes(dave_home, "Waiting for your approval")[0].startswith("…and ")
    built = views.home_view([], dave, utcnow())
    assert built["blocks"][-1]["elements"][0]["text"] == f"…and {9_000 - views.HOME_ROWS:,} more."
    dave_pending = _ask(bot, slack, "U0DAVE", "pending")
    assert len(dave_pending.splitlines()) <= 50
    assert f"#{ids['dave only'][0]} " in dave_pending
