"""The right to assume an IAM role: an inline user policy with a time condition, and a session deny at the end."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from bot.aws.errors import AwsError, aws_call
from bot.aws.granters.base import Ended, GrantSpec, account_of, iso, role_name
from bot.clock import utcnow


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

    def __init__(
        self, iam: Any, clock: Callable[[], datetime] = utcnow, *, iam_in: Callable[[str], Any] | None = None
    ) -> None:
        self._iam = iam
        self._clock = clock
        # IAM in another account, through the role the bot assumes there (catalog `accounts`), else None.
        self._iam_in = iam_in or (lambda _account: None)
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
        iam = self._role_iam(spec)
        if iam is None:
            return  # a role in an account the bot cannot act in cannot be seen from here; its trust policy decides
        try:
            with aws_call("iam:GetRole"):
                found = str(iam.get_role(RoleName=role_name(spec.target))["Role"]["Arn"])
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
        iam = self._role_iam(spec)
        if iam is None:
            return Ended(note=f"the role is in account {account_of(spec.target)}: its open sessions end on their own")
        # Whole seconds, rounded up: every session issued before the policy was deleted is covered.
        ended = self._clock().replace(microsecond=0) + timedelta(seconds=1)
        role = role_name(spec.target)
        try:
            longest = self._longest_session(iam, spec.target)
        except AwsError as exc:
            if exc.gone:
                return Ended(note="the role no longer exists, and its sessions with it")
            raise
        document = json.dumps(session_deny(spec.iam_user, ended))
        try:
            with aws_call("iam:PutRolePolicy"):
                iam.put_role_policy(RoleName=role, PolicyName=spec.name, PolicyDocument=document)
        except AwsError as exc:
            if exc.code not in ("LimitExceeded", "LimitExceededException"):
                raise
            self._deny_as_managed_policy(iam, spec, role, document)
        return Ended(lift_at=ended + timedelta(seconds=longest))

    def _role_iam(self, spec: GrantSpec) -> Any:
        """IAM in the role's account: the bot's own, a listed account's through its assumed role, else None."""
        account = account_of(spec.target)
        return self._iam if account == account_of(spec.iam_user_arn) else self._iam_in(account)

    def _longest_session(self, iam: Any, role_arn: str) -> int:
        """The role's maximum session duration in seconds (read at most once a minute per role)."""
        with self._guard:
            cached = self._longest.get(role_arn)
        if cached is not None and time.monotonic() - cached[0] < self.SESSION_LIMIT_CACHE:
            return cached[1]
        with aws_call("iam:GetRole"):
            longest = int(iam.get_role(RoleName=role_name(role_arn))["Role"].get("MaxSessionDuration") or 3600)
        with self._guard:
            self._longest[role_arn] = (time.monotonic(), longest)
        return longest

    def _deny_as_managed_policy(self, iam: Any, spec: GrantSpec, role: str, document: str) -> None:
        """The role's inline policies are full (10,240 characters): put the deny in a managed policy instead."""
        arn = managed_deny_arn(spec.target, spec.name)
        try:
            with aws_call("iam:CreatePolicy"):
                iam.create_policy(PolicyName=spec.name, Path="/accessbot/", PolicyDocument=document)
        except AwsError as exc:
            if exc.code != "EntityAlreadyExists":
                raise
        with aws_call("iam:AttachRolePolicy"):
            iam.attach_role_policy(RoleName=role, PolicyArn=arn)

    def lift(self, spec: GrantSpec) -> None:
        """Remove the session deny (inline, or the managed policy it was put in when the role was full)."""
        role = role_name(spec.target)
        iam = self._role_iam(spec)
        if iam is None:
            return  # no deny was written in an account the bot cannot act in
        try:
            with aws_call("iam:DeleteRolePolicy"):
                iam.delete_role_policy(RoleName=role, PolicyName=spec.name)
            return
        except AwsError as exc:
            if not exc.gone:
                raise
        arn = managed_deny_arn(spec.target, spec.name)
        for operation, call, args in (
            ("iam:DetachRolePolicy", iam.detach_role_policy, {"RoleName": role, "PolicyArn": arn}),
            ("iam:DeletePolicy", iam.delete_policy, {"PolicyArn": arn}),
        ):
            try:
                with aws_call(operation):
                    call(**args)
            except AwsError as exc:
                if not exc.gone:
                    raise
