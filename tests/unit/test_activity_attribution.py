"""Which events are the grant holder's, per kind: the client-side filters on AWS-shaped userIdentity elements."""

from __future__ import annotations

from typing import Any

import pytest

from bot.activity.attribution import Grant, plan, returned_key, session_of
from bot.testing.fake_cloudtrail import assumed_role, iam_user

HOME = "123456789012"
ALICE_ARN = f"arn:aws:iam::{HOME}:user/alice"
SSO = "AWSReservedSSO_ProdAdmin_0123456789abcdef"


def by(identity: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {"userIdentity": identity, **more}


@pytest.mark.parametrize(
    ("grant", "event", "kept"),
    [
        pytest.param(
            Grant("iam_group", "alice", ALICE_ARN, "g", None), by(iam_user("alice")), True, id="group: the user"
        ),
        pytest.param(
            Grant("iam_policy", "alice", ALICE_ARN, "p", None), by(iam_user("bob")), False, id="policy: other user"
        ),
        pytest.param(
            Grant("iam_group", "alice", ALICE_ARN, "g", None),
            by(assumed_role("any", "alice", "ASIA1")),
            False,
            id="group: a role session merely named alice",
        ),
        pytest.param(
            Grant("kms_key", "alice", ALICE_ARN, "alias/k", "arn:aws:kms:eu-west-1:123456789012:key/k"),
            by(iam_user("alice")),
            True,
            id="key: the user",
        ),
        pytest.param(
            Grant("sso_group", "alice@example.com", "u-alice", "oncall", None),
            by(assumed_role("AWSReservedSSO_ReadOnly_abc", "Alice@Example.com", "ASIA2")),
            True,
            id="sso group: any permission set, session name case-insensitive",
        ),
        pytest.param(
            Grant("sso_permission_set", "alice@example.com", "u-alice", f"ProdAdmin in {HOME}", None),
            by(assumed_role("NotSSO_ProdAdmin_abc", "alice@example.com", "ASIA3")),
            False,
            id="sso set: a look-alike role",
        ),
        pytest.param(
            Grant("sso_permission_set", "alice@example.com", "u-alice", f"ProdAdmin in {HOME}", None),
            by(assumed_role(SSO, "alice@example.com", "ASIA4", on_behalf_of={"userId": "u-mallory"})),
            False,
            id="sso set: onBehalfOf names someone else",
        ),
    ],
)
def test_what_each_kind_keeps(grant: Grant, event: dict[str, Any], kept: bool) -> None:
    assert plan(grant, HOME).keep(event) is kept


def test_a_kms_key_is_read_in_its_own_region_in_the_holders_account() -> None:
    # A key of another account too: its cross-account calls, refused ones included, are logged in the caller's.
    wanted = plan(Grant("kms_key", "alice", ALICE_ARN, "alias/k", "arn:aws:kms:eu-west-1:210987654321:key/k"), HOME)
    assert (wanted.region, wanted.accounts, wanted.key) == ("eu-west-1", (HOME,), "ResourceName")


def test_a_role_grant_follows_the_returned_key_and_requires_the_source_identity() -> None:
    grant = Grant("iam_role", "alice", ALICE_ARN, f"arn:aws:iam::{HOME}:role/r", None)
    wanted = plan(grant, HOME)
    assume = by(iam_user("alice"), eventName="AssumeRole", requestParameters={"roleArn": grant.target},
                responseElements={"credentials": {"accessKeyId": "ASIAKEY"}})  # fmt: skip
    assert wanted.follow_in == HOME and wanted.keep(assume) and returned_key(assume) == "ASIAKEY"
    assert session_of(grant)(by(assumed_role("r", "x", "ASIAKEY", source_identity="alice")))
    assert not session_of(grant)(by(assumed_role("r", "alice", "ASIAKEY")))  # no source identity: not hers


def test_a_role_in_another_account_is_assumed_here_and_its_sessions_read_there() -> None:
    wanted = plan(Grant("iam_role", "alice", ALICE_ARN, "arn:aws:iam::210987654321:role/r", None), HOME)
    assert (wanted.accounts, wanted.follow_in) == ((HOME,), "210987654321")
