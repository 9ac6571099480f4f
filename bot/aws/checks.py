"""`accessbot check-config` against AWS: does every group, role, key and static IAM user exist and fit?"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from enum import StrEnum
from fnmatch import fnmatchcase
from typing import Any
from urllib.parse import unquote

from bot.aws.errors import AwsError, aws_call
from bot.aws.granters import KeyGranter, PermissionSetGranter, SsoGroupGranter, account_of, role_name
from bot.aws.identity_center import Center, StoreUsers
from bot.aws.sso_checks import principal_of, session_notes
from bot.catalog import (
    Catalog,
    GroupResource,
    KeyResource,
    PermissionSetResource,
    RoleResource,
    SsoGroupResource,
)


class Outcome(StrEnum):
    """How one check ended."""

    OK = "ok"
    PROBLEM = "FAIL"
    SKIPPED = "skip"
    WARNING = "warn"


@dataclass(frozen=True)
class Check:
    """The result of checking one catalog entry against AWS."""

    subject: str
    what: str
    outcome: Outcome = Outcome.OK
    detail: str = ""

    @property
    def line(self) -> str:
        """One line for people: outcome, name, what it is, and what is wrong."""
        return f"{self.outcome.value:<4} {self.subject}: {self.what}" + (f": {self.detail}" if self.detail else "")


def caller_account(sts: Any) -> str:
    """The account of the bot's own credentials; raises AwsError when AWS cannot be asked."""
    with aws_call("sts:GetCallerIdentity"):
        return str(sts.get_caller_identity()["Account"])


def caller_principal(sts: Any) -> str | None:
    """The IAM principal of the bot's own credentials (a role for an assumed-role session), or None."""
    try:
        with aws_call("sts:GetCallerIdentity"):
            return principal_of(str(sts.get_caller_identity()["Arn"]))
    except AwsError:
        return None


def check_catalog(
    catalog: Catalog,
    *,
    iam: Any,
    kms: Any,
    account: str,
    sso_admin: Any = None,
    identitystore: Any = None,
    principal: str | None = None,
) -> list[Check]:
    """Check every resource and every static identity of the catalog, in catalog order."""
    results: list[Check] = []
    center = Center(sso_admin, catalog.identity_center) if sso_admin is not None else None
    uses_sso = any(r.kind.identity_center for r in catalog.resources.values())
    uses_iam = any(not r.kind.identity_center for r in catalog.resources.values())
    if uses_sso:
        results.append(_result("identity_center", "IAM Identity Center instance", instance_problem(center)))
    for name, resource in catalog.resources.items():
        what = f"{resource.kind.value} {resource.target}"
        if isinstance(resource, PermissionSetResource | SsoGroupResource):
            problem, skipped = sso_problem(center, identitystore, resource), None
        elif isinstance(resource, GroupResource):
            problem, skipped = group_problem(iam, resource.group_name), None
        elif isinstance(resource, RoleResource):
            skipped = _elsewhere(resource.role_arn, account)
            problem = None if skipped else role_problem(iam, resource.role_arn)
        else:
            assert isinstance(resource, KeyResource)
            problem, skipped = key_problem(kms, resource.key_id), None
        results.append(_result(name, what, problem, skipped))
        if isinstance(resource, PermissionSetResource | SsoGroupResource) and center is not None and not problem:
            results += _session_checks(name, what, center, identitystore, iam, principal, resource)
    for slack_user, iam_user in catalog.identity.static.items():
        if uses_iam or not uses_sso:
            results.append(
                _result(f"identity.static.{slack_user}", f"IAM user {iam_user}", user_problem(iam, iam_user))
            )
        if uses_sso:
            problem = store_user_problem(center, identitystore, iam_user)
            results.append(_result(f"identity.static.{slack_user}", f"Identity Center user {iam_user}", problem))
    return results


def _session_checks(
    name: str,
    what: str,
    center: Center,
    identitystore: Any,
    iam: Any,
    principal: str | None,
    resource: PermissionSetResource | SsoGroupResource,
) -> list[Check]:
    """The sessions lines of an Identity Center resource: warnings, problems with the bot's rights, a reach note."""
    try:
        warnings, problems, note = session_notes(center, identitystore, iam, principal, resource)
    except AwsError as exc:
        return [Check(name, f"{what} sessions", Outcome.PROBLEM, str(exc))]
    lines = [Check(name, f"{what} sessions", Outcome.WARNING, w) for w in warnings]
    lines += [Check(name, f"{what} sessions", Outcome.PROBLEM, p) for p in problems]
    if note:
        lines.append(Check(name, f"{what} sessions", Outcome.OK, note))
    return lines


def instance_problem(center: Center | None) -> str | None:
    """What is wrong with the Identity Center instance (none found, several, not reachable), or None."""
    if center is None:
        return "not checked: no sso-admin client"
    try:
        center.instance()
    except AwsError as exc:
        return str(exc)
    return None


def sso_problem(
    center: Center | None, identitystore: Any, resource: PermissionSetResource | SsoGroupResource
) -> str | None:
    """What is wrong with a permission set and its accounts, or an Identity Center group; None when nothing is.

    For each account the bot lists the permission set's assignments: that needs the same instance, permission
    set and account the grant names, and the bot's own sso permissions on them.
    """
    if center is None:
        return "not checked: no sso-admin client"
    try:
        if isinstance(resource, SsoGroupResource):
            SsoGroupGranter(identitystore, center).group_id(resource.group)
            return None
        arn = PermissionSetGranter(center.sso_admin, center).permission_set_arn(resource.permission_set)
        for account in resource.accounts:
            with aws_call("sso:ListAccountAssignments"):
                center.sso_admin.list_account_assignments(
                    InstanceArn=center.instance().arn, AccountId=account, PermissionSetArn=arn, MaxResults=1
                )
    except AwsError as exc:
        return str(exc)
    return None


