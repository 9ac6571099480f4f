"""docs/iam-policy.json: valid by an IAM policy linter, and covering every operation the bot calls."""

from __future__ import annotations

from parliament import analyze_policy_string

from bot.slack.messages import ACTION_APPROVE
from tests.conftest import Bot
from tests.integration.flows import file_request
from tests.support import iam_policy


def test_the_policy_passes_the_linter_with_no_findings() -> None:
    findings = analyze_policy_string(iam_policy.POLICY.read_text()).findings
    assert [(f.issue, f.detail) for f in findings] == []


def test_the_policy_checker_notices_an_operation_outside_it() -> None:
    assert iam_policy.not_allowed({"iam:CreateUser", "iam:AddUserToGroup", "kms:ScheduleKeyDeletion"}) == [
        "iam:CreateUser",
        "kms:ScheduleKeyDeletion",
    ]


def test_every_operation_of_all_three_kinds_is_allowed(bot: Bot) -> None:
    start = len(iam_policy.CALLS)  # never clear CALLED: the end-of-run check needs every call
    for text, approvers in [
        ("request deploy-admins 2s a", ["U0BOB"]),
        ("request prod-readonly 2s b", ["U0BOB"]),
        ("request payments-key 2s c", ["U0DAVE", "U0ERIN"]),
    ]:
        request_id = file_request(bot, "U0ALICE", text)
        for approver in approvers:
            bot.sender.click(approver, ACTION_APPROVE, f"{request_id}:0")
        bot.wait_status(request_id, "active")
        bot.wait_status(request_id, "expired", timeout=8)
    flow = set(iam_policy.CALLS[start:])
    assert {"iam:AddUserToGroup", "iam:RemoveUserFromGroup", "iam:PutUserPolicy", "iam:DeleteUserPolicy",
            "iam:PutRolePolicy", "kms:CreateGrant", "kms:RevokeGrant"} <= flow  # fmt: skip
    assert iam_policy.not_allowed(flow) == []
