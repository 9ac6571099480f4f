"""Membership of an Identity Store group; at its end, the session deny on each permission set the group gives."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from bot.aws.errors import AwsError, aws_call, retried
from bot.aws.granters.base import Ended, GrantSpec
from bot.aws.granters.sso.assignments import Assignments, MemoryCreations, held_other_ways
from bot.aws.granters.sso.deny import Deny, sid_of
from bot.aws.granters.sso.permission_set import DEFAULT_MARGIN, _cutoff_of, cutoff_at
from bot.aws.granters.sso.permission_sets import PermissionSets
from bot.aws.granters.sso.polling import Polling
from bot.aws.granters.sso.sessions import Lock, SessionDenies, local_lock
from bot.aws.identity_center import Center
from bot.clock import utcnow

GROUP_ID = r"^([0-9a-f]{10}-)?[A-Fa-f0-9]{8}-[A-Fa-f0-9]{4}-[A-Fa-f0-9]{4}-[A-Fa-f0-9]{4}-[A-Fa-f0-9]{12}$"


class SsoGroupGranter:
    """Membership of an Identity Store group; the grant's reference is the MembershipId."""

    shared = True

    def __init__(
        self,
        identitystore: Any,
        center: Center,
        *,
        polling: Polling | None = None,
        margin: timedelta = DEFAULT_MARGIN,
        lock: Lock = local_lock,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._store = identitystore
        self._center = center
        self._margin = margin
        self._clock = clock
        polling = polling or Polling()
        self.sets = PermissionSets(center.sso_admin, center)
        self.assignments = Assignments(center.sso_admin, center, MemoryCreations(), polling)
        self.denies = SessionDenies(center.sso_admin, center, lock=lock, polling=polling)
        self._ids: dict[str, str] = {}  # display name -> GroupId
        self._lock = threading.Lock()

    def locate(self, spec: GrantSpec) -> str | None:
        """The group's ID, recorded so that the end finds the same group even if it is renamed."""
        return self.group_id(spec.target)

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

    def reach(self, group_id: str) -> dict[str, list[str]]:
        """Permission set ARN -> accounts, for every assignment of the group."""
        found: dict[str, list[str]] = {}
        for arn, account in sorted(self.assignments.of_principal("GROUP", group_id)):
            found.setdefault(arn, []).append(account)
        return found

    def revoke(self, spec: GrantSpec, grant_ref: str | None) -> Ended:
        """Deny the person's open sessions of every set the group gives, then remove them from the group.

        A set and account the person still holds another way (directly, or through another group) is left
        out. Any provisioning failure keeps the membership and the end owed: a membership cannot be removed
        for some accounts only.
        """
        try:
            membership = self._membership(spec)
        except AwsError as exc:
            if exc.gone:
                return Ended()  # the group itself is gone
            raise
        if membership is None:
            return Ended()
        lift_at, warnings = self._deny_sessions(spec) if spec.end_sessions else (None, [])
        store_id = self._center.instance().identity_store_id
        try:
            retried(
                "identitystore:DeleteGroupMembership",
                lambda: self._store.delete_group_membership(IdentityStoreId=store_id, MembershipId=membership),
            )
        except AwsError as exc:
            if not exc.gone:
                raise
        return Ended(lift_at=lift_at, note="; ".join(warnings), warning="; ".join(warnings))

    def _deny_sessions(self, spec: GrantSpec) -> tuple[datetime | None, list[str]]:
        group = spec.target_arn or self.group_id(spec.target)
        user, sid = spec.iam_user_arn, sid_of(spec.request_id)
        try:
            reach = self.reach(group)
            other = held_other_ways(self.assignments, self._store, self._center, user, direct=True, skip_group=group)
        except AwsError as exc:
            if exc.transient:
                raise
            # The end comes first: the membership still goes, and a person hears that sessions may survive.
            return None, [
                f"the bot could not list what the group {spec.target} gives ({exc}), so the person's open "
                "sessions of its permission sets survive up to their SessionDuration; fix: run the bot in the "
                "management account or a delegated administrator, with sso:ListAccountAssignmentsForPrincipal"
            ]
        cutoff = cutoff_at(self._clock(), self._margin)
        longest, warnings = timedelta(0), []
        for arn, accounts in reach.items():
            deny_in = tuple(a for a in accounts if (arn, a) not in other)
            if not deny_in:
                continue
            earlier = _cutoff_of(self.denies.existing(arn, sid))
            outcome = self.denies.deny(
                arn, self.sets.describe(arn).get("Name", arn), Deny(sid, user, deny_in, earlier or cutoff), deny_in
            )
            warnings += outcome.warnings
            if outcome.failures:
                first = outcome.failures[0]
                raise AwsError(str(first), operation=first.operation, code=first.code, transient=first.transient)
            longest = max(longest, self.sets.session_length(arn))
        return (cutoff + longest + self._margin if longest else None), warnings

    def restore(self, spec: GrantSpec, lift_at: datetime) -> bool:
        """Put back the deny on each set the group gives where it disappeared while owed; True when any was missing.

        The sets are those the group gives now (what it gave at the end is not kept), less those the person
        holds another way; the cutoff is worked back from the lift (cutoff + the longest SessionDuration + margin).
        """
        group = spec.target_arn or self.group_id(spec.target)
        user, sid = spec.iam_user_arn, sid_of(spec.request_id)
        reach = self.reach(group)
        other = held_other_ways(self.assignments, self._store, self._center, user, direct=True, skip_group=group)
        longest = max((self.sets.session_length(arn) for arn in reach), default=timedelta(0))
        cutoff, put_back = lift_at - longest - self._margin, False
        for arn, accounts in reach.items():
            deny_in = tuple(a for a in accounts if (arn, a) not in other)
            if not deny_in or self.denies.existing(arn, sid) is not None:
                continue
            provisioned = set(self.denies.provisioned_in(arn))
            name = str(self.sets.describe(arn).get("Name", arn))
            outcome = self.denies.deny(
                arn, name, Deny(sid, user, deny_in, cutoff), [a for a in deny_in if a in provisioned]
            )
            if outcome.failures:
                raise outcome.failures[0]
            put_back = True
        return put_back

    def lift(self, spec: GrantSpec) -> None:
        """Remove the request's session deny from every permission set that holds it."""
        sid = sid_of(spec.request_id)
        for arn in self.sets.every():
            if self.denies.existing(arn, sid) is not None:
                self.denies.lift(arn, [sid])
