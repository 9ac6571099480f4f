"""Writing, provisioning and lifting the session deny in a permission set's inline policy.

Order matters: the deny is written and provisioned into the granted accounts *before* their assignments
are deleted, because provisioning into an account whose last assignment is gone fails. Provisioning is
asynchronous: ProvisionPermissionSet (TargetType AWS_ACCOUNT, one account per call, never
ALL_PROVISIONED_ACCOUNTS: other accounts are not the bot's to touch) answers a request ID whose status is
polled with DescribePermissionSetProvisioningStatus (IAM Identity Center API Reference,
"ProvisionPermissionSet", https://docs.aws.amazon.com/singlesignon/latest/APIReference/API_ProvisionPermissionSet.html
and "DescribePermissionSetProvisioningStatus").

Edits of one set's policy serialise on a lock named after the set, across threads and (on PostgreSQL,
an advisory lock) across replicas, so that two people's ends merge instead of overwriting each other.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from bot.aws.errors import AwsError, aws_call, retried
from bot.aws.granters.sso import deny as policy
from bot.aws.granters.sso.deny import Deny
from bot.aws.granters.sso.polling import Polling, attempt, await_status, each_of
from bot.aws.identity_center import Center

Lock = Callable[[str], AbstractContextManager[Any]]
DENIED = frozenset({"AccessDenied", "AccessDeniedException"})
_local: dict[str, threading.Lock] = {}
_guard = threading.Lock()


def local_lock(key: str) -> AbstractContextManager[Any]:
    """A lock across this process's threads only (tests, the demo); the bot passes a database-wide one."""
    with _guard:
        return _local.setdefault(key, threading.Lock())


def lock_key(permission_set_arn: str) -> str:
    """The name of the lock every edit of one permission set's inline policy holds."""
    return f"sso-inline-policy:{permission_set_arn}"


