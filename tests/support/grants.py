"""Active grants put straight into the database and AWS (no Slack round trip), for tests at scale and benchmarks.

The AWS side is real: a group membership, an `accessbot-<id>` inline role policy or a KMS grant is
created through boto3 for every row, so that revoking has something to remove.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, update
from sqlalchemy.engine import Engine

from bot.aws.granters import GrantSpec, role_policy
from bot.catalog import Kind
from bot.clock import utcnow
from bot.store.db import session_scope
from bot.store.models import AccessRequest

ROLE_ARN = "arn:aws:iam::123456789012:role/prod-readonly"
OPERATIONS = ("Decrypt", "GenerateDataKey")
# (resource, kind, target) of tests/support/catalogs.py BASIC.
RESOURCES = {
    Kind.IAM_GROUP: ("deploy-admins", "deploy-admins"),
    Kind.IAM_ROLE: ("prod-readonly", ROLE_ARN),
    Kind.KMS_KEY: ("payments-key", "alias/payments"),
}


@dataclass(frozen=True)
class Planned:
    """One grant to put in place: who gets what."""

    kind: Kind
    user: str
    user_arn: str


def create_users(iam: Any, names: Sequence[str]) -> dict[str, str]:
    """Create IAM users; return name -> ARN."""
    return {name: str(iam.create_user(UserName=name)["User"]["Arn"]) for name in names}


def grant_directly(
    engine: Engine,
    iam: Any,
    kms: Any,
    plans: Sequence[Planned],
    expiry: Callable[[int], datetime],
    *,
    due: bool = True,
) -> list[int]:
    """Insert active rows, apply each grant in AWS, then set expires_at = expiry(i) (and next_due_at).

    Rows become due only after AWS has every grant, so a running scheduler never revokes before granting.
    """
    now = utcnow()
    placeholder = now + timedelta(days=1)
    with session_scope(engine) as session:
        rows = [_row(plan, now, placeholder) for plan in plans]
        session.add_all(rows)
        session.flush()
        ids = [int(row.id or 0) for row in rows]
    key_arn = str(kms.describe_key(KeyId="alias/payments")["KeyMetadata"]["Arn"])
    refs: list[str | None] = []
    for request_id, plan in zip(ids, plans, strict=True):
        refs.append(_apply(iam, kms, key_arn, request_id, plan, placeholder))
    values = [
        {
            "rid": request_id,
            "ref": ref,
            "exp": expiry(i),
            "due": expiry(i) if due else None,
        }
        for i, (request_id, ref) in enumerate(zip(ids, refs, strict=True))
    ]
    stmt = (
        update(AccessRequest)
        .where(AccessRequest.id == bindparam("rid"))  # type: ignore[arg-type]
        .values(grant_ref=bindparam("ref"), expires_at=bindparam("exp"), next_due_at=bindparam("due"))
    )
    with engine.begin() as connection:
        connection.execute(stmt, values)
    return ids


def _row(plan: Planned, now: datetime, expires_at: datetime) -> AccessRequest:
    resource, target = RESOURCES[plan.kind]
    return AccessRequest(
        requester_id="U0LOAD",
        resource=resource,
        kind=plan.kind.value,
        target=target,
        iam_user=plan.user,
        iam_user_arn=plan.user_arn,
        duration_seconds=3600,
        reason="load",
        status="active",
        approval_channel="C0APPROVALS",
        created_at=now,
        updated_at=now,
        decided_by="U0BOB",
        decided_at=now,
        grant_started_at=now,
        activated_at=now,
        expires_at=expires_at,
        warned_at=now,  # no expiry warning: the rows only need revoking
        next_due_at=None,
    )


def _apply(iam: Any, kms: Any, key_arn: str, request_id: int, plan: Planned, expires_at: datetime) -> str | None:
    spec = GrantSpec(request_id, plan.user, plan.user_arn, RESOURCES[plan.kind][1], expires_at, operations=OPERATIONS)
    if plan.kind is Kind.IAM_GROUP:
        iam.add_user_to_group(GroupName=spec.target, UserName=plan.user)
        return None
    if plan.kind is Kind.IAM_ROLE:
        iam.put_user_policy(UserName=plan.user, PolicyName=spec.name, PolicyDocument=json.dumps(role_policy(spec)))
        return spec.name
    answer = kms.create_grant(
        KeyId=key_arn, GranteePrincipal=plan.user_arn, Operations=list(OPERATIONS), Name=spec.name
    )
    return str(answer["GrantId"])


def bot_policies(iam: Any, users: Sequence[str]) -> list[tuple[str, str]]:
    """(user, policy name) of every accessbot-* inline policy on the users."""
    return [
        (user, name)
        for user in users
        for name in iam.list_user_policies(UserName=user)["PolicyNames"]
        if name.startswith("accessbot-")
    ]


def bot_key_grants(kms: Any) -> list[str]:
    """Names of every accessbot-* grant on the payments key."""
    key_arn = kms.describe_key(KeyId="alias/payments")["KeyMetadata"]["Arn"]
    pages = kms.get_paginator("list_grants").paginate(KeyId=key_arn)
    return [g["Name"] for page in pages for g in page["Grants"] if str(g.get("Name", "")).startswith("accessbot-")]
