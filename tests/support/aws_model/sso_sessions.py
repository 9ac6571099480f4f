"""A permission-set session's requests decided on the shared evaluator (tests/support/aws_model/evaluator.py).

A permission set becomes an IAM role in each account it is provisioned to; its inline policy is one of that
role's policies, evaluated on every request ("Policy evaluation logic", IAM User Guide), so a deny written
and provisioned later reaches a session opened earlier. AWS's documented way to cut a user's open sessions
is a Deny of everything when `identitystore:userId` is theirs in that inline policy (IAM Identity Center
User Guide, "Revoke active IAM role sessions created by permission sets",
https://docs.aws.amazon.com/singlesignon/latest/userguide/useraccess.html#revoke-user-permissions). The
request context of such a session carries `identitystore:UserId`, `aws:PrincipalAccount` and
`aws:TokenIssueTime` (IAM User Guide, "AWS global condition context keys"; the Identity Center guide writes
the first key both ways, and key names match without regard to case).
"""

from __future__ import annotations

from datetime import datetime

from tests.support.aws_model.evaluator import Context, Decision, evaluate

ACTION = "s3:GetObject"  # what the tests' sets allow in their own inline policy


def session(user: str, account: str, issued: datetime) -> dict[str, str]:
    """The request context of the user's permission-set session in `account`, issued at `issued`."""
    return {
        "identitystore:UserId": user,
        "aws:PrincipalAccount": account,
        "aws:TokenIssueTime": issued.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def decide(inline_policy: str, context: Context, *, action: str = ACTION, resource: str = "*") -> Decision:
    """AWS's decision on one request of a session whose set has this inline policy in force ('' = none)."""
    return evaluate([inline_policy] if inline_policy.strip() else [], action, resource, context)
