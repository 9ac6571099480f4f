"""Identity Center sessions end with the grant: the deny in the permission set's inline policy, end to end.

Through moto and, in front of it, the model of Identity Center's asynchronous statuses and per-account
provisioning (tests/support/aws_model/sso.py): what is *in force* in an account is what was provisioned
there, and the decisions are taken on it (tests/support/sso_decisions.py).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import boto3
import pytest

from bot.aws.errors import AwsError, aws_call
from bot.aws.granters import GrantSpec, PermissionSetGranter, Polling
from bot.aws.granters.sso import deny as policy
from bot.catalog import Kind
from bot.clock import utcnow
from bot.reconcile import Reconciler
from bot.store.creations import StoredCreations
from bot.store.db import hold_lock, session_scope
from bot.store.models import AccessRequest
from tests.conftest import Bot, wait_until
from tests.integration import test_identity_center as identity_center
from tests.integration.flows import approve, catalog_with, file_request
from tests.integration.test_identity_center import PROD, SSO_RESOURCES, STAGING, Center
from tests.support.aws import World
from tests.support.aws_model.sso import ENDPOINT_VARIABLE, SsoModel
from tests.support.fake_slack import FakeSlack
from tests.support.sso_decisions import decision, session

center = identity_center.center  # the same fixture: an instance, ProdAdmin and ReadOnly, two users, a group
MARGIN = timedelta(seconds=300)
ADMIN = '{"Version":"2012-10-17","Statement":[{"Sid":"Admins","Effect":"Allow","Action":"s3:*","Resource":"*"}]}'
QUIET = f"""
  quiet-sso:
    kind: sso_permission_set
    permission_set: ReadOnly
    accounts: ["{PROD}"]
    approvers: [platform]
    end_sessions: false
"""


@pytest.fixture
def model(moto_url: str) -> Iterator[SsoModel]:
    with SsoModel(moto_url) as proxy:
        os.environ[ENDPOINT_VARIABLE] = proxy.url
        try:
            yield proxy
        finally:
            os.environ.pop(ENDPOINT_VARIABLE, None)


@pytest.fixture
def modelled(make_bot: Callable[..., Bot], catalog_file: Path, center: Center, model: SsoModel) -> Bot:
    center.sso.put_inline_policy_to_permission_set(
        InstanceArn=center.instance_arn, PermissionSetArn=center.permission_set_arn, InlinePolicy=ADMIN
    )
    catalog_file.write_text(catalog_with(SSO_RESOURCES + QUIET))
    return make_bot()


def inline(center: Center, arn: str | None = None) -> str:
    answer = center.sso.get_inline_policy_for_permission_set(
        InstanceArn=center.instance_arn, PermissionSetArn=arn or center.permission_set_arn
    )
    return str(answer.get("InlinePolicy") or "")


def sent(model: SsoModel, account: str, arn: str) -> list[tuple[str, str]]:
    """(what, detail) of the model's provisioning and unassigning events in an account, in order."""
    return [(e[0], e[3]) for e in model.events if e[2] == account and e[1] == arn and e[0] != "assigned"]


def cutoff_of(row: AccessRequest) -> datetime:
    assert row.sessions_denied_until is not None
    return row.sessions_denied_until - timedelta(hours=1) - MARGIN  # ProdAdmin's SessionDuration is PT1H


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
        assert decision(in_force, session(user, account, cutoff - timedelta(seconds=1))) == "Deny"
        assert decision(in_force, session(user, account, cutoff)) == "Allow"  # a later grant works
        assert decision(in_force, session(user, "333333333333", cutoff - timedelta(hours=1))) == "Allow"
    now = inline(center)
    assert now.startswith(ADMIN[: ADMIN.rindex("]")])  # the administrator's bytes, then the bot's statement
    assert [s["Sid"] for s in policy.ours(now)] == [f"AccessbotEnd{request_id}"]
    assert model.count("ProvisionPermissionSet") == 2  # one per granted account, never every account


