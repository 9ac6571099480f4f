"""One granter per kind of access, all behind the Granter protocol; they return plain values."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from bot.aws.errors import AwsError, aws_call
from bot.clock import utcnow

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
    # The concrete object granted on, as `locate` found it before the grant (a KMS key's ARN).
    target_arn: str | None = None
    # Whether ending must also end sessions already open (no other grant of the same access keeps them).
    end_sessions: bool = True

    @property
    def name(self) -> str:
        """The name of everything the bot creates for this request."""
        return f"{PREFIX}{self.request_id}"


@dataclass(frozen=True)
class Ended:
    """What a revoke left behind: when a follow-up is owed (lifting a session deny), and a note for the audit."""

    lift_at: datetime | None = None
    note: str = ""


class Granter(Protocol):
    """Applies and removes one kind of access; every call is idempotent."""

    # True when several requests can share one piece of AWS state (group membership).
    shared: bool

    def locate(self, spec: GrantSpec) -> str | None:
        """Check the target exists and can be granted; return the concrete object to record (or None)."""
        ...

    def holds(self, spec: GrantSpec) -> bool:
        """Whether AWS already gives the user this access."""
        ...

    def grant(self, spec: GrantSpec) -> str | None:
        """Apply the access; return a reference to store (e.g. a KMS GrantId)."""
        ...

    def revoke(self, spec: GrantSpec, grant_ref: str | None) -> Ended:
        """Remove the access; succeed when it is already gone."""
        ...

    def lift(self, spec: GrantSpec) -> None:
        """Remove what a revoke left in place until later (a role's session deny); succeed when gone."""
        ...


class GroupGranter:
    """Membership of an IAM group."""

    shared = True

    def __init__(self, iam: Any) -> None:
        self._iam = iam

    def locate(self, spec: GrantSpec) -> str | None:
        """Nothing to resolve: the group's name is the target (AddUserToGroup says when it is missing)."""
        return None

    def lift(self, spec: GrantSpec) -> None:
        """Nothing is left behind."""

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

    def revoke(self, spec: GrantSpec, grant_ref: str | None) -> Ended:
        """Remove the user from the group."""
        try:
            with aws_call("iam:RemoveUserFromGroup"):
                self._iam.remove_user_from_group(GroupName=spec.target, UserName=spec.iam_user)
        except AwsError as exc:
            if not exc.gone:
                raise
        return Ended()


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


def iso(moment: datetime) -> str:
    """A moment as IAM condition keys compare it: UTC, ISO 8601, whole seconds."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def role_policy(spec: GrantSpec) -> dict[str, Any]:
    """The inline policy that lets the user assume the role until the expiry, and only under their own name.

    sts:SourceIdentity must be the IAM user's name, so every session the grant allows carries who it is and
    can be ended later by a deny on the role (see session_deny).
    """
    condition: dict[str, Any] = {
        "DateLessThan": {"aws:CurrentTime": iso(spec.expires_at)},
        "StringEquals": {"sts:SourceIdentity": spec.iam_user},
    }
    if spec.require_mfa:
        condition["Bool"] = {"aws:MultiFactorAuthPresent": "true"}
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AccessbotAssumeRole",
                "Effect": "Allow",
                "Action": ["sts:AssumeRole", "sts:SetSourceIdentity"],
                "Resource": spec.target,
                "Condition": condition,
            }
        ],
    }


def session_deny(iam_user: str, ended_at: datetime) -> dict[str, Any]:
    """A role policy that denies everything to the user's sessions issued before the end."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AccessbotEndSessions",
                "Effect": "Deny",
                "Action": "*",
                "Resource": "*",
                "Condition": {
                    "StringEquals": {"aws:SourceIdentity": iam_user},
                    "DateLessThan": {"aws:TokenIssueTime": iso(ended_at)},
                },
            }
        ],
    }


def managed_deny_arn(role_arn: str, name: str) -> str:
    """Where a session deny lives when the role's inline policies are full."""
    return f"arn:aws:iam::{account_of(role_arn)}:policy/accessbot/{name}"


