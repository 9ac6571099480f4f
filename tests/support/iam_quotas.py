"""IAM's size and count quotas in front of moto, which enforces none of them but the 5 versions of a policy.

From the IAM User Guide, "IAM and AWS STS quotas" (https://docs.aws.amazon.com/IAM/latest/UserGuide/
reference_iam-quotas.html): a role's inline policies together hold at most 10,240 characters, a managed
policy 6,144, and a role has at most 10 managed policies attached by default; IAM does not count white
space. Over a quota, IAM answers LimitExceeded (IAM API Reference, PutRolePolicy / CreatePolicy /
CreatePolicyVersion / AttachRolePolicy, Errors). Installed on a client through botocore's before-send
event, it also records the order of the client's calls.
"""

from __future__ import annotations

import json
import threading
from typing import Any
from urllib.parse import parse_qs, unquote

from botocore.awsrequest import AWSResponse

from tests.integration.faults import error_response

ROLE_INLINE = 10_240
MANAGED = 6_144


def _size(text: str) -> int:
    return sum(not c.isspace() for c in text)


def _document(raw: str | dict[str, Any]) -> str:
    return unquote(raw) if isinstance(raw, str) else json.dumps(raw)


class IamQuotas:
    """Refuses what IAM would refuse over its quotas; `calls` lists every IAM action the client sent, in order."""

    def __init__(self, client: Any, reader: Any, *, attached_per_role: int = 10) -> None:
        self.reader = reader  # a client of its own on the same moto, for looking without being looked at
        self.attached_per_role = attached_per_role
        self.calls: list[str] = []
        self.refused: list[str] = []
        self._lock = threading.Lock()
        client.meta.events.register("before-send.iam", self, unique_id=f"iam-quotas-{id(self)}")

    def __call__(self, request: Any, **_kwargs: Any) -> AWSResponse | None:
        body = request.body.decode() if isinstance(request.body, bytes) else str(request.body or "")
        params = {k: v[0] for k, v in parse_qs(body).items()}
        action = params.get("Action", "")
        with self._lock:
            self.calls.append(action)
        why = self._over(action, params)
        if why is None:
            return None
        with self._lock:
            self.refused.append(action)
        return error_response("iam", request.url, code="LimitExceeded", status=409, message=why)

    def _over(self, action: str, params: dict[str, str]) -> str | None:
        if action == "PutRolePolicy":
            role, name = params["RoleName"], params["PolicyName"]
            others = sum(
                _size(_document(self.reader.get_role_policy(RoleName=role, PolicyName=n)["PolicyDocument"]))
                for n in self.reader.list_role_policies(RoleName=role)["PolicyNames"]
                if n != name
            )
            if others + _size(params["PolicyDocument"]) > ROLE_INLINE:
                return f"Maximum policy size of {ROLE_INLINE} bytes exceeded for role {role}"
        if action in ("CreatePolicy", "CreatePolicyVersion") and _size(params["PolicyDocument"]) > MANAGED:
            return f"Cannot exceed quota for PolicySize: {MANAGED}"
        if action == "AttachRolePolicy":
            attached = self.reader.list_attached_role_policies(RoleName=params["RoleName"])["AttachedPolicies"]
            arns = {p["PolicyArn"] for p in attached}
            if params["PolicyArn"] not in arns and len(arns) >= self.attached_per_role:
                return f"Cannot exceed quota for PoliciesPerRole: {self.attached_per_role}"
        return None
