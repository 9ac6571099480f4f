"""`accessbot check-config` against moto: trust policies and permissions that let access bypass or outlive the bot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bot.cli import main
from tests.support.aws import ACCOUNT, World
from tests.support.catalogs import BASIC

ROOT = f"arn:aws:iam::{ACCOUNT}:root"
ROLE = f"arn:aws:iam::{ACCOUNT}:role"
ASSUME = ["sts:AssumeRole", "sts:SetSourceIdentity"]
REQUIRED = {"StringEquals": {"sts:SourceIdentity": "${aws:username}"}}


def document(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def trusting(*principals: str, condition: dict[str, Any] | None = REQUIRED) -> str:
    statement: dict[str, Any] = {"Effect": "Allow", "Principal": {"AWS": list(principals)}, "Action": ASSUME}
    if condition:
        statement["Condition"] = condition
    return document(statement)


def allow(action: Any, resource: Any = "*") -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource}


def role_entries(*names: str) -> str:
    return "".join(
        f"  {name}:\n    kind: iam_role\n    role_arn: {ROLE}/{name}\n    approvers: [platform]\n" for name in names
    )


def check(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], catalog: Path, extra: str
) -> tuple[int, list[str]]:
    catalog.write_text(BASIC[: BASIC.index("  ghost-group:")].rstrip() + "\n" + extra)
    monkeypatch.setenv("ACCESSBOT_CATALOG", str(catalog))
    code = main(["check-config"])
    return code, capsys.readouterr().out.splitlines()


def about(lines: list[str], name: str) -> list[str]:
    """The lines about one resource, without its own name and kind."""
    prefix = f"{name}: iam_role {ROLE}/{name}"
    return [
        line[:5] + line[5:].removeprefix(prefix).removeprefix(": ") for line in lines if line[5:].startswith(prefix)
    ]


FIX = (
    f"name only the account root {ROOT} as the Principal, in a statement that allows "
    '"sts:AssumeRole" and "sts:SetSourceIdentity"'
)


def test_trusts_that_let_someone_assume_the_role_without_the_bot_fail_with_the_fix(
    world: World, catalog_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    world.iam.create_role(RoleName="open-to-all", AssumeRolePolicyDocument=trusting("*"))
    world.iam.create_role(
        RoleName="names-bob", AssumeRolePolicyDocument=trusting(ROOT, f"arn:aws:iam::{ACCOUNT}:user/bob")
    )
    world.iam.create_role(RoleName="names-a-role", AssumeRolePolicyDocument=trusting(ROOT, f"{ROLE}/ops"))
    world.iam.create_role(RoleName="no-source-identity", AssumeRolePolicyDocument=trusting(ROOT, condition=None))

    code, lines = check(
        monkeypatch,
        capsys,
        catalog_file,
        role_entries("open-to-all", "names-bob", "names-a-role", "no-source-identity"),
    )

    assert code == 1
    assert about(lines, "open-to-all") == [
        'FAIL its trust policy lets anyone assume it (Principal "*") (its conditions may narrow who, but nothing '
        f"makes them go through accessbot); {FIX}"
    ]
    named = "directly, which lets that principal assume the role by itself (a trust policy naming a principal of "
    named += (
        f"the same account grants on its own: no time limit, no source identity, no session deny from accessbot); {FIX}"
    )
    assert about(lines, "names-bob") == [f"FAIL its trust policy names arn:aws:iam::{ACCOUNT}:user/bob {named}"]
    assert about(lines, "names-a-role") == [f"FAIL its trust policy names {ROLE}/ops {named}"]
    assert about(lines, "no-source-identity") == [
        "ok   ",
        "WARN its trust policy does not require a source identity: anyone in the account whose own policies allow "
        "sts:AssumeRole on it (AdministratorAccess does) can assume it without accessbot, in sessions no session deny "
        'reaches; add "Condition": {"StringEquals": {"sts:SourceIdentity": "${aws:username}"}} to the statement that '
        f"trusts {ROOT}, so each IAM user can only name itself",
    ]
    assert lines[-1].endswith(f"3 problem(s) in AWS account {ACCOUNT}")  # warnings are not problems


def test_a_roles_own_permissions_that_outlive_or_undo_its_end_are_warned_of(
    world: World, catalog_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    iam = world.iam
    names = ("hops", "passes", "writes-iam", "admin", "not-s3", "self-only", "read-only", "admin-but-denied")
    for name in names:
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=trusting(ROOT))
    iam.put_role_policy(RoleName="hops", PolicyName="hop", PolicyDocument=document(allow("sts:AssumeRole")))
    passing = iam.create_policy(PolicyName="pass", PolicyDocument=document(allow("iam:Pass*")))["Policy"]["Arn"]
    iam.attach_role_policy(RoleName="passes", PolicyArn=passing)
    writes = document(allow(["iam:CreateAccessKey", "iam:*RolePolicy"]), allow("iam:UpdateAssumeRolePolicy"))
    iam.put_role_policy(RoleName="writes-iam", PolicyName="iam-admin", PolicyDocument=writes)
    admin = iam.create_policy(PolicyName="admin", PolicyDocument=document(allow("*")))["Policy"]["Arn"]
    iam.attach_role_policy(RoleName="admin", PolicyArn=admin)
    iam.put_role_policy(
        RoleName="not-s3",
        PolicyName="all-but-s3",
        PolicyDocument=document({"Effect": "Allow", "NotAction": "s3:*", "Resource": "*"}),
    )
    iam.put_role_policy(
        RoleName="self-only", PolicyName="self", PolicyDocument=document(allow("sts:AssumeRole", f"{ROLE}/self-only"))
    )
    iam.put_role_policy(
        RoleName="read-only", PolicyName="read", PolicyDocument=document(allow(["s3:Get*", "iam:Get*"]))
    )
    denied = document(allow("*"), {"Effect": "Deny", "Action": ["iam:*", "sts:AssumeRole"], "Resource": "*"})
    iam.put_role_policy(RoleName="admin-but-denied", PolicyName="no-iam", PolicyDocument=denied)

    code, lines = check(monkeypatch, capsys, catalog_file, role_entries(*names))

    assert code == 0, lines
    hop = (
        "WARN its own permissions allow sts:AssumeRole on other roles ({}): a session can assume them, and those "
        "sessions outlast the grant with no deny on this role reaching them; allow sts:AssumeRole only on the roles "
        "it needs, or not at all"
    )
    pass_role = (
        "WARN its own permissions allow iam:PassRole ({}): a session can give a role to a service (an instance, "
        "a function) whose credentials outlast the grant; remove iam:PassRole, or limit it to named roles with "
        "an iam:PassedToService condition"
    )
    iam_writes = (
        "WARN its own permissions allow {} ({}): a session can make credentials that outlast the grant or "
        "change the role's policies (the session deny included); remove these IAM actions from the role, "
        "e.g. with a statement denying them"
    )
    every = (
        "iam:CreateAccessKey, iam:CreateUser, iam:PutRolePolicy, iam:DeleteRolePolicy, iam:AttachRolePolicy, "
        "iam:DetachRolePolicy, iam:UpdateAssumeRolePolicy"
    )
    assert about(lines, "hops") == ["ok   ", hop.format("inline policy hop")]
    assert about(lines, "passes") == ["ok   ", pass_role.format(f"managed policy {passing}")]
    assert about(lines, "writes-iam") == [
        "ok   ",
        iam_writes.format(
            "iam:CreateAccessKey, iam:PutRolePolicy, iam:DeleteRolePolicy, iam:AttachRolePolicy, "
            "iam:DetachRolePolicy, iam:UpdateAssumeRolePolicy",
            "inline policy iam-admin",
        ),
    ]
    where = f"managed policy {admin}"
    assert about(lines, "admin") == [
        "ok   ",
        hop.format(where),
        pass_role.format(where),
        iam_writes.format(every, where),
    ]
    where = "inline policy all-but-s3"
    assert about(lines, "not-s3") == [
        "ok   ",
        hop.format(where),
        pass_role.format(where),
        iam_writes.format(every, where),
    ]
    assert about(lines, "self-only") == ["ok   "]  # re-assuming itself is the session deny's business
    assert about(lines, "read-only") == ["ok   "]
    assert about(lines, "admin-but-denied") == ["ok   "]  # the fix the warnings suggest silences them


def test_a_catalog_group_whose_policies_allow_assume_role_is_warned_of(
    world: World, catalog_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    world.iam.put_group_policy(
        GroupName="deploy-admins", PolicyName="hop", PolicyDocument=document(allow("sts:Assume*"))
    )
    managed = world.iam.create_policy(PolicyName="audit", PolicyDocument=document(allow("s3:Get*")))["Policy"]["Arn"]
    world.iam.attach_group_policy(GroupName="auditors", PolicyArn=managed)

    code, lines = check(monkeypatch, capsys, catalog_file, "")

    assert code == 0
    assert [line for line in lines if line.startswith("WARN")] == [
        "WARN deploy-admins: iam_group deploy-admins: its policies allow sts:AssumeRole (inline policy hop): a member "
        "can assume roles while the grant lasts, and those sessions outlast it (no deny on a role reaches them); "
        "remove sts:AssumeRole from the group and grant those roles as iam_role resources instead"
    ]
