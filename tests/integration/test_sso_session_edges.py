"""Identity Center session ends at the edges: groups, creations AWS finishes late, rights, locks, concurrency."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

import boto3
import pytest

from bot.aws.errors import AwsError, aws_call
from bot.aws.granters import GrantSpec, PermissionSetGranter, Polling
from bot.aws.granters.sso import deny as policy
from bot.aws.granters.sso.assignments import Assignments, MemoryCreations
from bot.aws.granters.sso.sessions import lock_key
from bot.aws.identity_center import Center as IdentityCenter
from bot.catalog import Kind
from bot.clock import utcnow
from bot.reconcile import Reconciler
from bot.store.creations import StoredCreations
from bot.store.db import _lock_id, hold_lock
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
    assert decide(in_force, session(user, PROD, cutoff - timedelta(seconds=1))) == Decision.EXPLICIT_DENY
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


def test_an_assignment_gone_between_the_read_and_the_delete_counts_as_deleted_once(
    modelled: Bot, model: SsoModel, center: Center
) -> None:
    """An administrator deletes it after the bot read the account: AWS's ResourceNotFoundException is final."""
    granter = modelled.runtime.workflow.ctx.granters[Kind.SSO_PERMISSION_SET]
    assert isinstance(granter, PermissionSetGranter)
    real = granter.assignments

    class ReadBeforeTheDeletion(Assignments):
        def assigned(self, arn: str, account: str, user_id: str) -> bool:
            return True  # what the account listed a moment before the administrator's deletion

    via_model = boto3.client("sso-admin", endpoint_url=model.url)
    stale = ReadBeforeTheDeletion(via_model, real._center, MemoryCreations(), Polling(first=0.05, most=0.1, limit=2))
    user = center.users["alice.sso"]
    assert real.assigned(center.permission_set_arn, PROD, user) is False
    assert stale.unassign(center.permission_set_arn, PROD, user) is True
    assert model.count("DeleteAccountAssignment") == 1  # asked once, never again


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


@pytest.mark.postgres
def test_the_per_set_lock_is_held_across_replicas(modelled: Bot, model: SsoModel, center: Center) -> None:
    """Another replica holding the set's lock (a PostgreSQL advisory lock) keeps this end from writing."""
    model.creation_polls = 0
    ctx = modelled.runtime.workflow.ctx
    granter = ctx.granters[Kind.SSO_PERMISSION_SET]
    assert isinstance(granter, PermissionSetGranter)
    spec = GrantSpec(
        request_id=7101,
        iam_user="alice.sso",
        iam_user_arn=center.users["alice.sso"],
        target=f"ProdAdmin in {PROD}",
        expires_at=utcnow(),
        target_arn=center.permission_set_arn,
    )
    granter.grant(spec)
    other_replica = ctx.engine.raw_connection()  # a connection of its own, as another process would have
    try:
        other_replica.cursor().execute("SELECT pg_advisory_lock(%s)", (_lock_id(lock_key(center.permission_set_arn)),))
        end = threading.Thread(target=granter.revoke, args=(spec, None))
        end.start()
        end.join(timeout=1.5)
        assert end.is_alive() and model.count("PutInlinePolicyToPermissionSet") == 0  # waiting for the lock
        other_replica.cursor().execute("SELECT pg_advisory_unlock_all()")
        end.join(timeout=20)
    finally:
        other_replica.close()
    assert not end.is_alive() and model.count("PutInlinePolicyToPermissionSet") == 1
    assert [s["Sid"] for s in policy.ours(inline(center))] == ["AccessbotEnd7101"]


def test_the_undo_of_a_partly_failed_grant_denies_sessions_before_removing_what_was_assigned(
    modelled: Bot, model: SsoModel, center: Center
) -> None:
    model.fail_creation[STAGING] = "Account 222222222222 is suspended"
    user = center.users["alice.sso"]
    request_id = file_request(modelled, "U0ALICE", "request prod-admin-sso 1h deploy")
    approve(modelled, request_id)
    failed = modelled.wait_status(request_id, "failed", timeout=15)
    assert failed.last_error is not None and "is suspended" in failed.last_error
    assert center.assigned("alice.sso") == set()
    steps = sent(model, PROD, center.permission_set_arn)
    assert [what for what, _ in steps] == ["provisioned", "unassigned"]
    assert (
        decide(steps[0][1], session(user, PROD, utcnow())) == Decision.EXPLICIT_DENY
    )  # a session opened meanwhile is cut
    wait_until(lambda: (r := modelled.request(request_id)) is not None and r.sessions_denied_until is not None)


