"""The demo's world: moto seeded with users, a group, a role, a key and Identity Center, and what it shows."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import boto3

from bot.demo import member
from bot.demo.standin import Person

ACCOUNT = "123456789012"  # moto's default account
GRANT = "5s"
ALICE = Person("U0ALICE", "alice", "alice@example.com")
BOB = Person("U0BOB", "bob", "bob@example.com")
CAROL = Person("U0CAROL", "carol", "carol@example.com")
DAVE = Person("U0DAVE", "dave", "dave@example.com")
PEOPLE = [ALICE, BOB, CAROL, DAVE]
APPROVALS, GENERAL = "C0APPROVALS", "C0GENERAL"
SSO_ACCOUNTS = ("111111111111", "222222222222")
CHANNELS = {APPROVALS: "access-approvals", GENERAL: "general"}
ADMIN = (
    '{"Version":"2012-10-17","Statement":[{"Sid":"NoBilling","Effect":"Deny","Action":"aws-portal:*","Resource":"*"}]}'
)

CATALOG = (
    f"""
defaults:
  approval_channel: {APPROVALS}
  min_duration: 1s
  default_duration: 1h
  max_duration: 8h
identity:
  strategy: email_tag   # the IAM user whose tag `email` is the Slack profile email
  tag_key: email
approver_groups:
  platform: [{BOB.user_id}, {CAROL.user_id}]
resources:
  deploy-admins:
    kind: iam_group
    group_name: deploy-admins
    description: Deploy to production
    approvers: [platform]
  prod-readonly:
    kind: iam_role
    role_arn: arn:aws:iam::{ACCOUNT}:role/prod-readonly
    description: Read-only access to production
    approvers: [platform]
    reason_pattern: 'INC-[0-9]+'   # the reason must name the incident; the approvers get a link to it
    ticket_url: https://tickets.example.com/browse/{{ticket}}
  payments-key:
    kind: kms_key
    key_id: alias/payments
    operations: [Decrypt, GenerateDataKey]
    description: Decrypt payment records
    approvers: [{CAROL.user_id}]
  prod-admin-sso:
    kind: sso_permission_set   # IAM Identity Center: the Identity Store user with alice's email
    permission_set: ProdAdmin
    accounts: ["{SSO_ACCOUNTS[0]}", "{SSO_ACCOUNTS[1]}"]
    description: Administrator in both production accounts
    approvers: [platform]
