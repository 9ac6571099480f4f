"""Roles and KMS keys in other accounts, reached through the role the bot assumes there (catalog `accounts`)."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from parliament import analyze_policy_string

from bot.aws.clients import AwsClients
from bot.aws.errors import AwsError
from bot.aws.granters import GrantSpec, RoleGranter
from bot.aws.granters.role_denies import INLINE_NAME
from bot.catalog import Kind, MemberAccount
from bot.cli import main
from bot.wiring import build_granters, in_accounts
from tests.integration.faults import error_response
from tests.integration.flows import catalog_with
from tests.support import iam_policy
from tests.support.aws import ACCOUNT, World
from tests.support.member import (
    DOCS,
    ELSEWHERE,
    EXTERNAL_ID,
    MEMBER,
    MEMBER_ROLE,
    TRUST_HOME,
    accounts_yaml,
    seed_member,
)

ALICE_ARN = f"arn:aws:iam::{ACCOUNT}:user/alice"
LISTED = {MEMBER: MemberAccount(role_arn=MEMBER_ROLE, external_id=EXTERNAL_ID)}


def spec(target: str, request_id: int = 7, **kw: object) -> GrantSpec:
    expires = datetime.now(UTC) + timedelta(hours=1)
    return GrantSpec(request_id, "alice", ALICE_ARN, target, expires, **kw)  # type: ignore[arg-type]


def assumes() -> int:
    return iam_policy.CALLS.count("sts:AssumeRole")


def test_a_role_in_a_listed_account_is_granted_here_and_its_sessions_denied_there(world: World) -> None:
    member = seed_member()
    aws = in_accounts(AwsClients.create(), LISTED)
    roles = build_granters(aws)[Kind.IAM_ROLE]
    grant = spec(member.role_arn)

    roles.locate(grant)
    roles.grant(grant)
    # The person stays the IAM user of the bot's account: the allow is on alice, here.
    document = world.iam.get_user_policy(UserName="alice", PolicyName=grant.name)["PolicyDocument"]
    assert document["Statement"][0]["Resource"] == member.role_arn

    ended = roles.revoke(grant, grant.name)

    assert world.iam.list_user_policies(UserName="alice")["PolicyNames"] == []
    deny = member.iam.get_role_policy(RoleName="deploy", PolicyName=INLINE_NAME)["PolicyDocument"]
    assert deny["Statement"][0]["Effect"] == "Deny"
    assert deny["Statement"][0]["Condition"]["StringEquals"] == {"aws:SourceIdentity": "alice"}
    assert ended.lift_at is not None and ended.cutoff is not None and ended.note == ""
    # Kept as at home: 12 hours after its cutoff (console sessions), whatever the member role's maximum.
    assert ended.lift_at - ended.cutoff == timedelta(hours=12)
    with pytest.raises(ClientError):
        world.iam.get_role_policy(RoleName="deploy", PolicyName=INLINE_NAME)  # nothing of it in the bot's account

    roles.lift(replace(grant, denied_before=ended.cutoff))
    assert member.iam.list_role_policies(RoleName="deploy")["PolicyNames"] == []


def test_a_missing_role_in_a_listed_account_is_refused_before_anything_is_granted(world: World) -> None:
    seed_member()
    roles = build_granters(in_accounts(AwsClients.create(), LISTED))[Kind.IAM_ROLE]

    with pytest.raises(AwsError, match=f"arn:aws:iam::{MEMBER}:role/ghost does not exist"):
        roles.locate(spec(f"arn:aws:iam::{MEMBER}:role/ghost"))
    with pytest.raises(AwsError, match="does not exist"):
        roles.grant(spec(f"arn:aws:iam::{MEMBER}:role/ghost"))
    assert world.iam.list_user_policies(UserName="alice")["PolicyNames"] == []


def test_a_role_in_an_unlisted_account_keeps_todays_behaviour(world: World) -> None:
    other = seed_member(ELSEWHERE)
    roles = build_granters(in_accounts(AwsClients.create(), LISTED))[Kind.IAM_ROLE]
    grant = spec(other.role_arn)
    before = assumes()

    roles.locate(spec(f"arn:aws:iam::{ELSEWHERE}:role/ghost"))  # cannot be seen from here: not refused
    roles.grant(grant)
    ended = roles.revoke(grant, grant.name)
    roles.lift(grant)

    assert ended.lift_at is None
    assert ended.note == f"the role is in account {ELSEWHERE}: its open sessions end on their own"
    assert other.iam.list_role_policies(RoleName="deploy")["PolicyNames"] == []
    assert world.iam.list_user_policies(UserName="alice")["PolicyNames"] == []
    assert assumes() == before  # no role was assumed anywhere


def test_a_key_in_a_listed_account_is_granted_and_revoked_there(world: World) -> None:
    member = seed_member()
    keys = build_granters(in_accounts(AwsClients.create(), LISTED))[Kind.KMS_KEY]
    grant = spec(member.key_arn, operations=("Decrypt",))

    located = keys.locate(grant)
    assert located == member.key_arn
    grant_id = keys.grant(replace(grant, target_arn=located))

    held = member.kms.list_grants(KeyId=member.key_arn)["Grants"]
    assert [(g["GrantId"], g["GranteePrincipal"], g["Operations"]) for g in held] == [
        (grant_id, ALICE_ARN, ["Decrypt"])
    ]
    keys.revoke(replace(grant, target_arn=located), grant_id)
    assert member.kms.list_grants(KeyId=member.key_arn)["Grants"] == []
    # The bot's own KMS still holds its own keys, untouched.
    assert world.kms.list_grants(KeyId=world.key_arn)["Grants"] == []


def test_credentials_are_assumed_once_and_refreshed_before_they_expire(world: World) -> None:
    member = seed_member()
    now = [datetime.now(UTC)]
    aws = in_accounts(AwsClients.create(), LISTED, clock=lambda: now[0])
    roles = RoleGranter(aws.iam, iam_in=aws.members.iam_in if aws.members else None)
    before = assumes()

    for request_id in (1, 2, 3):
        roles.locate(spec(member.role_arn, request_id))
    assert assumes() == before + 1  # one AssumeRole, cached for every later call

    # 50 minutes on, the hour-long credentials are within botocore's refresh window (15 minutes before expiry):
    # the next call assumes the role again, once.
    now[0] += timedelta(minutes=50)
    roles.locate(spec(member.role_arn, 4))
    assert assumes() == before + 2
    # moto dates the new credentials from the real time, an hour after it: back at the real time they are fresh.
    now[0] = datetime.now(UTC)
    roles.locate(spec(member.role_arn, 5))
    roles.locate(spec(member.role_arn, 6))
    assert assumes() == before + 2


def test_the_member_role_is_assumed_with_its_external_id(world: World) -> None:
    seed_member()
    aws = in_accounts(AwsClients.create(), LISTED)
    seen: list[dict[str, object]] = []
    aws.sts.meta.events.register("provide-client-params.sts.AssumeRole", lambda params, **_: seen.append(params))

    assert aws.members is not None
    account, arn = aws.members.caller(MEMBER)

    assert account == MEMBER and arn == f"arn:aws:sts::{MEMBER}:assumed-role/accessbot-member/accessbot"
    assert [(p["RoleArn"], p["ExternalId"]) for p in seen] == [(MEMBER_ROLE, EXTERNAL_ID)]


def check_config_lines(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], catalog: Path, text: str
) -> tuple[int, list[str]]:
    catalog.write_text(text)
    monkeypatch.setenv("ACCESSBOT_CATALOG", str(catalog))
    code = main(["check-config"])
    return code, capsys.readouterr().out.splitlines()


MEMBER_RESOURCES = f"""
  member-deploy:
    kind: iam_role
    role_arn: arn:aws:iam::{MEMBER}:role/deploy
    approvers: [platform]
  member-ghost:
    kind: iam_role
    role_arn: arn:aws:iam::{MEMBER}:role/ghost
    approvers: [platform]
  elsewhere-deploy:
    kind: iam_role
    role_arn: arn:aws:iam::{ELSEWHERE}:role/deploy
    approvers: [platform]