class RoleGranter:
    """The right to assume an IAM role, as an inline user policy with a time condition."""

    shared = False

    # How long a role's maximum session duration is taken as read (GetRole costs a call on every end).
    SESSION_LIMIT_CACHE = 60.0

    def __init__(self, iam: Any, clock: Callable[[], datetime] = utcnow) -> None:
        self._iam = iam
        self._clock = clock
        self._longest: dict[str, tuple[float, int]] = {}
        self._guard = threading.Lock()

    def locate(self, spec: GrantSpec) -> str | None:
        """Refuse a role that does not exist (IAM itself accepts a policy naming any ARN)."""
        self._require_role(spec)
        return None

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

    def revoke(self, spec: GrantSpec, grant_ref: str | None) -> Ended:
        """Delete the inline policy, then deny the user's sessions issued before now on the role.

        Deleting the policy stops new AssumeRole calls only; the deny ends sessions already open. It stays
        until the role's maximum session duration has passed, when no session it covers can be alive.
        """
        try:
            with aws_call("iam:DeleteUserPolicy"):
                self._iam.delete_user_policy(UserName=spec.iam_user, PolicyName=spec.name)
        except AwsError as exc:
            if not exc.gone:
                raise
        if not spec.end_sessions:
            return Ended(note="another grant of this role to the same user keeps its sessions")
        if account_of(spec.target) != account_of(spec.iam_user_arn):
            return Ended(note=f"the role is in account {account_of(spec.target)}: its open sessions end on their own")
        # Whole seconds, rounded up: every session issued before the policy was deleted is covered.
        ended = self._clock().replace(microsecond=0) + timedelta(seconds=1)
        role = role_name(spec.target)
        try:
            longest = self._longest_session(role)
        except AwsError as exc:
            if exc.gone:
                return Ended(note="the role no longer exists, and its sessions with it")
            raise
        document = json.dumps(session_deny(spec.iam_user, ended))
        try:
            with aws_call("iam:PutRolePolicy"):
                self._iam.put_role_policy(RoleName=role, PolicyName=spec.name, PolicyDocument=document)
        except AwsError as exc:
            if exc.code not in ("LimitExceeded", "LimitExceededException"):
                raise
            self._deny_as_managed_policy(spec, role, document)
        return Ended(lift_at=ended + timedelta(seconds=longest))

    def _longest_session(self, role: str) -> int:
        """The role's maximum session duration in seconds (read at most once a minute per role)."""
        with self._guard:
            cached = self._longest.get(role)
        if cached is not None and time.monotonic() - cached[0] < self.SESSION_LIMIT_CACHE:
            return cached[1]
        with aws_call("iam:GetRole"):
            longest = int(self._iam.get_role(RoleName=role)["Role"].get("MaxSessionDuration") or 3600)
        with self._guard:
            self._longest[role] = (time.monotonic(), longest)
        return longest

    def _deny_as_managed_policy(self, spec: GrantSpec, role: str, document: str) -> None:
        """The role's inline policies are full (10,240 characters): put the deny in a managed policy instead."""
        arn = managed_deny_arn(spec.target, spec.name)
        try:
            with aws_call("iam:CreatePolicy"):
                self._iam.create_policy(PolicyName=spec.name, Path="/accessbot/", PolicyDocument=document)
        except AwsError as exc:
            if exc.code != "EntityAlreadyExists":
                raise
        with aws_call("iam:AttachRolePolicy"):
            self._iam.attach_role_policy(RoleName=role, PolicyArn=arn)

    def lift(self, spec: GrantSpec) -> None:
        """Remove the session deny (inline, or the managed policy it was put in when the role was full)."""
        role = role_name(spec.target)
        try:
            with aws_call("iam:DeleteRolePolicy"):
                self._iam.delete_role_policy(RoleName=role, PolicyName=spec.name)
            return
        except AwsError as exc:
            if not exc.gone:
                raise
        arn = managed_deny_arn(spec.target, spec.name)
        for operation, call, args in (
            ("iam:DetachRolePolicy", self._iam.detach_role_policy, {"RoleName": role, "PolicyArn": arn}),
            ("iam:DeletePolicy", self._iam.delete_policy, {"PolicyArn": arn}),
        ):
            try:
                with aws_call(operation):
                    call(**args)
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

    def locate(self, spec: GrantSpec) -> str | None:
        """The ARN of the key the alias or ID names now; recorded so the revoke finds it even if the alias moves."""
        return self.key_arn(spec.target)

    def lift(self, spec: GrantSpec) -> None:
        """Nothing is left behind."""

    def _key_holding(self, spec: GrantSpec) -> str | None:
        """The ARN of the key that holds this request's grant, searching every key in the region."""
        with aws_call("kms:ListKeys"):
            keys = [k["KeyArn"] for page in self._kms.get_paginator("list_keys").paginate() for k in page["Keys"]]
        for key_arn in keys:
            try:
                if self._existing(key_arn, spec):
                    return str(key_arn)
            except AwsError as exc:
                if not exc.gone:
                    raise
        return None

    def _existing(self, key_arn: str, spec: GrantSpec, *, exact: bool = False) -> list[str]:
        """This request's grants on the key: its name and its grantee (with `exact`, also its operations).

        A grant of the same name for anyone else (a second installation, a recreated database) is not the
        bot's to adopt or revoke.
        """
        with aws_call("kms:ListGrants"):
            pages = self._kms.get_paginator("list_grants").paginate(KeyId=key_arn, GranteePrincipal=spec.iam_user_arn)
            return [
                g["GrantId"]
                for page in pages
                for g in page["Grants"]
                if g.get("Name") == spec.name
                and g.get("GranteePrincipal") == spec.iam_user_arn
                and (not exact or sorted(g.get("Operations", [])) == sorted(spec.operations))
            ]

    def holds(self, spec: GrantSpec) -> bool:
        """Whether this request's grant exists on the key."""
        return bool(self._existing(spec.target_arn or self.key_arn(spec.target), spec))

    def grant(self, spec: GrantSpec) -> str | None:
        """Create the grant on the located key (or find the one a crashed attempt created); return its GrantId."""
        key_arn = spec.target_arn or self.key_arn(spec.target)
        existing = self._existing(key_arn, spec, exact=True)
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

    def revoke(self, spec: GrantSpec, grant_ref: str | None) -> Ended:
        """Revoke the grant by its stored GrantId, and every other grant of this request, on the recorded key."""
        key_arn = spec.target_arn or self._legacy_key(spec)
        if key_arn is None:
            return Ended()
        # Every grant of this request, not only the stored one: two activations that raced (or a crash after
        # CreateGrant) may have left another, and none may outlive the request.
        try:
            grant_ids = dict.fromkeys([*([grant_ref] if grant_ref else []), *self._existing(key_arn, spec)])
        except AwsError as exc:
            if exc.gone:
                return Ended()  # the key itself is gone, and every grant on it with it
            raise
        for grant_id in grant_ids:
            try:
                with aws_call("kms:RevokeGrant"):
                    self._kms.revoke_grant(KeyId=key_arn, GrantId=grant_id)
            except AwsError as exc:
                if not exc.gone:
                    raise
        return Ended()

    def _legacy_key(self, spec: GrantSpec) -> str | None:
        """The key of a grant recorded before key ARNs were stored: resolve the catalog's key ID now."""
        try:
            return self.key_arn(spec.target)
        except AwsError as exc:
            if exc.code == "KeyNotEnabled":
                return str(self._describe(spec.target)["Arn"])
            if exc.gone and is_alias(spec.target):
                # A deleted alias leaves its key, and the grant on it, in place: find that key.
                return self._key_holding(spec)
            if exc.gone:
                return None  # the key itself is gone, and every grant on it with it
            raise
