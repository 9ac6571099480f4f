"""One granter per kind of access, all behind the Granter protocol; they return plain values."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from bot.aws.errors import AwsError, aws_call

PREFIX = "accessbot-"


@dataclass(frozen=True)
class GrantSpec:
    """Everything a granter needs to apply or remove one request's access."""

    request_id: int
    iam_user: str
    iam_user_arn: str
    target: str
    expires_at: datetime
    require_mfa: bool = False
    operations: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """The name of everything the bot creates for this request."""
        return f"{PREFIX}{self.request_id}"


class Granter(Protocol):
    """Applies and removes one kind of access; both calls are idempotent."""

    # True when several requests can share one piece of AWS state (group membership).
    shared: bool

    def holds(self, spec: GrantSpec) -> bool:
        """Whether AWS already gives the user this access."""
        ...

    def grant(self, spec: GrantSpec) -> str | None:
        """Apply the access; return a reference to store (e.g. a KMS GrantId)."""
        ...

    def revoke(self, spec: GrantSpec, grant_ref: str | None) -> None:
        """Remove the access; succeed when it is already gone."""
        ...


class GroupGranter:
    """Membership of an IAM group."""

    shared = True

    def __init__(self, iam: Any) -> None:
        self._iam = iam

    def holds(self, spec: GrantSpec) -> bool:
        """Whether the user is a member of the group now."""
        with aws_call("iam:ListGroupsForUser"):
            pages = self._iam.get_paginator("list_groups_for_user").paginate(UserName=spec.iam_user)
            return any(g["GroupName"] == spec.target for page in pages for g in page["Groups"])

    def grant(self, spec: GrantSpec) -> str | None:
        """Add the user to the group."""
        with aws_call("iam:AddUserToGroup"):
            self._iam.add_user_to_group(GroupName=spec.target, UserName=spec.iam_user)
        return None

    def revoke(self, spec: GrantSpec, grant_ref: str | None) -> None:
        """Remove the user from the group."""
        try:
            with aws_call("iam:RemoveUserFromGroup"):
                self._iam.remove_user_from_group(GroupName=spec.target, UserName=spec.iam_user)
        except AwsError as exc:
            if not exc.gone:
                raise


def role_policy(spec: GrantSpec) -> dict[str, Any]:
    """The inline policy that lets the user assume the role until the expiry, and only then."""
    condition: dict[str, Any] = {
        "DateLessThan": {"aws:CurrentTime": spec.expires_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
    }
    if spec.require_mfa:
        condition["Bool"] = {"aws:MultiFactorAuthPresent": "true"}
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AccessbotAssumeRole",
                "Effect": "Allow",
                "Action": "sts:AssumeRole",
                "Resource": spec.target,
                "Condition": condition,
            }
        ],
    }


class RoleGranter:
    """The right to assume an IAM role, as an inline user policy with a time condition."""

    shared = False

    def __init__(self, iam: Any) -> None:
        self._iam = iam

    def holds(self, spec: GrantSpec) -> bool:
        """Whether this request's inline policy exists."""
        try:
            with aws_call("iam:GetUserPolicy"):
                self._iam.get_user_policy(UserName=spec.iam_user, PolicyName=spec.name)
            return True
        except AwsError as exc:
            if exc.gone:
                return False
            raise

    def grant(self, spec: GrantSpec) -> str | None:
        """Write (or rewrite) the inline policy."""
        with aws_call("iam:PutUserPolicy"):
            self._iam.put_user_policy(
                UserName=spec.iam_user, PolicyName=spec.name, PolicyDocument=json.dumps(role_policy(spec))
            )
        return spec.name

    def revoke(self, spec: GrantSpec, grant_ref: str | None) -> None:
        """Delete the inline policy."""
        try:
            with aws_call("iam:DeleteUserPolicy"):
                self._iam.delete_user_policy(UserName=spec.iam_user, PolicyName=spec.name)
        except AwsError as exc:
            if not exc.gone:
                raise


class KeyGranter:
    """Use of a KMS key, as a named KMS grant for the user's ARN."""

    shared = False

    def __init__(self, kms: Any) -> None:
        self._kms = kms

    def key_arn(self, key_id: str) -> str:
        """Resolve a key ID, ARN or alias to the key's ARN; refuse a key that is not enabled."""
        with aws_call("kms:DescribeKey"):
            meta = self._kms.describe_key(KeyId=key_id)["KeyMetadata"]
        if meta.get("KeyState") != "Enabled":
            raise AwsError(
                f"the KMS key {key_id} is {meta.get('KeyState', 'not enabled')}, so no grant can be made",
                operation="kms:DescribeKey",
                code="KeyNotEnabled",
            )
        return str(meta["Arn"])

    def _existing(self, key_arn: str, name: str) -> list[str]:
        with aws_call("kms:ListGrants"):
            pages = self._kms.get_paginator("list_grants").paginate(KeyId=key_arn)
            return [g["GrantId"] for page in pages for g in page["Grants"] if g.get("Name") == name]

    def holds(self, spec: GrantSpec) -> bool:
        """Whether this request's grant exists on the key."""
        return bool(self._existing(self.key_arn(spec.target), spec.name))

    def grant(self, spec: GrantSpec) -> str | None:
        """Create the grant (or find the one a crashed attempt created) and return its GrantId."""
        key_arn = self.key_arn(spec.target)
        existing = self._existing(key_arn, spec.name)
        if existing:
            return existing[0]
        with aws_call("kms:CreateGrant"):
            answer = self._kms.create_grant(
                KeyId=key_arn,
                GranteePrincipal=spec.iam_user_arn,
                Operations=list(spec.operations),
                Name=spec.name,
            )
        return str(answer["GrantId"])

    def revoke(self, spec: GrantSpec, grant_ref: str | None) -> None:
        """Revoke the grant by its stored GrantId, or every grant of this request's name."""
        try:
            key_arn = self.key_arn(spec.target)
        except AwsError as exc:
            if exc.gone:
                return  # the key itself is gone, and every grant on it with it
            if exc.code != "KeyNotEnabled":
                raise
            with aws_call("kms:DescribeKey"):
                key_arn = self._kms.describe_key(KeyId=spec.target)["KeyMetadata"]["Arn"]
        grant_ids = [grant_ref] if grant_ref else self._existing(key_arn, spec.name)
        for grant_id in grant_ids:
            try:
                with aws_call("kms:RevokeGrant"):
                    self._kms.revoke_grant(KeyId=key_arn, GrantId=grant_id)
            except AwsError as exc:
                if not exc.gone:
                    raise
