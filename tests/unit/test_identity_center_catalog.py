"""The Identity Center part of the catalog: the two kinds and the `identity_center` block, errors by key path."""

from __future__ import annotations

import pytest

from bot.aws.errors import AwsError, retried
from bot.catalog import PermissionSetResource, parse_catalog, split_permission_set_target
from bot.errors import ConfigError

HEAD = """
defaults: {approval_channel: C0APPROVALS}
approver_groups: {platform: [U0BOB]}
"""


def catalog(body: str) -> str:
    return HEAD + body


def test_both_kinds_and_the_block_load() -> None:
    loaded = parse_catalog(
        catalog("""
identity_center: {instance_arn: "arn:aws:sso:::instance/ssoins-0123456789abcdef", identity_store_id: d-0123456789}
resources:
  prod:
    kind: sso_permission_set
    permission_set: ProdAdmin
    accounts: ["111111111111", "222222222222"]
    approvers: [platform]
  oncall: {kind: sso_group, group: oncall-responders, approvers: [platform]}
""")
    )
    prod = loaded.resources["prod"]
    assert isinstance(prod, PermissionSetResource)
    assert prod.target == "ProdAdmin in 111111111111,222222222222"
    assert split_permission_set_target(prod.target) == ("ProdAdmin", ("111111111111", "222222222222"))
    assert loaded.resources["oncall"].target == "oncall-responders"
    assert loaded.identity_center is not None and loaded.identity_center.identity_store_id == "d-0123456789"


def test_without_the_block_the_instance_is_left_to_discovery() -> None:
    loaded = parse_catalog(catalog("resources:\n  g: {kind: sso_group, group: g1, approvers: [platform]}\n"))
    assert loaded.identity_center is None


@pytest.mark.parametrize(
    ("description", "body", "problem"),
    [
        (
            "an instance ARN that is not one",
            'identity_center: {instance_arn: "arn:aws:iam::1:role/x", identity_store_id: d-0123456789}\n'
            "resources:\n  g: {kind: sso_group, group: g1, approvers: [platform]}\n",
            "identity_center.instance_arn:",
        ),
        (
            "a store ID of the wrong shape",
            'identity_center: {instance_arn: "arn:aws:sso:::instance/ssoins-0123456789abcdef", identity_store_id: x}\n'
            "resources:\n  g: {kind: sso_group, group: g1, approvers: [platform]}\n",
            "identity_center.identity_store_id:",
        ),
        (
            "an unknown key in the block",
            'identity_center: {instance_arn: "arn:aws:sso:::instance/ssoins-0123456789abcdef", '
            "identity_store_id: d-0123456789, region: eu}\n"
            "resources:\n  g: {kind: sso_group, group: g1, approvers: [platform]}\n",
            "identity_center.region: unknown key",
        ),
        (
            "an account ID that is not 12 digits",
            "resources:\n  p: {kind: sso_permission_set, permission_set: P, "
            'accounts: ["1234"], approvers: [platform]}\n',
            "resources.p.accounts.0:",
        ),
        (
            "an account listed twice",
            "resources:\n  p: {kind: sso_permission_set, permission_set: P, "
            'accounts: ["111111111111", "111111111111"], approvers: [platform]}\n',
            "resources.p.accounts: an account is listed twice",
        ),
        (
            "no accounts",
            "resources:\n  p: {kind: sso_permission_set, permission_set: P, approvers: [platform]}\n",
            "resources.p.accounts: missing",
        ),
        (
            "a permission set name with a space",
            'resources:\n  p: {kind: sso_permission_set, permission_set: "Prod Admin", '
            'accounts: ["111111111111"], approvers: [platform]}\n',
            "resources.p.permission_set:",
        ),
        (
            "a group resource without its group",
            "resources:\n  g: {kind: sso_group, approvers: [platform]}\n",
            "resources.g.group: missing",
        ),
    ],
)
def test_every_problem_names_its_key_path(description: str, body: str, problem: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_catalog(catalog(body))
    assert problem in str(raised.value), description


def test_conflicts_are_retried_with_a_doubling_backoff_and_other_errors_are_not() -> None:
    slept: list[float] = []
    answers = iter([AwsError("busy", operation="sso:X", code="ConflictException")] * 3 + [None])

    def call() -> str:
        failure = next(answers)
        if failure is not None:
            raise failure
        return "done"

    assert retried("sso:X", call, sleep=slept.append) == "done"
    assert slept == [0.2, 0.4, 0.8]

    def denied() -> None:
        raise AwsError("no", operation="sso:X", code="AccessDeniedException")

    with pytest.raises(AwsError):
        retried("sso:X", denied, sleep=slept.append)
    assert len(slept) == 3
