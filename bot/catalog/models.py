"""The catalog's models: the kinds of access, per-resource settings, the whole catalog."""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from bot.catalog.identity import Identity, IdentityCenter, MemberAccount
from bot.catalog.oncall import OnCall
from bot.catalog.tickets import Ticket, check_pattern, check_ticket_url, find_ticket
from bot.durations import parse_duration

Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
ReasonPattern = Annotated[str, AfterValidator(check_pattern)]
TicketUrl = Annotated[str, Field(max_length=1000), AfterValidator(check_ticket_url)]
ChannelId = Annotated[str, Field(pattern=r"^[CG][A-Z0-9]{2,}$")]
ResourceName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")]
# An approver entry: an approver group name, a Slack user ID (U/W...) or a Slack user-group ID (S...).
ApproverRef = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
SLACK_ID = r"^[UWS][A-Z0-9]{2,}$"

KMS_OPERATIONS = frozenset(
    {
        "Decrypt",
        "Encrypt",
        "GenerateDataKey",
        "GenerateDataKeyWithoutPlaintext",
        "GenerateDataKeyPair",
        "GenerateDataKeyPairWithoutPlaintext",
        "ReEncryptFrom",
        "ReEncryptTo",
        "Sign",
        "Verify",
        "GenerateMac",
        "VerifyMac",
        "DescribeKey",
        "DeriveSharedSecret",
    }
)
# Grant administration: a grantee allowed these could make grants of its own (which outlive the request and
# that the bot never revokes) or retire and revoke grants. KMS Developer Guide, "Grants in AWS KMS", "Grant
# operations": CreateGrant, RetireGrant and RevokeGrant are the grant operations a grant can allow or not.
GRANT_ADMINISTRATION = frozenset({"CreateGrant", "RetireGrant", "RevokeGrant"})


class Kind(StrEnum):
    """The kinds of access accessbot grants: three on IAM users, two on IAM Identity Center users."""

    IAM_GROUP = "iam_group"
    IAM_ROLE = "iam_role"
    KMS_KEY = "kms_key"
    SSO_PERMISSION_SET = "sso_permission_set"
    SSO_GROUP = "sso_group"

    @property
    def identity_center(self) -> bool:
        """Whether the requester is an Identity Store user (not an IAM user)."""
        return self in (Kind.SSO_PERMISSION_SET, Kind.SSO_GROUP)


class AutoApprove(BaseModel):
    """`auto_approve: {max_duration: 30m}`: requests up to that long need no person; with `on_call`, only
    when the requester is on call right now (up to max_duration when set, else the resource's)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_duration: Duration | None = None
    on_call: OnCall | None = None

    @model_validator(mode="after")
    def _something(self) -> AutoApprove:
        if self.max_duration is None and self.on_call is None:
            raise ValueError("auto_approve: set max_duration or on_call")
        return self


class RateLimit(BaseModel):
    """`rate_limit: {requests: 10, per: 1h}`: at most that many requests per user in that window."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    requests: int = Field(ge=1, le=10000)
    per: Duration


