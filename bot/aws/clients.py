"""boto3 clients with botocore's standard retry mode; endpoint and credentials stay boto3's own."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import boto3
import botocore.session
from botocore.config import Config
from botocore.loaders import Loader

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
        session = session or boto3.session.Session(botocore_session=_botocore_session())
        return cls(
            iam=session.client("iam", config=RETRIES),
            kms=session.client("kms", config=RETRIES),
            sts=session.client("sts", config=RETRIES),
            sso_admin=session.client("sso-admin", config=RETRIES),
            identitystore=session.client("identitystore", config=RETRIES),
        )


def _botocore_session() -> botocore.session.Session:
    """A new botocore session (its own credentials and configuration) on the one data loader of the process:
    it reads and caches the service models, a third of a second of JSON per set of clients, so that every
    Runtime of the process (the tests build hundreds) shares what it read."""
    core = botocore.session.get_session()
    core.register_component("data_loader", _loader())
    return core


@functools.cache
def _loader() -> Loader:
    loader: Loader = botocore.session.get_session().get_component("data_loader")
    return loader
