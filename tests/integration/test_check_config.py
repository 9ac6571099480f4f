"""`accessbot check-config` against the moto server: one line per resource, non-zero on any problem."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote

import pytest

from bot.aws.checks import source_identity_problem
from bot.cli import check_config, main
from bot.config import load_settings
from tests.integration.flows import catalog_with
from tests.support.aws import ACCOUNT, World
from tests.support.catalogs import BASIC

ROOT = Path(__file__).resolve().parents[2]


def run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], catalog: Path) -> tuple[int, list[str]]:
    monkeypatch.setenv("ACCESSBOT_CATALOG", str(catalog))
    code = main(["check-config"])
    out, err = capsys.readouterr()
    # stderr also carries log lines once main() has set up logging.
    return code, out.splitlines() + [line for line in err.splitlines() if line.startswith("accessbot:")]


def without_ghost() -> str:
    return BASIC[: BASIC.index("  ghost-group:")]


def test_every_resource_is_checked_and_the_missing_group_fails(
    world: World, catalog_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, lines = run(monkeypatch, capsys, catalog_file)

    assert code == 1
    assert lines == [
        "ok   deploy-admins: iam_group deploy-admins",
        "ok   auditors: iam_group auditors",
        f"ok   prod-readonly: iam_role {world.role_arn}",
        "ok   payments-key: kms_key alias/payments",
        "FAIL ghost-group: iam_group does-not-exist: the IAM group 'does-not-exist' does not exist",
        "ok   identity.static.U0DAVE: IAM user dave",
        "ok   cloudtrail us-east-1: activity reports can read its event history",
        f"catalog {catalog_file}: 5 resource(s): 1 problem(s) in AWS account {ACCOUNT}",
    ]


def test_a_catalog_that_matches_aws_passes(
    world: World, catalog_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    catalog_file.write_text(without_ghost())
    code, lines = run(monkeypatch, capsys, catalog_file)
    assert code == 0
    assert all(line.startswith("ok   ") for line in lines[:-1]) and len(lines) == 7
    assert lines[-1] == f"catalog {catalog_file}: 4 resource(s), no problems in AWS account {ACCOUNT}"


PROBLEMS = """
  ghost-role:
    kind: iam_role
    role_arn: arn:aws:iam::123456789012:role/does-not-exist
    approvers: [platform]
  ec2-role:
    kind: iam_role
    role_arn: arn:aws:iam::123456789012:role/ec2-only
    approvers: [platform]
  pathed-role:
    kind: iam_role
    role_arn: arn:aws:iam::123456789012:role/team/pathed
    approvers: [platform]
  misplaced-role:
    kind: iam_role
    role_arn: arn:aws:iam::123456789012:role/elsewhere/prod-readonly
    approvers: [platform]
  denied-role:
    kind: iam_role
    role_arn: arn:aws:iam::123456789012:role/denied
    approvers: [platform]
  partner-role:
    kind: iam_role
    role_arn: arn:aws:iam::210987654321:role/partner
    approvers: [platform]
  ghost-key:
    kind: kms_key
    key_id: alias/does-not-exist
    operations: [Decrypt]
    approvers: [platform]
  off-key:
    kind: kms_key
    key_id: alias/off
    operations: [Decrypt]
    approvers: [platform]
  doomed-key:
    kind: kms_key
    key_id: alias/doomed
    operations: [Decrypt]
    approvers: [platform]
identity:
  static:
    U0DAVE: dave
    U0GHOST: ghost
