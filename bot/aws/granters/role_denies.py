"""The session denies on a role, pure: one statement per person, merged, and packed into the role's documents.

A role carries at most one deny statement per person, whatever the number of ends: a later cutoff replaces
an earlier one (it covers every session the earlier one did). The statements live in one inline policy of
the role first, then in the bot's own managed policies attached to it; a statement never moves between
documents once written, so an update never leaves a moment without it.

Figures, from AWS's "IAM and AWS STS quotas" page (IAM User Guide, IAM and AWS STS quotas): a role's inline
policies share 10,240 characters; a managed policy holds 6,144; IAM does not count white space.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.aws.granters.base import PREFIX, iso

INLINE_NAME = f"{PREFIX}ended-sessions"
SID_PREFIX = "AccessbotEnd"
INLINE_LIMIT = 10_240
MANAGED_LIMIT = 6_144
# Console sessions made through the federation sign-in endpoint last up to 43,200 s whatever the role allows
# (IAM User Guide, "Enable custom identity broker access to the AWS console": SessionDuration up to 43,200),
# and a role's MaxSessionDuration is at most 43,200 s (IAM API Reference, CreateRole/UpdateRole:
# MaxSessionDuration, valid range 3,600-43,200). So no session a cutoff covers is alive 12 hours after it.
LIFT_AFTER = timedelta(seconds=43_200)
_EMPTY = {"Version": "2012-10-17", "Statement": []}

# One document's statements: person -> cutoff. A role's layout: the inline document first, then each managed one.
Slot = dict[str, datetime]
Layout = list[Slot]


def sid_of(iam_user: str) -> str:
    """The statement ID of a person's deny: alphanumeric, as IAM requires, and one per person."""
    return SID_PREFIX + iam_user.encode().hex()


def deny_statement(iam_user: str, cutoff: datetime) -> dict[str, Any]:
    """Deny everything to the person's sessions issued before the cutoff (aws:SourceIdentity carries who)."""
    return {
        "Sid": sid_of(iam_user),
        "Effect": "Deny",
        "Action": "*",
        "Resource": "*",
        "Condition": {
            "StringEquals": {"aws:SourceIdentity": iam_user},
            "DateLessThan": {"aws:TokenIssueTime": iso(cutoff)},
        },
    }


def session_deny(iam_user: str, cutoff: datetime) -> dict[str, Any]:
    """A complete policy document whose one statement denies the person's sessions issued before the cutoff."""
    return {"Version": "2012-10-17", "Statement": [deny_statement(iam_user, cutoff)]}


def document(slot: Mapping[str, datetime]) -> dict[str, Any]:
    """The policy document of one slot: its statements in a stable order (by person)."""
    return {**_EMPTY, "Statement": [deny_statement(user, slot[user]) for user in sorted(slot)]}


def compact(policy: Mapping[str, Any]) -> str:
    """A document as the bot sends it: no white space."""
    return json.dumps(policy, separators=(",", ":"))


def size(policy: Mapping[str, Any] | str) -> int:
    """A document's size as IAM counts it against its quotas: characters other than white space."""
    text = policy if isinstance(policy, str) else compact(policy)
    return sum(not c.isspace() for c in text)


def slot_size(slot: Mapping[str, datetime]) -> int:
    """The size of a slot's document."""
    return size(document(slot))


def parse(policy: Mapping[str, Any]) -> Slot:
    """The bot's deny statements in a document: person -> cutoff (other statements are not the bot's)."""
    found: Slot = {}
    statements = policy.get("Statement") or []
    for statement in [statements] if isinstance(statements, dict) else statements:
        if not str(statement.get("Sid", "")).startswith(SID_PREFIX):
            continue
        condition = statement.get("Condition") or {}
        user = (condition.get("StringEquals") or {}).get("aws:SourceIdentity")
        before = (condition.get("DateLessThan") or {}).get("aws:TokenIssueTime")
        if isinstance(user, str) and isinstance(before, str):
            cutoff = datetime.strptime(before, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
            found[user] = max(cutoff, found.get(user, cutoff))
    return found


def where(layout: Sequence[Mapping[str, datetime]], iam_user: str) -> int | None:
    """The slot that holds the person's statement, if any."""
    return next((i for i, slot in enumerate(layout) if iam_user in slot), None)


def pruned(layout: Sequence[Mapping[str, datetime]], now: datetime) -> Layout:
    """The layout without statements no live session can need any more (cutoff + 12 hours passed)."""
    return [{u: c for u, c in slot.items() if c + LIFT_AFTER > now} for slot in layout]


def merged(layout: Sequence[Mapping[str, datetime]], iam_user: str, cutoff: datetime, *, inline_room: int) -> Layout:
    """The layout with the person denied up to `cutoff` at least: in place, else the first document with room.

    `inline_room` is what the role's other inline policies leave of the 10,240 characters. A new managed
    slot is appended when no document has room (the caller creates and attaches it, or says the role is full).
    """
    out = [dict(slot) for slot in layout] or [{}]
    found = where(out, iam_user)
    if found is not None:
        out[found][iam_user] = max(out[found][iam_user], cutoff)
        return out
    for index, slot in enumerate(out):
        limit = inline_room if index == 0 else MANAGED_LIMIT
        if slot_size({**slot, iam_user: cutoff}) <= limit:
            slot[iam_user] = cutoff
            return out
    out.append({iam_user: cutoff})
    return out


def without(layout: Sequence[Mapping[str, datetime]], iam_user: str, up_to: datetime | None) -> Layout:
    """The layout without the person's statement, if its cutoff is not later than `up_to` (None: whatever it is)."""
    out = [dict(slot) for slot in layout]
    found = where(out, iam_user)
    if found is not None and (up_to is None or out[found][iam_user] <= up_to):
        del out[found][iam_user]
    return out


def capacity(name_length: int, inline_room: int = INLINE_LIMIT, managed: int = 10) -> tuple[int, int]:
    """How many people a role can hold denies for, with user names of this length: inline only, and with
    `managed` policies of the bot attached (for docs/security.md and the alert)."""
    one = size(deny_statement("x" * name_length, datetime(2026, 1, 1, tzinfo=UTC))) + 1  # the comma
    fixed = size(_EMPTY)
    inline = max(0, (inline_room - fixed + 1) // one)
    return inline, inline + managed * ((MANAGED_LIMIT - fixed + 1) // one)