def test_the_deny_is_lifted_after_the_session_duration_and_provisioned_again(
    modelled: Bot, model: SsoModel, center: Center
) -> None:
    model.creation_polls = 0
    bob = center.users["bob@example.com"]  # keeps ProdAdmin in PROD, so the set stays provisioned there
    boto3.client("sso-admin", endpoint_url=model.url).create_account_assignment(
        InstanceArn=center.instance_arn, TargetId=PROD, TargetType="AWS_ACCOUNT",
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


def test_a_group_end_denies_each_set_the_group_gives_except_where_she_holds_it_another_way(
    modelled: Bot, model: SsoModel, center: Center
) -> None:
    model.creation_polls = 0
    via_model = boto3.client("sso-admin", endpoint_url=model.url)
    read_only = center.sso.list_permission_sets(InstanceArn=center.instance_arn)["PermissionSets"]
    read_only_arn = next(a for a in read_only if a != center.permission_set_arn)
    user = center.users["alice.sso"]
    for arn, account, principal_type, principal in [
        (center.permission_set_arn, PROD, "GROUP", center.group_id),
        (read_only_arn, STAGING, "GROUP", center.group_id),
        (read_only_arn, STAGING, "USER", user),  # she holds this one directly as well
    ]:
        via_model.create_account_assignment(
            InstanceArn=center.instance_arn, TargetId=account, TargetType="AWS_ACCOUNT",
            PermissionSetArn=arn, PrincipalType=principal_type, PrincipalId=principal,
        )  # fmt: skip
    request_id = file_request(modelled, "U0ALICE", "request oncall-sso 2s paged")
    approve(modelled, request_id)
    ended = modelled.wait_status(request_id, "expired", timeout=15)
    assert not center.member("alice.sso")
    in_force = model.in_force(center.permission_set_arn, PROD) or ""
    cutoff = cutoff_of(ended)
    assert decision(in_force, session(user, PROD, cutoff - timedelta(seconds=1))) == "Deny"
    assert policy.ours(inline(center, read_only_arn)) == []  # still hers directly: not cut
    assert model.count("ProvisionPermissionSet") == 1


@pytest.mark.both_databases
def test_an_undo_waits_for_a_creation_that_finishes_after_the_poll_gave_up(
    modelled: Bot, model: SsoModel, center: Center
) -> None:
    ctx = modelled.runtime.workflow.ctx
    old = ctx.granters[Kind.SSO_PERMISSION_SET]
    assert isinstance(old, PermissionSetGranter)
    creations = StoredCreations(ctx.engine)
    ctx.granters[Kind.SSO_PERMISSION_SET] = PermissionSetGranter(
        old._sso, old._center, polling=Polling(first=0.05, most=0.1, limit=0.4), creations=creations,
        lock=lambda key: hold_lock(ctx.engine, key),
    )  # fmt: skip
    model.hold_creations = True
    request_id = file_request(modelled, "U0ALICE", "request prod-admin-sso 1h deploy")
    approve(modelled, request_id)
    failed = modelled.wait_status(request_id, "failed", timeout=15)
    assert failed.last_error is not None and "had not finished" in failed.last_error
    assert sorted(a for a, _ in creations.creations(request_id)) == [PROD, STAGING]  # recorded with the grant
    wait_until(lambda: (r := modelled.request(request_id)) is not None and r.attempts >= 2, timeout=15)
    row = modelled.request(request_id)
    assert row is not None and row.ended_at is None  # the undo is owed while AWS is still creating
    assert model.count("DeleteAccountAssignment") == 0
    assert model.release() == 2  # AWS finishes both, long after the bot stopped waiting
    assert center.assigned("alice.sso") == {PROD, STAGING}
    wait_until(lambda: (r := modelled.request(request_id)) is not None and r.ended_at is not None, timeout=20)
    assert center.assigned("alice.sso") == set()
    assert model.count("DeleteAccountAssignment") == 2  # one each, no retry of a delete


def test_deleting_an_assignment_that_never_existed_is_gone_not_retried(model: SsoModel, center: Center) -> None:
    client = boto3.client("sso-admin", endpoint_url=model.url)
    with pytest.raises(AwsError) as caught, aws_call("sso:DeleteAccountAssignment"):
        client.delete_account_assignment(
            InstanceArn=center.instance_arn, TargetId=PROD, TargetType="AWS_ACCOUNT",
            PermissionSetArn=center.permission_set_arn, PrincipalType="USER", PrincipalId=center.users["alice.sso"],
        )  # fmt: skip
    assert caught.value.gone and caught.value.code == "ResourceNotFoundException"


@pytest.mark.both_databases
def test_two_ends_on_one_set_at_once_merge_their_denies(modelled: Bot, model: SsoModel, center: Center) -> None:
    model.creation_polls, model.provision_polls = 0, 3  # provisioning is slow: the two ends overlap
    ctx = modelled.runtime.workflow.ctx
    granter = ctx.granters[Kind.SSO_PERMISSION_SET]
    assert isinstance(granter, PermissionSetGranter)
    people = {7001: center.users["alice.sso"], 7002: center.users["bob@example.com"]}
    specs = [
        GrantSpec(request_id=rid, iam_user=f"u{rid}", iam_user_arn=uid, target=f"ProdAdmin in {PROD}",
                  expires_at=utcnow(), target_arn=center.permission_set_arn)
        for rid, uid in people.items()
    ]  # fmt: skip
    for spec in specs:
        granter.grant(spec)
    ends = [threading.Thread(target=granter.revoke, args=(spec, None)) for spec in specs]
    for end in ends:
        end.start()
    for end in ends:
        end.join(timeout=30)
    assert sorted(s["Sid"] for s in policy.ours(inline(center))) == ["AccessbotEnd7001", "AccessbotEnd7002"]
    assert inline(center).startswith(ADMIN[: ADMIN.rindex("]")])
    wait_until(lambda: not center.assigned("alice.sso") and not center.assigned("bob@example.com"))


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
    assert decision(in_force, session(user, PROD, cutoff_of(ended) - timedelta(seconds=1))) == "Deny"
    assert decision(in_force, session(user, PROD, cutoff_of(ended))) == "Allow"  # the same cutoff as before
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
        assert decision(in_force, session(user, account, now)) == "Allow"
    assert policy.ours(inline(center)) == []
    ctx = modelled.runtime.workflow.ctx
    reconciler = Reconciler(engine=ctx.engine, catalog=ctx.catalog, granters=ctx.granters, iam=world.iam, kms=world.kms)
    assert reconciler.restore_session_denies() == []  # lifted on purpose: not put back while she holds it again


def test_without_the_right_to_write_the_deny_the_access_still_ends_and_the_fix_is_alerted(
    modelled: Bot, model: SsoModel, slack: FakeSlack, center: Center
) -> None:
    model.add_rule("PutInlinePolicyToPermissionSet", "error", code="AccessDeniedException", status=400)
    request_id = file_request(modelled, "U0ALICE", "request prod-admin-sso 1s incident")
    approve(modelled, request_id)
    modelled.wait_status(request_id, "expired", timeout=15)
    alert = slack.wait_for(
        "chat.postMessage", lambda c: c.args.get("channel") == "C0APPROVALS" and "may not edit" in c.text()
    )
    assert "ProdAdmin" in alert.text() and "docs/iam-policy.json" in alert.text()
    assert center.assigned("alice.sso") == set() and inline(center) == ADMIN


def test_a_group_end_the_bot_cannot_map_still_removes_the_membership_and_alerts(
    modelled: Bot, model: SsoModel, slack: FakeSlack, center: Center
) -> None:
    model.add_rule("ListAccountAssignmentsForPrincipal", "error", code="AccessDeniedException", status=400)
    request_id = file_request(modelled, "U0ALICE", "request oncall-sso 1s paged")
    approve(modelled, request_id)
    ended = modelled.wait_status(request_id, "expired", timeout=15)
    assert not center.member("alice.sso") and ended.sessions_denied_until is None
    alert = slack.wait_for(
        "chat.postMessage", lambda c: c.args.get("channel") == "C0APPROVALS" and "could not list" in c.text()
    )
    assert "oncall-responders" in alert.text() and "delegated administrator" in alert.text()
