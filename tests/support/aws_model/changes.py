"""Every IAM policy change AWS accepted, with its time, and the policies in effect at a time after a delay.

moto applies a change the moment it answers. AWS does not: "IAM is eventually consistent ... changes
that you make in IAM ... take time to become visible from all possible endpoints" (IAM User Guide,
troubleshooting, "Changes that I make are not always immediately visible",
https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_general.html#troubleshoot_general_eventual-consistency),
and "It might take a few minutes for policy updates to take effect" ("Disabling permissions for temporary
security credentials"). The model: a change accepted at time a is in effect from a + delay on, everywhere.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.support.aws_model.evaluator import document

POLICY_CHANGES = frozenset(
    {
        "PutUserPolicy",
        "DeleteUserPolicy",
        "PutRolePolicy",
        "DeleteRolePolicy",
        "CreatePolicy",
        "DeletePolicy",
        "CreatePolicyVersion",
        "SetDefaultPolicyVersion",
        "AttachUserPolicy",
        "DetachUserPolicy",
        "AttachRolePolicy",
        "DetachRolePolicy",
        "CreateRole",
        "UpdateAssumeRolePolicy",
        "DeleteRole",
    }
)
BEGINNING = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Change:
    """One change IAM accepted: the operation, its request parameters, what it answered that matters, when."""

    at: datetime
    operation: str
    params: Mapping[str, str]
    answer: Mapping[str, str] = field(default_factory=dict)


@dataclass
class PolicyState:
    """The IAM policies in effect: inline and attached per user and role, managed versions, trust policies."""

    user_inline: dict[str, dict[str, Any]] = field(default_factory=dict)
    role_inline: dict[str, dict[str, Any]] = field(default_factory=dict)
    user_attached: dict[str, set[str]] = field(default_factory=dict)
    role_attached: dict[str, set[str]] = field(default_factory=dict)
    managed: dict[str, dict[str, Any]] = field(default_factory=dict)  # ARN -> {"versions": {id: doc}, "default": id}
    trust: dict[str, dict[str, Any]] = field(default_factory=dict)  # role name -> trust policy
    role_arns: dict[str, str] = field(default_factory=dict)

    def user_policies(self, user: str) -> list[dict[str, Any]]:
        """A user's identity policies: inline ones and the default version of each attached managed one."""
        return [*self.user_inline.get(user, {}).values(), *self._managed(self.user_attached.get(user, set()))]

    def role_policies(self, role: str) -> list[dict[str, Any]]:
        """A role's permission policies (what its sessions may do): inline and attached managed ones."""
        return [*self.role_inline.get(role, {}).values(), *self._managed(self.role_attached.get(role, set()))]

    def _managed(self, arns: set[str]) -> list[dict[str, Any]]:
        found = []
        for arn in sorted(arns):
            policy = self.managed.get(arn)
            if policy is not None:
                found.append(policy["versions"][policy["default"]])
        return found

    def apply(self, change: Change) -> None:
        """Replay one accepted change."""
        p, op = change.params, change.operation
        if op in ("PutUserPolicy", "PutRolePolicy"):
            owner, table = (
                (p["UserName"], self.user_inline) if op == "PutUserPolicy" else (p["RoleName"], self.role_inline)
            )
            table.setdefault(owner, {})[p["PolicyName"]] = document(p["PolicyDocument"])
        elif op == "DeleteUserPolicy":
            self.user_inline.get(p["UserName"], {}).pop(p["PolicyName"], None)
        elif op == "DeleteRolePolicy":
            self.role_inline.get(p["RoleName"], {}).pop(p["PolicyName"], None)
        elif op == "CreatePolicy":
            self.managed[change.answer["Arn"]] = {"versions": {"v1": document(p["PolicyDocument"])}, "default": "v1"}
        elif op == "DeletePolicy":
            self.managed.pop(p["PolicyArn"], None)
        elif op == "CreatePolicyVersion":
            policy = self.managed[p["PolicyArn"]]
            policy["versions"][change.answer["VersionId"]] = document(p["PolicyDocument"])
            if p.get("SetAsDefault", "false").lower() == "true":
                policy["default"] = change.answer["VersionId"]
        elif op == "SetDefaultPolicyVersion":
            self.managed[p["PolicyArn"]]["default"] = p["VersionId"]
        elif op in ("AttachUserPolicy", "DetachUserPolicy", "AttachRolePolicy", "DetachRolePolicy"):
            owner = p["UserName"] if "User" in op else p["RoleName"]
            attached = (self.user_attached if "User" in op else self.role_attached).setdefault(owner, set())
            (attached.add if op.startswith("Attach") else attached.discard)(p["PolicyArn"])
        elif op == "CreateRole":
            self.trust[p["RoleName"]] = document(p["AssumeRolePolicyDocument"])
            self.role_arns[p["RoleName"]] = change.answer["Arn"]
        elif op == "UpdateAssumeRolePolicy":
            self.trust[p["RoleName"]] = document(p["PolicyDocument"])
        elif op == "DeleteRole":
            tables: tuple[dict[str, Any], ...] = (self.trust, self.role_arns, self.role_inline, self.role_attached)
            for table in tables:
                table.pop(p["RoleName"], None)


