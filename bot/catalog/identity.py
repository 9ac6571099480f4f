"""The catalog's account settings: how Slack users map to AWS identities, Identity Center, member accounts."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

SlackUserId = Annotated[str, Field(pattern=r"^[UW][A-Z0-9]{2,}$")]


class Strategy(StrEnum):
    """How a Slack user becomes an IAM user."""

    EMAIL_TAG = "email_tag"
    IAM_USERNAME = "iam_username"
    STATIC = "static"


class Identity(BaseModel):
    """How a Slack user is mapped to an IAM user."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    strategy: Strategy = Strategy.EMAIL_TAG
    tag_key: str = Field(default="email", min_length=1, max_length=128)
    # An IAM user name, or (for the Identity Center kinds) an Identity Store UserName, which may be longer.
    static: dict[SlackUserId, Annotated[str, Field(pattern=r"^[A-Za-z0-9_+=,.@-]{1,128}$")]] = Field(
        default_factory=dict
    )


class IdentityCenter(BaseModel):
    """`identity_center`: the IAM Identity Center instance and its identity store (else ListInstances)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    instance_arn: str = Field(pattern=r"^arn:aws[a-z-]*:sso:::instance/(sso)?ins-[a-zA-Z0-9-.]{16}$")
    identity_store_id: str = Field(
        pattern=r"^(d-[0-9a-z]{10}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$"
    )


class MemberAccount(BaseModel):
    """`accounts.<id>`: the role the bot assumes in another account, to act on targets there."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    role_arn: str = Field(pattern=r"^arn:aws[a-z-]*:iam::\d{12}:role/[A-Za-z0-9_+=,.@/-]{1,512}$")
    # sts:AssumeRole's ExternalId: 2-1224 characters of [\w+=,.@:/-] (STS API Reference, "AssumeRole").
    external_id: str | None = Field(default=None, min_length=2, max_length=1224, pattern=r"^[\w+=,.@:/-]+$")
