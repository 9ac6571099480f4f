"""Reading IAM policy documents without evaluating them: statements, actions with wildcards, principals.

Only what check-config needs to say "this document allows that action" conservatively: a statement that may
allow an action counts as allowing it (its conditions and resources are not evaluated). Where reading is not
enough, IAM's own evaluator answers (`iam:SimulatePrincipalPolicy`, see `accessbot check-config --simulate`).
"""

from __future__ import annotations

import json
import re
from fnmatch import fnmatchcase
from typing import Any
from urllib.parse import unquote

# An IAM user or role named by its unique ID (IAM shows one in a trust policy once the named entity is deleted).
UNIQUE_ID = re.compile(r"^(AIDA|AROA)[A-Z0-9]+$")
# User, role and role-session ARNs: a trust policy naming one lets that principal assume the role by itself.
NAMED_PRINCIPAL = re.compile(r"^arn:aws[a-z-]*:(iam::\d{12}:(user|role)/|sts::\d{12}:assumed-role/)")


def statements(document: dict[str, Any] | str) -> list[dict[str, Any]]:
    """A policy document's statements; IAM may return the document as URL-encoded JSON text."""
    if isinstance(document, str):
        document = json.loads(unquote(document))
    assert isinstance(document, dict)
    found = document.get("Statement") or []
    if isinstance(found, dict):
        found = [found]
    return [s for s in found if isinstance(s, dict)]


def _listed(value: Any) -> list[str]:
    if value is None:
        return []
    return [str(value)] if isinstance(value, str) else [str(v) for v in value]


def names(statement: dict[str, Any], action: str) -> bool:
    """Whether the statement's Action names `action`, wildcards included (IAM action names ignore case).

    A NotAction statement names every action it does not list: IAM User Guide, "IAM JSON policy elements:
    NotAction" ("matches everything except the specified list of actions").
    """
    wanted = action.lower()
    if "NotAction" in statement:
        return not any(fnmatchcase(wanted, a.lower()) for a in _listed(statement["NotAction"]))
    return any(fnmatchcase(wanted, a.lower()) for a in _listed(statement.get("Action")))


def allows(statement: dict[str, Any], action: str) -> bool:
    """Whether an Allow statement may allow `action` (conditions and resources are not evaluated)."""
    return statement.get("Effect") == "Allow" and names(statement, action)


def resources(statement: dict[str, Any]) -> list[str]:
    """The statement's Resource entries; a NotResource statement reaches (nearly) everything: ["*"]."""
    if "NotResource" in statement:
        return ["*"]
    return _listed(statement.get("Resource"))


def principals(statement: dict[str, Any]) -> list[tuple[str, str]]:
    """(kind, value) of each principal the statement names; Principal "*" and any NotPrincipal read as ("AWS", "*").

    An Allow with NotPrincipal trusts everyone it does not list (IAM User Guide, "AWS JSON policy elements:
    NotPrincipal"), so for a trust check it is as open as "*".
    """
    if "NotPrincipal" in statement:
        return [("AWS", "*")]
    principal = statement.get("Principal")
    if principal == "*":
        return [("AWS", "*")]
    if not isinstance(principal, dict):
        return []
    return [(str(kind), value) for kind, values in principal.items() for value in _listed(values)]


def conditions_on(statement: dict[str, Any], key: str) -> bool:
    """Whether the statement has a condition, with any operator, on `key` (condition keys ignore case)."""
    condition = statement.get("Condition") or {}
    if not isinstance(condition, dict):
        return False
    return any(
        isinstance(block, dict) and any(str(k).lower() == key.lower() for k in block) for block in condition.values()
    )


def is_named_principal(value: str) -> bool:
    """Whether a principal value names one IAM user or role (by ARN or unique ID), not an account."""
    return bool(NAMED_PRINCIPAL.match(value) or UNIQUE_ID.match(value))
