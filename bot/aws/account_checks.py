"""`accessbot check-config` for the catalog's other accounts: can the bot act there, and what is not covered."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote

from bot.aws.accounts import MemberAccounts
from bot.aws.checks import Check, Outcome
from bot.aws.errors import AwsError, aws_call
from bot.aws.granters import account_of, role_name
from bot.catalog import Catalog, KeyResource, RoleResource


def check_accounts(catalog: Catalog, members: MemberAccounts | None, home: str) -> list[Check]:
    """One line per listed account (the bot assumes its role there), one per other account targets are in."""
    results = [_listed(members, account, home) for account in (members.listed if members else [])]
    elsewhere: dict[str, list[str]] = {}
    for name, resource in catalog.resources.items():
        theirs = _account(resource)
        if theirs and theirs != home and not (members and members.covers(theirs)):
            elsewhere.setdefault(theirs, []).append(name)
    for account, names in sorted(elsewhere.items()):
        results.append(
            Check(
                f"accounts.{account}",
                "not listed",
                Outcome.SKIPPED,
                f"{', '.join(names)} {'is' if len(names) == 1 else 'are'} in account {account}, which has no entry "
                "under `accounts`: they are granted from the bot's account as before, but a role's sessions open at "
                "the end of a grant are not ended and check-config cannot look there (list the account under "
                "`accounts` with the role the bot may assume in it)",
            )
        )
    return results


def _listed(members: MemberAccounts | None, account: str, home: str) -> Check:
    """Whether the bot can assume the account's role, lands in that account, and can read the role it holds."""
    assert members is not None
    role = members.role_arn(account)
    what = f"the bot assumes {role}"
    try:
        landed, arn = members.caller(account)
    except AwsError as exc:
        return Check(f"accounts.{account}", what, Outcome.PROBLEM, f"cannot assume it: {exc}")
    if landed != account:
        return Check(f"accounts.{account}", what, Outcome.PROBLEM, f"its credentials are for account {landed}")
    problem = _member_role_problem(members.iam_in(account), role, home)
    if problem:
        return Check(f"accounts.{account}", what, Outcome.PROBLEM, problem)
    return Check(f"accounts.{account}", what, Outcome.OK, f"acting as {arn}")


def _member_role_problem(iam: Any, role_arn: str, home: str) -> str | None:
    """Whether the member role can read itself (iam:GetRole) and trusts only principals of the bot's account."""
    try:
        with aws_call("iam:GetRole"):
            document = iam.get_role(RoleName=role_name(role_arn))["Role"].get("AssumeRolePolicyDocument") or {}
    except AwsError as exc:
        return f"it cannot read itself (the policy of `accessbot iam-policy --member` allows iam:GetRole): {exc}"
    if isinstance(document, str):
        document = json.loads(unquote(document))
    statements = document.get("Statement") or []
    principals = {
        str(value)
        for s in (statements if isinstance(statements, list) else [statements])
        if isinstance(s, dict) and s.get("Effect") == "Allow"
        for value in _aws_principals(s.get("Principal"))
    }
    strangers = sorted(p for p in principals if account_of(p) != home and p != home)
    if strangers:
        return f"its trust policy also lets {', '.join(strangers)} assume it; only the bot's account {home} should"
    return None


def _aws_principals(principal: object) -> list[str]:
    if principal == "*":
        return ["*"]
    if not isinstance(principal, dict):
        return []
    found = principal.get("AWS", [])
    return [found] if isinstance(found, str) else [str(f) for f in found]


def _account(resource: object) -> str:
    """The account a role or a key (by ARN) is in; "" for a key named by ID or alias, or for other kinds."""
    if isinstance(resource, RoleResource):
        return account_of(resource.role_arn)
    if isinstance(resource, KeyResource) and resource.key_id.startswith("arn:"):
        return account_of(resource.key_id)  # a key ARN or an alias ARN
    return ""
