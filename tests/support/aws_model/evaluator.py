"""IAM policy documents decided as AWS decides them, for the documents the bot writes and the tests' roles.

The rules, each from the IAM User Guide:
- "Policy evaluation logic" (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html):
  an explicit deny in any policy wins; otherwise an allow in any policy allows; otherwise the request is
  implicitly denied.
- "IAM JSON policy elements: Condition operators"
  (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html):
  "If the key that you specify in a policy condition is not present in the request context, the values do
  not match and the condition is false. If the policy condition requires that the key is not matched, such
  as StringNotLike or ArnNotLike, and the right key is not present, the condition is true. This logic
  applies to all condition operators except ...IfExists and Null check."
- "IAM JSON policy elements: Condition" (Multiple values in a condition): several keys or operators in one
  Condition are ANDed; several values for one key are ORed (for a negated operator: the key matches none).
  Condition key names are not case-sensitive (the Identity Center guide itself writes both
  `identitystore:userId` and `identitystore:UserId`); their values are, except under ...IgnoreCase.
- "IAM JSON policy elements: Action": action names are case-insensitive and take `*` and `?` wildcards.

- "IAM policy elements: Variables and tags"
  (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_variables.html): `${key}` in a
  condition value is replaced by the request context's value of that key (`${*}`, `${?}`, `${$}` stand for
  the characters themselves); a variable whose key is not in the request context matches nothing (the
  `sts:SourceIdentity` = `${aws:username}` trust condition: a role session has no `aws:username`).

Not modelled (the bot writes none of them): default values of policy variables, ForAllValues/ForAnyValue,
Numeric, IpAddress, Binary, NotResource, Principal (trust policies are read by `trust_allows`, not here).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from urllib.parse import unquote

Context = Mapping[str, str | list[str]]


class Decision(StrEnum):
    """The simulator's EvalDecision values (IAM API reference, "EvaluationResult")."""

    ALLOWED = "allowed"
    EXPLICIT_DENY = "explicitDeny"
    IMPLICIT_DENY = "implicitDeny"


class Unsupported(ValueError):
    """A policy uses an element or operator this model does not decide; refused rather than guessed."""


def document(policy: Mapping[str, Any] | str) -> dict[str, Any]:
    """A policy as a dict; IAM hands documents back as URL-encoded JSON text."""
    if isinstance(policy, str):
        text = policy if policy.lstrip().startswith("{") else unquote(policy)
        return dict(json.loads(text))
    return dict(policy)


def statements(policy: Mapping[str, Any] | str) -> list[dict[str, Any]]:
    """The statements of a policy document (a single statement may be written without a list)."""
    found = document(policy).get("Statement") or []
    return [found] if isinstance(found, dict) else list(found)


def evaluate(policies: Iterable[Mapping[str, Any] | str], action: str, resource: str, context: Context) -> Decision:
    """The decision of a set of identity policies for one request: deny wins, then allow, else implicit deny."""
    allowed = False
    for policy in policies:
        for statement in statements(policy):
            if not applies(statement, action, resource, context):
                continue
            if statement.get("Effect") == "Deny":
                return Decision.EXPLICIT_DENY
            allowed = allowed or statement.get("Effect") == "Allow"
    return Decision.ALLOWED if allowed else Decision.IMPLICIT_DENY


def applies(statement: Mapping[str, Any], action: str, resource: str, context: Context) -> bool:
    """Whether a statement's Action/NotAction, Resource and Condition all match the request."""
    if "NotResource" in statement:
        raise Unsupported("NotResource")
    if "Action" in statement:
        if not any(action_matches(p, action) for p in _list(statement["Action"])):
            return False
    elif "NotAction" in statement:
        if any(action_matches(p, action) for p in _list(statement["NotAction"])):
            return False
    else:
        raise Unsupported("a statement with neither Action nor NotAction")
    if not any(wildcard(p, resource) for p in _list(statement.get("Resource", "*"))):
        return False
    return conditions_hold(statement.get("Condition") or {}, context)


