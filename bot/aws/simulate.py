"""`accessbot check-config --simulate`: AWS's own policy simulator decides the documents the bot writes.

For each catalog IAM role it asks iam:SimulateCustomPolicy about the allow put on a requester
(role_policy) and iam:SimulatePrincipalPolicy about the role's own policies with the session deny added
as a policy input (session_deny), and compares each decision with the one the bot relies on.

Every context key the documents use is passed explicitly: the IAM User Guide ("Testing IAM policies with
the IAM policy simulator") warns that a simulation missing a context value the policy needs is not
reliable, and the API returns such keys in MissingContextValues (IAM API reference, "EvaluationResult").
Trust policies cannot be simulated (the simulator evaluates identity-based policies and resource policies
of some services, not a role's trust), so check-config reads them instead.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.aws.errors import AwsError, aws_call
from bot.aws.granters.base import GrantSpec, account_of, iso
from bot.aws.granters.role import role_policy
from bot.aws.granters.role_denies import session_deny
from bot.catalog import Catalog, RoleResource

# Made-up IAM user names: the simulator evaluates documents, so nobody needs to exist under these names.
REQUESTER = "accessbot-simulated-requester"
SOMEONE_ELSE = "accessbot-simulated-other"
ALLOWED, IMPLICIT_DENY, EXPLICIT_DENY = "allowed", "implicitDeny", "explicitDeny"
SKIPPED = "-"
ASSUME = ("sts:AssumeRole", "sts:SetSourceIdentity")
# Actions offered to the simulator to find one the role allows, for the deny cases: common reads first.
CANDIDATE_ACTIONS = (
    "s3:ListAllMyBuckets",
    "ec2:DescribeInstances",
    "ec2:DescribeRegions",
    "cloudwatch:DescribeAlarms",
    "logs:DescribeLogGroups",
    "iam:ListRoles",
    "lambda:ListFunctions",
    "dynamodb:ListTables",
    "rds:DescribeDBInstances",
    "kms:ListKeys",
    "sqs:ListQueues",
    "sns:ListTopics",
    "cloudformation:ListStacks",
    "ecs:ListClusters",
    "eks:ListClusters",
    "sts:AssumeRole",
)


@dataclass(frozen=True)
class Case:
    """One simulated question and its answer."""

    role: str
    what: str
    expected: str
    actual: str
    note: str = ""
    unreliable: bool = False  # the simulator said a context key the documents use was missing

    @property
    def ok(self) -> bool:
        """Whether the simulator decided as the bot relies on, on every key (a case not simulated is no mismatch)."""
        return self.actual == self.expected and not self.unreliable

    @property
    def skipped(self) -> bool:
        """Whether the case was not put to the simulator at all."""
        return self.expected == SKIPPED

    @property
    def line(self) -> str:
        """One line for people: outcome, resource, case, expected and actual decision."""
        if self.skipped:
            return f"skip {self.role}: {self.what} ({self.note})"
        head = "ok  " if self.ok else "FAIL"
        return f"{head} {self.role}: {self.what}: expected {self.expected}, got {self.actual}" + (
            f" ({self.note})" if self.note else ""
        )


def simulate_catalog(
    catalog: Catalog, iam: Any, account: str, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> list[Case]:
    """Every case for every catalog IAM role in `account`; roles elsewhere are skipped with a line saying so."""
    cases: list[Case] = []
    now = clock().replace(microsecond=0)
    for name, resource in catalog.resources.items():
        if not isinstance(resource, RoleResource):
            continue
        if account_of(resource.role_arn) != account:
            note = f"the role is in account {account_of(resource.role_arn)}, the credentials in {account}"
            cases.append(Case(name, "not simulated", SKIPPED, SKIPPED, note))
            continue
        try:
            cases += allow_cases(iam, name, resource, now)
            cases += deny_cases(iam, name, resource.role_arn, now)
        except AwsError as exc:
            cases.append(Case(name, "the simulator could not be asked", ALLOWED, "error", str(exc)))
    return cases


def allow_cases(iam: Any, name: str, resource: RoleResource, now: datetime) -> list[Case]:
    """The requester's allow: only their own source identity, only before the expiry, with MFA where required."""
    expires = now + timedelta(hours=1)
    spec = GrantSpec(0, REQUESTER, "", resource.role_arn, expires, resource.require_mfa)
    policy = json.dumps(role_policy(spec))

    def ask(source: str, at: datetime, mfa: bool) -> tuple[str, str, bool]:
        context = [
            _entry("sts:SourceIdentity", source, "string"),
            _entry("aws:CurrentTime", iso(at), "date"),
            _entry("aws:MultiFactorAuthPresent", "true" if mfa else "false", "boolean"),
        ]
        with aws_call("iam:SimulateCustomPolicy"):
            answer = iam.simulate_custom_policy(
                PolicyInputList=[policy],
                ActionNames=list(ASSUME),
                ResourceArns=[resource.role_arn],
                ContextEntries=context,
            )
        return _combined(answer["EvaluationResults"])

    before, after = expires - timedelta(minutes=1), expires + timedelta(minutes=1)
    asked = [
        ("allow: the requester's own source identity before the expiry", REQUESTER, before, True, ALLOWED),
        ("allow: another source identity", SOMEONE_ELSE, before, True, IMPLICIT_DENY),
        ("allow: after the expiry", REQUESTER, after, True, IMPLICIT_DENY),
    ]
    if resource.require_mfa:
        asked.append(("allow: without MFA (require_mfa)", REQUESTER, before, False, IMPLICIT_DENY))
    return [Case(name, what, expected, *ask(source, at, mfa)) for what, source, at, mfa, expected in asked]


