"""Role sessions as AWS decides them, on the policies in effect at each moment (see ChangeLog).

- "Policy evaluation logic" (IAM User Guide), same account: a role's trust policy that names the caller's ARN
  allows AssumeRole by itself; one that names the account (root) delegates to the caller's identity policies,
  which must allow sts:AssumeRole on the role. An explicit deny in either wins.
- Setting a source identity also needs sts:SetSourceIdentity ("Monitor and control actions taken with
  assumed roles", "Permissions required to set source identity"), and "the value that is set persists when
  a role is used to assume another role ... (role chaining). The value that is set cannot be changed during
  the role session" (same page; STS API reference "AssumeRole", SourceIdentity).
- A session's permissions are its role's permission policies, "evaluated each time they are used to make an
  AWS request" ("Disabling permissions for temporary security credentials"): a deny written later reaches a
  session issued earlier. The request context of a session carries aws:SourceIdentity and
  aws:TokenIssueTime ("AWS global condition context keys").
- Role chaining limits a session to one hour ("Role chaining", IAM User Guide: Roles terms and concepts);
  a console session from the federation endpoint lasts up to 12 hours ("Enable custom identity broker
  access to the AWS console", SessionDuration up to 43,200 seconds).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.support.aws import ACCOUNT
from tests.support.aws_model.changes import ChangeLog, PolicyState
from tests.support.aws_model.evaluator import (
    Decision,
    action_matches,
    conditions_hold,
    evaluate,
    statements,
    wildcard,
)

ONE_HOUR = timedelta(hours=1)
CHAINED_LIMIT = ONE_HOUR
CONSOLE_LIMIT = timedelta(hours=12)


@dataclass(frozen=True)
class User:
    """An IAM user signing requests with its long-term keys."""

    name: str
    mfa: bool = True

    @property
    def arn(self) -> str:
        return f"arn:aws:iam::{ACCOUNT}:user/{self.name}"


@dataclass(frozen=True)
class Session:
    """A role session: whose role, issued when, until when, with which source identity."""

    role: str
    role_arn: str
    issued_at: datetime
    expires_at: datetime
    source_identity: str | None
    mfa: bool = True


Caller = User | Session


def iso(moment: datetime) -> str:
    """A moment as request context keys carry it: UTC, ISO 8601, whole seconds."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)  # the database may hand back naive UTC
    return aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Sessions:
    """assume_role and allowed, decided on the change log's policies in effect at the given time."""

    def __init__(self, log: ChangeLog) -> None:
        self.log = log

    def assume_role(
        self,
        caller: Caller,
        role_arn: str,
        source_identity: str | None,
        at: datetime,
        duration: timedelta = ONE_HOUR,
    ) -> Session | None:
        """The session AWS would issue at `at`, or None when it refuses."""
        state = self.log.in_effect(at)
        if isinstance(caller, Session):
            if self._expired(caller, at):
                return None
            if caller.source_identity is not None and source_identity not in (None, caller.source_identity):
                return None  # a source identity cannot be changed along the chain
            source_identity = caller.source_identity if caller.source_identity is not None else source_identity
            duration = min(duration, CHAINED_LIMIT)
            identity = state.role_policies(caller.role)
            caller_arn, mfa = caller.role_arn, caller.mfa
        else:
            identity, caller_arn, mfa = state.user_policies(caller.name), caller.arn, caller.mfa
        role = role_arn.rsplit("/", 1)[-1]
        trust = state.trust.get(role)
        if trust is None:
            return None
        context = {
            **self._caller_context(caller),
            "aws:CurrentTime": iso(at),
            "aws:MultiFactorAuthPresent": "true" if mfa else "false",
            "aws:PrincipalAccount": ACCOUNT,
            "aws:PrincipalArn": caller_arn,
        }
        if source_identity is not None:
            context["sts:SourceIdentity"] = source_identity
        actions = ["sts:AssumeRole"] + (["sts:SetSourceIdentity"] if source_identity is not None else [])
        for action in actions:
            if not self._permitted(identity, trust, caller_arn, action, role_arn, context):
                return None
        return Session(role, role_arn, at, at + duration, source_identity, mfa)

    def allowed(
        self, session: Session, action: str, at: datetime, resource: str = "*", state: PolicyState | None = None
    ) -> bool:
        """Whether the session may do `action` at `at`: unexpired, and its role's policies then in effect allow it."""
        if self._expired(session, at):
            return False
        state = state or self.log.in_effect(at)
        context = {**self._caller_context(session), "aws:CurrentTime": iso(at), "aws:PrincipalAccount": ACCOUNT}
        return evaluate(state.role_policies(session.role), action, resource, context) is Decision.ALLOWED

    def usable(self, session: Session, at: datetime) -> bool:
        """Whether a session can still do anything: a deny of everything to it is in effect or it has expired."""
        return self.allowed(session, "s3:ListAllMyBuckets", at)

    @staticmethod
    def _expired(session: Session, at: datetime) -> bool:
        return not session.issued_at <= at < session.expires_at

    @staticmethod
    def _caller_context(caller: Caller) -> dict[str, str]:
        if isinstance(caller, User):
            return {"aws:username": caller.name}
        context = {"aws:TokenIssueTime": iso(caller.issued_at)}
        if caller.source_identity is not None:
            context["aws:SourceIdentity"] = caller.source_identity
        return context

    @staticmethod
    def _permitted(
        identity: list[dict[str, Any]],
        trust: dict[str, Any],
        caller_arn: str,
        action: str,
        role_arn: str,
        context: dict[str, str],
    ) -> bool:
        """Identity and trust together, as "Policy evaluation logic" decides within one account."""
        if evaluate(identity, action, role_arn, context) is Decision.EXPLICIT_DENY:
            return False
        named = by_account = False
        for statement in statements(trust):
            if not _trust_matches(statement, action, context):
                continue
            principals = _principals(statement)
            if statement.get("Effect") == "Deny" and any(_names(p, caller_arn) for p in principals):
                return False
            if statement.get("Effect") == "Allow":
                named = named or any(p in (caller_arn, "*") for p in principals)
                by_account = by_account or any(_names(p, caller_arn) for p in principals)
        if named:
            return True
        return by_account and evaluate(identity, action, role_arn, context) is Decision.ALLOWED


