"""The bot's documented least-privilege policy, and which AWS operations it really calls."""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path
from typing import Any

POLICY = Path(__file__).resolve().parents[2] / "docs" / "iam-policy.json"
CALLED: set[str] = set()  # every operation seen this run (checked against the policy at the end)
CALLS: list[str] = []  # the same, in order, so a test can look at the calls of its own flow


def allowed_actions(policy: Path = POLICY) -> list[str]:
    """Every Action pattern the policy allows."""
    document = json.loads(policy.read_text())
    actions: list[str] = []
    for statement in document["Statement"]:
        assert statement["Effect"] == "Allow"
        found = statement["Action"]
        actions += [found] if isinstance(found, str) else found
    return actions


def not_allowed(operations: set[str], policy: Path = POLICY) -> list[str]:
    """Operations (`iam:AddUserToGroup`) no Action pattern of the policy allows."""
    patterns = [p.lower() for p in allowed_actions(policy)]
    return sorted(op for op in operations if not any(fnmatch.fnmatchcase(op.lower(), p) for p in patterns))


def record(model: Any, **_: Any) -> None:
    """botocore before-call hook: remember `service:Operation`."""
    operation = f"{model.service_model.endpoint_prefix}:{model.name}"
    CALLED.add(operation)
    CALLS.append(operation)
