"""The drift comparison on its own: two snapshots in, drift out (no database, no AWS)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.aws.inventory import KeyGrant, UserPolicy
from bot.catalog import Kind, parse_catalog
from bot.reconcile.drift import Aws, Database, Request, compare
from bot.reconcile.report import Problem
from tests.support.catalogs import BASIC

CATALOG = parse_catalog(BASIC)
ROLE = "arn:aws:iam::123456789012:role/prod-readonly"
KEY = "arn:aws:kms:us-east-1:123456789012:key/k1"
ALICE = "arn:aws:iam::123456789012:user/alice"
UNTIL = datetime(2030, 1, 1, tzinfo=UTC)


def request(id: int, kind: Kind, **overrides: Any) -> Request:
    target = {Kind.IAM_GROUP: "deploy-admins", Kind.IAM_ROLE: ROLE, Kind.KMS_KEY: "alias/payments"}[kind]
    resource = {Kind.IAM_GROUP: "deploy-admins", Kind.IAM_ROLE: "prod-readonly", Kind.KMS_KEY: "payments-key"}[kind]
    values: dict[str, Any] = {
        "id": id, "kind": kind.value, "status": "active", "resource": resource, "iam_user": "alice",
        "iam_user_arn": ALICE, "target": target, "target_arn": KEY if kind is Kind.KMS_KEY else None,
        "expires_at": UNTIL, "approval_channel": "C0APPROVALS",
    }  # fmt: skip
    values.update(overrides)
    return Request(**values)


def snapshot(owed: list[Request] = [], holders: list[Request] = [], named: list[Request] = [],  # noqa: B006
             pairs: dict[tuple[str, str], int] | None = None) -> Database:  # fmt: skip
    return Database(
        owed=tuple(owed),
        holders={r.id: r for r in holders},
        group_pairs=pairs or {},
        named={r.id: r for r in [*named, *holders, *owed]},
    )


def aws(members: frozenset[str] = frozenset(), policies: tuple[UserPolicy, ...] = (),
        grants: tuple[KeyGrant, ...] = ()) -> Aws:  # fmt: skip
    return Aws(members={"deploy-admins": members}, policies=policies, key_arns={"alias/payments": KEY}, grants=grants)


def grant(id: int, grantee: str = ALICE, operations: tuple[str, ...] = ("Decrypt", "GenerateDataKey")) -> KeyGrant:
    return KeyGrant(KEY, f"g{id}", f"accessbot-{id}", grantee, frozenset(operations))


GROUP, ROLE_GRANT, KEY_GRANT = request(1, Kind.IAM_GROUP), request(2, Kind.IAM_ROLE), request(3, Kind.KMS_KEY)
POLICY = UserPolicy("alice", "accessbot-2", frozenset({ROLE}))


@pytest.mark.parametrize(
    ("database", "found", "expected"),
    [
        pytest.param(
            snapshot(owed=[GROUP, ROLE_GRANT, KEY_GRANT], holders=[GROUP, ROLE_GRANT, KEY_GRANT]),
            aws(frozenset({"alice"}), (POLICY,), (grant(3),)),
            [],
            id="everything-in-place",
        ),
        pytest.param(
            snapshot(owed=[GROUP, ROLE_GRANT, KEY_GRANT], holders=[GROUP, ROLE_GRANT, KEY_GRANT]),
            aws(),
            [(Problem.MISSING, 1), (Problem.MISSING, 2), (Problem.MISSING, 3)],
            id="all-three-removed-behind-the-bots-back",
        ),
        pytest.param(
            snapshot(named=[request(2, Kind.IAM_ROLE, status="expired")]),
            aws(policies=(POLICY,)),
            [(Problem.ORPHAN, 2)],
            id="an-ended-grants-policy-is-an-orphan",
        ),
        pytest.param(
            snapshot(),
            aws(policies=(UserPolicy("alice", "accessbot-9", frozenset({ROLE})),)),
            [(Problem.FOREIGN, 9)],
            id="a-policy-no-request-made-is-foreign",
        ),
        pytest.param(
            snapshot(named=[request(2, Kind.IAM_ROLE, status="expired")]),
            aws(policies=(UserPolicy("alice", "accessbot-2", frozenset({"arn:aws:iam::1:role/other"})),)),
            [(Problem.FOREIGN, 2)],
            id="a-policy-for-another-role-is-foreign",
        ),
        pytest.param(
            snapshot(owed=[KEY_GRANT], holders=[KEY_GRANT]),
            aws(grants=(grant(3), grant(3, grantee="arn:aws:iam::123456789012:user/bob"))),
            [(Problem.FOREIGN, 3)],
            id="a-kms-grant-of-the-same-name-for-someone-else-is-foreign",
        ),
        pytest.param(
            snapshot(named=[request(3, Kind.KMS_KEY, status="revoked")]),
            aws(grants=(grant(3, operations=("Decrypt",)),)),
            [(Problem.FOREIGN, 3)],
            id="other-operations-are-not-the-bots-grant",
        ),
        pytest.param(
            snapshot(named=[request(1, Kind.IAM_GROUP, status="expired")], pairs={("alice", "deploy-admins"): 1}),
            aws(frozenset({"alice"})),
            [(Problem.ORPHAN, 1)],
            id="a-membership-the-bot-added-outlives-its-grant",
        ),
        pytest.param(
            snapshot(named=[request(1, Kind.IAM_GROUP, status="expired")], pairs={("alice", "deploy-admins"): 1}),
            aws(),
            [],
            id="and-once-removed-is-no-drift",
        ),
    ],
)
def test_compare(database: Database, found: Aws, expected: list[tuple[Problem, int]]) -> None:
    assert [(d.problem, d.request_id) for d in compare(database, found, CATALOG)] == expected


ENDED = datetime(2029, 12, 31, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("database", "lingering"),
    [
        pytest.param(
            replace(
                snapshot(named=[request(3, Kind.KMS_KEY, status="expired", ended_at=ENDED)]), settling=frozenset({3})
            ),
            None,
            id="a-kms-grant-ended-moments-ago-may-still-be-listed-so-is-not-reported",
        ),
        pytest.param(
            snapshot(named=[request(3, Kind.KMS_KEY, status="expired", ended_at=ENDED)]),
            True,
            id="one-still-there-after-the-settle-time-is-lingering",
        ),
        pytest.param(
            snapshot(named=[request(3, Kind.KMS_KEY, status="failed")]),
            False,
            id="one-of-a-request-the-bot-never-ended-is-an-orphan-for-people",
        ),
    ],
)
def test_kms_grants_after_their_end(database: Database, lingering: bool | None) -> None:
    found = compare(database, aws(grants=(grant(3),)), CATALOG)
    assert [(d.problem, d.lingering) for d in found] == ([] if lingering is None else [(Problem.ORPHAN, lingering)])
    if lingering:
        assert "ended at 2029-12-31 12:00:00Z, but AWS still has its grant" in found[0].detail