"""


def test_check_config_looks_in_a_listed_account_and_says_what_an_unlisted_one_misses(
    world: World, catalog_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    member = seed_member()
    seed_member(ELSEWHERE)
    text = (
        catalog_with(
            MEMBER_RESOURCES
            + f"""
  member-key:
    kind: kms_key
    key_id: {member.key_arn}
    operations: [Decrypt]
    approvers: [platform]
"""
        )
        + accounts_yaml()
    )

    code, lines = check_config_lines(monkeypatch, capsys, catalog_file, text)

    assert code == 1
    assert lines[0] == (
        f"ok   accounts.{MEMBER}: the bot assumes {MEMBER_ROLE}: "
        f"acting as arn:aws:sts::{MEMBER}:assumed-role/accessbot-member/accessbot"
    )
    assert lines[1].startswith(f"skip accounts.{ELSEWHERE}: not listed: elsewhere-deploy is in account {ELSEWHERE}")
    assert "a role's sessions open at the end of a grant are not ended" in lines[1]
    assert f"ok   member-deploy: iam_role arn:aws:iam::{MEMBER}:role/deploy" in lines
    assert f"FAIL member-ghost: iam_role arn:aws:iam::{MEMBER}:role/ghost: the IAM role " \
        f"arn:aws:iam::{MEMBER}:role/ghost does not exist" in lines  # fmt: skip
    assert f"ok   member-key: kms_key {member.key_arn}" in lines
    elsewhere = next(line for line in lines if line.startswith("skip elsewhere-deploy:"))
    assert f"{ELSEWHERE} is not under `accounts`" in elsewhere
    assert lines[-1].endswith(f"2 problem(s) in AWS account {ACCOUNT}")  # member-ghost, ghost-group


def test_check_config_fails_a_member_role_whose_trust_lets_others_in_or_that_trusts_the_wrong_account(
    world: World, catalog_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    member = seed_member()
    loose = {**TRUST_HOME, "Statement": [{**TRUST_HOME["Statement"][0], "Principal": {"AWS": "*"}}]}
    member.iam.update_assume_role_policy(RoleName="accessbot-member", PolicyDocument=json.dumps(loose))
    # A role there that trusts only its own account: people of the bot's account could never assume it.
    own = {**TRUST_HOME, "Statement": [{**TRUST_HOME["Statement"][0], "Principal": {"AWS": MEMBER}}]}
    member.iam.update_assume_role_policy(RoleName="deploy", PolicyDocument=json.dumps(own))
    text = catalog_with(MEMBER_RESOURCES.split("  member-ghost:")[0]) + accounts_yaml()

    code, lines = check_config_lines(monkeypatch, capsys, catalog_file, text)

    assert code == 1
    assert lines[0] == (
        f"FAIL accounts.{MEMBER}: the bot assumes {MEMBER_ROLE}: its trust policy also lets * assume it; "
        f"only the bot's account {ACCOUNT} should"
    )
    deploy = next(line for line in lines if line.startswith("FAIL member-deploy:"))
    assert f"does not let principals of account {ACCOUNT} assume it" in deploy


def test_the_iam_policy_command_prints_the_documents(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["iam-policy"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads((DOCS / "iam-policy.json").read_text())
    assert main(["iam-policy", "--member"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "policy": json.loads((DOCS / "iam-policy-member.json").read_text()),
        "trust": json.loads((DOCS / "iam-trust-member.json").read_text()),
    }


def test_the_bots_policy_lets_it_assume_only_member_roles_and_the_member_policy_passes_the_linter() -> None:
    document = json.loads((DOCS / "iam-policy.json").read_text())
    assume = [s for s in document["Statement"] if "sts:AssumeRole" in s["Action"]]
    assert [s["Resource"] for s in assume] == ["arn:aws:iam::*:role/accessbot-member"]
    findings = analyze_policy_string((DOCS / "iam-policy-member.json").read_text()).findings
    assert [(f.issue, f.detail) for f in findings] == []


def test_an_end_whose_role_cannot_be_assumed_fails_whole_and_succeeds_when_tried_again(world: World) -> None:
    member = seed_member()
    grant = spec(member.role_arn)
    build_granters(in_accounts(AwsClients.create(), LISTED))[Kind.IAM_ROLE].grant(grant)
    # Another process ends it (the one that granted has credentials there already): its AssumeRole is refused.
    aws = in_accounts(AwsClients.create(), LISTED)
    roles = build_granters(aws)[Kind.IAM_ROLE]

    def refuse(request: Any, **_: Any) -> Any:
        return error_response("sts", request.url, code="AccessDenied", status=403, message="not trusted")

    aws.sts.meta.events.register("before-send.sts.AssumeRole", refuse)
    with pytest.raises(AwsError, match=f"sts:AssumeRole into account {MEMBER}: not trusted") as refused:
        roles.revoke(grant, grant.name)
    assert refused.value.code == "AccessDenied"
    assert member.iam.list_role_policies(RoleName="deploy")["PolicyNames"] == []  # nothing written there yet

    aws.sts.meta.events.unregister("before-send.sts.AssumeRole", refuse)
    ended = roles.revoke(grant, grant.name)  # the owed end, tried again
    assert ended.lift_at is not None
    assert member.iam.list_role_policies(RoleName="deploy")["PolicyNames"] == [INLINE_NAME]


def test_every_call_made_in_the_member_account_is_allowed_by_the_member_policy(world: World) -> None:
    member = seed_member()
    there: list[str] = []

    def create(session: Any) -> AwsClients:
        session.events.register("before-call.*.*", lambda model, **_: there.append(
            f"{model.service_model.endpoint_prefix}:{model.name}"))  # fmt: skip
        return AwsClients.create(session)

    aws = in_accounts(AwsClients.create(), LISTED, create=create)
    granters = build_granters(aws)
    role, key = spec(member.role_arn, 21), spec(member.key_arn, 22, operations=("Decrypt",))
    granters[Kind.IAM_ROLE].locate(role)
    granters[Kind.IAM_ROLE].grant(role)
    granters[Kind.IAM_ROLE].revoke(role, role.name)
    granters[Kind.IAM_ROLE].lift(role)
    key = replace(key, target_arn=granters[Kind.KMS_KEY].locate(key))
    granters[Kind.KMS_KEY].revoke(key, granters[Kind.KMS_KEY].grant(key))
    assert aws.members is not None
    aws.members.caller(MEMBER)

    assert {"iam:GetRole", "iam:PutRolePolicy", "iam:DeleteRolePolicy", "kms:CreateGrant", "kms:RevokeGrant",
            "sts:GetCallerIdentity"} <= set(there)  # fmt: skip
    assert iam_policy.not_allowed(set(there), DOCS / "iam-policy-member.json") == []
    assert "iam:PutUserPolicy" not in there  # the person's allow is written in the bot's own account


def test_a_key_named_by_an_alias_arn_in_a_listed_account_is_found_there(world: World) -> None:
    member = seed_member()
    member.kms.create_alias(AliasName="alias/member-payments", TargetKeyId=member.key_arn)
    aws = in_accounts(AwsClients.create(), LISTED)
    alias_arn = f"arn:aws:kms:us-east-1:{MEMBER}:alias/member-payments"

    assert build_granters(aws)[Kind.KMS_KEY].locate(spec(alias_arn, operations=("Decrypt",))) == member.key_arn
    # Without the entry, the bot's own KMS is asked (moto, unlike AWS with a key policy trusting the bot's
    # account, does not share keys across accounts): the key is not found.
    with pytest.raises(AwsError, match="does not exist"):
        build_granters(AwsClients.create())[Kind.KMS_KEY].locate(spec(alias_arn, operations=("Decrypt",)))


def test_threads_starting_together_share_one_assume_role(world: World) -> None:
    member = seed_member()
    aws = in_accounts(AwsClients.create(), LISTED)
    roles = build_granters(aws)[Kind.IAM_ROLE]
    before = assumes()
    start = threading.Barrier(8)
    failures: list[BaseException] = []

    def locate(request_id: int) -> None:
        start.wait()
        try:
            roles.locate(spec(member.role_arn, request_id))
        except BaseException as exc:  # reported below: a thread's exception would otherwise vanish
            failures.append(exc)

    threads = [threading.Thread(target=locate, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert failures == []
    assert assumes() == before + 1
