"""Whether what IAM holds now really ends a person's role access, decided by the evaluator (not by names)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tests.support.aws import ACCOUNT
from tests.support.aws_model.changes import ChangeLog, PolicyState
from tests.support.aws_model.evaluator import Decision, evaluate
from tests.support.aws_model.sessions import iso

# Any action the role allows serves: the session deny the bot writes covers every action ("*").
ACTION = "s3:ListAllMyBuckets"


def policies_now(iam: Any) -> PolicyState:
    """The users' and roles' policies moto holds now."""
    log = ChangeLog(clock=datetime.now)
    log.baseline(iam)
    return log.latest()


def still_held(state: PolicyState, role_arn: str, user: str, issued_at: datetime, now: datetime) -> list[str]:
    """What would still work for `user`: a new AssumeRole, or a session of theirs issued at `issued_at`."""
    problems = []
    assume = {
        "sts:SourceIdentity": user,
        "aws:CurrentTime": iso(now),
        "aws:MultiFactorAuthPresent": "true",
        "aws:PrincipalAccount": ACCOUNT,
    }
    if evaluate(state.user_policies(user), "sts:AssumeRole", role_arn, assume) is Decision.ALLOWED:
        problems.append(f"{user} may still assume {role_arn}")
    session = {
        "aws:SourceIdentity": user,
        "aws:TokenIssueTime": iso(issued_at),
        "aws:CurrentTime": iso(now),
        "aws:PrincipalAccount": ACCOUNT,
    }
    role = role_arn.rsplit("/", 1)[-1]
    if evaluate(state.role_policies(role), ACTION, "*", session) is not Decision.EXPLICIT_DENY:
        problems.append(f"a session of {user} issued at {iso(issued_at)} is not denied on {role}")
    return problems
