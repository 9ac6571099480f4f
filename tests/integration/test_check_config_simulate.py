"""`accessbot check-config --simulate`: the real CLI against moto, its simulator calls answered by the AWS model."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

import bot.aws.simulate
from bot.aws.granters.base import GrantSpec
from bot.aws.granters.role import role_policy
from bot.cli import main
from tests.support.aws import ACCOUNT, World
from tests.support.aws_model.proxy import AwsModelProxy
from tests.support.catalogs import BASIC

CATALOG = (
    BASIC[: BASIC.index("resources:")]
    + """resources:
  prod-readonly:
    kind: iam_role
    role_arn: arn:aws:iam::123456789012:role/prod-readonly
    approvers: [platform]
  prod-admin:
    kind: iam_role
    role_arn: arn:aws:iam::123456789012:role/prod-admin
    approvers: [platform]
    require_mfa: true
"""
)
READ_ONLY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ec2:Describe*", "Resource": "*"}]}
ADMIN = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}


@pytest.fixture
def model(world: World, moto_url: str) -> Iterator[AwsModelProxy]:
    trust = world.iam.get_role(RoleName="prod-readonly")["Role"]["AssumeRolePolicyDocument"]
    world.iam.create_role(RoleName="prod-admin", AssumeRolePolicyDocument=json.dumps(trust))
    world.iam.put_role_policy(RoleName="prod-readonly", PolicyName="read", PolicyDocument=json.dumps(READ_ONLY))
    world.iam.put_role_policy(RoleName="prod-admin", PolicyName="admin", PolicyDocument=json.dumps(ADMIN))
    proxy = AwsModelProxy(moto_url).start()
    proxy.log.baseline(world.iam)
    with proxy.endpoints():
        yield proxy
    proxy.stop()


def run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], catalog: Path, *args: str
) -> tuple[int, list[str]]:
    monkeypatch.setenv("ACCESSBOT_CATALOG", str(catalog))
    code = main(["check-config", *args])
    out, err = capsys.readouterr()
    return code, out.splitlines() + [line for line in err.splitlines() if line.startswith("accessbot:")]


def test_every_case_of_every_role_is_decided_as_the_bot_relies_on(
    model: AwsModelProxy, catalog_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    catalog_file.write_text(CATALOG)
    code, lines = run(monkeypatch, capsys, catalog_file, "--simulate")

    simulated = [line for line in lines if ": allow: " in line or ": deny: " in line]
    assert simulated == [
        "ok   prod-readonly: allow: the requester's own source identity before the expiry: "
        "expected allowed, got allowed",
        "ok   prod-readonly: allow: another source identity: expected implicitDeny, got implicitDeny",
        "ok   prod-readonly: allow: after the expiry: expected implicitDeny, got implicitDeny",
        "ok   prod-readonly: deny: ec2:DescribeInstances by a session issued before the cutoff: "
        "expected explicitDeny, got explicitDeny",
        "ok   prod-readonly: deny: ec2:DescribeInstances by a session issued after the cutoff: "
        "expected allowed, got allowed",
        "ok   prod-readonly: deny: ec2:DescribeInstances by another person's session issued before the cutoff: "
        "expected allowed, got allowed",
        "ok   prod-admin: allow: the requester's own source identity before the expiry: expected allowed, got allowed",
        "ok   prod-admin: allow: another source identity: expected implicitDeny, got implicitDeny",
        "ok   prod-admin: allow: after the expiry: expected implicitDeny, got implicitDeny",
        "ok   prod-admin: allow: without MFA (require_mfa): expected implicitDeny, got implicitDeny",
        "ok   prod-admin: deny: s3:ListAllMyBuckets by a session issued before the cutoff: "
        "expected explicitDeny, got explicitDeny",
        "ok   prod-admin: deny: s3:ListAllMyBuckets by a session issued after the cutoff: "
        "expected allowed, got allowed",
        "ok   prod-admin: deny: s3:ListAllMyBuckets by another person's session issued before the cutoff: "
        "expected allowed, got allowed",
    ]
    assert code == 0, lines
    assert model.count("SimulateCustomPolicy") == 7 and model.count("SimulatePrincipalPolicy") == 8


def test_an_allow_that_lets_anyone_in_is_a_mismatch_and_fails(
    model: AwsModelProxy, catalog_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def without_source_identity(spec: GrantSpec) -> dict[str, Any]:
        policy = role_policy(spec)
        del policy["Statement"][0]["Condition"]["StringEquals"]
        return policy

    monkeypatch.setattr(bot.aws.simulate, "role_policy", without_source_identity)
    catalog_file.write_text(CATALOG)
    code, lines = run(monkeypatch, capsys, catalog_file, "--simulate")

    assert code == 1
    failed = [line for line in lines if line.startswith("FAIL")]
    assert failed == [
        "FAIL prod-readonly: allow: another source identity: expected implicitDeny, got allowed",
        "FAIL prod-admin: allow: another source identity: expected implicitDeny, got allowed",
    ]
    assert lines[-1] == f"catalog {catalog_file}: 2 resource(s): 2 problem(s) in AWS account {ACCOUNT}"


def test_a_decision_made_without_a_key_the_documents_use_is_a_mismatch_even_when_expected(
    model: AwsModelProxy, catalog_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A key the bot does not pass, whose absence leaves every decision as expected (...IfExists holds when
    # the key is missing): the simulator still lists it in MissingContextValues, so no case proves anything.
    def with_an_unpassed_key(spec: GrantSpec) -> dict[str, Any]:
        policy = role_policy(spec)
        policy["Statement"][0]["Condition"]["BoolIfExists"] = {"aws:ViaAWSService": "false"}
        return policy

    monkeypatch.setattr(bot.aws.simulate, "role_policy", with_an_unpassed_key)
    catalog_file.write_text(CATALOG)
    code, lines = run(monkeypatch, capsys, catalog_file, "--simulate")

    assert code == 1
    allow = [line for line in lines if ": allow: " in line]
    assert len(allow) == 7 and all(line.startswith("FAIL") for line in allow), allow
    assert all("lacked context keys aws:viaawsservice" in line.lower() for line in allow), allow
    assert "FAIL prod-readonly: allow: another source identity: expected implicitDeny, got implicitDeny" in allow[1]
    assert all(line.startswith("ok") for line in lines if ": deny: " in line)


def test_a_role_that_allows_nothing_cannot_show_the_deny_and_fails(
    model: AwsModelProxy, catalog_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A client built now goes through the model, which then knows of the change (world.iam goes to moto).
    boto3.client("iam").delete_role_policy(RoleName="prod-readonly", PolicyName="read")
    catalog_file.write_text(CATALOG[: CATALOG.index("  prod-admin:")])
    code, lines = run(monkeypatch, capsys, catalog_file, "--simulate")

    assert code == 1
    assert [line for line in lines if ": deny: " in line] == [
        "FAIL prod-readonly: deny: an action the role allows: expected allowed, got none found "
        "(none of 16 common actions is allowed to the role; the deny was not simulated)"
    ]


def test_simulate_needs_aws(
    catalog_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, lines = run(monkeypatch, capsys, catalog_file, "--simulate", "--no-aws")
    assert code == 2
    assert lines == ["accessbot: check-config: --simulate asks AWS's policy simulator, so it cannot go with --no-aws"]