@dataclass
class Provisioned:
    """What writing a deny achieved: the accounts where it is in force, those that failed, and what to tell."""

    accounts: list[str] = field(default_factory=list)
    failures: list[AwsError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    written: bool = True  # False: the quota left no room, nothing was written


class SessionDenies:
    """The bot's statements in permission sets' inline policies, and their provisioning."""

    def __init__(self, sso_admin: Any, center: Center, *, lock: Lock = local_lock, polling: Polling) -> None:
        self._sso = sso_admin
        self._center = center
        self._lock = lock
        self._polling = polling

    def current(self, arn: str) -> str:
        """The permission set's inline policy as AWS holds it ('' when it has none)."""
        with aws_call("sso:GetInlinePolicyForPermissionSet"):
            answer = self._sso.get_inline_policy_for_permission_set(
                InstanceArn=self._center.instance().arn, PermissionSetArn=arn
            )
        return str(answer.get("InlinePolicy") or "")

    def existing(self, arn: str, sid: str) -> dict[str, Any] | None:
        """The bot's statement with this Sid in the set's inline policy, or None."""
        return next((s for s in policy.ours(self.current(arn)) if s.get("Sid") == sid), None)

    def deny(self, arn: str, name: str, deny: Deny, provision: Sequence[str]) -> Provisioned:
        """Merge `deny` into the set's inline policy and provision it into `provision`; the end comes first.

        An administrator's edit not yet provisioned in those accounts goes out with it (provisioning pushes
        the set's latest version): the deny still goes, and a warning says what else went out.
        """
        with self._lock(lock_key(arn)):
            # Read before the bot's own write, which would make every account look behind.
            stale = sorted(set(self._not_latest(arn)) & set(provision))
            try:
                before = self.current(arn)
                after = policy.with_deny(before, deny)
                if policy.size(after) > policy.INLINE_QUOTA:
                    return Provisioned(written=False, warnings=[quota_warning(name, policy.size(after))])
                if after != before:
                    self._write(arn, after)
            except AwsError as exc:
                if exc.code not in DENIED:
                    raise
                # Retrying cannot help until someone changes the bot's rights, and the access must still end.
                return Provisioned(written=False, warnings=[rights_warning(name, exc)])
            outcome = Provisioned()
            if stale:
                outcome.warnings.append(
                    f"the permission set {name} had changes not yet provisioned in {', '.join(stale)} (an "
                    "administrator's, or an earlier end's still owed); ending sessions provisioned them too "
                    "(check that the set's administrator meant them to go out)"
                )
            self._provision(arn, provision, outcome)
            return outcome

    def lift(self, arn: str, sids: Sequence[str]) -> None:
        """Remove the bot's statements of these Sids; provision the set again in their accounts where it is."""
        with self._lock(lock_key(arn)):
            before = self.current(arn)
            after = policy.without(before, sids)
            if after == before:
                return  # lifted before (or never written): nothing to provision
            covered = {a for s in policy.ours(before) if s.get("Sid") in set(sids) for a in policy.accounts_of(s)}
            self._write(arn, after)
            outcome = Provisioned()
            # Only the deny's own accounts: provisioning elsewhere would push changes that are not the bot's.
            self._provision(arn, sorted(covered & set(self.provisioned_in(arn))), outcome)
        if outcome.failures:
            raise outcome.failures[0]

    def narrow(self, arn: str, user_id: str, accounts: Sequence[str]) -> None:
        """Stop the user's earlier denies from covering `accounts` (a new grant there), provisioned where in force."""
        with self._lock(lock_key(arn)):
            before = self.current(arn)
            after = policy.narrowed(before, user_id, accounts)
            if after == before:
                return
            self._write(arn, after)
            outcome = Provisioned()
            # Where the set is not provisioned yet, the new assignment provisions its current version.
            self._provision(arn, sorted(set(self.provisioned_in(arn)) & set(accounts)), outcome)
        if outcome.failures:
            raise outcome.failures[0]

    def provisioned_in(self, arn: str, *, status: str | None = None) -> list[str]:
        """The accounts the set is provisioned in (ListAccountsForProvisionedPermissionSet), by status when given."""
        args: dict[str, Any] = {"InstanceArn": self._center.instance().arn, "PermissionSetArn": arn}
        if status:
            args["ProvisioningStatus"] = status
        with aws_call("sso:ListAccountsForProvisionedPermissionSet"):
            pages = self._sso.get_paginator("list_accounts_for_provisioned_permission_set").paginate(**args)
            return [str(a) for page in pages for a in page.get("AccountIds", [])]

    def _not_latest(self, arn: str) -> list[str]:
        # LATEST_PERMISSION_SET_NOT_PROVISIONED: the accounts where the set's latest version is not in force
        # (IAM Identity Center API Reference, "ListAccountsForProvisionedPermissionSet": ProvisioningStatus).
        return self.provisioned_in(arn, status="LATEST_PERMISSION_SET_NOT_PROVISIONED")

    def _write(self, arn: str, text: str) -> None:
        instance = self._center.instance().arn
        if not text:
            retried(
                "sso:DeleteInlinePolicyFromPermissionSet",
                lambda: self._sso.delete_inline_policy_from_permission_set(InstanceArn=instance, PermissionSetArn=arn),
            )
            return
        json.loads(text)  # never send AWS a document the bot itself cannot read
        # PutInlinePolicyToPermissionSet replaces the whole inline policy (IAM Identity Center API Reference,
        # "PutInlinePolicyToPermissionSet"): hence the read-merge-write under the set's lock.
        retried(
            "sso:PutInlinePolicyToPermissionSet",
            lambda: self._sso.put_inline_policy_to_permission_set(
                InstanceArn=instance, PermissionSetArn=arn, InlinePolicy=text
            ),
        )

    def _provision(self, arn: str, accounts: Sequence[str], outcome: Provisioned) -> None:
        results = each_of(
            self._polling, list(accounts), lambda account: attempt(lambda: self._provision_one(arn, account))
        )
        for account, result in zip(accounts, results, strict=True):
            if isinstance(result, AwsError):
                outcome.failures.append(result)
            else:
                outcome.accounts.append(account)

    def _provision_one(self, arn: str, account: str) -> str:
        instance = self._center.instance().arn
        answer = retried(
            "sso:ProvisionPermissionSet",
            lambda: self._sso.provision_permission_set(
                InstanceArn=instance, PermissionSetArn=arn, TargetId=account, TargetType="AWS_ACCOUNT"
            ),
        )
        await_status(
            self._polling,
            answer["PermissionSetProvisioningStatus"],
            lambda request_id: self._sso.describe_permission_set_provisioning_status(
                InstanceArn=instance, ProvisionPermissionSetRequestId=request_id
            )["PermissionSetProvisioningStatus"],
            "sso:DescribePermissionSetProvisioningStatus",
            account,
        )
        return account


def rights_warning(name: str, exc: AwsError) -> str:
    """What to tell when the bot may not read or write the set's inline policy."""
    return (
        f"the bot may not edit the inline policy of the permission set {name} ({exc}), so the person's open "
        "sessions survive up to the set's SessionDuration; fix: give the bot the IdentityCenterSessionDeny "
        "statements of docs/iam-policy.json for this set (check-config checks them)"
    )


def quota_warning(name: str, size: int) -> str:
    """What to tell when the deny does not fit in the set's inline policy."""
    return (
        f"the session deny does not fit in the inline policy of the permission set {name} ({size:,} of "
        f"{policy.INLINE_QUOTA:,} characters), so the person's open sessions survive up to the set's session "
        "duration; fix: shorten the set's inline policy (move statements to a customer managed policy) or lower "
        "its SessionDuration"
    )
