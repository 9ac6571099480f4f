"""iam:SimulateCustomPolicy and iam:SimulatePrincipalPolicy, which moto lacks, decided by the evaluator.

Request and answer follow the IAM API reference ("SimulateCustomPolicy", "SimulatePrincipalPolicy",
"EvaluationResult", "ContextEntry"): query parameters PolicyInputList.member.N, ActionNames.member.N,
ResourceArns.member.N, ContextEntries.member.N.{ContextKeyName, ContextKeyType, ContextKeyValues.member.M},
PolicySourceArn; an XML answer <SimulateXxxResult><EvaluationResults><member>... with EvalActionName,
EvalResourceName, EvalDecision (allowed | explicitDeny | implicitDeny), MatchedStatements and
MissingContextValues. The reference says the simulator now answers one EvaluationResult per action, its
decision the most restrictive across the resources asked about; so does this model.

Not modelled: PermissionsBoundaryPolicyInputList, ResourcePolicy, CallerArn, paging (IsTruncated is false),
group policies of a simulated user.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

from tests.support.aws_model.changes import PolicyState
from tests.support.aws_model.evaluator import Decision, document, evaluate, statements

NAMESPACE = "https://iam.amazonaws.com/doc/2010-05-08/"
SIMULATIONS = frozenset({"SimulateCustomPolicy", "SimulatePrincipalPolicy"})
_SEVERITY = {Decision.ALLOWED: 0, Decision.IMPLICIT_DENY: 1, Decision.EXPLICIT_DENY: 2}


def form(body: bytes) -> dict[str, str]:
    """A query-protocol request body as flat parameters."""
    return {k: v[0] for k, v in parse_qs(body.decode("utf-8"), keep_blank_values=True).items()}


def members(params: Mapping[str, str], name: str) -> list[str]:
    """The values of a list parameter (Name.member.1, Name.member.2, ...), in order."""
    found = []
    for key, value in params.items():
        match = re.fullmatch(rf"{re.escape(name)}\.member\.(\d+)", key)
        if match:
            found.append((int(match.group(1)), value))
    return [value for _, value in sorted(found)]


def context_entries(params: Mapping[str, str]) -> dict[str, str | list[str]]:
    """ContextEntries as a request context; a *List type keeps every value, others the one given."""
    context: dict[str, str | list[str]] = {}
    n = 1
    while f"ContextEntries.member.{n}.ContextKeyName" in params:
        prefix = f"ContextEntries.member.{n}"
        values = members(params, f"{prefix}.ContextKeyValues")
        kind = params.get(f"{prefix}.ContextKeyType", "string")
        context[params[f"{prefix}.ContextKeyName"]] = values if kind.endswith("List") else values[0]
        n += 1
    return context


def principal_policies(state: PolicyState, arn: str) -> list[dict[str, Any]]:
    """The identity policies of the user or role a PolicySourceArn names."""
    kind, _, name = arn.split(":", 5)[-1].partition("/")
    name = name.rsplit("/", 1)[-1]
    if kind == "role":
        return state.role_policies(name)
    if kind == "user":
        return state.user_policies(name)
    raise ValueError(f"the model simulates users and roles only, not {arn}")


def simulate(operation: str, params: Mapping[str, str], state: PolicyState) -> bytes:
    """The XML answer of one simulation request, decided on `state` (the policies IAM holds)."""
    policies = [document(p) for p in members(params, "PolicyInputList")]
    if operation == "SimulatePrincipalPolicy":
        policies = principal_policies(state, params["PolicySourceArn"]) + policies
    context = context_entries(params)
    resources = members(params, "ResourceArns") or ["*"]
    results = []
    for action in members(params, "ActionNames"):
        decisions = [evaluate(policies, action, resource, context) for resource in resources]
        decision = max(decisions, key=_SEVERITY.__getitem__)
        results.append(_result(action, resources[0] if len(resources) == 1 else "*", decision, policies, context))
    name = operation
    return (
        f'<{name}Response xmlns="{NAMESPACE}"><{name}Result><IsTruncated>false</IsTruncated>'
        f"<EvaluationResults>{''.join(results)}</EvaluationResults></{name}Result>"
        f"<ResponseMetadata><RequestId>aws-model-simulator</RequestId></ResponseMetadata></{name}Response>"
    ).encode()


def _result(
    action: str, resource: str, decision: Decision, policies: list[dict[str, Any]], context: Mapping[str, Any]
) -> str:
    missing = sorted(_condition_keys(policies) - {k.lower() for k in context})
    missing_xml = "".join(f"<member>{escape(k)}</member>" for k in missing)
    return (
        f"<member><EvalActionName>{escape(action)}</EvalActionName>"
        f"<EvalResourceName>{escape(resource)}</EvalResourceName>"
        f"<EvalDecision>{decision.value}</EvalDecision>"
        f"<MatchedStatements/><MissingContextValues>{missing_xml}</MissingContextValues></member>"
    )


def _condition_keys(policies: list[dict[str, Any]]) -> set[str]:
    """Every condition key the policies use (lower case): the simulator reports those the context lacks."""
    return {
        key.lower()
        for policy in policies
        for statement in statements(policy)
        for keys in (statement.get("Condition") or {}).values()
        for key in keys
    }
