"""The workflow's vocabulary: who acts, what it needs from Slack (its ports), its timings, and shared keys."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from enum import StrEnum
from typing import Any, Protocol

from sqlmodel import Session

from bot.aws.granters import GrantSpec
from bot.catalog import Catalog, KeyResource, Kind
from bot.store.models import AccessRequest

log = logging.getLogger("bot.workflow")

SYSTEM = "accessbot"
# Kinds whose AWS state several requests of one user can share: a group membership, a role's sessions,
# an account assignment of a permission set.
SHARED_STATE = frozenset({Kind.IAM_GROUP, Kind.IAM_ROLE, Kind.SSO_PERMISSION_SET, Kind.SSO_GROUP})
# Actors who act through the operator CLI, not Slack: `cli:<login>`.
OPERATOR_PREFIX = "cli:"


class Alert(StrEnum):
    """Owed AWS work that keeps failing."""

    REVOKE_FAILING = "revoke_failing"
    LIFT_FAILING = "lift_failing"
    # A role has no room for one more session deny: said at the first refusal, with the figures and the fix.
    DENY_CAPACITY = "deny_capacity"


class Notifier(Protocol):
    """Tells people what happened; failing to tell never undoes what happened.

    Every post is owed durably: written to the database (in `session`'s transaction when given, so that the
    change and the news of it commit together) and sent after the commit, retried until Slack takes it.
    """

    def request_filed(self, request: AccessRequest, *, session: Session | None = None) -> None:
        """Post the approval message (drawn when sent; where it landed is stored on the request)."""
        ...

    def request_changed(self, request: AccessRequest, *, session: Session | None = None) -> None:
        """Update the approval message in place (drawn when sent; nothing when it was never posted)."""
        ...

    def tell_requester(
        self, request: AccessRequest, event: str, note: str | None = None, *, session: Session | None = None
    ) -> None:
        """DM the requester about a step in their request's life (with an operator's note, if any)."""
        ...

    def revoked_early(self, request: AccessRequest, *, session: Session | None = None) -> None:
        """Say under the approval message who ended the grant early."""
        ...

    def remind(
        self, request: AccessRequest, approvers: Sequence[str], *, escalated: bool, session: Session | None = None
    ) -> None:
        """Remind the approvers (or, escalated, the escalation contacts too) that a request waits."""
        ...

    def nag_acknowledgement(self, request: AccessRequest, *, session: Session | None = None) -> None:
        """Say under the approval message that a break-glass use is still not acknowledged."""
        ...

    def alert(
        self,
        request: AccessRequest,
        alert: Alert,
        *,
        attempts: int,
        error: str,
        audit_channel: str | None,
        session: Session | None = None,
    ) -> None:
        """Raise an alert about a request in its approval channel (and its audit channel, if any)."""
        ...

    def audit_post(
        self,
        channel: str,
        request: AccessRequest,
        event: str,
        note: str | None = None,
        *,
        session: Session | None = None,
    ) -> None:
        """Post one line about a grant, end, denial, break-glass or alert to an audit channel."""
        ...


class Directory(Protocol):
    """Slack's view of people: user-group members and time zones."""

    def expand(self, ids: frozenset[str]) -> frozenset[str]:
        """User IDs, with user-group IDs replaced by their members."""
        ...

    def tz_of(self, user: str) -> tzinfo:
        """The user's time zone in Slack (UTC when Slack does not say)."""
        ...


@dataclass(frozen=True)
class Tuning:
    """Timings the tests and benchmarks may shorten."""

    lease: timedelta = timedelta(seconds=8)
    retry_base: timedelta = timedelta(seconds=5)
    batch: int = 20
    sweep_threads: int = 4
    alert_after: int = 3
    # How soon to look again at a row whose AWS work another thread or replica is doing right now.
    busy_retry: timedelta = timedelta(seconds=1)
    # The Slack outbox: a refused post is tried again after slack_retry_base, doubling up to the ceiling, and
    # given up (with an error logged and counted) once it is slack_give_up old; the pump looks for due posts
    # every slack_poll; a sender that died leaves its posts to others after slack_lease.
    slack_retry_base: timedelta = timedelta(seconds=2)
    slack_retry_ceiling: timedelta = timedelta(minutes=5)
    slack_give_up: timedelta = timedelta(hours=24)
    slack_poll: timedelta = timedelta(seconds=1)
    slack_lease: timedelta = timedelta(seconds=30)


def grant_spec(request: AccessRequest, catalog: Catalog, now: datetime) -> GrantSpec:
    """What a granter needs to apply or remove a request's access (`now` stands in for a missing expiry)."""
    item = catalog.resource(request.resource)
    assert request.id is not None
    return GrantSpec(
        request_id=request.id,
        iam_user=request.iam_user,
        iam_user_arn=request.iam_user_arn,
        target=request.target,
        expires_at=request.expires_at or now,
        require_mfa=bool(item and item.require_mfa),
        operations=item.operations if isinstance(item, KeyResource) else (),
        target_arn=request.target_arn,
        denied_before=request.sessions_denied_before,
    )


def _aws_times(row: AccessRequest) -> dict[str, Any]:
    """The row's AWS work, as the schedule reads it."""
    return {
        "approved_at": row.decided_at,
        "grant_started": row.grant_started_at is not None,
        "ended": row.ended_at is not None,
        "end_owed_since": row.end_requested_at or row.revoke_started_at,
        "extension_approved_at": row.extension_approved_at,
        "lift_at": row.sessions_denied_until,
        "retry_at": row.retry_at,
        "starts_at": row.starts_at,
    }


def access_lock_key(kind: str, iam_user: str, target: str) -> str:
    """The name of the lock that serialises every change to one user's access to one target."""
    return f"{kind}:{iam_user}:{target}"
