"""Membership of an IAM group."""

from __future__ import annotations

from typing import Any

from bot.aws.errors import AwsError, aws_call
from bot.aws.granters.base import Ended, GrantSpec


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
