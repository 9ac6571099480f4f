"""Slack user -> IAM user: the static map first, then the catalog's strategy."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bot.aws.errors import AwsError, aws_call
from bot.catalog import Identity, Strategy
from bot.errors import UserError

TAG_CACHE_SECONDS = 300.0
MISS_RELOAD_SECONDS = 10.0


@dataclass(frozen=True)
class IamUser:
    """An IAM user as the bot needs it."""

    name: str
    arn: str


class IdentityResolver:
    """Finds the IAM user behind a Slack user; `email_of` asks Slack for the profile email."""

    def __init__(self, identity: Identity, iam: Any, email_of: Callable[[str], str | None]) -> None:
        self._identity = identity
        self._iam = iam
        self._email_of = email_of
        self._tags: dict[str, str] = {}
        self._tags_loaded_at = float("-inf")
        self._lock = threading.Lock()

    def resolve(self, slack_user: str) -> IamUser:
        """The requester's IAM user, or a UserError that says what to fix."""
        mapped = self._identity.static.get(slack_user)
        if mapped:
            return self._user(mapped, how="the catalog's identity.static map")
        if self._identity.strategy is Strategy.STATIC:
            raise UserError("You have no IAM user mapped in the catalog (identity.static); ask an admin to add you.")
        email = self._email_of(slack_user)
        if not email:
            raise UserError("Your Slack profile has no email address, so no IAM user can be found for you.")
        if self._identity.strategy is Strategy.IAM_USERNAME:
            return self._user(email.split("@", 1)[0], how=f"your email {email}")
        name = self._tagged(email.lower())
        if name is None:
            raise UserError(
                f"No IAM user has the tag {self._identity.tag_key}={email}; ask an admin to tag your IAM user."
            )
        return self._user(name, how=f"the tag {self._identity.tag_key}={email}")

    def _user(self, name: str, *, how: str) -> IamUser:
        try:
            with aws_call("iam:GetUser"):
                user = self._iam.get_user(UserName=name)["User"]
        except AwsError as exc:
            if exc.gone:
                raise UserError(f"The IAM user '{name}' (found through {how}) does not exist.") from None
            raise
        return IamUser(name=str(user["UserName"]), arn=str(user["Arn"]))

    def _tagged(self, email: str) -> str | None:
        with self._lock:
            age = time.monotonic() - self._tags_loaded_at
            # Reload when stale, or when the email is unknown and the list is not brand new (a new tag).
            if age > TAG_CACHE_SECONDS or (email not in self._tags and age > MISS_RELOAD_SECONDS):
                self._tags = self._load_tags()
                self._tags_loaded_at = time.monotonic()
            return self._tags.get(email)

    def _load_tags(self) -> dict[str, str]:
        found: dict[str, str] = {}
        with aws_call("iam:ListUsers"):
            for page in self._iam.get_paginator("list_users").paginate():
                for user in page["Users"]:
                    tags = user.get("Tags")
                    if tags is None:
                        tags = self._iam.list_user_tags(UserName=user["UserName"])["Tags"]
                    for tag in tags:
                        if tag["Key"] == self._identity.tag_key:
                            found[str(tag["Value"]).lower()] = str(user["UserName"])
        return found

    def has_mfa(self, user: IamUser) -> bool:
        """Whether the IAM user has at least one MFA device."""
        with aws_call("iam:ListMFADevices"):
            return bool(self._iam.list_mfa_devices(UserName=user.name)["MFADevices"])