def answer_fields(operation: str, body: bytes) -> dict[str, str]:
    """What a change's XML answer holds that its request does not: a new policy's ARN, a version's ID."""
    text = body.decode("utf-8", "replace")
    tags = {"CreatePolicy": "Arn", "CreateRole": "Arn", "CreatePolicyVersion": "VersionId"}
    tag = tags.get(operation)
    found = re.search(rf"<{tag}>([^<]+)</{tag}>", text) if tag else None
    return {tag: found.group(1)} if tag and found else {}


class ChangeLog:
    """The changes AWS accepted, in order, and the view of them `delay` later."""

    def __init__(self, clock: Callable[[], datetime], delay: timedelta = timedelta(0)) -> None:
        self.clock = clock
        self.delay = delay
        self._changes: list[Change] = []
        self._lock = threading.Lock()
        self._cached: tuple[Any, PolicyState] | None = None

    def record(
        self, operation: str, params: Mapping[str, str], answer: Mapping[str, str], at: datetime | None = None
    ) -> None:
        """Remember one change IAM accepted (now, unless `at` says when)."""
        with self._lock:
            self._changes.append(Change(at or self.clock(), operation, dict(params), dict(answer)))

    @property
    def changes(self) -> list[Change]:
        """Every change recorded, in the order IAM accepted them."""
        with self._lock:
            return list(self._changes)

    def in_effect(self, at: datetime) -> PolicyState:
        """The policies in effect at `at`: the changes accepted at or before at - delay (do not modify it)."""
        changes = self.changes
        kept = tuple(i for i, c in enumerate(changes) if c.at <= at - self.delay)
        # A scenario asks every 100 ms of simulated time; the answer changes only when another change counts.
        key = (kept, len(changes), self.delay)
        if self._cached is None or self._cached[0] != key:
            self._cached = (key, self._replay(lambda change: change.at <= at - self.delay))
        return self._cached[1]

    def latest(self) -> PolicyState:
        """Every accepted change applied (what IAM itself answers reads with)."""
        return self._replay(lambda change: True)

    def _replay(self, keep: Callable[[Change], bool]) -> PolicyState:
        state = PolicyState()
        for change in sorted((c for c in self.changes if keep(c)), key=lambda c: c.at):
            state.apply(change)
        return state

    def baseline(self, iam: Any) -> None:
        """Record what moto already holds (roles, their policies, users' policies) as in effect from the start."""
        for role in iam.list_roles()["Roles"]:
            name = role["RoleName"]
            self.record(
                "CreateRole",
                {"RoleName": name, "AssumeRolePolicyDocument": _text(role["AssumeRolePolicyDocument"])},
                {"Arn": role["Arn"]},
                BEGINNING,
            )
            for policy in iam.list_role_policies(RoleName=name)["PolicyNames"]:
                doc = iam.get_role_policy(RoleName=name, PolicyName=policy)["PolicyDocument"]
                self.record(
                    "PutRolePolicy",
                    {"RoleName": name, "PolicyName": policy, "PolicyDocument": _text(doc)},
                    {},
                    BEGINNING,
                )
            for attached in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]:
                self._baseline_managed(iam, attached["PolicyArn"])
                self.record("AttachRolePolicy", {"RoleName": name, "PolicyArn": attached["PolicyArn"]}, {}, BEGINNING)
        for user in iam.list_users()["Users"]:
            name = user["UserName"]
            for policy in iam.list_user_policies(UserName=name)["PolicyNames"]:
                doc = iam.get_user_policy(UserName=name, PolicyName=policy)["PolicyDocument"]
                self.record(
                    "PutUserPolicy",
                    {"UserName": name, "PolicyName": policy, "PolicyDocument": _text(doc)},
                    {},
                    BEGINNING,
                )
            for attached in iam.list_attached_user_policies(UserName=name)["AttachedPolicies"]:
                self._baseline_managed(iam, attached["PolicyArn"])
                self.record("AttachUserPolicy", {"UserName": name, "PolicyArn": attached["PolicyArn"]}, {}, BEGINNING)

    def _baseline_managed(self, iam: Any, arn: str) -> None:
        if any(c.operation == "CreatePolicy" and c.answer.get("Arn") == arn for c in self.changes):
            return
        version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
        doc = iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]["Document"]
        self.record("CreatePolicy", {"PolicyDocument": _text(doc)}, {"Arn": arn}, BEGINNING)


def _text(doc: Any) -> str:
    import json

    return doc if isinstance(doc, str) else json.dumps(doc)
