"""`accessbot check-config` against AWS: does every group, role, key and static IAM user exist and fit?"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from bot.aws.errors import AwsError, aws_call
from bot.aws.granters import KeyGranter, PermissionSetGranter, SsoGroupGranter, account_of, role_name
from bot.aws.identity_center import Center, StoreUsers
from bot.aws.rights import group_warning, role_warnings
from bot.aws.sso_checks import principal_of, session_notes
from bot.aws.trust import source_identity_problem, source_identity_warning, trust_problem
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
    WARNING = "WARN"  # works, but lets access outlive or bypass the bot; not counted as a problem
    SKIPPED = "skip"


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
    members: Any = None,
    principal: str | None = None,
) -> list[Check]:
    """Check every resource and every static identity of the catalog, in catalog order.

    `members` (bot.aws.accounts.MemberAccounts): a role in a listed account is checked there, through the role
    the bot assumes; its trust policy must then let principals of the bot's account (`account`) assume it.
    """
    results: list[Check] = []
    center = Center(sso_admin, catalog.identity_center) if sso_admin is not None else None
    uses_sso = any(r.kind.identity_center for r in catalog.resources.values())
    uses_iam = any(not r.kind.identity_center for r in catalog.resources.values())
    if uses_sso:
        results.append(_result("identity_center", "IAM Identity Center instance", instance_problem(center)))
    for name, resource in catalog.resources.items():
        what = f"{resource.kind.value} {resource.target}"
        warnings: list[str] = []
        if isinstance(resource, PermissionSetResource | SsoGroupResource):
            problem, skipped = sso_problem(center, identitystore, resource), None
        elif isinstance(resource, GroupResource):
            problem, skipped = group_problem(iam, resource.group_name), None
            warning = None if problem else group_warning(iam, resource.group_name)
            warnings = [warning] if warning else []
        elif isinstance(resource, RoleResource) and members is not None and members.covers(account_of(resource.target)):
            member_iam = members.iam_in(account_of(resource.target))
            problem, warnings = role_findings(member_iam, resource.target, trusted=account)
            skipped = None
        elif isinstance(resource, RoleResource):
            skipped = _elsewhere(resource.role_arn, account)
            problem, warnings = (None, []) if skipped else role_findings(iam, resource.role_arn)
        else:
            assert isinstance(resource, KeyResource)
            problem, skipped = key_problem(kms, resource.key_id), None
        results.append(_result(name, what, problem, skipped))
        results += [Check(name, what, Outcome.WARNING, warning) for warning in warnings]
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


def role_findings(iam: Any, role_arn: str, trusted: str | None = None) -> tuple[str | None, list[str]]:
    """What is wrong with an IAM role (missing, or a trust policy accessbot cannot rely on), and what to warn of.

    The trust must let in principals of `trusted` (the bot's account, for a role in another account), else of
    the role's own account. Warnings, once nothing is wrong: a trust policy that does not require a source
    identity, and the role's own permissions that let a session outlive or undo its end (see bot/aws/rights.py).
    """
    try:
        with aws_call("iam:GetRole"):
            role = iam.get_role(RoleName=role_name(role_arn))["Role"]
    except AwsError as exc:
        return (f"the IAM role {role_arn} does not exist" if exc.gone else str(exc)), []
    if role["Arn"] != role_arn:
        return f"the IAM role {role_arn} does not exist (a role of that name exists as {role['Arn']})", []
    document = role.get("AssumeRolePolicyDocument") or {}
    account = trusted or account_of(role_arn)
    problem = trust_problem(document, account) or source_identity_problem(document, role["RoleName"])
    if problem:
        return problem, []
    warning = source_identity_warning(document, account)
    return None, ([warning] if warning else []) + role_warnings(iam, role["RoleName"], role_arn)


def _elsewhere(role_arn: str, account: str) -> str | None:
    theirs = account_of(role_arn)
    if theirs == account:
        return None
    return (
        f"not checked: the role is in account {theirs}, the bot's credentials are for account {account}, "
        f"and {theirs} is not under `accounts`: sessions open at the end of a grant are not ended"
    )


def _result(subject: str, what: str, problem: str | None, skipped: str | None = None) -> Check:
    if problem:
        return Check(subject, what, Outcome.PROBLEM, problem)
    if skipped:
        return Check(subject, what, Outcome.SKIPPED, skipped)
    return Check(subject, what)