"""


def trust(statement: Mapping[str, object]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def test_each_kind_of_problem_gets_its_own_line(
    world: World, catalog_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    service = {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}
    world.iam.create_role(RoleName="ec2-only", AssumeRolePolicyDocument=trust(service))
    assume = ["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"]
    account = {"Effect": "Allow", "Principal": {"AWS": ACCOUNT}, "Action": assume}
    world.iam.create_role(RoleName="pathed", Path="/team/", AssumeRolePolicyDocument=trust(account))
    deny = {"Effect": "Deny", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "sts:*"}
    world.iam.create_role(
        RoleName="denied",
        AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [account, deny]}),
    )
    for alias, breaks in [("alias/off", "disable"), ("alias/doomed", "delete")]:
        key = world.kms.create_key()["KeyMetadata"]["KeyId"]
        world.kms.create_alias(AliasName=alias, TargetKeyId=key)
        if breaks == "disable":
            world.kms.disable_key(KeyId=key)
        else:
            world.kms.schedule_key_deletion(KeyId=key, PendingWindowInDays=7)
    basic_identity = "identity:\n  strategy: email_tag\n  tag_key: email\n  static:\n    U0DAVE: dave\n"
    text = without_ghost().replace(basic_identity, "")
    resources, identity = PROBLEMS.split("identity:\n")
    catalog_file.write_text(text.rstrip() + "\n" + resources.strip("\n") + "\nidentity:\n" + identity)

    code, lines = run(monkeypatch, capsys, catalog_file)

    assert code == 1
    problems = [line for line in lines if not line.startswith(("ok   ", "WARN "))]
    role = f"arn:aws:iam::{ACCOUNT}:role"
    assert problems == [
        "skip accounts.210987654321: not listed: partner-role is in account 210987654321, which has no entry under "
        "`accounts`: they are granted from the bot's account as before, but a role's sessions open at the end of a "
        "grant are not ended and check-config cannot look there (list the account under `accounts` with the role "
        "the bot may assume in it)",
        f"FAIL ghost-role: iam_role {role}/does-not-exist: the IAM role {role}/does-not-exist does not exist",
        f"FAIL ec2-role: iam_role {role}/ec2-only: its trust policy does not let principals of account "
        f"{ACCOUNT} assume it (it trusts Service:ec2.amazonaws.com)",
        f"FAIL misplaced-role: iam_role {role}/elsewhere/prod-readonly: the IAM role {role}/elsewhere/prod-readonly "
        f"does not exist (a role of that name exists as {role}/prod-readonly)",
        f"FAIL denied-role: iam_role {role}/denied: its trust policy denies sts:AssumeRole to principals of "
        f"account {ACCOUNT}",
        "skip partner-role: iam_role arn:aws:iam::210987654321:role/partner: not checked: the role is in account "
        f"210987654321, the bot's credentials are for account {ACCOUNT}, and 210987654321 is not under "
        "`accounts`: sessions open at the end of a grant are not ended",
        "FAIL ghost-key: kms_key alias/does-not-exist: the KMS key alias/does-not-exist does not exist "
        "(an admin must create it or fix the catalog)",
        "FAIL off-key: kms_key alias/off: the KMS key alias/off is disabled, so no grant can be made",
        "FAIL doomed-key: kms_key alias/doomed: the KMS key alias/doomed is scheduled for deletion, "
        "so no grant can be made",
        "FAIL identity.static.U0GHOST: IAM user ghost: the IAM user 'ghost' does not exist",
        f"catalog {catalog_file}: 13 resource(s): 8 problem(s) in AWS account {ACCOUNT}",
    ]
    assert f"ok   pathed-role: iam_role {role}/team/pathed" in lines
    assert "ok   identity.static.U0DAVE: IAM user dave" in lines


def test_a_role_whose_trust_policy_does_not_allow_setting_the_source_identity_fails_with_the_fix(
    world: World, catalog_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}
    for name, action in [
        ("assume-only", "sts:AssumeRole"),
        ("all-of-sts", "sts:*"),
        ("everything", "*"),
        ("set-anything", ["sts:AssumeRole", "sts:Set*"]),
    ]:
        world.iam.create_role(
            RoleName=name, AssumeRolePolicyDocument=trust({"Effect": "Allow", "Principal": root, "Action": action})
        )
    # Only an Allow counts: a Deny naming the action does not let anyone set the source identity.
    statements = [
        {"Effect": "Allow", "Principal": root, "Action": "sts:AssumeRole"},
        {"Effect": "Deny", "Principal": root, "Action": "sts:SetSourceIdentity"},
    ]
    document = json.dumps({"Version": "2012-10-17", "Statement": statements})
    world.iam.create_role(RoleName="denies-only", AssumeRolePolicyDocument=document)
    roles = "".join(
        f"  {name}:\n    kind: iam_role\n    role_arn: arn:aws:iam::{ACCOUNT}:role/{name}\n    approvers: [platform]\n"
        for name in ("assume-only", "all-of-sts", "everything", "set-anything", "denies-only")
    )
    catalog_file.write_text(without_ghost().rstrip() + "\n" + roles)

    code, lines = run(monkeypatch, capsys, catalog_file)

    assert code == 1
    role = f"arn:aws:iam::{ACCOUNT}:role"
    fix = (
        "does not allow sts:SetSourceIdentity, so nobody can assume it with the source identity accessbot "
        'requires; add "sts:SetSourceIdentity" to the Action of the statement that allows sts:AssumeRole'
    )
    assert [line for line in lines if not line.startswith(("ok   ", "WARN "))] == [
        f"FAIL assume-only: iam_role {role}/assume-only: the trust policy of role assume-only {fix}",
        f"FAIL denies-only: iam_role {role}/denies-only: the trust policy of role denies-only {fix}",
        f"catalog {catalog_file}: 9 resource(s): 2 problem(s) in AWS account {ACCOUNT}",
    ]
    for name in ("prod-readonly", "all-of-sts", "everything", "set-anything"):
        assert f"ok   {name}: iam_role {role}/{name}" in lines


def test_the_source_identity_check_reads_a_url_encoded_trust_policy() -> None:
    allowed = {"Effect": "Allow", "Principal": {"AWS": ACCOUNT}, "Action": ["sts:AssumeRole", "STS:SetSourceIdentity"]}
    assert source_identity_problem(quote(trust(allowed)), "r") is None
    allowed["Action"] = "sts:AssumeRole"
    problem = source_identity_problem(quote(trust(allowed)), "r")
    assert problem == source_identity_problem(json.loads(trust(allowed)), "r")
    assert str(problem).startswith("the trust policy of role r does not allow sts:SetSourceIdentity")


def test_unreachable_aws_is_one_line_and_exit_2_and_offline_mode_skips_aws(
    world: World, catalog_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(catalog_file.parent / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(catalog_file.parent / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    code, lines = run(monkeypatch, capsys, catalog_file)
    assert code == 2
    assert lines == [
        "accessbot: AWS: cannot check the catalog against AWS: AWS could not be reached for "
        "sts:GetCallerIdentity: Unable to locate credentials"
    ]

    assert check_config(load_settings(env_file=None), aws=False) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == f"catalog {catalog_file}: 5 resource(s), no problems (AWS not checked)"
    assert "ok   ghost-group: iam_group does-not-exist" in out


def test_an_invalid_catalog_still_exits_2_before_asking_aws(
    world: World, catalog_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    catalog_file.write_text(catalog_with("  broken:\n    kind: iam_group\n    approvers: [platform]\n"))
    code, lines = run(monkeypatch, capsys, catalog_file)
    assert code == 2
    assert lines == ["accessbot: resources.broken.group_name: missing"]


def test_the_installed_command_checks_aws(world: World, catalog_file: Path) -> None:
    env = {**os.environ, "ACCESSBOT_CATALOG": str(catalog_file)}
    done = subprocess.run(
        [sys.executable, "-m", "bot", "check-config"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1, done.stderr
    assert "FAIL ghost-group: iam_group does-not-exist: the IAM group 'does-not-exist' does not exist" in done.stdout
    assert "ok   payments-key: kms_key alias/payments" in done.stdout
