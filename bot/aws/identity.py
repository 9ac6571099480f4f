"""Slack user -> IAM user: the static map first, then the catalog's strategy.

No request lists IAM users: `email_tag` answers from an email -> IAM user index read in the background
(bot/aws/email_index.py), and users looked up by name (GetUser) are remembered for a minute.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bot.aws.email_index import EmailIndex, IndexTiming, IndexUnavailable
from bot.aws.errors import AwsError, aws_call
from bot.aws.identity_center import StoreUsers
from bot.catalog import Identity, Kind, Strategy
from bot.errors import UserError

log = logging.getLogger(__name__)
USER_CACHE_SECONDS = 60.0
DENIED_CODES = frozenset({"AccessDenied", "AccessDeniedException"})
Tagged = tuple[Mapping[str, Any], Iterable[Mapping[str, Any]]]  # an IAM user as AWS lists it, and its tags


@dataclass(frozen=True, slots=True)
class IamUser:
    """The requester as AWS knows them: an IAM user (name, ARN), or for the Identity Center kinds an Identity
    Store user (UserName, UserId) -- the principal a grant names either way."""

    name: str
    arn: str


AMBIGUOUS = IamUser(name="", arn="")  # the index's answer for an email several IAM users are tagged with


class IdentityResolver:
    """Finds the IAM user behind a Slack user; `email_of` asks Slack for the profile email."""

    def __init__(
        self,
        identity: Identity,
        iam: Any,
        email_of: Callable[[str], str | None],
        *,
        timing: IndexTiming | None = None,
        cache_seconds: float = USER_CACHE_SECONDS,
        store_users: StoreUsers | None = None,
    ) -> None:
        self._identity = identity
        self._store_users = store_users
        self._iam = iam
        self._email_of = email_of
        self._cache_seconds = cache_seconds
        self._known: dict[str, tuple[float, IamUser]] = {}  # IAM user name -> (valid until, user)
        self._mfa_until: dict[str, float] = {}  # IAM user name -> until when "has an MFA device" holds
        self._lock = threading.Lock()
        self.index: EmailIndex[IamUser] | None = None
        if identity.strategy is Strategy.EMAIL_TAG:
            self.index = EmailIndex(lambda: read_email_index(iam, identity.tag_key), timing=timing)

    def start(self) -> None:
        """Start reading the email index in the background (the first lookup starts it otherwise)."""
        if self.index is not None:
            self.index.start()

    def stop(self) -> None:
        """Stop the background reads."""
        if self.index is not None:
            self.index.stop()

    def resolve(self, slack_user: str, kind: Kind | None = None) -> IamUser:
        """The requester's IAM user (or, for an Identity Center kind, Identity Store user), or a UserError."""
        if kind is not None and kind.identity_center:
            return self._store_user(slack_user)
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
        return self._tagged(email)

    def _store_user(self, slack_user: str) -> IamUser:
        """The Identity Store user: identity.static's name, else the one with the Slack email."""
        if self._store_users is None:
            raise UserError("IAM Identity Center is not set up for this bot; ask an admin.")
        mapped = self._identity.static.get(slack_user)
        if mapped:
            found = self._store_users.by_name(mapped)
            if found is None:
                raise UserError(
                    f"The Identity Center user '{mapped}' (from the catalog's identity.static map) does not exist "
                    "in the identity store; ask an admin to fix the map."
                )
            return IamUser(name=found.name, arn=found.user_id)
        email = self._email_of(slack_user)
        if not email:
            raise UserError("Your Slack profile has no email address, so no Identity Center user can be found for you.")
        found = self._store_users.by_email(email)
        if found is None:
            raise UserError(
                f"No IAM Identity Center user has the email or user name {email}, so the bot cannot give you "
                "Identity Center access; ask an admin to add you to the identity store (or to identity.static)."
            )
        return IamUser(name=found.name, arn=found.user_id)

    def has_mfa(self, user: IamUser) -> bool:
        """Whether the IAM user has at least one MFA device (a yes is remembered briefly; a no never)."""
        with self._lock:
            until = self._mfa_until.get(user.name, float("-inf"))
        if until > time.monotonic():
            return True
        with aws_call("iam:ListMFADevices"):
            found = bool(self._iam.list_mfa_devices(UserName=user.name)["MFADevices"])
        if found:
            # Safe to trust for a minute: the role grant itself requires MFA in AWS where the resource does.
            with self._lock:
                self._mfa_until[user.name] = time.monotonic() + self._cache_seconds
        return found

    def _user(self, name: str, *, how: str) -> IamUser:
        with self._lock:
            until, known = self._known.get(name, (float("-inf"), None))
        if known is not None and until > time.monotonic():
            return known
        try:
            with aws_call("iam:GetUser"):
                found = self._iam.get_user(UserName=name)["User"]
        except AwsError as exc:
            if exc.gone:
                with self._lock:
                    self._known.pop(name, None)
                raise UserError(f"The IAM user '{name}' (found through {how}) does not exist.") from None
            raise
        user = IamUser(name=str(found["UserName"]), arn=str(found["Arn"]))
        with self._lock:
            self._known[name] = (time.monotonic() + self._cache_seconds, user)
        return user

    def _tagged(self, email: str) -> IamUser:
        assert self.index is not None
        tag = f"{self._identity.tag_key}={email}"
        try:
            user = self.index.get(email.lower())
        except IndexUnavailable as exc:
            if not str(exc):
                raise UserError(
                    f"The bot is still reading the list of IAM users to find the one tagged {tag}; "
                    "try again in a few seconds."
                ) from None
            raise UserError(
                f"The bot could not read the list of IAM users, so it cannot find the one tagged {tag} ({exc}). "
                "Try again in a minute; if this persists, tell an admin."
            ) from None
        if user is None:
            raise UserError(f"No IAM user has the tag {tag}; ask an admin to tag your IAM user.")
        if user is AMBIGUOUS:
            raise UserError(f"More than one IAM user has the tag {tag}; ask an admin to keep it on yours only.")
        return user