class Settings(BaseModel):
    """Keys that may be set per resource or once under `defaults`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    approval_channel: ChannelId | None = None
    min_duration: Duration = timedelta(minutes=5)
    default_duration: Duration = timedelta(hours=1)
    max_duration: Duration = timedelta(hours=8)
    approvals_required: int = Field(default=1, ge=1, le=10)
    allow_self_approval: bool = False
    require_mfa: bool = False
    approvers: tuple[ApproverRef, ...] = ()
    pending_timeout: Duration = timedelta(hours=4)
    # How far ahead a scheduled start (`start=`) may be.
    max_start_ahead: Duration = timedelta(days=7)
    warn_before: Duration = timedelta(minutes=10)
    description: str = Field(default="", max_length=300)
    requesters: tuple[Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")], ...] = ()
    # Who may file on someone's behalf (`for=@someone`) besides the approvers: groups or Slack IDs.
    delegates: tuple[ApproverRef, ...] = ()
    max_extensions: int = Field(default=2, ge=0, le=20)
    auto_approve: bool | AutoApprove = False
    auto_approve_limit: int = Field(default=3, ge=0, le=1000)
    remind_after: Duration = timedelta(minutes=30)
    max_reminders: int = Field(default=3, ge=0, le=20)
    escalate_to: tuple[ApproverRef, ...] = ()
    escalate_after: Duration = timedelta(hours=1)
    break_glass: bool = False
    audit_channel: ChannelId | None = None
    rate_limit: RateLimit = RateLimit(requests=10, per=timedelta(hours=1))
    max_open_requests: int = Field(default=5, ge=1, le=1000)
    # A regex the reason must contain (a ticket reference), and a link to that ticket; null turns a default off.
    reason_pattern: ReasonPattern | None = None
    ticket_url: TicketUrl | None = None
    # Shown in the request form, the requester's confirmation and at the top of the approval message.
    warning: str | None = Field(default=None, min_length=1, max_length=300)
    # Who is mentioned in the approval message and reminders (default: the approvers); anyone of the
    # approvers may still approve.
    notify: tuple[ApproverRef, ...] = ()
    # In defaults: an auto-approved request posts no approval message (the audit channel still hears of it).
    quiet_auto_approvals: bool = False

    def ticket_in(self, reason: str) -> Ticket | None:
        """The ticket reference `reason` holds (linked where `ticket_url` is set), or None."""
        return find_ticket(self.reason_pattern, reason, self.ticket_url) if self.reason_pattern else None

    @property
    def auto_approve_max(self) -> timedelta | None:
        """The longest duration approved without a person, or None when nothing is."""
        if isinstance(self.auto_approve, AutoApprove):
            return self.auto_approve.max_duration or self.max_duration
        return self.max_duration if self.auto_approve else None

    @property
    def on_call(self) -> OnCall | None:
        """Where on-call is looked up, when auto-approval needs the requester on call; else None."""
        return self.auto_approve.on_call if isinstance(self.auto_approve, AutoApprove) else None


class ResourceBase(Settings):
    """The settings of one resource, defaults merged in, checked together; each kind adds its target."""

    @model_validator(mode="after")
    def _durations_in_order(self) -> ResourceBase:
        if not self.min_duration <= self.default_duration <= self.max_duration:
            raise ValueError("durations must satisfy min_duration <= default_duration <= max_duration")
        if self.approval_channel is None:
            raise ValueError("approval_channel: missing (set it on the resource or under defaults)")
        if not self.approvers:
            raise ValueError("approvers: missing (list approver groups or Slack IDs)")
        if self.ticket_url is not None and self.reason_pattern is None:
            raise ValueError("ticket_url: needs a reason_pattern, which finds the {ticket} in the reason")
        return self


class GroupResource(ResourceBase):
    """Membership of an IAM group."""

    kind: Literal[Kind.IAM_GROUP]
    group_name: str = Field(pattern=r"^[A-Za-z0-9_+=,.@-]{1,128}$")

    @property
    def target(self) -> str:
        """The AWS name this resource grants."""
        return self.group_name


class RoleResource(ResourceBase):
    """The right to assume an IAM role."""

    kind: Literal[Kind.IAM_ROLE]
    role_arn: str = Field(pattern=r"^arn:aws[a-z-]*:iam::\d{12}:role/[A-Za-z0-9_+=,.@/-]{1,512}$")

    @property
    def target(self) -> str:
        """The AWS name this resource grants."""
        return self.role_arn


class KeyResource(ResourceBase):
    """Use of a KMS key for named operations."""

    kind: Literal[Kind.KMS_KEY]
    key_id: str = Field(min_length=1, max_length=2048)
    operations: tuple[str, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _known_operations(self) -> KeyResource:
        administering = sorted(set(self.operations) & GRANT_ADMINISTRATION)
        if administering:
            raise ValueError(
                f"operations: {', '.join(administering)} would let the grantee make or remove grants of its own, "
                "which outlive the request; accessbot grants only the use of a key: remove them"
            )
        unknown = sorted(set(self.operations) - KMS_OPERATIONS)
        if unknown:
            raise ValueError(f"operations: unknown KMS operation(s) {', '.join(unknown)}")
        return self

    @property
    def target(self) -> str:
        """The AWS name this resource grants."""
        return self.key_id


AccountId = Annotated[str, Field(pattern=r"^\d{12}$")]
# A permission set's name (1-32 of [\w+=,.@-]) or its ARN.
PERMISSION_SET = r"^([\w+=,.@-]{1,32}|arn:aws[a-z-]*:sso:::[A-Za-z0-9/._-]{1,1200})$"
# Between a permission set and its accounts in a request's target: neither a name nor an ARN holds a space.
ACCOUNTS_SEPARATOR = " in "


class PermissionSetResource(ResourceBase):
    """An IAM Identity Center permission set in one or more AWS accounts."""

    kind: Literal[Kind.SSO_PERMISSION_SET]
    permission_set: str = Field(pattern=PERMISSION_SET)
    accounts: tuple[AccountId, ...] = Field(min_length=1, max_length=50)
    # At every end, a deny of the person's open sessions in the set's inline policy (false: they survive
    # up to the set's SessionDuration).
    end_sessions: bool = True

    @model_validator(mode="after")
    def _distinct_accounts(self) -> PermissionSetResource:
        if len(set(self.accounts)) != len(self.accounts):
            raise ValueError("accounts: an account is listed twice")
        return self

    @property
    def target(self) -> str:
        """The permission set and its accounts, as one string (`ProdAdmin in 111111111111,222222222222`).

        The accounts are part of the request's target so that its end removes exactly the assignments its
        grant made, even when the catalog has changed since.
        """
        return f"{self.permission_set}{ACCOUNTS_SEPARATOR}{','.join(self.accounts)}"


class SsoGroupResource(ResourceBase):
    """Membership of an IAM Identity Center (Identity Store) group."""

    kind: Literal[Kind.SSO_GROUP]
    group: str = Field(min_length=1, max_length=1024)
    # At every end, the same session deny on each permission set the group is assigned.
    end_sessions: bool = True

    @property
    def target(self) -> str:
        """The group's display name or ID."""
        return self.group


