"""boto3 clients with botocore's standard retry mode; endpoint and credentials stay boto3's own."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
import botocore.session
from botocore.config import Config
from botocore.exceptions import NoRegionError
from botocore.loaders import Loader

# "total_max_attempts" counts the first try; in a client Config "max_attempts" would count retries only (6 tries).
RETRIES = Config(retries={"mode": "standard", "total_max_attempts": 5}, connect_timeout=5, read_timeout=20)


@dataclass(frozen=True)
class AwsClients:
    """The clients accessbot uses; built once by the composition root, each client on its first call."""

    iam: Any
    kms: Any
    sts: Any
    sso_admin: Any  # IAM Identity Center: instances, permission sets, account assignments
    identitystore: Any  # its users, groups and group memberships
    # The catalog's other accounts (then `kms` sends each call to its key's account); None: this account only.
    members: Any = None  # a bot.aws.accounts.MemberAccounts (not imported here: that module imports this one)

    @classmethod
    def create(cls, session: boto3.session.Session | None = None) -> AwsClients:
        """The clients, from boto3's usual configuration chain; NoRegionError at once when no region is set."""
        session = session or boto3.session.Session(botocore_session=botocore_session())
        if session.region_name is None:
            raise NoRegionError()

        def client(service: str) -> _Lazy:
            return _Lazy(lambda: session.client(service, config=RETRIES))

        return cls(
            iam=client("iam"),
            kms=client("kms"),
            sts=client("sts"),
            sso_admin=client("sso-admin"),
            identitystore=client("identitystore"),
        )


class _Lazy:
    """A boto3 client built on its first use: a process that never calls a service (most never call Identity
    Center) never pays the tenth of a second its client takes to build."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self._make = make
        self._client: Any = None
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._make()
        return getattr(self._client, name)


def botocore_session() -> botocore.session.Session:
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
