"""Account assignments of a permission set to a user: created, awaited, deleted, and held other ways.

Creation and deletion are asynchronous (IAM Identity Center API Reference, "CreateAccountAssignment":
"call DescribeAccountAssignmentCreationStatus to describe the status"; "DeleteAccountAssignment" likewise).
A creation may finish after the bot stopped polling, so its request ID is recorded at once (CreationLog)
and an undo first waits for each recorded creation's final status, then looks at the account.
"""

from __future__ import annotations

import threading
from typing import Any, Protocol

from bot.aws.errors import AwsError, aws_call, retried
from bot.aws.granters.sso.polling import Polling, await_status
from bot.aws.identity_center import Center


class CreationLog(Protocol):
    """Where the request IDs of the assignment creations the bot asked for are kept (the database)."""

    def record(self, request_id: int, account: str, creation_id: str) -> None:
        """Remember one creation request."""
        ...

    def creations(self, request_id: int) -> list[tuple[str, str]]:
        """(account, creation request ID) of every creation recorded for the request."""
        ...


class MemoryCreations:
    """A CreationLog in memory, for tests and the demo."""

    def __init__(self) -> None:
        self._rows: dict[int, list[tuple[str, str]]] = {}
        self._lock = threading.Lock()

    def record(self, request_id: int, account: str, creation_id: str) -> None:
        """Remember one creation request (twice is once)."""
        with self._lock:
            rows = self._rows.setdefault(request_id, [])
            if (account, creation_id) not in rows:
                rows.append((account, creation_id))

    def creations(self, request_id: int) -> list[tuple[str, str]]:
        """(account, creation request ID) of every creation recorded for the request."""
        with self._lock:
            return list(self._rows.get(request_id, []))


class Assignments:
    """One user's assignments of one permission set, account by account."""

    def __init__(self, sso_admin: Any, center: Center, log: CreationLog, polling: Polling) -> None:
        self._sso = sso_admin
        self._center = center
        self._log = log
        self._polling = polling

    def assigned(self, arn: str, account: str, user_id: str) -> bool:
        """Whether the user has the permission set in the account (directly, not through a group)."""
        with aws_call("sso:ListAccountAssignments"):
            pages = self._sso.get_paginator("list_account_assignments").paginate(
                InstanceArn=self._center.instance().arn, AccountId=account, PermissionSetArn=arn
            )
            return any(
                a.get("PrincipalType") == "USER" and a.get("PrincipalId") == user_id
                for page in pages
                for a in page["AccountAssignments"]
            )

    def assign(self, request_id: int, arn: str, account: str, user_id: str) -> bool:
        """Create the assignment and wait for it; True when this call created it, False when it was there."""
        if self.assigned(arn, account, user_id):
            return False  # an earlier attempt (a crash, a retry) or an overlapping grant of the bot made it
        instance = self._center.instance().arn
        answer = retried(
            "sso:CreateAccountAssignment",
            lambda: self._sso.create_account_assignment(**_assignment(instance, arn, account, "USER", user_id)),
        )
        status = answer["AccountAssignmentCreationStatus"]
        if status.get("RequestId"):
            self._log.record(request_id, account, str(status["RequestId"]))
        await_status(
            self._polling, status, self._creation_status, "sso:DescribeAccountAssignmentCreationStatus", account
        )
        return True

    def settle(self, request_id: int, accounts: set[str] | None = None) -> None:
        """Wait for the final status of every creation recorded for the request (in `accounts` when given).

        A creation still in progress after the poll's bound raises StillInProgress: the undo stays owed and
        comes back, since deleting now could race the creation and leave the assignment behind.
        """
        for account, creation_id in self._log.creations(request_id):
            if accounts is not None and account not in accounts:
                continue
            status = {"RequestId": creation_id, "Status": "IN_PROGRESS"}
            try:
                await_status(
                    self._polling, status, self._creation_status, "sso:DescribeAccountAssignmentCreationStatus", account
                )
            except AwsError as exc:
                if exc.code == "StillInProgress" or exc.transient:
                    raise
                # FAILED, or a request AWS no longer knows: either way it is final; the account tells the rest.

    def unassign(self, arn: str, account: str, user_id: str) -> bool:
        """Delete the assignment if the account holds it and wait; one not there counts as deleted.

        The account is read first, so an assignment that never existed is never asked to be deleted. Should
        AWS answer one anyway: DeleteAccountAssignment documents ResourceNotFoundException (
        "Indicates that a requested resource is not found", IAM Identity Center API Reference,
        "DeleteAccountAssignment", Errors), and a deletion that FAILED while the account no longer lists the
        assignment is done too; neither is retried.
        """
        if not self.assigned(arn, account, user_id):
            return True
        instance = self._center.instance().arn
        try:
            answer = retried(
                "sso:DeleteAccountAssignment",
                lambda: self._sso.delete_account_assignment(**_assignment(instance, arn, account, "USER", user_id)),
            )
            await_status(
                self._polling,
                answer["AccountAssignmentDeletionStatus"],
                lambda request_id: self._sso.describe_account_assignment_deletion_status(
                    InstanceArn=instance, AccountAssignmentDeletionRequestId=request_id
                )["AccountAssignmentDeletionStatus"],
                "sso:DescribeAccountAssignmentDeletionStatus",
                account,
            )
        except AwsError as exc:
            if exc.gone or (exc.code == "RequestFailed" and not self.assigned(arn, account, user_id)):
                return True
            raise
        return True

    def of_principal(self, principal_type: str, principal_id: str) -> set[tuple[str, str]]:
        """(permission set ARN, account) of every assignment of a user or group (ListAccountAssignmentsForPrincipal).

        AWS answers this only in the organization's management account or a delegated administrator
        (IAM Identity Center API Reference, "ListAccountAssignmentsForPrincipal").
        """
        with aws_call("sso:ListAccountAssignmentsForPrincipal"):
            pages = self._sso.get_paginator("list_account_assignments_for_principal").paginate(
                InstanceArn=self._center.instance().arn, PrincipalId=principal_id, PrincipalType=principal_type
            )
            return {
                (str(a["PermissionSetArn"]), str(a["AccountId"])) for page in pages for a in page["AccountAssignments"]
            }

    def _creation_status(self, request_id: str) -> Any:
        return self._sso.describe_account_assignment_creation_status(
            InstanceArn=self._center.instance().arn, AccountAssignmentCreationRequestId=request_id
        )["AccountAssignmentCreationStatus"]


def held_other_ways(
    assignments: Assignments, store: Any, center: Center, user_id: str, *, direct: bool, skip_group: str | None = None
) -> set[tuple[str, str]]:
    """(set ARN, account) the user holds through their groups (but `skip_group`), and directly when `direct`."""
    held = assignments.of_principal("USER", user_id) if direct else set()
    with aws_call("identitystore:ListGroupMembershipsForMember"):
        pages = store.get_paginator("list_group_memberships_for_member").paginate(
            IdentityStoreId=center.instance().identity_store_id, MemberId={"UserId": user_id}
        )
        groups = {str(m["GroupId"]) for page in pages for m in page["GroupMemberships"]}
    for group in sorted(groups - {skip_group} if skip_group else groups):
        held |= assignments.of_principal("GROUP", group)
    return held


def _assignment(instance: str, arn: str, account: str, principal_type: str, principal_id: str) -> dict[str, str]:
    return {
        "InstanceArn": instance,
        "TargetId": account,
        "TargetType": "AWS_ACCOUNT",
        "PermissionSetArn": arn,
        "PrincipalType": principal_type,
        "PrincipalId": principal_id,
    }
