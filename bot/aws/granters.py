"""One granter per kind of access, all behind the Granter protocol; they return plain values."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from bot.aws.errors import AwsError, aws_call

PREFIX = "accessbot-"
KEY_STATES = {
    "Disabled": "disabled",
    "PendingDeletion": "scheduled for deletion",
    "PendingReplicaDeletion": "scheduled for deletion",
    "PendingImport": "waiting for its key material",
    "Unavailable": "unavailable",
    "Creating": "still being created",
    "Updating": "being updated",
}


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
        try:
            with aws_call("iam:AddUserToGroup"):
                self._iam.add_user_to_group(GroupName=spec.target, UserName=spec.iam_user)
        except AwsError as exc:
            if exc.gone:
                raise self._missing(spec, exc) from exc
            raise
        return None

    def _missing(self, spec: GrantSpec, exc: AwsError) -> AwsError:
        """Say which of the two names AWS did not find."""
        try:
            with aws_call("iam:GetGroup"):
                self._iam.get_group(GroupName=spec.target, MaxItems=1)
        except AwsError as probe:
            if probe.gone:
                return AwsError(
                    f"the IAM group '{spec.target}' does not exist, so nothing was granted "
                    "(an admin must create it or fix the catalog)",
                    operation=exc.operation,
                    code=exc.code,
                )
            return exc
        return AwsError(
            f"the IAM user '{spec.iam_user}' does not exist any more, so nothing was granted",
            operation=exc.operation,
            code=exc.code,
        )

    def revoke(self, spec: GrantSpec, grant_ref: str | None) -> None:
        """Remove the user from the group."""
        try:
            with aws_call("iam:RemoveUserFromGroup"):
                self._iam.remove_user_from_group(GroupName=spec.target, UserName=spec.iam_user)
        except AwsError as exc:
            if not exc.gone:
                raise


def account_of(arn: str) -> str:
    """The account ID in an ARN (arn:partition:service:region:account:resource)."""
    parts = arn.split(":", 5)
    return parts[4] if len(parts) == 6 else ""


def role_name(role_arn: str) -> str:
    """The RoleName of a role ARN; a role's path is not part of its name."""
    return role_arn.split(":", 5)[-1].removeprefix("role/").rsplit("/", 1)[-1]


def is_alias(key_id: str) -> bool:
    """Whether a catalog key_id names an alias (alias/x or an alias ARN) rather than a key."""
    return key_id.startswith("alias/") or ":alias/" in key_id


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
        """Write (or rewrite) the inline policy, once the role is known to exist."""
        self._require_role(spec)
        try:
            with aws_call("iam:PutUserPolicy"):
                self._iam.put_user_policy(
                    UserName=spec.iam_user, PolicyName=spec.name, PolicyDocument=json.dumps(role_policy(spec))
                )
        except AwsError as exc:
            if exc.code == "LimitExceeded":
                raise AwsError(
                    f"the inline policies of the IAM user '{spec.iam_user}' would exceed AWS's size limit "
                    "(2,048 characters per user in total), so no role access was added; an admin must remove "
                    f"unused inline policies from '{spec.iam_user}' first. {exc}",
                    operation=exc.operation,
                    code=exc.code,
                ) from exc
            if exc.gone:
                raise AwsError(
                    f"the IAM user '{spec.iam_user}' does not exist any more, so nothing was granted",
                    operation=exc.operation,
                    code=exc.code,
                ) from exc
            raise
        return spec.name

    def _require_role(self, spec: GrantSpec) -> None:
        """Refuse a role that does not exist; IAM itself accepts a policy naming any ARN."""
        if account_of(spec.target) != account_of(spec.iam_user_arn):
            return  # a role in another account cannot be seen from here; its trust policy decides
        try:
            with aws_call("iam:GetRole"):
                found = str(self._iam.get_role(RoleName=role_name(spec.target))["Role"]["Arn"])
        except AwsError as exc:
            if not exc.gone:
                raise
            found = ""
        if found != spec.target:
            also = f" (a role of that name exists as {found})" if found else ""
            raise AwsError(
                f"the IAM role {spec.target} does not exist{also}, so nothing was granted "
                "(an admin must create it or fix the catalog)",
                operation="iam:GetRole",
                code="NoSuchEntity",
            )

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
        """Resolve a key ID, ARN or alias to the key's ARN; refuse a key that is missing or not enabled."""
        meta = self._describe(key_id)
        state = str(meta.get("KeyState", ""))
        if state != "Enabled":
            raise AwsError(
                f"the KMS key {key_id} is {KEY_STATES.get(state, state or 'not enabled')}, so no grant can be made",
                operation="kms:DescribeKey",
                code="KeyNotEnabled",
            )
        return str(meta["Arn"])

    def _describe(self, key_id: str) -> dict[str, Any]:
        try:
            with aws_call("kms:DescribeKey"):
                return dict(self._kms.describe_key(KeyId=key_id)["KeyMetadata"])
        except AwsError as exc:
            if exc.gone:
                raise AwsError(
                    f"the KMS key {key_id} does not exist (an admin must create it or fix the catalog)",
                    operation=exc.operation,
                    code=exc.code,
                ) from exc
            raise

    def _key_holding(self, name: str) -> str | None:
        """The ARN of the key that holds a grant of this name, searching every key in the region."""
        with aws_call("kms:ListKeys"):
            keys = [k["KeyArn"] for page in self._kms.get_paginator("list_keys").paginate() for k in page["Keys"]]
        for key_arn in keys:
            try:
                if self._existing(key_arn, name):
                    return str(key_arn)
            except AwsError as exc:
                if not exc.gone:
                    raise
        return None

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
        """Revoke the grant by its stored GrantId and every other grant of this request's name."""
        try:
            key_arn = self.key_arn(spec.target)
        except AwsError as exc:
            if exc.code == "KeyNotEnabled":
                key_arn = str(self._describe(spec.target)["Arn"])
            elif exc.gone and is_alias(spec.target):
                # A deleted alias leaves its key, and the grant on it, in place: find that key.
                found = self._key_holding(spec.name)
                if found is None:
                    return
                key_arn = found
            elif exc.gone:
                return  # the key itself is gone, and every grant on it with it
            else:
                raise
        # Every grant of this request's name, not only the stored one: two activations that raced (or a
        # crash after CreateGrant) may have left another, and none may outlive the request.
        grant_ids = dict.fromkeys([*([grant_ref] if grant_ref else []), *self._existing(key_arn, spec.name)])
        for grant_id in grant_ids:
            try:
                with aws_call("kms:RevokeGrant"):
                    self._kms.revoke_grant(KeyId=key_arn, GrantId=grant_id)
            except AwsError as exc:
                if not exc.gone:
                    raise
