"""What AWS decides about a permission-set session, for the bot's session deny: a small local evaluator.

Written against AWS's documented semantics (the general evaluator of tests/support/aws_model/evaluator.py
had not landed when this was written): an explicit Deny wins; a statement applies only when every
condition operator matches (IAM User Guide, "Policy evaluation logic" and "IAM JSON policy elements:
Condition operators"); StringEquals with a list matches any of its values; DateLessThan compares the
request's date with the policy's; a key missing from the request does not match (so the deny does not
apply); condition key names match without regard to case ("IAM JSON policy elements: Condition").
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any


def _matches(operator: str, wanted: dict[str, Any], context: dict[str, str]) -> bool:
    lowered = {k.lower(): v for k, v in context.items()}
    for key, values in wanted.items():
        given = lowered.get(key.lower())
        if given is None:
            return False
        options = values if isinstance(values, list) else [values]
        if operator == "StringEquals" and given not in options:
            return False
        if operator == "DateLessThan" and not any(_date(given) < _date(v) for v in options):
            return False
    return True


def _date(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def decision(document: str, context: dict[str, str]) -> str:
    """'Deny' when any Deny statement of everything-on-everything applies, else 'Allow' (the set allows it)."""
    for statement in json.loads(document)["Statement"]:
        if statement["Effect"] != "Deny" or statement["Action"] != "*" or statement["Resource"] != "*":
            continue
        if all(_matches(op, wanted, context) for op, wanted in statement.get("Condition", {}).items()):
            return "Deny"
    return "Allow"


def session(user: str, account: str, issued: datetime) -> dict[str, str]:
    return {
        "identitystore:UserId": user,  # AWS's docs write it both ways; key names match without regard to case
        "aws:PrincipalAccount": account,
        "aws:TokenIssueTime": issued.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
