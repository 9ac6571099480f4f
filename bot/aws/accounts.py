"""Clients in other AWS accounts: the role the bot assumes in each listed account, its credentials refreshed.

The person stays the IAM user in the bot's own account; what changes in another account is where the bot
writes and reads the *target*: a role's session deny (IAM), a key's grants (KMS).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import boto3
from botocore.credentials import CredentialProvider, DeferredRefreshableCredentials

from bot.aws.clients import AwsClients, botocore_session
from bot.aws.errors import aws_call
from bot.aws.granters import account_of
from bot.catalog import MemberAccount
from bot.clock import utcnow

# An hour: AssumeRole's default, and the most AWS allows when the bot itself runs as a role (role chaining
# "limits your AWS CLI or AWS API role session to a maximum of one hour"; STS API Reference, "AssumeRole",
# DurationSeconds: https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRole.html). The ExternalId
# is the one the member role's trust policy requires (IAM User Guide, "Access to AWS accounts owned by third
# parties": https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_common-scenarios_third-party.html).
SESSION_SECONDS = 3600
SESSION_NAME = "accessbot"


class MemberAccounts:
    """The catalog's `accounts`: per listed account, clients on credentials of the role assumed there.

    Each account's credentials come from one sts:AssumeRole, cached, and refreshed by botocore's
    RefreshableCredentials before they expire (from 15 minutes before, by one thread while the others keep
    using the old ones; from 10 minutes before, every caller waits for that one refresh): one STS call per
    account per refresh, however many threads use its clients.
    """

    def __init__(
        self,
        home: AwsClients,
        accounts: Mapping[str, MemberAccount],
        *,
        clock: Callable[[], datetime] = utcnow,
        create: Callable[[boto3.session.Session], AwsClients] | None = None,
    ) -> None:
        self._home = home
        self._accounts = dict(accounts)
        self._clock = clock
        # AwsClients.create at call time (not bound here), so that a wrapper the tests put on it applies.
        self._create = create or (lambda session: AwsClients.create(session))
        self._clients: dict[str, AwsClients] = {}
        self._sessions: dict[str, boto3.session.Session] = {}
        self._guard = threading.Lock()

    @property
    def listed(self) -> list[str]:
        """The listed account IDs, in catalog order."""
        return list(self._accounts)

    def covers(self, account: str) -> bool:
        """Whether the bot acts in `account` through a role it assumes there."""
        return account in self._accounts

    def clients(self, account: str) -> AwsClients | None:
        """The clients in a listed account (built on first use, no AWS call yet); None for any other account."""
        member = self._accounts.get(account)
        if member is None:
            return None
        with self._guard:
            found = self._clients.get(account)
            if found is None:
                found = self._clients[account] = self._create(self._session_of(account, member))
            return found

    def session(self, account: str) -> boto3.session.Session | None:
        """The boto3 session in a listed account (for clients AwsClients lacks, e.g. CloudTrail); else None.

        Its credentials are the ones `clients` uses: one AssumeRole per account serves both.
        """
        member = self._accounts.get(account)
        if member is None:
            return None
        with self._guard:
            return self._session_of(account, member)

    def iam_in(self, account: str) -> Any:
        """IAM in a listed account, or None: the seam RoleGranter acts on a role's account through."""
        found = self.clients(account)
        return found.iam if found is not None else None

    def role_arn(self, account: str) -> str:
        """The role the bot assumes in a listed account."""
        return self._accounts[account].role_arn

    def caller(self, account: str) -> tuple[str, str]:
        """(account, ARN) the bot acts as in a listed account, assuming the role now if not yet; AwsError if not."""
        found = self.clients(account)
        assert found is not None, account
        with aws_call("sts:GetCallerIdentity"):
            identity = found.sts.get_caller_identity()
        return str(identity["Account"]), str(identity["Arn"])

    def _session_of(self, account: str, member: MemberAccount) -> boto3.session.Session:
        """The account's session (made once; the caller holds the guard)."""
        found = self._sessions.get(account)
        if found is None:
            found = self._sessions[account] = self._session(account, member)
        return found

    def _session(self, account: str, member: MemberAccount) -> boto3.session.Session:
        """A boto3 session whose credentials are the role assumed in `account`, refreshed before they expire."""

        def assume() -> dict[str, Any]:
            extra = {"ExternalId": member.external_id} if member.external_id else {}
            with aws_call(f"sts:AssumeRole into account {account}"):
                answer = self._home.sts.assume_role(
                    RoleArn=member.role_arn,
                    RoleSessionName=SESSION_NAME,
                    DurationSeconds=SESSION_SECONDS,
                    **extra,
                )
            credentials = answer["Credentials"]
            return {
                "access_key": credentials["AccessKeyId"],
                "secret_key": credentials["SecretAccessKey"],
                "token": credentials["SessionToken"],
                "expiry_time": credentials["Expiration"].isoformat(),
            }

        refreshable = DeferredRefreshableCredentials(assume, "accessbot-assume-role", time_fetcher=self._clock)
        core = botocore_session()
        # First in the chain, so that no key in the environment or a profile is used instead.
        core.get_component("credential_provider").insert_before("env", _Fixed(refreshable))
        region = self._home.sts.meta.region_name
        return boto3.session.Session(botocore_session=core, region_name=region)


class _Fixed(CredentialProvider):  # type: ignore[misc]
    """A credential provider that always answers the same (self-refreshing) credentials."""

    METHOD = "accessbot-assume-role"
    CANONICAL_NAME = "accessbot-assume-role"

    def __init__(self, credentials: DeferredRefreshableCredentials) -> None:
        super().__init__()
        self._credentials = credentials

    def load(self) -> DeferredRefreshableCredentials:
        return self._credentials


class KmsByKey:
    """A KMS client that sends each call to the account its KeyId names, when that account is listed.

    KMS reaches a key in another account only by its key ARN ("To specify a KMS key in a different AWS
    account, you must use the key ARN": KMS API Reference, "CreateGrant" and "ListGrants", KeyId;
    https://docs.aws.amazon.com/kms/latest/APIReference/API_CreateGrant.html), and then only where that key's
    policy trusts the bot's account. A key of a listed account is instead reached as the role assumed there,
    by the same ARN, so its key policy need not name the bot's account. A call without a KeyId (ListKeys), or
    with a key ID or alias that names no account, stays in the bot's own account.
    """

    @property
    def meta(self) -> Any:
        """The bot's own KMS client's meta (events, region): what a caller registering hooks means."""
        return self._home.meta

    def __init__(self, home: Any, accounts: MemberAccounts) -> None:
        self._home = home
        self._accounts = accounts

    def for_key(self, key_id: object) -> Any:
        """The KMS client for a KeyId."""
        found = self._accounts.clients(account_of(key_id)) if isinstance(key_id, str) else None
        return found.kms if found is not None else self._home

    def get_paginator(self, name: str) -> _Paginator:
        """A paginator whose paginate() is sent where its KeyId points."""
        return _Paginator(self, name)

    def __getattr__(self, name: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            return getattr(self.for_key(kwargs.get("KeyId")), name)(*args, **kwargs)

        return call


class _Paginator:
    def __init__(self, kms: KmsByKey, name: str) -> None:
        self._kms = kms
        self._name = name

    def paginate(self, **kwargs: Any) -> Any:
        return self._kms.for_key(kwargs.get("KeyId")).get_paginator(self._name).paginate(**kwargs)