"""
    + member.CATALOG
)
ACCOUNTS = member.ACCOUNTS  # after the last resource (the on-call chapter adds one)


@dataclass(frozen=True)
class Aws:
    """boto3 clients on the in-process moto server, and what the story looks at."""

    iam: Any
    kms: Any
    key_id: str
    sso: Any = None
    instance_arn: str = ""
    permission_set_arn: str = ""
    member_iam: Any = None  # IAM in the second account

    def state(self, kind: str) -> list[str]:
        """What AWS says right now about one kind of access, as lines for people."""
        if kind == "member_role":
            return member.state(self.member_iam)
        if kind == "sso_sessions":
            text = self.sso.get_inline_policy_for_permission_set(
                InstanceArn=self.instance_arn, PermissionSetArn=self.permission_set_arn
            ).get("InlinePolicy")
            statements = json.loads(text)["Statement"] if text else []
            ours = [s for s in statements if str(s.get("Sid", "")).startswith("AccessbotEnd")]
            head = f"[AWS] ProdAdmin's inline policy — session denies of the bot: {len(ours) or '(none)'}"
            return [head] + ["      " + json.dumps(s) for s in statements]
        if kind == "sso_permission_set":
            found = []
            for account in SSO_ACCOUNTS:
                listed = self.sso.list_account_assignments(
                    InstanceArn=self.instance_arn, AccountId=account, PermissionSetArn=self.permission_set_arn
                )["AccountAssignments"]
                found += [f"{account} for user {a['PrincipalId'][:8]}…" for a in listed]
            return [f"[AWS] Identity Center permission set ProdAdmin — assignments: {'; '.join(found) or '(none)'}"]
        if kind == "iam_group":
            names = sorted(u["UserName"] for u in self.iam.get_group(GroupName="deploy-admins")["Users"])
            return [f"[AWS] IAM group deploy-admins — members: {', '.join(names) or '(none)'}"]
        if kind == "iam_role":
            policies = self.iam.list_user_policies(UserName=ALICE.name)["PolicyNames"]
            lines = [f"[AWS] IAM user alice — inline policies: {', '.join(policies) or '(none)'}"]
            for name in policies:
                document = self.iam.get_user_policy(UserName=ALICE.name, PolicyName=name)["PolicyDocument"]
                document = json.loads(document) if isinstance(document, str) else document
                lines += ["      " + line for line in json.dumps(document, indent=2).splitlines()]
            return lines
        grants = self.kms.list_grants(KeyId=self.key_id)["Grants"]
        shown = [
            f"{g.get('Name')} for {g['GranteePrincipal'].split(':')[-1]} ({', '.join(g['Operations'])})" for g in grants
        ]
        return [f"[AWS] KMS key alias/payments — grants: {'; '.join(shown) or '(none)'}"]

    def granted(self, kind: str) -> bool:
        """Whether alice holds this kind of access in AWS now."""
        return "(none)" not in self.state(kind)[0]


def seed() -> Aws:
    """IAM users tagged with their Slack emails, a group, a role, and a KMS key with an alias."""
    iam, kms = boto3.client("iam"), boto3.client("kms")
    for person in PEOPLE:
        iam.create_user(UserName=person.name, Tags=[{"Key": "email", "Value": person.email}])
    iam.create_group(GroupName="deploy-admins")
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                # SetSourceIdentity: role grants require it, so that sessions can be ended with the grant.
                "Action": ["sts:AssumeRole", "sts:SetSourceIdentity"],
                # Each IAM user can only name itself as the source identity (check-config warns without it).
                "Condition": {"StringEquals": {"sts:SourceIdentity": "${aws:username}"}},
            }
        ],
    }
    iam.create_role(RoleName="prod-readonly", AssumeRolePolicyDocument=json.dumps(trust))
    key = kms.create_key(Description="payments")["KeyMetadata"]
    kms.create_alias(AliasName="alias/payments", TargetKeyId=key["KeyId"])
    # IAM Identity Center (moto has one instance): a permission set, and alice in the identity store by email.
    sso, store = boto3.client("sso-admin"), boto3.client("identitystore")
    instance = sso.list_instances()["Instances"][0]
    permission_set = sso.create_permission_set(
        InstanceArn=instance["InstanceArn"], Name="ProdAdmin", SessionDuration="PT1H"
    )["PermissionSet"]
    # The administrator's own inline policy: the bot's session denies go beside it and leave it as it is.
    sso.put_inline_policy_to_permission_set(
        InstanceArn=instance["InstanceArn"], PermissionSetArn=permission_set["PermissionSetArn"], InlinePolicy=ADMIN
    )
    store.create_user(
        IdentityStoreId=instance["IdentityStoreId"],
        UserName=ALICE.name,
        DisplayName=ALICE.name,
        Name={"GivenName": ALICE.name, "FamilyName": "Example"},
        Emails=[{"Value": ALICE.email, "Type": "work", "Primary": True}],
    )
    return Aws(
        iam=iam,
        kms=kms,
        key_id=str(key["KeyId"]),
        sso=sso,
        instance_arn=str(instance["InstanceArn"]),
        permission_set_arn=str(permission_set["PermissionSetArn"]),
        member_iam=member.seed(),
    )


@contextmanager
def offline_aws(scratch: Path) -> Iterator[str]:
    """An in-process moto server on 127.0.0.1, with boto3 pointed at it through the environment only."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    with mock.patch.dict(os.environ):
        # Nothing from the user's own AWS or proxy set-up may leak in: everything here is loopback.
        for name in [n for n in os.environ if n.startswith("AWS_") or n.lower().endswith("_proxy")]:
            del os.environ[name]
        os.environ.update(
            AWS_ENDPOINT_URL=url,
            AWS_ACCESS_KEY_ID="demo",
            AWS_SECRET_ACCESS_KEY="demo",
            AWS_REGION="us-east-1",
            AWS_DEFAULT_REGION="us-east-1",
            AWS_CONFIG_FILE=str(scratch / "no-aws-config"),
            AWS_SHARED_CREDENTIALS_FILE=str(scratch / "no-aws-credentials"),
        )
        try:
            yield url
        finally:
            server.stop()
