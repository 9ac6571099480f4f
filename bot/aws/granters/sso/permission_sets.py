"""Permission sets by name or ARN, and how long their sessions last."""

from __future__ import annotations

import re
import threading
from datetime import timedelta
from typing import Any

from bot.aws.errors import AwsError, aws_call
from bot.aws.identity_center import Center

# A permission set's SessionDuration is an ISO-8601 duration, PT1H by default and at most PT12H
# (IAM Identity Center API Reference, "PermissionSet": SessionDuration).
_DURATION = re.compile(r"^PT(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?$")
LONGEST_SESSION = timedelta(hours=12)


def session_duration(value: object) -> timedelta:
    """A SessionDuration as a timedelta; 12 hours (AWS's maximum) when unreadable, so a deny never lifts early."""
    match = _DURATION.match(str(value or "PT1H"))
    if not match or not any(match.groups()):
        return LONGEST_SESSION
    hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return timedelta(hours=hours, minutes=minutes, seconds=seconds)


class PermissionSets:
    """Resolves a catalog's permission set (name or ARN) to its ARN, remembered (an ARN never changes)."""

    def __init__(self, sso_admin: Any, center: Center) -> None:
        self._sso = sso_admin
        self._center = center
        self._arns: dict[str, str] = {}
        self._lock = threading.Lock()

    def arn(self, name_or_arn: str) -> str:
        """The ARN of a permission set named in the catalog; an AwsError when it does not exist."""
        with self._lock:
            if name_or_arn in self._arns:
                return self._arns[name_or_arn]
        instance = self._center.instance().arn
        if name_or_arn.startswith("arn:"):
            self.describe(name_or_arn, name=name_or_arn)
            found = name_or_arn
        else:
            found = self._by_name(instance, name_or_arn)
        with self._lock:
            self._arns[name_or_arn] = found
        return found

    def describe(self, arn: str, *, name: str | None = None) -> dict[str, Any]:
        """DescribePermissionSet's PermissionSet; an AwsError naming the set when it does not exist."""
        try:
            with aws_call("sso:DescribePermissionSet"):
                described = self._sso.describe_permission_set(
                    InstanceArn=self._center.instance().arn, PermissionSetArn=arn
                )
        except AwsError as exc:
            if exc.gone:
                raise no_such(name or arn, exc) from exc
            raise
        return dict(described["PermissionSet"])

    def session_length(self, arn: str) -> timedelta:
        """How long a session of the permission set may last (its SessionDuration)."""
        return session_duration(self.describe(arn).get("SessionDuration"))

    def _by_name(self, instance: str, name: str) -> str:
        with aws_call("sso:ListPermissionSets"):
            pages = self._sso.get_paginator("list_permission_sets").paginate(InstanceArn=instance)
            arns = [str(arn) for page in pages for arn in page["PermissionSets"]]
        for arn in arns:
            found = str(self.describe(arn)["Name"])
            with self._lock:
                self._arns[found] = arn
            if found == name:
                return arn
        raise no_such(name, None)

    def every(self) -> list[str]:
        """The ARN of every permission set of the instance."""
        with aws_call("sso:ListPermissionSets"):
            pages = self._sso.get_paginator("list_permission_sets").paginate(InstanceArn=self._center.instance().arn)
            return [str(arn) for page in pages for arn in page["PermissionSets"]]


def no_such(name: str, exc: AwsError | None) -> AwsError:
    """The error for a permission set that does not exist."""
    return AwsError(
        f"the permission set '{name}' does not exist in IAM Identity Center, so nothing was granted "
        "(an admin must create it or fix the catalog)",
        operation=exc.operation if exc else "sso:ListPermissionSets",
        code=exc.code if exc else "ResourceNotFoundException",
    )
