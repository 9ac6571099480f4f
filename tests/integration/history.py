"""A history made by real flows (signed Slack requests to the running bot), for the audit, metrics
and operator tests; and the catalog they run with (an audit channel, a break-glass resource)."""

from __future__ import annotations

from dataclasses import dataclass

from bot.slack.messages import ACTION_DENY
from tests.conftest import Bot, wait_until
from tests.integration.flows import approve, catalog_with, file_request
from tests.support.fake_slack import FakeSlack

AUDIT_CHANNEL = "C0AUDIT"
AUDITED = catalog_with(
    """
  firefighter:
    kind: iam_group
    group_name: auditors
    approvers: [platform]
    break_glass: true
"""
).replace(
    "  approval_channel: C0APPROVALS\n", f"  approval_channel: C0APPROVALS\n  audit_channel: {AUDIT_CHANNEL}\n", 1
)


def deny(bot: Bot, slack: FakeSlack, request_id: int, approver: str, reason: str) -> None:
    """Click Deny as `approver`, then submit the reason form."""
    before = len(slack.find("views.open"))
    assert bot.sender.click(approver, ACTION_DENY, str(request_id)).status_code == 200
    wait_until(lambda: len(slack.find("views.open")) > before)
    form = slack.find("views.open")[-1].args["view"]
    assert bot.sender.submit_view(approver, form, {"reason": reason}).status_code == 200
    bot.wait_status(request_id, "denied")


@dataclass(frozen=True)
class History:
    """The requests a history made, by what became of them."""

    expired: int
    active: int
    denied: int
    pending: int


def make_history(bot: Bot, slack: FakeSlack) -> History:
    """One grant that expired, one still active, one denied, one pending; all through Slack."""
    expired = file_request(bot, "U0ALICE", "request deploy-admins 1s ship the hotfix")
    approve(bot, expired, "U0BOB")
    active = file_request(bot, "U0ALICE", "request prod-readonly 1h read the incident logs")
    approve(bot, active, "U0CAROL")
    denied = file_request(bot, "U0BOB", "request payments-key 1h rotate keys")
    deny(bot, slack, denied, "U0DAVE", "use the rotation runbook")
    pending = file_request(bot, "U0CAROL", "request deploy-admins 2h weekend deploy")
    bot.wait_status(active, "active")
    bot.wait_status(expired, "expired", timeout=10)
    return History(expired=expired, active=active, denied=denied, pending=pending)
