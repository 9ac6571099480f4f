"""IAM Identity Center: a permission set in several accounts (account assignments), an Identity Store group.

For these kinds the spec's `iam_user` is the Identity Store UserName and `iam_user_arn` its UserId.
Account assignments are asynchronous: each is created, then its status is polled until SUCCEEDED or
FAILED, with a bound. The accounts of one request are assigned in parallel, so a grant takes about as
long as its slowest account, not their sum.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from bot.aws.errors import AwsError, aws_call, retried
from bot.aws.granters.base import Ended, GrantSpec
from bot.aws.identity_center import Center
from bot.catalog import split_permission_set_target

GROUP_ID = r"^([0-9a-f]{10}-)?[A-Fa-f0-9]{8}-[A-Fa-f0-9]{4}-[A-Fa-f0-9]{4}-[A-Fa-f0-9]{4}-[A-Fa-f0-9]{12}$"


@dataclass(frozen=True)
class Polling:
    """How an assignment's status is awaited: first after `first` seconds, doubling up to `most`, for `limit` in all."""

    first: float = 0.2
    most: float = 1.0
    limit: float = 60.0
    threads: int = 8  # accounts assigned at once


class PermissionSetGranter:
    """A permission set in one or more accounts: one account assignment (principal type USER) per account."""

    shared = True

    def __init__(self, sso_admin: Any, center: Center, *, polling: Polling | None = None) -> None:
        self._sso = sso_admin
        self._center = center
        self._polling = polling or Polling()
        self._arns: dict[str, str] = {}  # permission set name -> ARN (an ARN never changes)
        self._lock = threading.Lock()

    # -- the protocol --------------------------------------------------------------------------

    def locate(self, spec: GrantSpec) -> str | None:
        """The permission set's ARN, recorded so that the end deletes the same assignments whatever the catalog says."""
        name, _accounts = split_permission_set_target(spec.target)
        return self.permission_set_arn(name)

    def lift(self, spec: GrantSpec) -> None:
        """Nothing is left behind."""

    def holds(self, spec: GrantSpec) -> bool:
        """Whether the user has the permission set in any of the request's accounts now."""
        arn = self._arn_of(spec)
        return any(self._each(spec, lambda account: self._assigned(arn, account, spec.iam_user_arn)))

    def grant(self, spec: GrantSpec) -> str | None:
        """Assign the permission set in every account at once; undo the rest when any account refuses."""
        arn = self._arn_of(spec)
        outcomes = self._each(spec, lambda account: self._try(lambda: self._assign(arn, account, spec.iam_user_arn)))
        permission_set, accounts = split_permission_set_target(spec.target)
        refused = [(a, o) for a, o in zip(accounts, outcomes, strict=True) if isinstance(o, AwsError)]
        if not refused:
            return None
        created = [a for a, o in zip(accounts, outcomes, strict=True) if o is True]
        undo = self._each_of(
            created, lambda account: self._try(lambda: self._unassign(arn, account, spec.iam_user_arn))
        )
        kept = [a for a, o in zip(created, undo, strict=True) if isinstance(o, AwsError)]
        words = "; ".join(f"in {account}: {error}" for account, error in refused)
        after = f" The assignments made in {', '.join(created)} were undone." if created and not kept else ""
        if kept:
            after = f" Undoing the assignment in {', '.join(kept)} failed; the bot keeps trying."
        first = refused[0][1]
        raise AwsError(
            f"AWS refused to assign the permission set {permission_set} {words}.{after}",
            operation=first.operation,
            code=first.code,
            transient=first.transient,
        )

    def revoke(self, spec: GrantSpec, grant_ref: str | None) -> Ended:
        """Delete the assignment in every account at once; one already gone counts as deleted."""
        try:
            arn = self._arn_of(spec)
        except AwsError as exc:
            if exc.gone:
                return Ended()  # the permission set is gone, and every assignment of it with it
            raise
        outcomes = self._each(spec, lambda account: self._try(lambda: self._unassign(arn, account, spec.iam_user_arn)))
        errors = [o for o in outcomes if isinstance(o, AwsError)]
        if errors:
            raise errors[0]
        return Ended()

    # -- resolving -----------------------------------------------------------------------------

    def permission_set_arn(self, name_or_arn: str) -> str:
        """The ARN of a permission set named in the catalog (name or ARN); an AwsError when it does not exist."""
        with self._lock:
            if name_or_arn in self._arns:
                return self._arns[name_or_arn]
        instance = self._center.instance().arn
        if name_or_arn.startswith("arn:"):
            try:
                with aws_call("sso:DescribePermissionSet"):
                    self._sso.describe_permission_set(InstanceArn=instance, PermissionSetArn=name_or_arn)
            except AwsError as exc:
                if exc.gone:
                    raise self._no_such(name_or_arn, exc) from exc
                raise
            found = name_or_arn
        else:
            found = self._by_name(instance, name_or_arn)
        with self._lock:
            self._arns[name_or_arn] = found
        return found

    def _by_name(self, instance: str, name: str) -> str:
        with aws_call("sso:ListPermissionSets"):
            pages = self._sso.get_paginator("list_permission_sets").paginate(InstanceArn=instance)
            arns = [str(arn) for page in pages for arn in page["PermissionSets"]]
        for arn in arns:
            with aws_call("sso:DescribePermissionSet"):
                described = self._sso.describe_permission_set(InstanceArn=instance, PermissionSetArn=arn)
            found = str(described["PermissionSet"]["Name"])
            with self._lock:
                self._arns[found] = arn
            if found == name:
                return arn
        raise self._no_such(name, None)

    @staticmethod
    def _no_such(name: str, exc: AwsError | None) -> AwsError:
        return AwsError(
            f"the permission set '{name}' does not exist in IAM Identity Center, so nothing was granted "
            "(an admin must create it or fix the catalog)",
            operation=exc.operation if exc else "sso:ListPermissionSets",
            code=exc.code if exc else "ResourceNotFoundException",
        )

    def _arn_of(self, spec: GrantSpec) -> str:
        return spec.target_arn or self.permission_set_arn(split_permission_set_target(spec.target)[0])

    # -- one account ---------------------------------------------------------------------------

    def _assigned(self, arn: str, account: str, user_id: str) -> bool:
        """Whether the user has the permission set in the account (directly, not through a group)."""
        instance = self._center.instance().arn
        with aws_call("sso:ListAccountAssignments"):
            pages = self._sso.get_paginator("list_account_assignments").paginate(
                InstanceArn=instance, AccountId=account, PermissionSetArn=arn
            )
            return any(
                a.get("PrincipalType") == "USER" and a.get("PrincipalId") == user_id
                for page in pages
                for a in page["AccountAssignments"]
            )

    def _assign(self, arn: str, account: str, user_id: str) -> bool:
        """Create the assignment and wait for it; True when this call created it, False when it was there."""
        if self._assigned(arn, account, user_id):
            return False  # an earlier attempt (a crash, a retry) or an overlapping grant of the bot made it
        instance = self._center.instance().arn
        answer = retried(
            "sso:CreateAccountAssignment",
            lambda: self._sso.create_account_assignment(**_assignment(instance, arn, account, user_id)),
        )
        self._await(
            answer["AccountAssignmentCreationStatus"],
            lambda request_id: self._sso.describe_account_assignment_creation_status(
                InstanceArn=instance, AccountAssignmentCreationRequestId=request_id
            )["AccountAssignmentCreationStatus"],
            "sso:DescribeAccountAssignmentCreationStatus",
            account,
        )
        return True

    def _unassign(self, arn: str, account: str, user_id: str) -> bool:
        """Delete the assignment and wait for it; an assignment already gone counts as deleted."""
        instance = self._center.instance().arn
        try:
            answer = retried(
                "sso:DeleteAccountAssignment",
                lambda: self._sso.delete_account_assignment(**_assignment(instance, arn, account, user_id)),
            )
        except AwsError as exc:
            if exc.gone:
                return True
            raise
        self._await(
            answer["AccountAssignmentDeletionStatus"],
            lambda request_id: self._sso.describe_account_assignment_deletion_status(
                InstanceArn=instance, AccountAssignmentDeletionRequestId=request_id
            )["AccountAssignmentDeletionStatus"],
            "sso:DescribeAccountAssignmentDeletionStatus",
            account,
        )
        return True

    def _await(self, status: dict[str, Any], describe: Callable[[str], Any], operation: str, account: str) -> None:
        """Poll an assignment's status until SUCCEEDED (return) or FAILED (AwsError with AWS's reason), with a bound."""
        request_id = str(status.get("RequestId", ""))
        delay, deadline = self._polling.first, time.monotonic() + self._polling.limit
        while status.get("Status") == "IN_PROGRESS":
            if time.monotonic() >= deadline:
                raise AwsError(
                    f"AWS had not finished {operation.split(':')[1].removeprefix('Describe').removesuffix('Status')} "
                    f"in account {account} after {self._polling.limit:g}s",
                    operation=operation,
                    code="StillInProgress",
                    transient=True,
                )
            time.sleep(delay)
            delay = min(self._polling.most, delay * 2)
            status = retried(operation, lambda: describe(request_id))
        if status.get("Status") == "FAILED":
            reason = str(status.get("FailureReason") or "no reason given").strip().rstrip(".")
            raise AwsError(f"{reason} (FAILED)", operation=operation, code="AssignmentFailed")

    # -- in parallel ---------------------------------------------------------------------------

    def _each(self, spec: GrantSpec, work: Callable[[str], Any]) -> list[Any]:
        return self._each_of(split_permission_set_target(spec.target)[1], work)

    def _each_of(self, accounts: Sequence[str], work: Callable[[str], Any]) -> list[Any]:
        """`work(account)` for every account at once, results in the accounts' order (exceptions raised)."""
        if len(accounts) <= 1:
            return [work(a) for a in accounts]
        with ThreadPoolExecutor(max_workers=min(self._polling.threads, len(accounts))) as pool:
            return list(pool.map(work, accounts))

    @staticmethod
    def _try(work: Callable[[], bool]) -> bool | AwsError:
        """The outcome of one account's work: its value, or the AwsError it raised (the others go on)."""
        try:
            return work()
        except AwsError as exc:
            return exc


