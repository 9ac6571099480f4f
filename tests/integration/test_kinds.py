"""iam_role and kms_key grants end to end, and the MFA rule, asserting what AWS (moto) actually holds."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tests.conftest import Bot
from tests.integration.flows import approve, catalog_with, dm_containing, file_request
from tests.support.aws import ACCOUNT, World
from tests.support.fake_slack import FakeSlack

ALICE_ARN = f"arn:aws:iam::{ACCOUNT}:user/alice"
MFA_ROLE = """
  prod-mfa:
    kind: iam_role
    role_arn: arn:aws:iam::123456789012:role/prod-readonly
    approvers: [platform]
    require_mfa: true
"""


def inline_policies(world: World, user: str) -> list[str]:
    return list(world.iam.list_user_policies(UserName=user)["PolicyNames"])


def grants_on(world: World) -> list[dict[str, object]]:
    return list(world.kms.list_grants(KeyId=world.key_arn)["Grants"])


def test_role_grant_is_a_time_limited_inline_policy_deleted_at_expiry(bot: Bot, slack: FakeSlack, world: World) -> None:
    request_id = file_request(bot, "U0ALICE", "request prod-readonly 3s reading prod logs")
    approve(bot, request_id)
    active = bot.wait_status(request_id, "active")

    assert active.expires_at is not None
    until = active.expires_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    name = f"accessbot-{request_id}"
    assert inline_policies(world, "alice") == [name]
    document = world.iam.get_user_policy(UserName="alice", PolicyName=name)["PolicyDocument"]
    assert document == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AccessbotAssumeRole",
                "Effect": "Allow",
                "Action": ["sts:AssumeRole", "sts:SetSourceIdentity"],
                "Resource": world.role_arn,
                "Condition": {
                    "DateLessThan": {"aws:CurrentTime": until},
                    "StringEquals": {"sts:SourceIdentity": "alice"},
                },
            }
        ],
    }
    assert active.grant_ref == name
    told = dm_containing(slack, "U0ALICE", "You now have *prod-readonly*")
    assert f"--role-arn {world.role_arn} --role-session-name alice --source-identity alice" in told

    bot.wait_status(request_id, "expired", timeout=8)
    assert inline_policies(world, "alice") == []
    with pytest.raises(ClientError) as gone:
        world.iam.get_user_policy(UserName="alice", PolicyName=name)
    assert gone.value.response["Error"]["Code"] == "NoSuchEntity"
    dm_containing(slack, "U0ALICE", "has ended (expired)")


def test_mfa_is_required_at_submission_and_written_into_the_policy(
    make_bot: Callable[..., Bot], catalog_file: Path, slack: FakeSlack, world: World
) -> None:
    catalog_file.write_text(catalog_with(MFA_ROLE))
    bot = make_bot()

    text = bot.ask("U0ALICE", "request prod-mfa 2s checking the payments DB")
    assert "prod-mfa requires MFA" in text and "'alice' has no MFA device" in text
    assert "Assign MFA device" in text and "then ask again" in text
    assert bot.count() == 0
    assert slack.find("chat.postMessage", lambda c: c.args.get("channel") == "C0APPROVALS") == []

    serial = world.iam.create_virtual_mfa_device(VirtualMFADeviceName="alice-phone")["VirtualMFADevice"]["SerialNumber"]
    world.iam.enable_mfa_device(
        UserName="alice", SerialNumber=serial, AuthenticationCode1="123456", AuthenticationCode2="654321"
    )
    request_id = file_request(bot, "U0ALICE", "request prod-mfa 2s checking the payments DB")
    approve(bot, request_id)
    active = bot.wait_status(request_id, "active")

    assert active.expires_at is not None
    statement = world.iam.get_user_policy(UserName="alice", PolicyName=f"accessbot-{request_id}")["PolicyDocument"][
        "Statement"
    ][0]
    assert statement["Action"] == ["sts:AssumeRole", "sts:SetSourceIdentity"]
    assert statement["Resource"] == world.role_arn
    assert statement["Condition"] == {
        "DateLessThan": {"aws:CurrentTime": active.expires_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")},
        "StringEquals": {"sts:SourceIdentity": "alice"},
        "Bool": {"aws:MultiFactorAuthPresent": "true"},
    }
    bot.wait_status(request_id, "expired", timeout=8)
    assert inline_policies(world, "alice") == []


def test_kms_grant_has_exactly_the_catalog_operations_and_is_revoked_at_expiry(
    bot: Bot, slack: FakeSlack, world: World
) -> None:
    request_id = file_request(bot, "U0ALICE", "request payments-key 3s re-encrypting the backlog")
    approve(bot, request_id, "U0DAVE")
    assert bot.status(request_id) == "pending"  # two approvals are required
    approve(bot, request_id, "U0ERIN")
    active = bot.wait_status(request_id, "active")

    grants = grants_on(world)
    assert len(grants) == 1
    grant = grants[0]
    assert grant["Name"] == f"accessbot-{request_id}"
    assert grant["GranteePrincipal"] == ALICE_ARN
    assert sorted(grant["Operations"]) == ["Decrypt", "GenerateDataKey"]  # type: ignore[call-overload]
    assert active.grant_ref == grant["GrantId"]
    dm_containing(slack, "U0ALICE", "You now have *payments-key*")

    bot.wait_status(request_id, "expired", timeout=8)
    assert grants_on(world) == []


@pytest.mark.parametrize("form", ["key ID", "key ARN", "alias ARN"])
def test_the_key_is_resolved_from_an_id_an_arn_or_an_alias(
    form: str, make_bot: Callable[..., Bot], catalog_file: Path, world: World
) -> None:
    key_id = {
        "key ID": world.key_id,
        "key ARN": world.key_arn,
        "alias ARN": f"arn:aws:kms:us-east-1:{ACCOUNT}:alias/payments",
    }[form]
    catalog_file.write_text(
        catalog_with(f"""
  other-key:
    kind: kms_key
    key_id: {key_id}
    operations: [Encrypt]
    approvers: [platform]
""")
    )
    bot = make_bot()
    request_id = file_request(bot, "U0ALICE", "request other-key 2s encrypting a report")
    approve(bot, request_id)
    active = bot.wait_status(request_id, "active")

    grants = grants_on(world)
    assert [(g["Name"], g["GranteePrincipal"], g["Operations"]) for g in grants] == [
        (f"accessbot-{request_id}", ALICE_ARN, ["Encrypt"])
    ]
    assert active.grant_ref == grants[0]["GrantId"]
    bot.wait_status(request_id, "expired", timeout=8)
    assert grants_on(world) == []
