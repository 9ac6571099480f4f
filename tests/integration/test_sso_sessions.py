"""Identity Center sessions end with the grant: the deny in the permission set's inline policy, end to end.

Through moto and, in front of it, the model of Identity Center's asynchronous statuses and per-account
provisioning (tests/support/aws_model/sso.py): what is *in force* in an account is what was provisioned
there, and the decisions are taken on it by the shared evaluator (tests/support/aws_model/sso_sessions.py).
"""

from __future__ import annotations

import json
from datetime import timedelta

import boto3
from sqlmodel import select

from bot.aws.granters.sso import deny as policy
from bot.clock import utcnow
from bot.reconcile import Reconciler
from bot.store.db import session_scope
from bot.store.models import AccessRequest, AuditEvent
from tests.conftest import Bot, wait_until
from tests.integration import sso_setup
from tests.integration.flows import approve, file_request
from tests.integration.sso_setup import ADMIN, MARGIN, cutoff_of, inline, sent
from tests.integration.test_identity_center import PROD, STAGING, Center
from tests.support.aws import World
from tests.support.aws_model.evaluator import Decision
from tests.support.aws_model.sso import SsoModel
from tests.support.aws_model.sso_sessions import decide, session
from tests.support.fake_slack import FakeSlack

center, model, modelled = sso_setup.center, sso_setup.model, sso_setup.modelled
ELSEWHERE = "333333333333"


def test_an_end_denies_her_open_sessions_in_each_granted_account_before_its_assignment_goes(
    modelled: Bot, model: SsoModel, center: Center
) -> None:
    user = center.users["alice.sso"]
    request_id = file_request(modelled, "U0ALICE", "request prod-admin-sso 2s incident")
    approve(modelled, request_id)
    modelled.wait_status(request_id, "active")
    ended = modelled.wait_status(request_id, "expired", timeout=15)
    assert center.assigned("alice.sso") == set()
    cutoff = cutoff_of(ended)
    assert ended.expires_at is not None and cutoff >= ended.expires_at + MARGIN
    for account in (PROD, STAGING):
        steps = sent(model, account, center.permission_set_arn)
        assert [what for what, _ in steps] == ["provisioned", "unassigned"]  # in force before the assignment went
        in_force = steps[0][1]
        assert decide(in_force, session(user, account, cutoff - timedelta(seconds=1))) == Decision.EXPLICIT_DENY
        assert decide(in_force, session(user, account, cutoff)) == Decision.ALLOWED  # a later grant works
        assert decide(in_force, session(user, "333333333333", cutoff - timedelta(hours=1))) == Decision.ALLOWED
    now = inline(center)
    assert now.startswith(ADMIN[: ADMIN.rindex("]")])  # the administrator's bytes, then the bot's statement
    assert [s["Sid"] for s in policy.ours(now)] == [f"AccessbotEnd{request_id}"]
    assert model.count("ProvisionPermissionSet") == 2  # one per granted account, never every account
    with session_scope(modelled.runtime.workflow.engine) as db:  # recorded with the end itself: no alert
        alerts = db.exec(select(AuditEvent).where(AuditEvent.request_id == request_id, AuditEvent.action == "alert"))
        assert alerts.all() == []


def test_the_deny_is_lifted_after_the_session_duration_and_provisioned_again(
    modelled: Bot, model: SsoModel, center: Center
) -> None:
    model.creation_polls = 0
    bob = center.users["bob@example.com"]  # keeps ProdAdmin in PROD (and elsewhere): it stays provisioned there
    for account in (PROD, ELSEWHERE):
        boto3.client("sso-admin", endpoint_url=model.url).create_account_assignment(
            InstanceArn=center.instance_arn, TargetId=account, TargetType="AWS_ACCOUNT",
            PermissionSetArn=center.permission_set_arn, PrincipalType="USER", PrincipalId=bob,
        )  # fmt: skip
    request_id = file_request(modelled, "U0ALICE", "request prod-admin-sso 2s incident")
    approve(modelled, request_id)
    modelled.wait_status(request_id, "expired", timeout=15)
    assert policy.ours(model.in_force(center.permission_set_arn, PROD) or "")
    with session_scope(modelled.runtime.workflow.engine) as db:  # the lift falls due now
        row = db.get(AccessRequest, request_id)
        assert row is not None
        row.sessions_denied_until = row.next_due_at = utcnow()
    wait_until(lambda: (r := modelled.request(request_id)) is not None and r.sessions_denied_until is None, timeout=15)
    assert inline(center) == ADMIN  # every byte of the administrator's, nothing of the bot's
    assert model.in_force(center.permission_set_arn, PROD) == ADMIN
    assert sent(model, ELSEWHERE, center.permission_set_arn) == []  # never provisioned beyond the deny's accounts