def _assignment(instance: str, arn: str, account: str, user_id: str) -> dict[str, str]:
    return {
        "InstanceArn": instance,
        "TargetId": account,
        "TargetType": "AWS_ACCOUNT",
        "PermissionSetArn": arn,
        "PrincipalType": "USER",
        "PrincipalId": user_id,
    }


class SsoGroupGranter:
    """Membership of an Identity Store group; the grant's reference is the MembershipId."""

    shared = True

    def __init__(self, identitystore: Any, center: Center) -> None:
        self._store = identitystore
        self._center = center
        self._ids: dict[str, str] = {}  # display name -> GroupId
        self._lock = threading.Lock()

    def locate(self, spec: GrantSpec) -> str | None:
        """The group's ID, recorded so that the end finds the same group even if it is renamed."""
        return self.group_id(spec.target)

    def lift(self, spec: GrantSpec) -> None:
        """Nothing is left behind."""

    def group_id(self, name_or_id: str) -> str:
        """The GroupId of a group named in the catalog (display name or ID); an AwsError when it does not exist."""
        with self._lock:
            if name_or_id in self._ids:
                return self._ids[name_or_id]
        store_id = self._center.instance().identity_store_id
        found: str | None = None
        try:
            with aws_call("identitystore:GetGroupId"):
                found = str(
                    self._store.get_group_id(
                        IdentityStoreId=store_id,
                        AlternateIdentifier={
                            "UniqueAttribute": {"AttributePath": "displayName", "AttributeValue": name_or_id}
                        },
                    )["GroupId"]
                )
        except AwsError as exc:
            if not exc.gone:
                raise
        if found is None and re.fullmatch(GROUP_ID, name_or_id):
            try:
                with aws_call("identitystore:DescribeGroup"):
                    found = str(self._store.describe_group(IdentityStoreId=store_id, GroupId=name_or_id)["GroupId"])
            except AwsError as exc:
                if not exc.gone:
                    raise
        if found is None:
            raise AwsError(
                f"the Identity Center group '{name_or_id}' does not exist, so nothing was granted "
                "(an admin must create it or fix the catalog)",
                operation="identitystore:GetGroupId",
                code="ResourceNotFoundException",
            )
        with self._lock:
            self._ids[name_or_id] = found
        return found

    def _membership(self, spec: GrantSpec) -> str | None:
        """The user's MembershipId in the group, or None."""
        group = spec.target_arn or self.group_id(spec.target)
        try:
            with aws_call("identitystore:GetGroupMembershipId"):
                return str(
                    self._store.get_group_membership_id(
                        IdentityStoreId=self._center.instance().identity_store_id,
                        GroupId=group,
                        MemberId={"UserId": spec.iam_user_arn},
                    )["MembershipId"]
                )
        except AwsError as exc:
            if exc.gone:
                return None
            raise

    def holds(self, spec: GrantSpec) -> bool:
        """Whether the user is a member of the group now."""
        return self._membership(spec) is not None

    def grant(self, spec: GrantSpec) -> str | None:
        """Add the user to the group (a membership an earlier attempt made is kept); return the MembershipId."""
        existing = self._membership(spec)
        if existing is not None:
            return existing
        group = spec.target_arn or self.group_id(spec.target)
        answer = retried(
            "identitystore:CreateGroupMembership",
            lambda: self._store.create_group_membership(
                IdentityStoreId=self._center.instance().identity_store_id,
                GroupId=group,
                MemberId={"UserId": spec.iam_user_arn},
            ),
        )
        return str(answer["MembershipId"])

    def revoke(self, spec: GrantSpec, grant_ref: str | None) -> Ended:
        """Remove the user from the group; a membership already gone counts as removed."""
        try:
            membership = self._membership(spec)
        except AwsError as exc:
            if exc.gone:
                return Ended()  # the group itself is gone
            raise
        if membership is None:
            return Ended()
        store_id = self._center.instance().identity_store_id
        try:
            retried(
                "identitystore:DeleteGroupMembership",
                lambda: self._store.delete_group_membership(IdentityStoreId=store_id, MembershipId=membership),
            )
        except AwsError as exc:
            if not exc.gone:
                raise
        return Ended()
