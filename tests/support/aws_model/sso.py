"""IAM Identity Center as AWS runs it, in front of moto: asynchronous statuses and per-account provisioning.

moto creates an account assignment at once, answers ProvisionPermissionSet with SUCCEEDED whatever the
target, has no DescribePermissionSetProvisioningStatus, and ignores ListAccountsForProvisionedPermissionSet's
ProvisioningStatus. AWS does otherwise, per the IAM Identity Center API Reference
(https://docs.aws.amazon.com/singlesignon/latest/APIReference/):

- "CreateAccountAssignment": asynchronous; "call DescribeAccountAssignmentCreationStatus to describe the
  status" (IN_PROGRESS, then SUCCEEDED or FAILED). Here a creation stays IN_PROGRESS for `creation_polls`
  looks, or until `release()` while `hold_creations` is set: it can finish after the bot's poll gave up.
- "ProvisionPermissionSet": provisions the set's *current* version into one account (TargetType
  AWS_ACCOUNT) and answers a request ID for "DescribePermissionSetProvisioningStatus". Here it is
  IN_PROGRESS for `provision_polls` looks, then FAILED in an account named in `fail_provisioning`, or in an
  account where the set has no assignment (the set is not provisioned there), else SUCCEEDED; what went out
  is what is in force in that account (`in_force`).
- "ListAccountsForProvisionedPermissionSet": with ProvisioningStatus LATEST_PERMISSION_SET_NOT_PROVISIONED
  the accounts whose provisioned version is older than the set's current inline policy.
- "DeleteAccountAssignment": ResourceNotFoundException for an assignment that does not exist (the API's
  documented error); the account's last assignment of a set takes the set out of that account.

Every other request goes on to moto through the chaos proxy (so its rules still apply to them). Point the
bot at it with AWS_ENDPOINT_URL_SSO_ADMIN, botocore's per-service endpoint variable for sso-admin.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import boto3

from tests.support.chaos_proxy import ChaosProxy, _Handler, identify

ENDPOINT_VARIABLE = "AWS_ENDPOINT_URL_SSO_ADMIN"
SIGNING_NAMES = ("sso", "sso-admin")  # sso-admin signs its requests as "sso"
Answer = tuple[int, dict[str, Any]]


@dataclass
class _Request:
    """One asynchronous request: what was asked, how many looks it still takes, how it ends."""

    params: dict[str, Any]
    polls_left: int
    status: str = "IN_PROGRESS"
    reason: str = ""
    snapshot: str = ""  # ProvisionPermissionSet: the inline policy it sends out
    created: float = field(default_factory=time.time)


class SsoModel(ChaosProxy):
    """A proxy to moto that answers sso-admin's asynchronous operations as AWS does."""

    def __init__(self, upstream: str, *, creation_polls: int = 1, provision_polls: int = 1) -> None:
        super().__init__(upstream)
        self.creation_polls = creation_polls
        self.provision_polls = provision_polls
        self.hold_creations = False
        self.fail_provisioning: dict[str, str] = {}  # account -> FailureReason
        self.fail_creation: dict[str, str] = {}  # account -> FailureReason
        self.events: list[tuple[str, str, str, str]] = []  # (what, permission set ARN, account, detail)
        self._moto = boto3.client("sso-admin", endpoint_url=upstream, region_name="us-east-1")
        self._creations: dict[str, _Request] = {}
        self._provisions: dict[str, _Request] = {}
        self._in_force: dict[tuple[str, str], str] = {}
        self._state = threading.RLock()

    # -- what tests read and steer ----------------------------------------------------------------

    def in_force(self, permission_set_arn: str, account: str) -> str | None:
        """The inline policy provisioned in the account (None: the set is not provisioned there)."""
        with self._state:
            return self._in_force.get((permission_set_arn, account))

    def release(self) -> int:
        """Finish every creation still in progress (as AWS may, after the bot stopped waiting); how many."""
        with self._state:
            waiting = [r for r in self._creations.values() if r.status == "IN_PROGRESS"]
            for request in waiting:
                self._finish_creation(request)
            return len(waiting)

    def in_progress(self) -> int:
        """How many creations are still in progress."""
        with self._state:
            return sum(1 for r in self._creations.values() if r.status == "IN_PROGRESS")

    # -- serving ---------------------------------------------------------------------------------

    def _serve(self, handler: _Handler, body: bytes) -> None:
        service, operation = identify(dict(handler.headers.items()), body, handler.path)
        handle: Callable[[dict[str, Any]], Answer | None] | None = (
            getattr(self, f"_op_{operation}", None) if service in SIGNING_NAMES else None
        )
        answer = handle(json.loads(body or b"{}")) if handle else None
        if answer is None:
            super()._serve(handler, body)
            return
        status, payload = answer
        self._record(service, operation, "model", status, time.monotonic())
        headers = [("Content-Type", "application/x-amz-json-1.1"), ("x-amzn-RequestId", str(uuid.uuid4()))]
        handler.send(status, headers, json.dumps(payload).encode())

    # -- account assignments ---------------------------------------------------------------------

    def _op_CreateAccountAssignment(self, params: dict[str, Any]) -> Answer:
        request_id = str(uuid.uuid4())
        with self._state:
            request = _Request(params, self.creation_polls)
            self._creations[request_id] = request
            if request.polls_left <= 0 and not self.hold_creations:
                self._finish_creation(request)
            return 200, {"AccountAssignmentCreationStatus": _status(request_id, request)}

    def _op_DescribeAccountAssignmentCreationStatus(self, params: dict[str, Any]) -> Answer | None:
        request_id = params["AccountAssignmentCreationRequestId"]
        with self._state:
            request = self._creations.get(request_id)
            if request is None:
                return None  # not one of ours: moto's answer
            if request.status == "IN_PROGRESS" and not self.hold_creations:
                request.polls_left -= 1
                if request.polls_left <= 0:
                    self._finish_creation(request)
            return 200, {"AccountAssignmentCreationStatus": _status(request_id, request)}

    def _finish_creation(self, request: _Request) -> None:
        params = request.params
        if params["TargetId"] in self.fail_creation:
            request.status, request.reason = "FAILED", self.fail_creation[params["TargetId"]]
            return
        self._moto.create_account_assignment(**params)
        key = (params["PermissionSetArn"], params["TargetId"])
        # The first assignment of a set in an account provisions the set's current version there.
        self._in_force.setdefault(key, self._inline(params["PermissionSetArn"], params["InstanceArn"]))
        request.status = "SUCCEEDED"
        self.events.append(("assigned", key[0], key[1], params["PrincipalId"]))

    def _op_DeleteAccountAssignment(self, params: dict[str, Any]) -> Answer:
        with self._state:
            if not self._assigned(params, principal=params["PrincipalId"]):
                return 400, {"__type": "ResourceNotFoundException", "message": "Account assignment not found"}
            self._moto.delete_account_assignment(**params)
            key = (params["PermissionSetArn"], params["TargetId"])
            self.events.append(("unassigned", key[0], key[1], params["PrincipalId"]))
            if not self._assigned(params):
                self._in_force.pop(key, None)  # the set's last assignment there: the set leaves the account
            status = {"Status": "SUCCEEDED", "RequestId": str(uuid.uuid4()), "TargetId": key[1]}
            return 200, {"AccountAssignmentDeletionStatus": status}

    # -- provisioning ----------------------------------------------------------------------------

    def _op_ProvisionPermissionSet(self, params: dict[str, Any]) -> Answer:
        if params.get("TargetType") != "AWS_ACCOUNT" or not params.get("TargetId"):
            # The bot must never provision into every account; the model refuses so that a test sees it.
            return 400, {"__type": "ValidationException", "message": "the model expects TargetType AWS_ACCOUNT"}
        request_id = str(uuid.uuid4())
        with self._state:
            snapshot = self._inline(params["PermissionSetArn"], params["InstanceArn"])
            request = _Request(params, self.provision_polls, snapshot=snapshot)
            self._provisions[request_id] = request
            if request.polls_left <= 0:
                self._finish_provisioning(request)
            return 200, {"PermissionSetProvisioningStatus": _provisioning(request_id, request)}

    def _op_DescribePermissionSetProvisioningStatus(self, params: dict[str, Any]) -> Answer:
        request_id = params["ProvisionPermissionSetRequestId"]
        with self._state:
            request = self._provisions.get(request_id)
            if request is None:
                return 400, {"__type": "ResourceNotFoundException", "message": "no such request"}
            if request.status == "IN_PROGRESS":
                request.polls_left -= 1
                if request.polls_left <= 0:
                    self._finish_provisioning(request)
            return 200, {"PermissionSetProvisioningStatus": _provisioning(request_id, request)}

    def _finish_provisioning(self, request: _Request) -> None:
        params = request.params
        arn, account = params["PermissionSetArn"], params["TargetId"]
        if account in self.fail_provisioning:
            request.status, request.reason = "FAILED", self.fail_provisioning[account]
        elif not self._assigned({**params, "TargetId": account}):
            request.status, request.reason = "FAILED", f"permission set is not assigned in account {account}"
        else:
            request.status = "SUCCEEDED"
            self._in_force[(arn, account)] = request.snapshot
            self.events.append(("provisioned", arn, account, request.snapshot))

    def _op_ListAccountsForProvisionedPermissionSet(self, params: dict[str, Any]) -> Answer:
        arn, wanted = params["PermissionSetArn"], params.get("ProvisioningStatus")
        with self._state:
            current = self._inline(arn, params["InstanceArn"])
            accounts = [
                account
                for (set_arn, account), sent in sorted(self._in_force.items())
                if set_arn == arn
                and (wanted is None or (wanted == "LATEST_PERMISSION_SET_PROVISIONED") == (sent == current))
            ]
        return 200, {"AccountIds": accounts}

    # -- moto's state ----------------------------------------------------------------------------

    def _inline(self, arn: str, instance: str) -> str:
        answer = self._moto.get_inline_policy_for_permission_set(InstanceArn=instance, PermissionSetArn=arn)
        return str(answer.get("InlinePolicy") or "")

    def _assigned(self, params: dict[str, Any], *, principal: str | None = None) -> bool:
        listed = self._moto.list_account_assignments(
            InstanceArn=params["InstanceArn"], AccountId=params["TargetId"], PermissionSetArn=params["PermissionSetArn"]
        )["AccountAssignments"]
        return any(principal is None or a["PrincipalId"] == principal for a in listed)


def _status(request_id: str, request: _Request) -> dict[str, Any]:
    params = request.params
    status = {
        "Status": request.status,
        "RequestId": request_id,
        "TargetId": params["TargetId"],
        "TargetType": "AWS_ACCOUNT",
        "PermissionSetArn": params["PermissionSetArn"],
        "PrincipalType": params["PrincipalType"],
        "PrincipalId": params["PrincipalId"],
        "CreatedDate": request.created,
    }
    if request.reason:
        status["FailureReason"] = request.reason
    return status


def _provisioning(request_id: str, request: _Request) -> dict[str, Any]:
    status = {
        "Status": request.status,
        "RequestId": request_id,
        "AccountId": request.params["TargetId"],
        "PermissionSetArn": request.params["PermissionSetArn"],
        "CreatedDate": request.created,
    }
    if request.reason:
        status["FailureReason"] = request.reason
    return status
