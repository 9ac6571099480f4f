"""A second AWS account in moto: reached, as in AWS, with credentials from sts:AssumeRole into its account ID."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

from tests.support.aws import ACCOUNT

DOCS = Path(__file__).resolve().parents[2] / "docs"
MEMBER = "222222222222"
ELSEWHERE = "333333333333"  # an account the catalog does not list
MEMBER_ROLE = f"arn:aws:iam::{MEMBER}:role/accessbot-member"
EXTERNAL_ID = "accessbot-example-1"

# A role in the member account that people of the bot's account may assume, naming who they are.
TRUST_HOME = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
            "Action": ["sts:AssumeRole", "sts:SetSourceIdentity"],
        }
    ],
}


@dataclass
class Member:
    """Clients in the member account (as its own administrator would use them) and what `seed_member` made."""

    iam: Any
    kms: Any
    role_arn: str
    key_arn: str


def session_in(account: str) -> boto3.session.Session:
    """A session in `account`: moto makes the assumed role's account the account of every call."""
    credentials = boto3.client("sts").assume_role(
        RoleArn=f"arn:aws:iam::{account}:role/admin", RoleSessionName="test-admin"
    )["Credentials"]
    return boto3.session.Session(
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )


def seed_member(account: str = MEMBER) -> Member:
    """In `account`: the role people get (`deploy`, trusting the bot's account) and a KMS key."""
    session = session_in(account)
    iam, kms = session.client("iam"), session.client("kms")
    # The role the bot assumes there, trusting as docs/iam-trust-member.json says (moto does not check it).
    trust = (DOCS / "iam-trust-member.json").read_text()
    iam.create_role(RoleName="accessbot-member", AssumeRolePolicyDocument=trust)
    role = iam.create_role(RoleName="deploy", AssumeRolePolicyDocument=json.dumps(TRUST_HOME), MaxSessionDuration=7200)
    key = kms.create_key(Description="member payments")["KeyMetadata"]
    return Member(iam=iam, kms=kms, role_arn=role["Role"]["Arn"], key_arn=key["Arn"])


def accounts_yaml(external_id: str | None = EXTERNAL_ID) -> str:
    """The catalog's `accounts` block listing the member account."""
    extra = f", external_id: {external_id}" if external_id else ""
    return f'accounts:\n  "{MEMBER}": {{role_arn: "{MEMBER_ROLE}"{extra}}}\n'
