"""check-config for Identity Center sessions, against moto: durations, opt-outs, a group's reach, the bot's rights.

moto has no IAM policy simulator; the simulator's answer is given with botocore's before-send event, shaped
as the IAM API Reference's SimulatePrincipalPolicy response (EvaluationResults with EvalActionName and
EvalDecision "allowed" / "implicitDeny").
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
from botocore.awsrequest import AWSResponse

from bot.aws.identity_center import Center as BotCenter
from bot.aws.sso_checks import SESSION_ACTIONS, principal_of, session_notes
from bot.catalog.models import PermissionSetResource, SsoGroupResource
from tests.integration import test_identity_center as identity_center
from tests.integration.faults import _Body
from tests.integration.test_identity_center import PROD, STAGING, Center
from tests.support.aws_model.evaluator import Decision, evaluate

center = identity_center.center
BOT = "arn:aws:iam::123456789012:role/accessbot"
WRITES = ("sso:PutInlinePolicyToPermissionSet", "sso:DeleteInlinePolicyFromPermissionSet", "sso:ProvisionPermissionSet")
COMMON = {"approvers": ["platform"], "approval_channel": "C0APPROVALS"}


def simulator(denied: set[str]) -> Any:
    """An IAM client whose SimulatePrincipalPolicy answers implicitDeny for `denied`, allowed for the rest."""
    iam = boto3.client("iam")

    def answer(request: Any, **_: Any) -> AWSResponse:
        results = "".join(
            f"<member><EvalActionName>{a}</EvalActionName><EvalResourceName>*</EvalResourceName>"
            f"<EvalDecision>{'implicitDeny' if a in denied else 'allowed'}</EvalDecision></member>"
            for a in SESSION_ACTIONS
        )
        body = (
            '<SimulatePrincipalPolicyResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">'
            f"<SimulatePrincipalPolicyResult><IsTruncated>false</IsTruncated><EvaluationResults>{results}"
            "</EvaluationResults></SimulatePrincipalPolicyResult></SimulatePrincipalPolicyResponse>"
        ).encode()
        return AWSResponse(request.url, 200, {"Content-Type": "text/xml"}, _Body(body))

    iam.meta.events.register("before-send.iam.SimulatePrincipalPolicy", answer)
    return iam


def resource(**values: Any) -> PermissionSetResource:
    return PermissionSetResource(kind="sso_permission_set", **COMMON, **values)


def test_a_long_session_duration_and_an_opt_out_are_warned(center: Center) -> None:
    center.sso.create_permission_set(InstanceArn=center.instance_arn, Name="LongOne", SessionDuration="PT8H")
    bot_center = BotCenter(center.sso, None)
    warnings, problems, _ = session_notes(
        bot_center, center.store, simulator(set()), BOT, resource(permission_set="LongOne", accounts=[PROD])
    )
    assert problems == [] and len(warnings) == 1 and "SessionDuration of PT8H" in warnings[0]
    warnings, problems, _ = session_notes(
        bot_center, center.store, simulator(set()), BOT,
        resource(permission_set="ProdAdmin", accounts=[PROD], end_sessions=False),
    )  # fmt: skip
    assert problems == [] and len(warnings) == 1 and "survive up to" in warnings[0]
    assert session_notes(
        bot_center, center.store, simulator(set()), BOT, resource(permission_set="ProdAdmin", accounts=[PROD])
    ) == ([], [], "")


def test_the_bots_missing_rights_on_a_set_are_a_problem_naming_the_fix(center: Center) -> None:
    _, problems, _ = session_notes(
        BotCenter(center.sso, None), center.store, simulator({"sso:ProvisionPermissionSet"}), BOT,
        resource(permission_set="ProdAdmin", accounts=[PROD]),
    )  # fmt: skip
    assert len(problems) == 1
    assert "may not sso:ProvisionPermissionSet on the permission set ProdAdmin" in problems[0]
    assert "docs/iam-policy.json" in problems[0]


def test_a_groups_reach_is_counted(center: Center) -> None:
    sets = center.sso.list_permission_sets(InstanceArn=center.instance_arn)["PermissionSets"]
    for arn, account in [(sets[0], PROD), (sets[1], PROD), (sets[1], STAGING)]:
        center.sso.create_account_assignment(
            InstanceArn=center.instance_arn, TargetId=account, TargetType="AWS_ACCOUNT",
            PermissionSetArn=arn, PrincipalType="GROUP", PrincipalId=center.group_id,
        )  # fmt: skip
    group = SsoGroupResource(kind="sso_group", group="oncall-responders", **COMMON)
    _, _, note = session_notes(BotCenter(center.sso, None), center.store, simulator(set()), BOT, group)
    assert note == "its end cuts sessions of 2 permission set(s) in 2 account(s)"


def test_an_assumed_role_session_is_checked_as_its_role() -> None:
    assert principal_of("arn:aws:sts::123456789012:assumed-role/accessbot/i-0abc") == BOT
    assert principal_of("arn:aws:iam::123456789012:user/ops") == "arn:aws:iam::123456789012:user/ops"


def test_the_documented_policy_allows_the_session_actions_on_the_catalogs_set_and_writes_on_no_other() -> None:
    """docs/iam-policy.json on the shared evaluator: what check-config asks the simulator is granted, scoped.

    Resource types per the Service Authorization Reference ("Actions, resources, and condition keys for AWS
    IAM Identity Center"): the writes take the instance and the permission set, ProvisionPermissionSet also
    the account.
    """
    policy = json.loads((Path(__file__).resolve().parents[2] / "docs" / "iam-policy.json").read_text())
    instance = "arn:aws:sso:::instance/ssoins-0123456789abcdef"
    catalogs = "arn:aws:sso:::permissionSet/ssoins-0123456789abcdef/ps-0123456789abcdef"
    other = "arn:aws:sso:::permissionSet/ssoins-0123456789abcdef/ps-fedcba9876543210"
    for action in SESSION_ACTIONS:
        for arn in (instance, catalogs, f"arn:aws:sso:::account/{PROD}"):
            assert evaluate([policy], action, arn, {}) == Decision.ALLOWED, (action, arn)
    for action in WRITES:
        assert evaluate([policy], action, other, {}) == Decision.IMPLICIT_DENY, action