def test_a_provisioning_failure_in_one_account_keeps_that_end_owed_alerted_and_finished_later(
    modelled: Bot, model: SsoModel, slack: FakeSlack, center: Center
) -> None:
    model.fail_provisioning[STAGING] = "Account 222222222222 is being moved between organizations"
    request_id = file_request(modelled, "U0ALICE", "request prod-admin-sso 1s incident")
    approve(modelled, request_id)
    alert = slack.wait_for(
        "chat.postMessage", lambda c: c.args.get("channel") == "C0APPROVALS" and "Revoking #" in c.text(), timeout=20
    )
    assert "being moved between organizations" in alert.text()
    assert center.assigned("alice.sso") == {STAGING}  # PROD was done; STAGING keeps its assignment, owed
    row = modelled.request(request_id)
    assert row is not None and row.status == "active" and row.ended_at is None
    model.fail_provisioning.clear()
    modelled.wait_status(request_id, "expired", timeout=20)
    assert center.assigned("alice.sso") == set()
    steps = sent(model, STAGING, center.permission_set_arn)
    assert [what for what, _ in steps][-2:] == ["provisioned", "unassigned"]


def test_a_deny_that_does_not_fit_the_inline_policy_is_alerted_with_the_fix_and_access_still_ends(
    modelled: Bot, model: SsoModel, slack: FakeSlack, center: Center
) -> None:
    buckets: list[str] = []
    while len(buckets) < 1000 and policy.size(big := _document(buckets)) < policy.INLINE_QUOTA - 150:
        buckets.append(f"arn:aws:s3:::team-bucket-{len(buckets):04d}/*")
    assert policy.size(big) < policy.INLINE_QUOTA < policy.size(big) + 250
    center.sso.put_inline_policy_to_permission_set(
        InstanceArn=center.instance_arn, PermissionSetArn=center.permission_set_arn, InlinePolicy=big
    )
    request_id = file_request(modelled, "U0ALICE", "request prod-admin-sso 1s incident")
    approve(modelled, request_id)
    modelled.wait_status(request_id, "expired", timeout=15)
    alert = slack.wait_for(
        "chat.postMessage", lambda c: c.args.get("channel") == "C0APPROVALS" and "does not fit" in c.text()
    )
    assert "permission set ProdAdmin" in alert.text() and "customer managed policy" in alert.text()
    assert inline(center) == big and center.assigned("alice.sso") == set()


def _document(resources: list[str]) -> str:
    statement = {"Sid": "Big", "Effect": "Allow", "Action": "s3:*", "Resource": resources or ["*"]}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def test_an_administrators_edit_not_yet_provisioned_goes_out_with_the_deny_and_is_alerted(
    modelled: Bot, model: SsoModel, slack: FakeSlack, center: Center
) -> None:
    request_id = file_request(modelled, "U0ALICE", "request prod-admin-sso 3s incident")
    approve(modelled, request_id)
    modelled.wait_status(request_id, "active")
    edited = ADMIN.replace("s3:*", "s3:Get*")
    center.sso.put_inline_policy_to_permission_set(
        InstanceArn=center.instance_arn, PermissionSetArn=center.permission_set_arn, InlinePolicy=edited
    )
    modelled.wait_status(request_id, "expired", timeout=15)
    alert = slack.wait_for(
        "chat.postMessage", lambda c: c.args.get("channel") == "C0APPROVALS" and "not yet provisioned" in c.text()
    )
    assert f"in {PROD}, {STAGING}" in alert.text()
    in_force = sent(model, PROD, center.permission_set_arn)[0][1]
    assert "s3:Get*" in in_force and policy.ours(in_force)


def test_end_sessions_false_writes_no_deny(modelled: Bot, model: SsoModel, center: Center) -> None:
    request_id = file_request(modelled, "U0ALICE", "request quiet-sso 1s incident")
    approve(modelled, request_id)
    ended = modelled.wait_status(request_id, "expired", timeout=15)
    assert ended.sessions_denied_until is None
    assert model.count("PutInlinePolicyToPermissionSet") == 0 and model.count("ProvisionPermissionSet") == 0