def read_email_index(iam: Any, tag_key: str) -> dict[str, IamUser]:
    """Email (lower case) -> IAM user, from one paginated GetAccountAuthorizationDetails (users with their tags).

    A bot whose policy predates that permission falls back to ListUsers plus ListUserTags for each user.
    """
    try:
        with aws_call("iam:GetAccountAuthorizationDetails"):
            pages = iam.get_paginator("get_account_authorization_details").paginate(Filter=["User"])
            return _by_email(((u, u.get("Tags") or []) for page in pages for u in page["UserDetailList"]), tag_key)
    except AwsError as exc:
        if exc.code not in DENIED_CODES:
            raise
        log.warning(
            "iam:GetAccountAuthorizationDetails is not allowed, so the email index is read with ListUsers and one "
            "ListUserTags per user (slow with many users); allow it as docs/iam-policy.json does"
        )
    with aws_call("iam:ListUsers"):
        users = [u for page in iam.get_paginator("list_users").paginate() for u in page["Users"]]
    return _by_email(((u, _tags(iam, str(u["UserName"]))) for u in users), tag_key)


def _tags(iam: Any, name: str) -> list[Mapping[str, Any]]:
    """A user's tags; none for a user deleted since it was listed."""
    try:
        with aws_call("iam:ListUserTags"):
            return list(iam.list_user_tags(UserName=name)["Tags"])
    except AwsError as exc:
        if exc.gone:
            return []
        raise


def _by_email(users: Iterable[Tagged], tag_key: str) -> dict[str, IamUser]:
    found: dict[str, IamUser] = {}
    for user, tags in users:
        for tag in tags:
            if tag["Key"] == tag_key:
                email, named = str(tag["Value"]).lower(), IamUser(name=str(user["UserName"]), arn=str(user["Arn"]))
                # Two users tagged with one email: neither is picked (anyone who may tag a user could claim it).
                found[email] = AMBIGUOUS if email in found and found[email] != named else named
    return found
