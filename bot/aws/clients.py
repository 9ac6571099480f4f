"""boto3 clients with botocore's standard retry mode; endpoint and credentials stay boto3's own."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config

# "total_max_attempts" counts the first try; in a client Config "max_attempts" would count retries only (6 tries).
RETRIES = Config(retries={"mode": "standard", "total_max_attempts": 5}, connect_timeout=5, read_timeout=20)


@dataclass(frozen=True)
class AwsClients:
    """The clients accessbot uses; built once by the composition root."""

    iam: Any
    kms: Any
    sts: Any
    sso_admin: Any  # IAM Identity Center: instances, permission sets, account assignments
    identitystore: Any  # its users, groups and group memberships

    @classmethod
    def create(cls, session: boto3.session.Session | None = None) -> AwsClients:
        """Build the clients from boto3's usual configuration chain."""
        session = session or boto3.session.Session()
        return cls(
            iam=session.client("iam", config=RETRIES),
            kms=session.client("kms", config=RETRIES),
            sts=session.client("sts", config=RETRIES),
            sso_admin=session.client("sso-admin", config=RETRIES),
            identitystore=session.client("identitystore", config=RETRIES),
        )