def test_reconcile_puts_back_a_group_ends_deny_that_disappeared(
    modelled: Bot, model: SsoModel, world: World, center: Center
) -> None:
    model.creation_polls = 0
    boto3.client("sso-admin", endpoint_url=model.url).create_account_assignment(
        InstanceArn=center.instance_arn, TargetId=PROD, TargetType="AWS_ACCOUNT",
        PermissionSetArn=center.permission_set_arn, PrincipalType="GROUP", PrincipalId=center.group_id,
    )  # fmt: skip
    request_id = file_request(modelled, "U0ALICE", "request oncall-sso 2s paged")
    approve(modelled, request_id)
    ended = modelled.wait_status(request_id, "expired", timeout=15)
    center.sso.put_inline_policy_to_permission_set(  # an apply puts the administrator's version back
        InstanceArn=center.instance_arn, PermissionSetArn=center.permission_set_arn, InlinePolicy=ADMIN
    )
    ctx = modelled.runtime.workflow.ctx
    reconciler = Reconciler(engine=ctx.engine, catalog=ctx.catalog, granters=ctx.granters, iam=world.iam, kms=world.kms)
    assert reconciler.restore_session_denies() == [request_id]
    in_force = model.in_force(center.permission_set_arn, PROD) or ""
    user = center.users["alice.sso"]
    assert decide(in_force, session(user, PROD, cutoff_of(ended) - timedelta(seconds=1))) == Decision.EXPLICIT_DENY
    assert decide(in_force, session(user, PROD, cutoff_of(ended))) == Decision.ALLOWED
    assert reconciler.restore_session_denies() == []


def test_a_provisioning_aws_has_not_finished_keeps_the_assignment_and_the_retry_keeps_the_cutoff(
    model: SsoModel, center: Center
) -> None:
    """Past the poll's bound the deny may not be in force yet: the assignment stays, the end owed (retried)."""
    model.creation_polls, model.provision_polls = 0, 10_000  # AWS keeps provisioning IN_PROGRESS
    center.sso.put_inline_policy_to_permission_set(
        InstanceArn=center.instance_arn, PermissionSetArn=center.permission_set_arn, InlinePolicy=ADMIN
    )
    sso = boto3.client("sso-admin", endpoint_url=model.url)
    granter = PermissionSetGranter(sso, IdentityCenter(sso, None), polling=Polling(first=0.05, most=0.1, limit=0.4))
    spec = GrantSpec(
        request_id=7201,
        iam_user="alice.sso",
        iam_user_arn=center.users["alice.sso"],
        target=f"ProdAdmin in {PROD}",
        expires_at=utcnow(),
        target_arn=center.permission_set_arn,
    )
    granter.grant(spec)
    with pytest.raises(AwsError) as caught:
        granter.revoke(spec, None)
    assert caught.value.code == "StillInProgress" and caught.value.transient
    assert center.assigned("alice.sso") == {PROD}  # not deleted before the deny is in force there
    assert sent(model, PROD, center.permission_set_arn) == []
    [first] = policy.ours(inline(center))
    model.provision_polls = 1  # AWS provisions again in its usual time
    ended = granter.revoke(spec, None)
    assert center.assigned("alice.sso") == set()
    assert [what for what, _ in sent(model, PROD, center.permission_set_arn)] == ["provisioned", "unassigned"]
    assert policy.ours(inline(center)) == [first]  # the retry kept the first attempt's cutoff
    cutoff = datetime.fromisoformat(first["Condition"]["DateLessThan"]["aws:TokenIssueTime"])
    assert ended.lift_at == cutoff + timedelta(hours=1) + MARGIN  # ProdAdmin's SessionDuration is PT1H
