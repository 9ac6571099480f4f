"""Where a role's session denies live in AWS: its inline policy, then the bot's managed policies; read and written.

Callers hold the role's lock (one writer per role across threads and replicas) around a read and its write.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from bot.aws.errors import AwsError, aws_call
from bot.aws.granters.base import account_of
from bot.aws.granters.role_denies import (
    INLINE_LIMIT,
    INLINE_NAME,
    MANAGED_LIMIT,
    Layout,
    capacity,
    compact,
    document,
    parse,
    size,
    slot_size,
)

PATH = "/accessbot/"
CAPACITY_CODE = "SessionDenyCapacity"


@dataclass
class Found:
    """A role's denies as read: the layout, and what the writes need to know (where each slot lives)."""

    role: str
    role_arn: str
    layout: Layout
    inline_room: int
    managed: list[str] = field(default_factory=list)  # the ARN of each managed slot, in layout order (from 1)


def managed_arn(role_arn: str, role: str, number: int) -> str:
    """The ARN of the bot's `number`th managed deny policy for a role."""
    return f"arn:aws:iam::{account_of(role_arn)}:policy{PATH}{INLINE_NAME}-{role}-{number}"


def _document(raw: str | dict[str, Any]) -> dict[str, Any]:
    """A policy document as IAM returns it (URL-encoded JSON; boto3 may have parsed it already)."""
    return dict(json.loads(unquote(raw))) if isinstance(raw, str) else dict(raw)


def read(iam: Any, role: str, role_arn: str) -> Found:
    """The role's denies, and the room its other inline policies leave (NoSuchEntity when the role is gone)."""
    with aws_call("iam:ListRolePolicies"):
        pages = iam.get_paginator("list_role_policies").paginate(RoleName=role)
        names = [name for page in pages for name in page["PolicyNames"]]
    inline: dict[str, Any] = {}
    others = 0
    for name in names:
        with aws_call("iam:GetRolePolicy"):
            raw = iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
        if name == INLINE_NAME:
            inline = _document(raw)
        else:
            others += size(_document(raw))
    found = Found(role, role_arn, [parse(inline)], INLINE_LIMIT - others)
    with aws_call("iam:ListAttachedRolePolicies"):
        attached = iam.list_attached_role_policies(RoleName=role, PathPrefix=PATH)["AttachedPolicies"]
    mine = {p["PolicyArn"] for p in attached}
    number = 1
    while (arn := managed_arn(role_arn, role, number)) in mine:
        found.managed.append(arn)
        found.layout.append(parse(_default_document(iam, arn)))
        number += 1
    return found


def _default_document(iam: Any, arn: str) -> dict[str, Any]:
    with aws_call("iam:GetPolicy"):
        version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
    with aws_call("iam:GetPolicyVersion"):
        return _document(iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]["Document"])


def write(iam: Any, found: Found, layout: Layout) -> None:
    """Write every slot that changed; a new slot is a new managed policy, attached to the role."""
    for index, slot in enumerate(layout):
        if index < len(found.layout) and slot == found.layout[index]:
            continue
        if index == 0:
            _write_inline(iam, found, layout)
        elif index <= len(found.managed):
            _write_managed(iam, found.role, found.managed[index - 1], compact(document(slot)) if slot else None)
        elif slot:
            _add_managed(iam, found, index, compact(document(slot)))


def _write_inline(iam: Any, found: Found, layout: Layout) -> None:
    slot = layout[0]
    try:
        if not slot:
            with aws_call("iam:DeleteRolePolicy"):
                iam.delete_role_policy(RoleName=found.role, PolicyName=INLINE_NAME)
            return
        with aws_call("iam:PutRolePolicy"):
            iam.put_role_policy(RoleName=found.role, PolicyName=INLINE_NAME, PolicyDocument=compact(document(slot)))
    except AwsError as exc:
        if not (exc.gone and not slot):
            raise


def _write_managed(iam: Any, role: str, arn: str, text: str | None) -> None:
    """Update a managed deny in place (a new default version), or remove it once it holds nobody."""
    with aws_call("iam:ListPolicyVersions"):
        versions = iam.list_policy_versions(PolicyArn=arn)["Versions"]
    empty = text is None
    old = sorted((v for v in versions if not v["IsDefaultVersion"]), key=lambda v: v["CreateDate"])
    if empty:
        with aws_call("iam:DetachRolePolicy"):
            iam.detach_role_policy(RoleName=role, PolicyArn=arn)
    # A managed policy keeps at most 5 versions (IAM User Guide, "Versioning IAM policies"): the oldest
    # non-default one goes first. DeletePolicy also needs every non-default version deleted first.
    for version in old if empty else old[: max(0, len(versions) - 4)]:
        with aws_call("iam:DeletePolicyVersion"):
            iam.delete_policy_version(PolicyArn=arn, VersionId=version["VersionId"])
    if text is None:
        with aws_call("iam:DeletePolicy"):
            iam.delete_policy(PolicyArn=arn)
        return
    with aws_call("iam:CreatePolicyVersion"):
        iam.create_policy_version(PolicyArn=arn, PolicyDocument=text, SetAsDefault=True)


def _add_managed(iam: Any, found: Found, number: int, text: str) -> None:
    """A new managed deny for the role; AWS refusing one more attachment is the role being full."""
    arn = managed_arn(found.role_arn, found.role, number)
    try:
        with aws_call("iam:CreatePolicy"):
            iam.create_policy(PolicyName=arn.rsplit("/", 1)[1], Path=PATH, PolicyDocument=text)
    except AwsError as exc:
        if exc.code != "EntityAlreadyExists":
            raise
        _write_managed(iam, found.role, arn, text)  # left unattached by an earlier refusal: bring it up to date
    try:
        with aws_call("iam:AttachRolePolicy"):
            iam.attach_role_policy(RoleName=found.role, PolicyArn=arn)
    except AwsError as exc:
        if exc.code not in ("LimitExceeded", "LimitExceededException"):
            raise
        raise full(found, len(found.managed)) from exc


def full(found: Found, managed: int) -> AwsError:
    """The role can hold no more denies: what to tell people (the role, the figures, the fix)."""
    people = sum(len(slot) for slot in found.layout)
    inline, total = capacity(12, found.inline_room, managed)
    return AwsError(
        f"the role {found.role_arn} has no room for one more session deny: it holds denies for {people} people "
        f"in its inline policy ({slot_size(found.layout[0])} of the {found.inline_room} characters its other "
        f"inline policies leave of 10,240) and {managed} managed policies of {MANAGED_LIMIT:,} characters, and "
        f"AWS refused to attach another (about {inline} people fit inline, {total} with {managed} managed "
        "policies, for 12-character user names). The person's role access was removed, but sessions they "
        "already hold may keep working. Fix: raise the role's quota of attached managed policies "
        "(Service Quotas, IAM 'Managed policies per role', up to 20) or detach other managed policies from "
        "the role, or shrink its own inline policies; the bot retries.",
        operation="iam:AttachRolePolicy",
        code=CAPACITY_CODE,
    )
