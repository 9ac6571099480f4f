"""Steps of a request as people take them in Slack, shared by the integration tests."""

from __future__ import annotations

from bot.slack.messages import ACTION_APPROVE
from tests.conftest import Bot, wait_until
from tests.support.catalogs import BASIC
from tests.support.fake_slack import FakeSlack


def file_request(bot: Bot, user: str, text: str) -> int:
    """Send `/access <text>` and return the new request's ID."""
    said = bot.ask(user, text)
    assert said.startswith(("Request #", "Break-glass #")), said
    return int(said.split("#", 1)[1].split()[0].rstrip(":"))


def approve(bot: Bot, request_id: int, *approvers: str) -> None:
    """Click Approve as each approver (U0BOB when none is named), once the approval message is posted."""
    wait_until(lambda: (row := bot.request(request_id)) is not None and row.approval_ts is not None)
    for approver in approvers or ("U0BOB",):
        answer = bot.sender.click(approver, ACTION_APPROVE, str(request_id))
        assert answer.status_code == 200, (answer.status_code, answer.text)


def approval_update(slack: FakeSlack, request_id: int, phrase: str) -> str:
    """The text of the approval message once an update about the request contains `phrase`."""
    call = slack.wait_for("chat.update", lambda c: f"#{request_id}" in c.text() and phrase in c.text())
    assert call.args["channel"] == "C0APPROVALS"
    return call.text()


def dm_containing(slack: FakeSlack, user: str, phrase: str) -> str:
    """The direct message to `user` that contains `phrase` (waits for it)."""
    return slack.wait_for("chat.postMessage", lambda c: c.args.get("channel") == user and phrase in c.text()).text()


def catalog_with(extra: str) -> str:
    """The basic test catalog plus more resources (indented as entries under `resources:`)."""
    assert BASIC.rstrip().endswith("approvers: [platform]")
    return BASIC.rstrip() + "\n" + extra.strip("\n") + "\n"
