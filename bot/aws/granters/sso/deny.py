"""The session deny in a permission set's inline policy: pure text edits that keep every byte not the bot's.

AWS documents this deny as the way to cut a user's open permission-set sessions: a Deny of everything when
`identitystore:userId` is theirs, in the permission set's inline policy (IAM Identity Center User Guide,
"Revoke active IAM role sessions created by permission sets",
https://docs.aws.amazon.com/singlesignon/latest/userguide/useraccess.html#revoke-user-permissions). The bot
scopes it in time with `aws:TokenIssueTime` (as IAM's "Revoke IAM role temporary security credentials"
does, https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_use_revoke-sessions.html), so that later
grants work, and to the ended grant's accounts with `aws:PrincipalAccount`.

The inline policy is the administrator's too (often Terraform's): the bot adds and removes only statements
whose Sid starts with SID_PREFIX, splicing text so that every other byte stays as it was.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.aws.granters.base import iso

SID_PREFIX = "AccessbotEnd"
# A permission set's policies become an IAM role's in each account, and a role's inline policies may hold
# 10,240 characters in all, white space not counted (IAM User Guide, "IAM and AWS STS quotas",
# https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html).
INLINE_QUOTA = 10_240
EMPTY = '{"Version":"2012-10-17","Statement":[]}'


@dataclass(frozen=True)
class Deny:
    """One end's deny: the person's sessions issued before `cutoff` in `accounts` are refused everything."""

    sid: str
    user_id: str
    accounts: tuple[str, ...]
    cutoff: datetime

    def statement(self) -> dict[str, Any]:
        """The policy statement, as AWS reads it."""
        return {
            "Sid": self.sid,
            "Effect": "Deny",
            "Action": "*",
            "Resource": "*",
            "Condition": {
                "StringEquals": {"identitystore:userId": self.user_id, "aws:PrincipalAccount": list(self.accounts)},
                "DateLessThan": {"aws:TokenIssueTime": iso(self.cutoff)},
            },
        }

    def text(self) -> str:
        """The statement as the bot writes it (compact, keys in a fixed order)."""
        return json.dumps(self.statement(), separators=(",", ":"))


def sid_of(request_id: int) -> str:
    """The Sid of request `request_id`'s deny (Sids are alphanumeric)."""
    return f"{SID_PREFIX}{request_id}"


def ours(policy: str) -> list[dict[str, Any]]:
    """The bot's statements in an inline policy (any Sid with the bot's prefix)."""
    return [s for _start, _end, s in _elements(policy) if _is_ours(s)]


def with_deny(policy: str, deny: Deny) -> str:
    """The policy with `deny` in it, replacing a statement of the same Sid; every other byte kept."""
    text = without(policy, [deny.sid]) if policy.strip() else EMPTY
    elements = _elements(text)
    start, close = _statement_span(text)
    if text[start] != "[":  # a lone statement object: made a list of two, its own bytes kept
        return text[:start] + "[" + text[start:close] + "," + deny.text() + "]" + text[close:]
    if elements:
        at = elements[-1][1]
        return text[:at] + "," + deny.text() + text[at:]
    at = text.rindex("]", 0, close)
    return text[:at] + deny.text() + text[at:]


def without(policy: str, sids: Iterable[str]) -> str:
    """The policy without the bot's statements of these Sids, every other byte kept ('' when it would be empty)."""
    gone = set(sids)
    text = policy
    while True:
        elements = _elements(text)
        index = next((i for i, (_s, _e, st) in enumerate(elements) if _is_ours(st) and st.get("Sid") in gone), None)
        if index is None:
            break
        start, end, _st = elements[index]
        if text[_statement_span(text)[0]] != "[":
            text = text[:start] + "[]" + text[end:]  # a lone statement of ours
        elif index > 0:
            text = text[: elements[index - 1][1]] + text[end:]  # with the comma before it
        elif len(elements) > 1:
            text = text[:start] + text[elements[1][0] :]  # with the comma after it
        else:
            text = text[:start] + text[end:]
    return "" if _compact(text) == _compact(EMPTY) else text


def accounts_of(statement: dict[str, Any]) -> list[str]:
    """The accounts a statement of the bot's names in aws:PrincipalAccount."""
    covered = statement.get("Condition", {}).get("StringEquals", {}).get("aws:PrincipalAccount", [])
    return [covered] if isinstance(covered, str) else [str(a) for a in covered]


def narrowed(policy: str, user_id: str, accounts: Iterable[str]) -> str:
    """The policy with the user's denies no longer covering `accounts` (a statement left with none is removed).

    A new grant of the same set in those accounts gives the person their access back, so their sessions
    from before the earlier end are as good as new ones; its own end will deny every session again.
    """
    granted = set(accounts)
    text = policy
    for statement in ours(policy):
        condition = statement.get("Condition", {})
        if condition.get("StringEquals", {}).get("identitystore:userId") != user_id:
            continue
        covered = accounts_of(statement)
        if not granted & set(covered):
            continue
        left = tuple(a for a in covered if a not in granted)
        if not left:
            text = without(text, [statement["Sid"]])
            continue
        cutoff = datetime.fromisoformat(str(condition["DateLessThan"]["aws:TokenIssueTime"]))
        text = with_deny(text, Deny(str(statement["Sid"]), user_id, left, cutoff))
    return text


def size(policy: str) -> int:
    """The policy's size as IAM counts it against the quota (white space outside strings not counted)."""
    return len(_compact(policy)) if policy.strip() else 0


def _compact(policy: str) -> str:
    return json.dumps(json.loads(policy), separators=(",", ":"))


def _is_ours(statement: Any) -> bool:
    return isinstance(statement, dict) and str(statement.get("Sid", "")).startswith(SID_PREFIX)


def _statement_span(text: str) -> tuple[int, int]:
    """Where the top-level Statement value starts and ends in the text (ValueError when there is none)."""
    decoder = json.JSONDecoder()
    at = _skip(text, 0)
    if text[at : at + 1] != "{":
        raise ValueError("an inline policy is a JSON object")
    at = _skip(text, at + 1)
    while text[at : at + 1] != "}":
        key, at = decoder.raw_decode(text, at)
        at = _skip(text, at)
        at = _skip(text, at + 1)  # the colon
        start = at
        _value, end = decoder.raw_decode(text, at)
        if key == "Statement":
            return start, end
        at = _skip(text, end)
        if text[at : at + 1] == ",":
            at = _skip(text, at + 1)
    raise ValueError("the inline policy has no Statement")


def _elements(text: str) -> Sequence[tuple[int, int, Any]]:
    """The statements of the policy with their spans; a lone statement object counts as a list of one."""
    if not text.strip():
        return []
    start, end = _statement_span(text)
    if text[start] != "[":
        return [(start, end, json.loads(text[start:end]))]
    decoder = json.JSONDecoder()
    found: list[tuple[int, int, Any]] = []
    at = _skip(text, start + 1)
    while text[at] != "]":
        value, stop = decoder.raw_decode(text, at)
        found.append((at, stop, value))
        at = _skip(text, stop)
        if text[at] == ",":
            at = _skip(text, at + 1)
    return found


def _skip(text: str, at: int) -> int:
    while at < len(text) and text[at] in " \t\r\n":
        at += 1
    return at
