"""What every granter shares: the names the bot gives, the spec of one grant, the Granter protocol, ARN helpers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

PREFIX = "accessbot-"


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
    # A role's session deny owed by this request: it covers sessions issued before this moment (None: none, or a
    # deny written before the cutoff was recorded).
    denied_before: datetime | None = None

    @property
    def name(self) -> str:
        """The name of everything the bot creates for this request."""
        return f"{PREFIX}{self.request_id}"


@dataclass(frozen=True)
class Ended:
    """What a revoke left behind: when a follow-up is owed (lifting a session deny), and a note for the audit."""

    lift_at: datetime | None = None
    note: str = ""
    # A role's session deny: the sessions it covers are those issued before this moment.
    cutoff: datetime | None = None


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
