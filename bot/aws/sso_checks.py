"""check-config for Identity Center sessions: how long they last, what a group's end touches, the bot's rights.

Each end writes a deny into the permission set's inline policy and provisions it (bot.aws.granters.sso), so
the bot needs, on each permission set it may have to cut sessions of, the rights to read and write that
policy and to provision the set; AWS's own evaluator answers whether it has them
(iam:SimulatePrincipalPolicy, IAM API Reference), since trying would change the set.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from botocore.parsers import ResponseParserError

from bot.aws.errors import AwsError, aws_call
from bot.aws.granters import PermissionSetGranter, SsoGroupGranter
from bot.aws.granters.sso import session_duration
from bot.aws.identity_center import Center
from bot.catalog import PermissionSetResource, SsoGroupResource

SESSION_ACTIONS = (
    "sso:GetInlinePolicyForPermissionSet",
    "sso:PutInlinePolicyToPermissionSet",
    "sso:DeleteInlinePolicyFromPermissionSet",  # a lift that leaves the set with no inline policy of its own
    "sso:ProvisionPermissionSet",
    "sso:DescribePermissionSetProvisioningStatus",
    "sso:ListAccountsForProvisionedPermissionSet",
)
LONG_SESSION = timedelta(hours=1)


def principal_of(caller_arn: str) -> str:
    """The IAM principal behind a caller ARN (an assumed-role session becomes its role; a path is not known)."""
    parts = caller_arn.split(":", 5)
    if len(parts) == 6 and parts[2] == "sts" and parts[5].startswith("assumed-role/"):
        return f"arn:{parts[1]}:iam::{parts[4]}:role/{parts[5].split('/')[1]}"
    return caller_arn


def session_notes(
    center: Center,
    identitystore: Any,
    iam: Any,
    principal: str | None,
    resource: PermissionSetResource | SsoGroupResource,
) -> tuple[list[str], list[str], str]:
    """(warnings, problems, a note for the ok line) about the resource's sessions and the bot's rights on its sets."""
    warnings: list[str] = []
    if isinstance(resource, SsoGroupResource):
        group = SsoGroupGranter(identitystore, center)
        reach = group.reach(group.group_id(resource.group))
        accounts = {a for found in reach.values() for a in found}
        note = f"its end cuts sessions of {len(reach)} permission set(s) in {len(accounts)} account(s)"
        sets = list(reach)
    else:
        sets = [PermissionSetGranter(center.sso_admin, center).permission_set_arn(resource.permission_set)]
        note = ""
    if not resource.end_sessions:
        warnings.append(
            "end_sessions: false: at each end the person's open sessions survive up to the permission set's "
            "SessionDuration"
        )
    problems: list[str] = []
    for arn in sets:
        described = PermissionSetGranter(center.sso_admin, center).sets.describe(arn)
        name = str(described.get("Name") or arn)
        length = session_duration(described.get("SessionDuration"))
        if length > LONG_SESSION:
            warnings.append(
                f"the permission set {name} has a SessionDuration of {described.get('SessionDuration')}: each "
                f"session deny stays that long in its inline policy, and any session the bot cannot cut lasts "
                "that long (1 hour or less is advised)"
            )
        if resource.end_sessions and principal:
            denied = _denied(iam, principal, [arn, center.instance().arn])
            if denied is None:
                warnings.append(f"the bot's rights on {name} not checked: the IAM policy simulator did not answer")
            elif denied:
                problems.append(
                    f"the bot may not {', '.join(denied)} on the permission set {name}, so it cannot end sessions "
                    "there; give it the IdentityCenterSessionDeny statements of docs/iam-policy.json for this set"
                )
    return warnings, problems, note


def _denied(iam: Any, principal: str, resources: list[str]) -> list[str] | None:
    """The session actions the principal's policies do not allow on the resources; None when it cannot be told."""
    try:
        with aws_call("iam:SimulatePrincipalPolicy"):
            answer = iam.simulate_principal_policy(
                PolicySourceArn=principal, ActionNames=list(SESSION_ACTIONS), ResourceArns=resources
            )
    except (AwsError, ResponseParserError):
        return None  # no simulator (e.g. not allowed to call it, or a stand-in of AWS that lacks it)
    return sorted(
        {str(r["EvalActionName"]) for r in answer.get("EvaluationResults", []) if r.get("EvalDecision") != "allowed"}
    )
