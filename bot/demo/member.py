"""The demo's second AWS account: a role there, reached through the role the bot assumes (catalog `accounts`)."""

from __future__ import annotations

import json
from typing import Any

import boto3

MEMBER = "222222222222"
HOME = "123456789012"  # moto's default account, where the bot and the people's IAM users are
MEMBER_ROLE = f"arn:aws:iam::{MEMBER}:role/accessbot-member"

# Appended to the demo's catalog: a resource (under `resources:`, the catalog's last key) and `accounts`.
CATALOG = f"""  member-deploy:
    kind: iam_role
    role_arn: arn:aws:iam::{MEMBER}:role/deploy
    description: Deploy in the second account
    approvers: [platform]
"""
# The top-level block that lists the second account: it goes after every resource of the catalog.
ACCOUNTS = f"""accounts:
  "{MEMBER}": {{role_arn: "{MEMBER_ROLE}", external_id: accessbot-demo}}
"""


def seed() -> Any:
    """In the second account: the role the bot assumes, and the role people get; the account's IAM client.

    moto, like AWS, makes the account of credentials assumed into a role the account of every call made with
    them: that is how the demo (and the bot) reach the second account.
    """
    credentials = boto3.client("sts").assume_role(
        RoleArn=f"arn:aws:iam::{MEMBER}:role/admin", RoleSessionName="demo-admin"
    )["Credentials"]
    session = boto3.session.Session(
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )
    iam = session.client("iam")
    bot_trust = _trust(f"arn:aws:iam::{HOME}:root", ["sts:AssumeRole"])
    iam.create_role(RoleName="accessbot-member", AssumeRolePolicyDocument=json.dumps(bot_trust))
    people_trust = _trust(f"arn:aws:iam::{HOME}:root", ["sts:AssumeRole", "sts:SetSourceIdentity"])
    iam.create_role(RoleName="deploy", AssumeRolePolicyDocument=json.dumps(people_trust))
    return iam


def state(iam: Any) -> list[str]:
    """The role's inline policies in the second account: the bot's session deny appears there at the end."""
    names = iam.list_role_policies(RoleName="deploy")["PolicyNames"]
    lines = [f"[AWS] account {MEMBER}, role deploy — inline policies: {', '.join(names) or '(none)'}"]
    for name in names:
        document = iam.get_role_policy(RoleName="deploy", PolicyName=name)["PolicyDocument"]
        document = json.loads(document) if isinstance(document, str) else document
        lines += ["      " + line for line in json.dumps(document, indent=2).splitlines()]
    return lines


def _trust(principal: str, actions: list[str]) -> dict[str, Any]:
    statement = {"Effect": "Allow", "Principal": {"AWS": principal}, "Action": actions}
    return {"Version": "2012-10-17", "Statement": [statement]}