def action_matches(pattern: str, action: str) -> bool:
    """IAM action names match without regard to case; `*` and `?` are wildcards."""
    return wildcard(pattern, action, ignore_case=True)


def wildcard(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    """`*` matches any run of characters, `?` any one; everything else literally (no fnmatch brackets)."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.DOTALL | (re.IGNORECASE if ignore_case else 0)) is not None


def conditions_hold(condition: Mapping[str, Mapping[str, Any]], context: Context) -> bool:
    """Every operator and every key of a Condition block holds (AND); values of one key are ORed."""
    lowered = {k.lower(): v for k, v in context.items()}
    for operator, keys in condition.items():
        for key, wanted in keys.items():
            values = [v for v in (_substituted(str(w), lowered) for w in _list(wanted)) if v is not None]
            if not _holds(operator, lowered.get(key.lower()), values):
                return False
    return True


_VARIABLE = re.compile(r"\$\{([^}]*)\}")
_LITERAL = {"*": "*", "?": "?", "$": "$"}


def _substituted(value: str, context: Mapping[str, str | list[str]]) -> str | None:
    """A condition value with its policy variables replaced from the request context; None when one is missing."""
    missing = False

    def one(match: re.Match[str]) -> str:
        nonlocal missing
        name = match.group(1).strip()
        if name in _LITERAL:
            return _LITERAL[name]
        found = context.get(name.lower())
        if not isinstance(found, str):
            missing = True
            return ""
        return found

    replaced = _VARIABLE.sub(one, value)
    return None if missing else replaced


def _holds(operator: str, present: str | list[str] | None, wanted: list[Any]) -> bool:
    if operator.startswith(("ForAllValues:", "ForAnyValue:")):
        raise Unsupported(operator)
    if operator == "Null":
        # "true": the key must be absent; "false": present (Condition operators, "...check existence").
        return any((present is None) == (str(w).lower() == "true") for w in wanted)
    if_exists = operator.endswith("IfExists")
    base = operator.removesuffix("IfExists")
    if base not in _OPERATORS:
        raise Unsupported(operator)
    negated = base in _NEGATED
    if present is None:
        return if_exists or negated
    values = present if isinstance(present, list) else [present]
    test = _OPERATORS[base]
    if negated:
        return not any(test(v, str(w)) for v in values for w in wanted)
    return any(test(v, str(w)) for v in values for w in wanted)


def _date(text: str) -> datetime:
    """A date as IAM reads it: ISO 8601 (a trailing Z for UTC) or epoch seconds."""
    if re.fullmatch(r"\d+", text):
        return datetime.fromtimestamp(int(text), UTC)
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _string_equals(value: str, wanted: str) -> bool:
    return value == wanted


def _string_like(value: str, wanted: str) -> bool:
    return wildcard(wanted, value)


_OPERATORS: dict[str, Callable[[str, str], bool]] = {
    "StringEquals": _string_equals,
    "StringNotEquals": _string_equals,
    "StringEqualsIgnoreCase": lambda v, w: v.lower() == w.lower(),
    "StringNotEqualsIgnoreCase": lambda v, w: v.lower() == w.lower(),
    "StringLike": _string_like,
    "StringNotLike": _string_like,
    "ArnEquals": _string_like,
    "ArnLike": _string_like,
    "ArnNotEquals": _string_like,
    "ArnNotLike": _string_like,
    "DateEquals": lambda v, w: _date(v) == _date(w),
    "DateNotEquals": lambda v, w: _date(v) == _date(w),
    "DateLessThan": lambda v, w: _date(v) < _date(w),
    "DateLessThanEquals": lambda v, w: _date(v) <= _date(w),
    "DateGreaterThan": lambda v, w: _date(v) > _date(w),
    "DateGreaterThanEquals": lambda v, w: _date(v) >= _date(w),
    "Bool": lambda v, w: v.lower() == w.lower(),
}
_NEGATED = frozenset(
    {"StringNotEquals", "StringNotEqualsIgnoreCase", "StringNotLike", "ArnNotEquals", "ArnNotLike", "DateNotEquals"}
)


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]
