"""IAM Identity Center: which instance and identity store the bot acts on, and its users by email or name."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from bot.aws.errors import AwsError, aws_call
from bot.catalog import IdentityCenter

USER_CACHE_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class Instance:
    """An Identity Center instance and the identity store its users and groups live in."""

    arn: str
    identity_store_id: str


@dataclass(frozen=True, slots=True)
class StoreUser:
    """An Identity Store user: its UserName (shown to people) and its UserId (what assignments name)."""

    name: str
    user_id: str


class Center:
    """The catalog's `identity_center` block, or the one instance `sso-admin:ListInstances` finds (looked up once)."""

    def __init__(self, sso_admin: Any, configured: IdentityCenter | None) -> None:
        self.sso_admin = sso_admin
        self._found = Instance(configured.instance_arn, configured.identity_store_id) if configured else None
        self._lock = threading.Lock()

    def instance(self) -> Instance:
        """The instance; an AwsError that says what to set when there is none, or more than one."""
        with self._lock:
            if self._found is None:
                self._found = discover(self.sso_admin)
            return self._found


def discover(sso_admin: Any) -> Instance:
    """The one Identity Center instance this account sees (sso-admin:ListInstances)."""
    with aws_call("sso:ListInstances"):
        pages = sso_admin.get_paginator("list_instances").paginate()
        instances = [i for page in pages for i in page["Instances"]]
    if len(instances) != 1:
        found = "no IAM Identity Center instance" if not instances else f"{len(instances)} Identity Center instances"
        raise AwsError(
            f"sso-admin ListInstances found {found}; set identity_center.instance_arn and "
            "identity_center.identity_store_id in the catalog",
            operation="sso:ListInstances",
            code="NoInstance",
        )
    return Instance(str(instances[0]["InstanceArn"]), str(instances[0]["IdentityStoreId"]))


class StoreUsers:
    """Identity Store users by email (emails.value, else UserName), remembered for a minute; a miss never."""

    def __init__(self, identitystore: Any, center: Center, *, cache_seconds: float = USER_CACHE_SECONDS) -> None:
        self._store = identitystore
        self._center = center
        self._cache_seconds = cache_seconds
        self._known: dict[tuple[str, str], tuple[float, StoreUser]] = {}
        self._lock = threading.Lock()

    def by_email(self, email: str) -> StoreUser | None:
        """The user whose email equals `email`, else whose UserName does; None when neither exists."""
        return self._cached(("email", email.lower()), lambda: self._find(email))

    def by_name(self, name: str) -> StoreUser | None:
        """The user with this UserName, or None."""
        return self._cached(("name", name), lambda: self._lookup("userName", name))

    def _cached(self, key: tuple[str, str], find: Any) -> StoreUser | None:
        with self._lock:
            until, known = self._known.get(key, (float("-inf"), None))
        if known is not None and until > time.monotonic():
            return known
        found: StoreUser | None = find()
        with self._lock:
            if found is None:
                self._known.pop(key, None)
            else:
                self._known[key] = (time.monotonic() + self._cache_seconds, found)
        return found

    def _find(self, email: str) -> StoreUser | None:
        return self._lookup("emails.value", email) or self._lookup("userName", email)

    def _lookup(self, path: str, value: str) -> StoreUser | None:
        store_id = self._center.instance().identity_store_id
        try:
            with aws_call("identitystore:GetUserId"):
                user_id = str(
                    self._store.get_user_id(
                        IdentityStoreId=store_id,
                        AlternateIdentifier={"UniqueAttribute": {"AttributePath": path, "AttributeValue": value}},
                    )["UserId"]
                )
            with aws_call("identitystore:DescribeUser"):
                name = str(self._store.describe_user(IdentityStoreId=store_id, UserId=user_id)["UserName"])
        except AwsError as exc:
            if exc.gone:
                return None
            raise
        return StoreUser(name=name, user_id=user_id)
