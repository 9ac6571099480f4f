"""The moto server on loopback, and the AWS world the tests start from."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import boto3
import requests
from moto.server import ThreadedMotoServer

ACCOUNT = "123456789012"


def start_moto() -> tuple[ThreadedMotoServer, str]:
    """Start moto on an OS-chosen port and point boto3 (through the environment) at it."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    os.environ.update(
        AWS_ENDPOINT_URL=url,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_REGION="us-east-1",
    )
    os.environ.pop("AWS_PROFILE", None)
    return server, url


def reset_moto(url: str) -> None:
    """Forget every AWS resource (moto's state is per process, shared by all tests)."""
    requests.post(f"{url}/moto-api/reset", timeout=10).raise_for_status()


@dataclass
class World:
    """Handles to what `seed` created."""

    iam: Any
    kms: Any
    key_id: str
    key_arn: str
    role_arn: str


def seed() -> World:
    """IAM users (tagged with emails), a group, a role and a KMS key with an alias."""
    iam = boto3.client("iam")
    kms = boto3.client("kms")
    for name, email in [
        ("alice", "alice@example.com"),
        ("bob", "bob@example.com"),
        ("carol", "carol@example.com"),
        ("dave", "dave@example.com"),
    ]:
        iam.create_user(UserName=name, Tags=[{"Key": "email", "Value": email}])
    iam.create_group(GroupName="deploy-admins")
    iam.create_group(GroupName="auditors")
    trust = (
        '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::'
        + ACCOUNT
        + ':root"},"Action":["sts:AssumeRole","sts:SetSourceIdentity"],'
        '"Condition":{"StringEquals":{"sts:SourceIdentity":"${aws:username}"}}}]}'
    )
    role_arn = iam.create_role(RoleName="prod-readonly", AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    key = kms.create_key(Description="payments")["KeyMetadata"]
    kms.create_alias(AliasName="alias/payments", TargetKeyId=key["KeyId"])
    return World(iam=iam, kms=kms, key_id=key["KeyId"], key_arn=key["Arn"], role_arn=role_arn)


def members(iam: Any, group: str) -> set[str]:
    """User names in an IAM group, as AWS reports them."""
    return {u["UserName"] for u in iam.get_group(GroupName=group)["Users"]}