def deny_cases(iam: Any, name: str, role_arn: str, now: datetime) -> list[Case]:
    """The session deny on the role's own policies: it ends the person's sessions issued before the cutoff only."""
    cutoff = now
    action = allowed_action(iam, role_arn, cutoff)
    if action is None:
        note = f"none of {len(CANDIDATE_ACTIONS)} common actions is allowed to the role; the deny was not simulated"
        return [Case(name, "deny: an action the role allows", ALLOWED, "none found", note)]
    deny = json.dumps(session_deny(REQUESTER, cutoff))
    asked = [
        ("a session issued before the cutoff", REQUESTER, cutoff - timedelta(minutes=1), EXPLICIT_DENY),
        ("a session issued after the cutoff", REQUESTER, cutoff + timedelta(minutes=1), ALLOWED),
        ("another person's session issued before the cutoff", SOMEONE_ELSE, cutoff - timedelta(minutes=1), ALLOWED),
    ]
    cases = []
    for what, source, issued, expected in asked:
        answer = _principal(iam, role_arn, [deny], [action], source, issued, cutoff + timedelta(minutes=2))
        cases.append(Case(name, f"deny: {action} by {what}", expected, *_combined(answer)))
    return cases


def allowed_action(iam: Any, role_arn: str, at: datetime) -> str | None:
    """The first common action the role's own policies allow to a session of the role (no deny added)."""
    answer = _principal(iam, role_arn, [], list(CANDIDATE_ACTIONS), REQUESTER, at, at)
    return next((str(r["EvalActionName"]) for r in answer if r["EvalDecision"] == ALLOWED), None)


def _principal(
    iam: Any, role_arn: str, inputs: list[str], actions: list[str], source: str, issued: datetime, at: datetime
) -> list[dict[str, Any]]:
    context = [
        _entry("aws:SourceIdentity", source, "string"),
        _entry("aws:TokenIssueTime", iso(issued), "date"),
        _entry("aws:CurrentTime", iso(at), "date"),
        _entry("aws:MultiFactorAuthPresent", "true", "boolean"),
        _entry("aws:PrincipalAccount", account_of(role_arn), "string"),
    ]
    with aws_call("iam:SimulatePrincipalPolicy"):
        answer = iam.simulate_principal_policy(
            PolicySourceArn=role_arn, PolicyInputList=inputs, ActionNames=actions, ContextEntries=context
        )
    return list(answer["EvaluationResults"])


def _combined(results: Iterable[dict[str, Any]]) -> tuple[str, str, bool]:
    """The most restrictive decision of the results, the context keys the simulator said were missing, and if any were.

    A decision made without a key the documents use is no proof (IAM API Reference, "EvaluationResult",
    MissingContextValues), even when it happens to be the expected one: such a case is a mismatch.
    """
    found = list(results)
    order = {ALLOWED: 0, IMPLICIT_DENY: 1, EXPLICIT_DENY: 2}
    decision = max((str(r["EvalDecision"]) for r in found), key=lambda d: order.get(d, 3), default="no answer")
    missing = sorted({str(k) for r in found for k in r.get("MissingContextValues") or []})
    return decision, (f"the simulator lacked context keys {', '.join(missing)}" if missing else ""), bool(missing)


def _entry(name: str, value: str, kind: str) -> dict[str, Any]:
    return {"ContextKeyName": name, "ContextKeyValues": [value], "ContextKeyType": kind}