def split_permission_set_target(target: str) -> tuple[str, tuple[str, ...]]:
    """A permission-set request's target as (permission set name or ARN, account IDs)."""
    name, _, accounts = target.rpartition(ACCOUNTS_SEPARATOR)
    return name, tuple(a for a in accounts.split(",") if a)


AnyResource = GroupResource | RoleResource | KeyResource | PermissionSetResource | SsoGroupResource
Resource = Annotated[AnyResource, Field(discriminator="kind")]


class Catalog(BaseModel):
    """The whole catalog, with defaults already merged into every resource."""

    model_config = ConfigDict(frozen=True)

    defaults: Settings
    identity: Identity
    approver_groups: dict[ResourceName, tuple[Annotated[str, Field(pattern=SLACK_ID)], ...]]
    resources: dict[str, AnyResource]
    identity_center: IdentityCenter | None = None
    auditors: tuple[Annotated[str, Field(pattern=SLACK_ID)], ...] = ()  # may read any grant's activity report
    accounts: dict[AccountId, MemberAccount] = Field(default_factory=dict)

    def resource(self, name: str) -> AnyResource | None:
        """The resource of that name, or None."""
        return self.resources.get(name)

    def approvers_of(self, name: str, *, escalated: bool = False) -> frozenset[str]:
        """Slack user and user-group IDs that may approve the resource (with escalate_to once escalated)."""
        resource = self.resources[name]
        refs = resource.approvers + (resource.escalate_to if escalated else ())
        return self._flatten(refs)

    def ticket_of(self, name: str, reason: str) -> Ticket | None:
        """The ticket reference in a request's reason, as the resource's current settings find and link it."""
        resource = self.resources.get(name)
        return resource.ticket_in(reason) if resource is not None else None

    def notified_of(self, name: str, *, escalated: bool = False) -> frozenset[str]:
        """Slack user and user-group IDs mentioned in the approval message and reminders (`notify`, else the
        approvers), with escalate_to once escalated."""
        resource = self.resources[name]
        if not resource.notify:
            return self.approvers_of(name, escalated=escalated)
        return self._flatten(resource.notify + (resource.escalate_to if escalated else ()))

    def requesters_of(self, name: str) -> frozenset[str] | None:
        """Slack user and user-group IDs that may request the resource, or None for everyone."""
        refs = self.resources[name].requesters
        return self._flatten(refs) if refs else None

    def delegates_of(self, name: str) -> frozenset[str]:
        """Slack user and user-group IDs that may file the resource on someone's behalf, besides its approvers."""
        return self._flatten(self.resources[name].delegates)

    def _flatten(self, refs: tuple[str, ...]) -> frozenset[str]:
        found: set[str] = set()
        for ref in refs:
            found.update(self.approver_groups.get(ref, (ref,)))
        return frozenset(found)