def _trust_matches(statement: dict[str, Any], action: str, context: dict[str, str]) -> bool:
    actions = statement.get("Action") or []
    actions = [actions] if isinstance(actions, str) else actions
    return any(action_matches(a, action) for a in actions) and conditions_hold(
        statement.get("Condition") or {}, context
    )


def _principals(statement: dict[str, Any]) -> list[str]:
    principal = statement.get("Principal")
    if principal == "*":
        return ["*"]
    values = (principal or {}).get("AWS", []) if isinstance(principal, dict) else []
    return [values] if isinstance(values, str) else list(values)


def _names(principal: str, caller_arn: str) -> bool:
    """Whether a trust principal covers the caller: its ARN, its account (root or ID), or anyone."""
    account = caller_arn.split(":")[4]
    return principal in ("*", caller_arn, account, f"arn:aws:iam::{account}:root") or wildcard(principal, caller_arn)


def trust_the_account_root(iam: Any, role: str) -> None:
    """Give the role the trust issue 20 point 1 describes: the account root, with no source-identity condition.

    Its sessions may then assume the role again (role chaining) when the role's own policies allow it. The
    test world's trust requires `sts:SourceIdentity` to be `${aws:username}`, which a role session has no
    value for, so it refuses chaining (IAM User Guide, "IAM policy elements: Variables and tags": a
    variable with no value in the request makes the condition false); the scenarios need the worst case.
    """
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                "Action": ["sts:AssumeRole", "sts:SetSourceIdentity"],
            }
        ],
    }
    iam.update_assume_role_policy(RoleName=role, PolicyDocument=json.dumps(trust))
