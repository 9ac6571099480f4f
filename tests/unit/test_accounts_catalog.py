"""The catalog's `accounts` block: account IDs, the role assumed in each, errors by key path."""

from __future__ import annotations

import pytest

from bot.catalog import MemberAccount, parse_catalog
from bot.errors import ConfigError

BASE = """
approver_groups: {platform: [U0BOB]}
defaults: {approval_channel: C0APPROVALS, approvers: [platform]}
resources:
  deploy: {kind: iam_role, role_arn: "arn:aws:iam::222222222222:role/deploy"}
"""
ROLE = "arn:aws:iam::222222222222:role/accessbot-member"


def test_an_account_maps_to_the_role_the_bot_assumes_there() -> None:
    catalog = parse_catalog(BASE + f'accounts:\n  "222222222222": {{role_arn: "{ROLE}", external_id: ab-1}}\n')
    assert catalog.accounts == {"222222222222": MemberAccount(role_arn=ROLE, external_id="ab-1")}


def test_no_accounts_block_means_none() -> None:
    assert parse_catalog(BASE).accounts == {}


@pytest.mark.parametrize(
    ("block", "problem"),
    [
        ("accounts: [222222222222]", "accounts: must be a mapping"),
        (f'accounts:\n  222222222222: {{role_arn: "{ROLE}"}}', "accounts.222222222222: an account ID is 12 digits"),
        (f'accounts:\n  "2222": {{role_arn: "{ROLE}"}}', "accounts.2222: an account ID is 12 digits"),
        ('accounts:\n  "222222222222": {}', "accounts.222222222222.role_arn: missing"),
        ('accounts:\n  "222222222222": {role_arn: "accessbot-member"}', "accounts.222222222222.role_arn: String"),
        (
            'accounts:\n  "222222222222": {role_arn: "arn:aws:iam::333333333333:role/x"}',
            "accounts.222222222222.role_arn: the role is in account 333333333333, not 222222222222",
        ),
        (f'accounts:\n  "222222222222": {{role_arn: "{ROLE}", external_id: x}}', "accounts.222222222222.external_id"),
        (
            f'accounts:\n  "222222222222": {{role_arn: "{ROLE}", externalid: ab}}',
            "accounts.222222222222.externalid: unknown key",
        ),
    ],
    ids=["list", "unquoted-id", "short-id", "no-role", "not-an-arn", "role-elsewhere", "short-external-id", "typo"],
)
def test_each_mistake_is_named_by_its_key_path(block: str, problem: str) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_catalog(BASE + block + "\n")
    assert problem in str(refused.value)