def store_user_problem(center: Center | None, identitystore: Any, name: str) -> str | None:
    """What is wrong with an Identity Store user named in identity.static, or None."""
    if center is None:
        return "not checked: no identitystore client"
    try:
        found = StoreUsers(identitystore, center).by_name(name)
    except AwsError as exc:
        return str(exc)
    return None if found is not None else f"no Identity Center user has the UserName '{name}'"


def group_problem(iam: Any, group: str) -> str | None:
    """What is wrong with an IAM group, or None."""
    try:
        with aws_call("iam:GetGroup"):
            iam.get_group(GroupName=group, MaxItems=1)
    except AwsError as exc:
        return f"the IAM group '{group}' does not exist" if exc.gone else str(exc)
    return None


def user_problem(iam: Any, user: str) -> str | None:
    """What is wrong with an IAM user, or None."""
    try:
        with aws_call("iam:GetUser"):
            iam.get_user(UserName=user)
    except AwsError as exc:
        return f"the IAM user '{user}' does not exist" if exc.gone else str(exc)
    return None


def key_problem(kms: Any, key_id: str) -> str | None:
    """What is wrong with a KMS key (missing, not enabled), or None."""
    try:
        KeyGranter(kms).key_arn(key_id)
    except AwsError as exc:
        return str(exc)
    return None


def role_problem(iam: Any, role_arn: str) -> str | None:
    """What is wrong with an IAM role (missing, or a trust policy its own account cannot use), or None."""
    try:
        with aws_call("iam:GetRole"):
            role = iam.get_role(RoleName=role_name(role_arn))["Role"]
    except AwsError as exc:
        return f"the IAM role {role_arn} does not exist" if exc.gone else str(exc)
    if role["Arn"] != role_arn:
        return f"the IAM role {role_arn} does not exist (a role of that name exists as {role['Arn']})"
    document = role.get("AssumeRolePolicyDocument") or {}
    return trust_problem(document, account_of(role_arn)) or source_identity_problem(document, role["RoleName"])


def trust_problem(document: dict[str, Any] | str, account: str) -> str | None:
    """Whether a trust policy lets principals of `account` call sts:AssumeRole; None when it does."""
    statements = _statements(document)
    assumable = [s for s in statements if _allows_assume(s)]
    allowed = [s for s in assumable if s.get("Effect") == "Allow"]
    if any(s.get("Effect") == "Deny" and not s.get("Condition") and _trusts(s, account) for s in assumable):
        return f"its trust policy denies sts:AssumeRole to principals of account {account}"
    if any(_trusts(s, account) for s in allowed):
        return None
    trusted = sorted({f"{kind}:{value}" for s in allowed for kind, value in _principals(s)})
    return (
        f"its trust policy does not let principals of account {account} assume it "
        f"(it trusts {', '.join(trusted) if trusted else 'nobody'})"
    )


def source_identity_problem(document: dict[str, Any] | str, role: str) -> str | None:
    """Whether a trust policy allows sts:SetSourceIdentity, which every role grant's session needs; None when so.

    Role grants require `sts:SourceIdentity` to be the IAM user's name, so that the deny put on the role at the
    end of a grant can find that user's open sessions; without this action AWS refuses every such AssumeRole.
    """
    if any(s.get("Effect") == "Allow" and _allows(s, "sts:SetSourceIdentity") for s in _statements(document)):
        return None
    return (
        f"the trust policy of role {role} does not allow sts:SetSourceIdentity, so nobody can assume it with "
        'the source identity accessbot requires; add "sts:SetSourceIdentity" to the Action of the statement '
        "that allows sts:AssumeRole"
    )


def _statements(document: dict[str, Any] | str) -> list[dict[str, Any]]:
    """A policy document's statements; IAM may return the document as URL-encoded JSON text."""
    if isinstance(document, str):
        document = json.loads(unquote(document))
    assert isinstance(document, dict)
    statements = document.get("Statement") or []
    if isinstance(statements, dict):
        statements = [statements]
    return [s for s in statements if isinstance(s, dict)]


def _allows_assume(statement: dict[str, Any]) -> bool:
    return _allows(statement, "sts:AssumeRole")


def _allows(statement: dict[str, Any], action: str) -> bool:
    """Whether the statement's Action names `action` (IAM action names and their wildcards ignore case)."""
    actions = statement.get("Action") or []
    if isinstance(actions, str):
        actions = [actions]
    return any(fnmatchcase(action.lower(), str(a).lower()) for a in actions)


def _principals(statement: dict[str, Any]) -> list[tuple[str, str]]:
    principal = statement.get("Principal")
    if principal == "*":
        return [("AWS", "*")]
    if not isinstance(principal, dict):
        return []
    found = []
    for kind, values in principal.items():
        for value in [values] if isinstance(values, str) else values:
            found.append((str(kind), str(value)))
    return found


def _trusts(statement: dict[str, Any], account: str) -> bool:
    root = re.compile(rf"^arn:aws[a-z-]*:iam::{re.escape(account)}:root$")
    return any(
        kind == "AWS" and (value in ("*", account) or root.match(value)) for kind, value in _principals(statement)
    )


def _elsewhere(role_arn: str, account: str) -> str | None:
    theirs = account_of(role_arn)
    if theirs == account:
        return None
    return f"not checked: the role is in account {theirs}, the bot's credentials are for account {account}"


def _result(subject: str, what: str, problem: str | None, skipped: str | None = None) -> Check:
    if problem:
        return Check(subject, what, Outcome.PROBLEM, problem)
    if skipped:
        return Check(subject, what, Outcome.SKIPPED, skipped)
    return Check(subject, what)
