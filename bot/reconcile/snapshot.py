"""Reading both sides for a comparison: the database (before and after), and what AWS has in between.

The database is read before and after AWS is listed, so work finishing meanwhile is not reported: a
grant counts as owed only when it was owed in both reads, and only the second read says who holds what.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Engine

from bot.aws import inventory
from bot.aws.errors import AwsError
from bot.aws.granters import Granter, GrantSpec
from bot.catalog import Catalog, GroupResource, KeyResource, Kind, split_permission_set_target
from bot.catalog.models import ACCOUNTS_SEPARATOR
from bot.domain.lifecycle import Status
from bot.reconcile.drift import KMS_SETTLE, Aws, Database, Held, Request, SsoKey
from bot.store import queries
from bot.store.db import session_scope
from bot.store.models import AccessRequest


def take(
    engine: Engine,
    catalog: Catalog,
    *,
    iam: Any,
    kms: Any,
    now: datetime,
    granters: Mapping[Kind, Granter] | None = None,
) -> tuple[Database, Aws]:
    """Read the database, list AWS, read the database again; return what each side holds."""
    with session_scope(engine) as session:
        before = {r.id: r for r in queries.holding(session=session)}
        groups = queries.granted_targets(Kind.IAM_GROUP.value, session=session)
        keys = queries.granted_targets(Kind.KMS_KEY.value, session=session)
        keys |= queries.granted_target_arns(Kind.KMS_KEY.value, session=session)
        sso = {(r.kind, r.iam_user, r.iam_user_arn, r.target, r.target_arn) for r in before.values()}
        sso |= {(a.kind, a.user, a.user_id, a.target, None) for a in queries.bot_sso_additions(session=session)}
    aws = list_aws(catalog, groups, keys, iam=iam, kms=kms)
    if granters is not None:
        aws = replace(aws, sso_held=sso_held(granters, sso))
    with session_scope(engine) as session:
        after = {r.id: r for r in queries.holding(session=session)}
        pairs = queries.bot_group_pairs(session=session)
        sso_added = tuple(queries.bot_sso_additions(session=session)) if granters is not None else ()
        named: dict[int, Request] = {}
        for request_id in sorted(_named_ids(aws, pairs) | {a.request_id for a in sso_added}):
            row = queries.get_request(request_id, session=session)
            if row is not None:
                named[request_id] = request_of(row)
    database = Database(
        owed=tuple(
            request_of(r) for r in after.values() if r.id in before and owed(before[r.id], now) and owed(r, now)
        ),
        holders={request.id: request for request in map(request_of, after.values())},
        group_pairs=pairs,
        named=named,
        sso_added=sso_added,
        settling=frozenset(
            r.id for r in named.values() if r.kind == Kind.KMS_KEY and r.ended_at and now - r.ended_at < KMS_SETTLE
        ),
    )
    return database, aws


def list_aws(catalog: Catalog, groups: set[str], keys: set[str], *, iam: Any, kms: Any) -> Aws:
    """The groups and keys the bot ever granted or the catalog names, and every policy and grant named like its own."""
    for item in catalog.resources.values():
        if isinstance(item, GroupResource):
            groups.add(item.group_name)
        elif isinstance(item, KeyResource):
            keys.add(item.key_id)
    members = {group: inventory.group_members(iam, group) for group in sorted(groups)}
    policies = inventory.bot_user_policies(iam, inventory.user_names(iam))
    key_arns = {key: inventory.key_arn(kms, key) for key in sorted(keys)}
    grants = [g for arn in sorted({a for a in key_arns.values() if a}) for g in inventory.bot_key_grants(kms, arn)]
    return Aws(members=members, policies=tuple(policies), key_arns=key_arns, grants=tuple(grants))


def owed(row: AccessRequest, now: datetime) -> bool:
    """Whether AWS must have this request's access now."""
    return (
        row.status == Status.ACTIVE
        and row.revoke_started_at is None
        and row.end_requested_at is None
        and row.expires_at is not None
        and row.expires_at > now
    )


def request_of(row: AccessRequest) -> Request:
    """The part of a request row the comparison reads."""
    assert row.id is not None
    return Request(
        id=row.id,
        kind=row.kind,
        status=row.status,
        resource=row.resource,
        iam_user=row.iam_user,
        iam_user_arn=row.iam_user_arn,
        target=row.target,
        target_arn=row.target_arn,
        expires_at=row.expires_at,
        approval_channel=row.approval_channel,
        ended_at=row.ended_at,
    )


def _named_ids(aws: Aws, pairs: dict[tuple[str, str], int]) -> set[int]:
    """The requests the comparison may ask about: those AWS objects are named after, and those behind a membership."""
    names = [p.name for p in aws.policies] + [g.name for g in aws.grants]
    found = {request_id for request_id in map(inventory.request_id_of, names) if request_id is not None}
    found |= {request_id for (user, group), request_id in pairs.items() if user in (aws.members.get(group) or ())}
    return found


def sso_held(granters: Mapping[Kind, Granter], found: set[tuple[str, str, str, str, str | None]]) -> dict[SsoKey, Held]:
    """For Identity Center access the bot may have added: how much of it AWS has now (a target that is gone: none).

    A permission set is asked about one account at a time: "every account" tells a missing grant, "any" an orphan.
    """
    held: dict[SsoKey, Held] = {}
    for kind, user, user_id, target, target_arn in sorted(found, key=lambda k: tuple(str(v) for v in k)):
        if not Kind(kind).identity_center or (kind, user_id, target) in held:
            continue
        parts = [target]
        if kind == Kind.SSO_PERMISSION_SET:
            name, accounts = split_permission_set_target(target)
            parts = [f"{name}{ACCOUNTS_SEPARATOR}{account}" for account in accounts]
        answers = []
        for part in parts:
            spec = GrantSpec(0, user, user_id, part, expires_at=datetime.min, target_arn=target_arn)
            try:
                answers.append(granters[Kind(kind)].holds(spec))
            except AwsError as exc:
                if not exc.gone:
                    raise
                answers.append(False)
        held[(kind, user_id, target)] = Held(every=all(answers), some=any(answers))
    return held