def test_reconcile_puts_back_a_deny_that_disappeared_while_owed(
    modelled: Bot, model: SsoModel, world: World, center: Center
) -> None:
    user = center.users["alice.sso"]
    request_id = file_request(modelled, "U0ALICE", "request prod-admin-sso 2s incident")
    approve(modelled, request_id)
    ended = modelled.wait_status(request_id, "expired", timeout=15)
    center.sso.put_inline_policy_to_permission_set(  # a Terraform apply puts the administrator's version back
        InstanceArn=center.instance_arn, PermissionSetArn=center.permission_set_arn, InlinePolicy=ADMIN
    )
    model.creation_polls = 0  # someone else keeps the set provisioned in PROD, so it can be provisioned there
    boto3.client("sso-admin", endpoint_url=model.url).create_account_assignment(
        InstanceArn=center.instance_arn, TargetId=PROD, TargetType="AWS_ACCOUNT",
        PermissionSetArn=center.permission_set_arn, PrincipalType="USER", PrincipalId=center.users["bob@example.com"],
    )  # fmt: skip
    ctx = modelled.runtime.workflow.ctx
    reconciler = Reconciler(engine=ctx.engine, catalog=ctx.catalog, granters=ctx.granters, iam=world.iam, kms=world.kms)
    assert reconciler.restore_session_denies() == [request_id]
    assert [s["Sid"] for s in policy.ours(inline(center))] == [f"AccessbotEnd{request_id}"]
    in_force = model.in_force(center.permission_set_arn, PROD) or ""
    assert decide(in_force, session(user, PROD, cutoff_of(ended) - timedelta(seconds=1))) == Decision.EXPLICIT_DENY
    assert decide(in_force, session(user, PROD, cutoff_of(ended))) == Decision.ALLOWED  # the same cutoff as before
    assert reconciler.restore_session_denies() == []  # there now: nothing to do


def test_a_new_grant_right_after_an_end_is_not_cut_by_that_ends_deny(
    modelled: Bot, model: SsoModel, world: World, center: Center
) -> None:
    user = center.users["alice.sso"]
    first = file_request(modelled, "U0ALICE", "request prod-admin-sso 1h deploy")
    approve(modelled, first)
    modelled.wait_status(first, "active")
    assert modelled.ask("U0ALICE", f"revoke #{first}").startswith("Revoking")
    ended = modelled.wait_status(first, "revoked")
    second = file_request(modelled, "U0ALICE", "request prod-admin-sso 1h deploy again")
    approve(modelled, second)
    modelled.wait_status(second, "active")
    now = utcnow()
    assert now < cutoff_of(ended)  # within the first end's margin: its deny would still cut a new session
    for account in (PROD, STAGING):
        in_force = model.in_force(center.permission_set_arn, account) or ""
        assert decide(in_force, session(user, account, now)) == Decision.ALLOWED
    assert policy.ours(inline(center)) == []
    ctx = modelled.runtime.workflow.ctx
    reconciler = Reconciler(engine=ctx.engine, catalog=ctx.catalog, granters=ctx.granters, iam=world.iam, kms=world.kms)
    assert reconciler.restore_session_denies() == []  # lifted on purpose: not put back while she holds it again


def test_reconcile_puts_a_deny_back_only_where_it_was_written_not_where_a_group_gives_her_the_set(
    modelled: Bot, model: SsoModel, world: World, center: Center
) -> None:
    model.creation_polls = 0
    user = center.users["alice.sso"]
    center.store.create_group_membership(
        IdentityStoreId=center.store_id, GroupId=center.group_id, MemberId={"UserId": user}
    )
    boto3.client("sso-admin", endpoint_url=model.url).create_account_assignment(
        InstanceArn=center.instance_arn, TargetId=PROD, TargetType="AWS_ACCOUNT",
        PermissionSetArn=center.permission_set_arn, PrincipalType="GROUP", PrincipalId=center.group_id,
    )  # fmt: skip
    request_id = file_request(modelled, "U0ALICE", "request prod-admin-sso 2s incident")
    approve(modelled, request_id)
    ended = modelled.wait_status(request_id, "expired", timeout=15)
    assert [policy.accounts_of(s) for s in policy.ours(inline(center))] == [[STAGING]]  # PROD is hers by the group
    center.sso.put_inline_policy_to_permission_set(  # a Terraform apply puts the administrator's version back
        InstanceArn=center.instance_arn, PermissionSetArn=center.permission_set_arn, InlinePolicy=ADMIN
    )
    ctx = modelled.runtime.workflow.ctx
    reconciler = Reconciler(engine=ctx.engine, catalog=ctx.catalog, granters=ctx.granters, iam=world.iam, kms=world.kms)
    assert reconciler.restore_session_denies() == [request_id]
    assert [policy.accounts_of(s) for s in policy.ours(inline(center))] == [[STAGING]]
    in_force = model.in_force(center.permission_set_arn, PROD) or ""
    assert decide(in_force, session(user, PROD, cutoff_of(ended) - timedelta(hours=1))) == Decision.ALLOWED
