"""Which CloudTrail events are the person's use of a grant, per kind of access.

LookupEvents filters on one attribute only (CloudTrail API Reference, "LookupEvents": LookupAttributes,
"Currently the list can contain only one item"), so each kind names the one attribute that narrows the
history most, and a filter on the client keeps only what the grant's holder did. Who made a call is the
event's `userIdentity` element (CloudTrail User Guide, "CloudTrail userIdentity element",
https://docs.aws.amazon.com/awscloudtrail/latest/userguide/cloudtrail-event-reference-user-identity.html);
docs/activity.md says, field by field, what each kind relies on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Event = Mapping[str, Any]
USERNAME = "Username"
RESOURCE_NAME = "ResourceName"
ACCESS_KEY = "AccessKeyId"
# Identity Center's role in each account a permission set is provisioned to (IAM Identity Center User Guide,
# "Permission sets": "AWSReservedSSO_<permission set name>_<unique suffix>").
SSO_ROLE_PREFIX = "AWSReservedSSO_"


@dataclass(frozen=True)
class Grant:
    """What attribution needs of a request: its kind, its holder and what it granted."""

    kind: str
    user: str  # the IAM user's name, or the Identity Store user's UserName
    user_ref: str  # the IAM user's ARN, or the Identity Store UserId
    target: str
    target_arn: str | None


@dataclass(frozen=True)
class Plan:
    """One lookup attribute read in some accounts, the client-side filter, and what the report covers."""

    accounts: tuple[str, ...]
    key: str
    value: str
    keep: Callable[[Event], bool]
    coverage: str
    region: str | None = None  # only this Region holds the events (a KMS key's), else every configured one
    # iam_role: then read, in this account (the role's), the sessions whose access keys the kept AssumeRole returned
    follow_in: str | None = None


def plan(grant: Grant, home: str) -> Plan:
    """The lookup that finds the holder's use of the grant; `home` is the bot's own account."""
    if grant.kind in ("iam_group", "iam_policy"):
        return Plan(
            (home,),
            USERNAME,
            grant.user,
            lambda e: _identity(e).get("type") == "IAMUser" and _identity(e).get("userName") == grant.user,
            f"every call of IAM user {grant.user} during the grant (CloudTrail cannot tell which permission "
            "allowed a call: calls the user could make anyway are counted too)",
        )
    if grant.kind == "kms_key":
        arn = grant.target_arn or grant.target
        # Read in the bot's account, the holder's, even for a key elsewhere: a cross-account call on a key is
        # logged in both the caller's and the key owner's account, and one refused for access only in the
        # caller's (KMS Developer Guide, "Logging AWS KMS API calls with AWS CloudTrail").
        return Plan(
            (home,),
            RESOURCE_NAME,
            arn,
            lambda e: _identity(e).get("arn") == grant.user_ref or _identity(e).get("userName") == grant.user,
            f"calls of IAM user {grant.user} on key {arn}",
            region=_region_of(arn),
        )
    if grant.kind == "iam_role":
        # The person's AssumeRole is read in the bot's account, as the IAM user who called it: for a role in
        # another account AWS logs it in both, but there the caller is only `type: AWSAccount` (no user name
        # for the Username attribute to match), and a refused one only in the caller's account. The session's
        # own calls are in the role's account. (IAM User Guide, "Logging IAM and AWS STS API calls with AWS
        # CloudTrail": "Example cross-account AWS STS API events in CloudTrail log files".)
        return Plan(
            (home,),
            USERNAME,
            grant.user,
            lambda e: e.get("eventName") == "AssumeRole" and _param(e, "roleArn") == grant.target,
            f"sessions of {grant.target} that IAM user {grant.user} opened with AssumeRole, followed by the "
            "access keys AssumeRole returned and checked for source identity "
            f"{grant.user}; console sessions opened through the federation sign-in endpoint use other keys "
            "and role chains are not followed",
            follow_in=_account_of(grant.target) or home,
        )
    if grant.kind in ("sso_permission_set", "sso_group"):
        name, accounts = _permission_set(grant)
        prefix = f"{SSO_ROLE_PREFIX}{name}_" if name else SSO_ROLE_PREFIX
        what = f"permission set {name}" if name else "any permission set"
        return Plan(
            accounts or (home,),
            USERNAME,
            grant.user,
            lambda e: _sso_session_of(e, grant, prefix),
            f"Identity Center sessions of {what} ({prefix}… roles) opened by {grant.user}",
        )
    raise ValueError(f"no attribution for kind {grant.kind}")


def session_of(grant: Grant) -> Callable[[Event], bool]:
    """For a followed access key: the call carries the holder's source identity (AWS STS source identity,
    kept for every call of the session and through role chaining; IAM User Guide, "Monitor and control
    actions taken with assumed roles")."""
    return lambda e: (_identity(e).get("sessionContext") or {}).get("sourceIdentity") == grant.user


def returned_key(event: Event) -> str | None:
    """The access key ID an AssumeRole event's response gave (CloudTrail logs responseElements.credentials
    .accessKeyId, never the secret; IAM User Guide, "Logging IAM and AWS STS API calls with AWS CloudTrail")."""
    credentials = (event.get("responseElements") or {}).get("credentials") or {}
    key = credentials.get("accessKeyId")
    return str(key) if key else None


def _sso_session_of(event: Event, grant: Grant, prefix: str) -> bool:
    """An Identity Center session: an AssumedRole of the permission set's role whose session name is the user's
    UserName; where the event says on whose behalf (`onBehalfOf.userId`), that must be the user's UserId."""
    identity = _identity(event)
    issuer = (identity.get("sessionContext") or {}).get("sessionIssuer") or {}
    if identity.get("type") != "AssumedRole" or not str(issuer.get("userName", "")).startswith(prefix):
        return False
    behalf = identity.get("onBehalfOf") or {}
    if behalf.get("userId"):
        return bool(behalf["userId"] == grant.user_ref)
    return str(identity.get("arn", "")).rsplit("/", 1)[-1].lower() == grant.user.lower()


def _permission_set(grant: Grant) -> tuple[str | None, tuple[str, ...]]:
    if grant.kind != "sso_permission_set":
        return None, ()
    name, _, accounts = grant.target.rpartition(" in ")
    # A permission set named by ARN: its role's name carries the set's name, which the ARN does not.
    return (None if name.startswith("arn:") else name), tuple(a for a in accounts.split(",") if a)


def _identity(event: Event) -> Mapping[str, Any]:
    return event.get("userIdentity") or {}


def _param(event: Event, name: str) -> Any:
    return (event.get("requestParameters") or {}).get(name)


def _account_of(arn: str) -> str | None:
    parts = arn.split(":")
    return parts[4] if len(parts) > 5 and parts[4].isdigit() else None


def _region_of(arn: str) -> str | None:
    parts = arn.split(":")
    return parts[3] or None if len(parts) > 5 else None
