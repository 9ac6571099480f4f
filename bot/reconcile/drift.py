"""The comparison itself, pure: what the database holds against what AWS has, as a list of Drift.

Two kinds of drift:
- missing: an active grant that AWS does not have (removed behind the bot's back);
- orphan: access that is the bot's (an `accessbot-<id>` inline user policy or KMS grant, or a group
  membership the bot recorded adding) with no active grant behind it.
An object named like the bot's that none of its requests made is foreign: reported, never touched.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bot.aws.granters import PREFIX
from bot.aws.inventory import KeyGrant, UserPolicy, request_id_of
from bot.catalog import Catalog, KeyResource, Kind
from bot.reconcile.report import Drift, Problem
from bot.store.queries import Added

# KMS Developer Guide, "Grants in AWS KMS", "Eventual consistency": a revoke may take up to about five minutes
# to be seen throughout KMS, ListGrants included. A grant of a request that ended less than this long ago is
# not reported (it may be a revoked grant still listed); one still there after it is revoked by the scheduled
# check (see Reconciler.scheduled), twice the documented delay.
KMS_SETTLE = timedelta(minutes=10)

# Identity Center access, as reconcile names it: (kind, Identity Store UserId, target).
SsoKey = tuple[str, str, str]
SSO_THING = {Kind.SSO_PERMISSION_SET: "assignments", Kind.SSO_GROUP: "membership"}


@dataclass(frozen=True)
class Held:
    """How much of one Identity Center grant AWS has: all of it (every account), and any of it."""

    every: bool
    some: bool


@dataclass(frozen=True)
class Request:
    """A request row, as far as the comparison reads it."""

    id: int
    kind: str
    status: str
    resource: str
    iam_user: str
    iam_user_arn: str
    target: str
    target_arn: str | None
    expires_at: datetime | None
    approval_channel: str | None
    ended_at: datetime | None = None


@dataclass(frozen=True)
class Database:
    """What the database holds, read around the listing of AWS."""

    owed: tuple[Request, ...]  # access AWS must have: owed both before and after AWS was listed
    holders: Mapping[int, Request]  # requests for which the bot may hold access now (read after the listing)
    group_pairs: Mapping[tuple[str, str], int]  # (user, group) memberships the bot added last -> the request
    named: Mapping[int, Request]  # the requests that what AWS has names; an ID without a row is absent
    # Identity Center access the bot added last (per kind, user and target), read after the listing.
    sso_added: tuple[Added, ...] = ()
    # Requests whose KMS grant ended less than KMS_SETTLE ago: what ListGrants says of them may be stale.
    settling: frozenset[int] = frozenset()


@dataclass(frozen=True)
class Aws:
    """What AWS has, as listed."""

    members: Mapping[str, frozenset[str] | None]  # per group: its members, or None when there is no such group
    policies: tuple[UserPolicy, ...]  # inline user policies named accessbot-*
    key_arns: Mapping[str, str | None]  # per key ID, alias or ARN: the key's ARN, or None when there is none
    grants: tuple[KeyGrant, ...]  # KMS grants named accessbot-*
    # Identity Center: whether AWS has the access (every account's assignment, or the membership) now.
    sso_held: Mapping[SsoKey, Held] = field(default_factory=dict)


def compare(database: Database, aws: Aws, catalog: Catalog) -> list[Drift]:
    """Every difference: missing grants in the order owed, then orphans and foreign objects as AWS lists them."""
    return _missing(database.owed, aws, catalog) + _orphans(database, aws, catalog)


def _missing(owed: Iterable[Request], aws: Aws, catalog: Catalog) -> list[Drift]:
    policies = {(p.user, p.name) for p in aws.policies}
    grants = {(g.key_arn, g.name, g.grantee) for g in aws.grants}
    found: list[Drift] = []
    for row in owed:
        name = f"{PREFIX}{row.id}"
        kind, detail = Kind(row.kind), ""
        if kind.identity_center:
            name = SSO_THING[kind]
            held = aws.sso_held.get((row.kind, row.iam_user_arn, row.target))
            if held is not None and not held.every:
                detail = f"AWS no longer has the {name} of {row.target} for {row.iam_user}"
        elif kind is Kind.IAM_GROUP:
            members = aws.members.get(row.target)
            if members is None:
                detail = f"the group {row.target} does not exist"
            elif row.iam_user not in members:
                detail = f"{row.iam_user} is not a member of {row.target}"
            name = "membership"
        elif kind is Kind.IAM_ROLE:
            if (row.iam_user, name) not in policies:
                detail = f"the inline policy {name} of {row.iam_user} is gone"
        else:
            key = row.target_arn or aws.key_arns.get(row.target)
            if key is None:
                detail = f"the KMS key {row.target} does not exist"
            elif (key, name, row.iam_user_arn) not in grants:
                detail = f"the KMS grant {name} is gone"
        if detail:
            target = (
                (row.target_arn or aws.key_arns.get(row.target) or row.target) if kind is Kind.KMS_KEY else row.target
            )
            detail = f"{detail}; active until {_when(row.expires_at)}"
            found.append(
                Drift(Problem.MISSING, kind, row.iam_user, target, name, row.id, detail, _channel(row, catalog))
            )
    return found


def _orphans(database: Database, aws: Aws, catalog: Catalog) -> list[Drift]:
    found: list[Drift] = []

    def why(request_id: int) -> tuple[str, str | None]:
        row = database.named.get(request_id)
        if row is None:
            return f"no request #{request_id} in the database", None
        return f"request #{request_id} is {row.status.replace('_', ' ')}", _channel(row, catalog)

    for policy in aws.policies:
        request_id = request_id_of(policy.name)
        if request_id is None:
            continue
        row = database.named.get(request_id)
        if row is None or not _grants_policy(row, policy):
            found.append(_foreign(Kind.IAM_ROLE, policy.user, "-", policy.name, request_id, row))
        elif request_id not in database.holders:
            detail, channel = why(request_id)
            found.append(
                Drift(Problem.ORPHAN, Kind.IAM_ROLE, policy.user, "-", policy.name, request_id, detail, channel)
            )
    for grant in aws.grants:
        request_id = request_id_of(grant.name)
        if request_id is None:
            continue
        row = database.named.get(request_id)
        user = grant.grantee.rsplit("/", 1)[-1]
        if row is None or not _grants_key(row, grant, aws, catalog):
            found.append(_foreign(Kind.KMS_KEY, user, grant.key_arn, grant.name, request_id, row))
        elif request_id not in database.holders and request_id not in database.settling:
            detail, channel = why(request_id)
            lingering = row.ended_at is not None
            if lingering:
                detail = f"{detail} and ended at {_when(row.ended_at)}, but AWS still has its grant"
            found.append(
                Drift(Problem.ORPHAN, Kind.KMS_KEY, user, grant.key_arn, grant.name, request_id, detail, channel,
                      grant_id=grant.grant_id, lingering=lingering)
            )  # fmt: skip
    held = {(r.iam_user, r.target) for r in database.holders.values() if r.kind == Kind.IAM_GROUP}
    for (user, group), request_id in sorted(database.group_pairs.items()):
        if user in (aws.members.get(group) or ()) and (user, group) not in held:
            detail, channel = why(request_id)
            detail = f"added by accessbot, and {detail}"
            found.append(Drift(Problem.ORPHAN, Kind.IAM_GROUP, user, group, "membership", request_id, detail, channel))
    held_sso = {(r.kind, r.iam_user, r.target) for r in database.holders.values() if Kind(r.kind).identity_center}
    for added in database.sso_added:
        key = (added.kind, added.user, added.target)
        part = aws.sso_held.get((added.kind, added.user_id, added.target))
        if part is not None and part.some and key not in held_sso:
            detail, channel = why(added.request_id)
            kind = Kind(added.kind)
            found.append(
                Drift(Problem.ORPHAN, kind, added.user, added.target, SSO_THING[kind], added.request_id,
                      f"added by accessbot, and {detail}", channel, principal_id=added.user_id)
            )  # fmt: skip
    return found


def _foreign(kind: Kind, user: str, target: str, name: str, request_id: int, row: Request | None) -> Drift:
    detail = (
        f"request #{request_id} granted something else" if row is not None else f"no request #{request_id}"
    ) + ": not made by this bot, left alone"
    return Drift(Problem.FOREIGN, kind, user, target, name, request_id, detail)


def _grants_policy(row: Request, policy: UserPolicy) -> bool:
    """Whether the request wrote exactly this inline policy: its user, and the role it allows."""
    return row.kind == Kind.IAM_ROLE and row.iam_user == policy.user and row.target in policy.resources


def _grants_key(row: Request, grant: KeyGrant, aws: Aws, catalog: Catalog) -> bool:
    """Whether the request granted exactly this KMS grant: its grantee, key and operations."""
    item = catalog.resource(row.resource)
    operations = frozenset(item.operations) if isinstance(item, KeyResource) else grant.operations
    return (
        row.kind == Kind.KMS_KEY
        and row.iam_user_arn == grant.grantee
        and (row.target_arn or aws.key_arns.get(row.target)) == grant.key_arn
        and operations == grant.operations
    )


def _channel(row: Request, catalog: Catalog) -> str | None:
    return row.approval_channel or catalog.defaults.approval_channel


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%SZ") if moment else "?"
