"""What exists in AWS, listed for `accessbot reconcile` (plus removing one listed KMS grant); no decisions."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from bot.aws.errors import AwsError, aws_call
from bot.aws.granters import PREFIX


@dataclass(frozen=True)
class UserPolicy:
    """An inline user policy named like the bot's own (accessbot-<id>)."""

    user: str
    name: str
    resources: frozenset[str] = frozenset()  # what it allows AssumeRole on


@dataclass(frozen=True)
class KeyGrant:
    """A KMS grant named like the bot's own (accessbot-<id>)."""

    key_arn: str
    grant_id: str
    name: str
    grantee: str
    operations: frozenset[str] = frozenset()


def request_id_of(name: str) -> int | None:
    """The request ID in a name the bot gave (accessbot-<id>), or None for any other name."""
    rest = name.removeprefix(PREFIX)
    return int(rest) if rest != name and rest.isdigit() and len(rest) <= 12 else None


def user_names(iam: Any) -> list[str]:
    """Every IAM user in the account."""
    with aws_call("iam:ListUsers"):
        return [u["UserName"] for page in iam.get_paginator("list_users").paginate() for u in page["Users"]]


def bot_user_policies(iam: Any, users: list[str]) -> list[UserPolicy]:
    """Every inline policy named accessbot-* on the given users (a user deleted meanwhile has none)."""
    found: list[UserPolicy] = []
    for user in users:
        try:
            with aws_call("iam:ListUserPolicies"):
                pages = iam.get_paginator("list_user_policies").paginate(UserName=user)
                names = [name for page in pages for name in page["PolicyNames"]]
        except AwsError as exc:
            if exc.gone:
                continue
            raise
        found.extend(UserPolicy(user, name, _resources(iam, user, name)) for name in names if name.startswith(PREFIX))
    return found


def _resources(iam: Any, user: str, name: str) -> frozenset[str]:
    """The resources an inline user policy's statements name (empty when it is gone or unreadable)."""
    try:
        with aws_call("iam:GetUserPolicy"):
            document = iam.get_user_policy(UserName=user, PolicyName=name)["PolicyDocument"]
    except AwsError as exc:
        if exc.gone:
            return frozenset()
        raise
    if isinstance(document, str):
        document = json.loads(unquote(document))
    statements = document.get("Statement", [])
    found: set[str] = set()
    for statement in statements if isinstance(statements, list) else [statements]:
        resource = statement.get("Resource", [])
        found.update([resource] if isinstance(resource, str) else resource)
    return frozenset(found)


def group_members(iam: Any, group: str) -> frozenset[str] | None:
    """User names in an IAM group, or None when the group does not exist."""
    try:
        with aws_call("iam:GetGroup"):
            pages = iam.get_paginator("get_group").paginate(GroupName=group)
            return frozenset(u["UserName"] for page in pages for u in page["Users"])
    except AwsError as exc:
        if exc.gone:
            return None
        raise


def key_arn(kms: Any, key_id: str) -> str | None:
    """The ARN of a key given by ID, ARN or alias, or None when there is no such key."""
    try:
        with aws_call("kms:DescribeKey"):
            return str(kms.describe_key(KeyId=key_id)["KeyMetadata"]["Arn"])
    except AwsError as exc:
        if exc.gone:
            return None
        raise


def bot_key_grants(kms: Any, key: str) -> list[KeyGrant]:
    """Every grant named accessbot-* on a key (given by ARN)."""
    with aws_call("kms:ListGrants"):
        pages = kms.get_paginator("list_grants").paginate(KeyId=key)
        return [
            KeyGrant(
                key_arn=key,
                grant_id=g["GrantId"],
                name=g["Name"],
                grantee=g.get("GranteePrincipal", ""),
                operations=frozenset(g.get("Operations", [])),
            )
            for page in pages
            for g in page["Grants"]
            if str(g.get("Name", "")).startswith(PREFIX)
        ]


def revoke_key_grant(kms: Any, key: str, grant_id: str) -> None:
    """Revoke one grant by its ID; succeed when it is already gone."""
    try:
        with aws_call("kms:RevokeGrant"):
            kms.revoke_grant(KeyId=key, GrantId=grant_id)
    except AwsError as exc:
        if not exc.gone:
            raise
