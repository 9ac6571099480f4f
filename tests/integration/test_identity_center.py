"""IAM Identity Center kinds end to end against moto's sso-admin and identitystore: what AWS really holds."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse

from bot.aws.granters import PermissionSetGranter, SsoGroupGranter
from bot.catalog import Kind
from bot.cli import main
from bot.clock import utcnow
from bot.reconcile import Reconciler
from bot.slack.messages import ACTION_APPROVE
from bot.store.db import session_scope
from bot.store.models import AccessRequest
from tests.conftest import Bot, wait_until
from tests.integration.faults import _Body, inject
from tests.integration.flows import approve, catalog_with, dm_containing, file_request
from tests.support import iam_policy
from tests.support.aws import World
from tests.support.catalogs import BASIC
from tests.support.fake_slack import FakeSlack

PROD, STAGING = "111111111111", "222222222222"
SSO_RESOURCES = f"""
  prod-admin-sso:
    kind: sso_permission_set
    permission_set: ProdAdmin
    accounts: ["{PROD}", "{STAGING}"]
    approvers: [platform]
  oncall-sso:
    kind: sso_group
    group: oncall-responders
    approvers: [platform]
"""


@dataclass
class Center:
    """What the fixture made in moto's Identity Center: the instance, a permission set, users and a group."""

    sso: Any
    store: Any
    instance_arn: str
    store_id: str
    permission_set_arn: str
    group_id: str
    users: dict[str, str]  # UserName -> UserId

    def assigned(self, user: str) -> set[str]:
        """Accounts where the user has the permission set now."""
        found = set()
        for account in (PROD, STAGING):
            listed = self.sso.list_account_assignments(
                InstanceArn=self.instance_arn, AccountId=account, PermissionSetArn=self.permission_set_arn
            )["AccountAssignments"]
            if any(a["PrincipalId"] == self.users[user] for a in listed):
                found.add(account)
        return found

    def member(self, user: str) -> bool:
        answer = self.store.is_member_in_groups(
            IdentityStoreId=self.store_id, MemberId={"UserId": self.users[user]}, GroupIds=[self.group_id]
        )
        return bool(answer["Results"][0]["MembershipExists"])


@pytest.fixture
def center(world: World) -> Center:
    sso, store = boto3.client("sso-admin"), boto3.client("identitystore")
    instance = sso.list_instances()["Instances"][0]
    arn, store_id = instance["InstanceArn"], instance["IdentityStoreId"]
    ps = sso.create_permission_set(InstanceArn=arn, Name="ProdAdmin", SessionDuration="PT1H")["PermissionSet"]
    sso.create_permission_set(InstanceArn=arn, Name="ReadOnly")
    users = {}
    # alice is found by her email; bob's UserName is his email; carol is not in the identity store at all.
    for name, email in [("alice.sso", "alice@example.com"), ("bob@example.com", "bob-other@example.com")]:
        users[name] = store.create_user(
            IdentityStoreId=store_id,
            UserName=name,
            DisplayName=name,
            Name={"GivenName": name, "FamilyName": "Test"},
            Emails=[{"Value": email, "Type": "work", "Primary": True}],
        )["UserId"]
    group = store.create_group(IdentityStoreId=store_id, DisplayName="oncall-responders")["GroupId"]
    return Center(sso, store, arn, store_id, ps["PermissionSetArn"], group, users)


@pytest.fixture
def sso_bot(make_bot: Callable[..., Bot], catalog_file: Path, center: Center) -> Bot:
    catalog_file.write_text(catalog_with(SSO_RESOURCES))
    return make_bot()


def bot_sso(bot: Bot) -> Any:
    granter = bot.runtime.workflow.ctx.granters[Kind.SSO_PERMISSION_SET]
    assert isinstance(granter, PermissionSetGranter)
    return granter._sso


def bot_store(bot: Bot) -> Any:
    granter = bot.runtime.workflow.ctx.granters[Kind.SSO_GROUP]
    assert isinstance(granter, SsoGroupGranter)
    return granter._store


@contextmanager
def answer_creation(bot: Bot, reply: Callable[[dict[str, Any]], dict[str, Any] | None]) -> Iterator[None]:
    """Answer CreateAccountAssignment calls with `reply(request body)` when it returns a status (else: moto)."""
    client = bot_sso(bot)

    def handler(request: Any, **_: Any) -> AWSResponse | None:
        status = reply(json.loads(request.body))
        if status is None:
            return None
        body = json.dumps({"AccountAssignmentCreationStatus": status}).encode()
        return AWSResponse(request.url, 200, {"Content-Type": "application/x-amz-json-1.1"}, _Body(body))

    event = "before-send.sso-admin.CreateAccountAssignment"
    client.meta.events.register(event, handler, unique_id="answer-creation")
    yield
    client.meta.events.unregister(event, unique_id="answer-creation")


# -- sso_permission_set ---------------------------------------------------------------------------


def test_a_permission_set_is_assigned_in_every_account_and_removed_at_expiry(
    sso_bot: Bot, slack: FakeSlack, center: Center
) -> None:
    request_id = file_request(sso_bot, "U0ALICE", "request prod-admin-sso 3s prod incident")
    row = sso_bot.request(request_id)
    assert row is not None and (row.iam_user, row.iam_user_arn) == ("alice.sso", center.users["alice.sso"])
    approve(sso_bot, request_id)

    active = sso_bot.wait_status(request_id, "active")
    assert active.target == f"ProdAdmin in {PROD},{STAGING}"
    assert active.target_arn == center.permission_set_arn
    assert center.assigned("alice.sso") == {PROD, STAGING}
    dm_containing(slack, "U0ALICE", "You now have *prod-admin-sso*")

    sso_bot.wait_status(request_id, "expired", timeout=8)
    assert center.assigned("alice.sso") == set()


def test_a_grant_a_crash_left_half_done_is_finished_by_the_next_process_without_a_second_assignment(
    make_bot: Callable[..., Bot], catalog_file: Path, center: Center
) -> None:
    catalog_file.write_text(catalog_with(SSO_RESOURCES))
    first = make_bot(accessbot_scheduler="off")  # it never gets to the grant: only the crash below does
    request_id = file_request(first, "U0ALICE", "request prod-admin-sso 1h prod incident")
    # The crash: approved and claimed, the intent recorded, one account assigned, then the process died.
    first.runtime.workflow.decide(request_id=request_id, actor="U0BOB", approve=True)
    with session_scope(first.runtime.workflow.engine) as session:
        row = session.get(AccessRequest, request_id)
        assert row is not None and row.status == "approved"
        # What GrantService records in one transaction before its first AWS call.
        row.grant_started_at, row.target_arn = utcnow(), center.permission_set_arn
        row.expires_at = row.grant_started_at + timedelta(seconds=row.duration_seconds)
    center.sso.create_account_assignment(
        InstanceArn=center.instance_arn, TargetId=PROD, TargetType="AWS_ACCOUNT",
        PermissionSetArn=center.permission_set_arn, PrincipalType="USER", PrincipalId=center.users["alice.sso"],
    )  # fmt: skip
    first.runtime.stop()

    second = make_bot()
    second.wait_status(request_id, "active", timeout=12)  # once the dead process's lease has run out
    assert center.assigned("alice.sso") == {PROD, STAGING}
    listed = center.sso.list_account_assignments(
        InstanceArn=center.instance_arn, AccountId=PROD, PermissionSetArn=center.permission_set_arn
    )["AccountAssignments"]
    assert [a["PrincipalId"] for a in listed] == [center.users["alice.sso"]]  # not assigned twice
    assert second.ask("U0ALICE", f"revoke #{request_id}").startswith(f"Revoking #{request_id}")
    second.wait_status(request_id, "revoked", timeout=10)
    assert center.assigned("alice.sso") == set()


def test_one_account_refusing_undoes_the_other_and_fails_with_aws_words(
    sso_bot: Bot, slack: FakeSlack, center: Center
) -> None:
    def refuse_staging(body: dict[str, Any]) -> dict[str, Any] | None:
        if body["TargetId"] != STAGING:
            return None
        return {
            "Status": "FAILED",
            "RequestId": "5f7c1b0e-0000-4000-8000-00000000a001",
            "FailureReason": "Account 222222222222 is suspended",
        }

    with answer_creation(sso_bot, refuse_staging):
        request_id = file_request(sso_bot, "U0ALICE", "request prod-admin-sso 1h deploy")
        approve(sso_bot, request_id)
        failed = sso_bot.wait_status(request_id, "failed")
    assert failed.last_error is not None and "Account 222222222222 is suspended" in failed.last_error
    assert f"in {PROD} were undone" in failed.last_error
    assert center.assigned("alice.sso") == set()
    told = dm_containing(slack, "U0ALICE", "Account 222222222222 is suspended")
    assert "#" in told
    wait_until(lambda: (r := sso_bot.request(request_id)) is not None and r.ended_at is not None)
    assert center.assigned("alice.sso") == set()


def test_an_access_denied_account_fails_the_request_with_aws_words(sso_bot: Bot, center: Center) -> None:
    denied = inject(
        bot_sso(sso_bot),
        "CreateAccountAssignment",
        code="AccessDeniedException",
        status=400,
        message="User is not authorized to perform sso:CreateAccountAssignment",
    )
    request_id = file_request(sso_bot, "U0ALICE", "request prod-admin-sso 1h deploy")
    approve(sso_bot, request_id)
    failed = sso_bot.wait_status(request_id, "failed")
    denied.stop()
    assert (
        failed.last_error is not None and "not authorized to perform sso:CreateAccountAssignment" in failed.last_error
    )
    assert center.assigned("alice.sso") == set()


def test_assignments_in_progress_are_polled_until_they_succeed(sso_bot: Bot, center: Center) -> None:
    def in_progress(body: dict[str, Any]) -> dict[str, Any] | None:
        # Make the assignment in moto (so its status is found) but answer as AWS does: IN_PROGRESS first.
        made = center.sso.create_account_assignment(**body)["AccountAssignmentCreationStatus"]
        return {"Status": "IN_PROGRESS", "RequestId": made["RequestId"]}

    polls = inject(bot_sso(sso_bot), "DescribeAccountAssignmentCreationStatus", code="x", status=500, times=0)
    with answer_creation(sso_bot, in_progress):
        request_id = file_request(sso_bot, "U0ALICE", "request prod-admin-sso 1h deploy")
        approve(sso_bot, request_id)
        sso_bot.wait_status(request_id, "active")
    assert polls.passed == 2  # one per account: both SUCCEEDED at the first look
    assert center.assigned("alice.sso") == {PROD, STAGING}


def test_two_accounts_are_assigned_in_parallel(sso_bot: Bot, center: Center) -> None:
    """Each assignment takes 0.6 s, and the two are under way at the same time (not one after the other)."""
    spans: list[tuple[float, float]] = []

    def slow(body: dict[str, Any]) -> dict[str, Any] | None:
        began = time.monotonic()
        time.sleep(0.6)
        spans.append((began, time.monotonic()))
        return None

    with answer_creation(sso_bot, slow):
        request_id = file_request(sso_bot, "U0ALICE", "request prod-admin-sso 1h deploy")
        approve(sso_bot, request_id)
        sso_bot.wait_status(request_id, "active")
    assert len(spans) == 2
    assert max(began for began, _ in spans) < min(ended for _, ended in spans)  # they overlapped


def test_throttling_and_conflicts_are_retried_and_the_grant_succeeds(sso_bot: Bot, center: Center) -> None:
    conflict = inject(
        bot_sso(sso_bot),
        "CreateAccountAssignment",
        code="ConflictException",
        status=400,
        message="Another operation is in progress",
        times=2,
    )
    throttle = inject(bot_store(sso_bot), "CreateGroupMembership", code="ThrottlingException", status=400, times=2)
    first = file_request(sso_bot, "U0ALICE", "request prod-admin-sso 1h deploy")
    approve(sso_bot, first)
    sso_bot.wait_status(first, "active")
    second = file_request(sso_bot, "U0ALICE", "request oncall-sso 1h paged")
    approve(sso_bot, second)
    sso_bot.wait_status(second, "active")
    assert conflict.failed == 2 and throttle.failed == 2
    assert center.assigned("alice.sso") == {PROD, STAGING}
    assert center.member("alice.sso")


def test_an_early_revoke_removes_every_assignment(sso_bot: Bot, slack: FakeSlack, center: Center) -> None:
    request_id = file_request(sso_bot, "U0ALICE", "request prod-admin-sso 1h deploy")
    approve(sso_bot, request_id)
    sso_bot.wait_status(request_id, "active")
    assert sso_bot.ask("U0ALICE", f"revoke #{request_id}").startswith("Revoking")
    sso_bot.wait_status(request_id, "revoked")
    assert center.assigned("alice.sso") == set()
    dm_containing(slack, "U0ALICE", "revoked")


def test_an_end_identity_center_refuses_is_alerted_kept_owed_and_finished_later(
    sso_bot: Bot, slack: FakeSlack, center: Center
) -> None:
    outage = inject(bot_store(sso_bot), "DeleteGroupMembership", code="AccessDeniedException", status=400,
                    message="no identitystore:DeleteGroupMembership")  # fmt: skip
    request_id = file_request(sso_bot, "U0ALICE", "request oncall-sso 1s paged")
    approve(sso_bot, request_id)
    sso_bot.wait_status(request_id, "active")
    alert = slack.wait_for(
        "chat.postMessage", lambda c: c.args.get("channel") == "C0APPROVALS" and "Revoking #" in c.text(), timeout=15
    )
    assert f"Revoking #{request_id} failed 3 times" in alert.text() and "DeleteGroupMembership" in alert.text()
    row = sso_bot.request(request_id)
    assert row is not None and row.status == "active" and row.ended_at is None and center.member("alice.sso")
    outage.stop()
    sso_bot.wait_status(request_id, "expired", timeout=15)
    assert not center.member("alice.sso")


def test_list_and_app_home_show_identity_center_requests(sso_bot: Bot, slack: FakeSlack, center: Center) -> None:
    request_id = file_request(sso_bot, "U0ALICE", "request prod-admin-sso 1h prod incident")
    assert f"#{request_id}" in sso_bot.ask("U0ALICE", "list") and "prod-admin-sso" in sso_bot.ask("U0ALICE", "list")
    assert f"#{request_id}" in sso_bot.ask("U0BOB", "pending")
    sso_bot.sender.event({"type": "app_home_opened", "user": "U0BOB", "tab": "home"})
    home = json.dumps(slack.wait_for("views.publish", lambda c: c.args.get("user_id") == "U0BOB").args["view"])
    assert f"#{request_id}" in home and "prod-admin-sso" in home
    approve(sso_bot, request_id)
    sso_bot.wait_status(request_id, "active")
    sso_bot.sender.event({"type": "app_home_opened", "user": "U0ALICE", "tab": "home"})
    mine = json.dumps(slack.wait_for("views.publish", lambda c: c.args.get("user_id") == "U0ALICE").args["view"])
    assert f"#{request_id}" in mine and "prod-admin-sso" in mine


def test_an_extension_moves_the_expiry_and_keeps_the_assignments(sso_bot: Bot, center: Center) -> None:
    request_id = file_request(sso_bot, "U0ALICE", "request prod-admin-sso 1h deploy")
    approve(sso_bot, request_id)
    before = sso_bot.wait_status(request_id, "active")
    assert sso_bot.ask("U0ALICE", f"extend #{request_id} 30m").endswith("is waiting for approval.")
    sso_bot.slack.wait_for("chat.postMessage", lambda c: "Extension 1 of request" in c.text())
    sso_bot.sender.click("U0BOB", ACTION_APPROVE, f"{request_id}:1")
    wait_until(lambda: (sso_bot.request(request_id) or before).extensions_used == 1)
    after = sso_bot.request(request_id)
    assert after is not None and after.expires_at is not None and before.expires_at is not None
    assert (after.expires_at - before.expires_at).total_seconds() == 1800
    assert center.assigned("alice.sso") == {PROD, STAGING}


def test_overlapping_grants_keep_the_assignments_until_the_last_ends(sso_bot: Bot, center: Center) -> None:
    short = file_request(sso_bot, "U0ALICE", "request prod-admin-sso 2s quick look")
    approve(sso_bot, short)
    sso_bot.wait_status(short, "active")
    long = file_request(sso_bot, "U0ALICE", "request prod-admin-sso 1h the real fix")
    approve(sso_bot, long)
    sso_bot.wait_status(long, "active")

    sso_bot.wait_status(short, "expired", timeout=8)
    assert center.assigned("alice.sso") == {PROD, STAGING}  # the other grant still holds them
    sso_bot.ask("U0ALICE", f"revoke {long}")
    sso_bot.wait_status(long, "revoked")
    assert center.assigned("alice.sso") == set()


# -- sso_group --------------------------------------------------------------------------------------


def test_a_group_membership_is_added_and_removed(sso_bot: Bot, center: Center) -> None:
    request_id = file_request(sso_bot, "U0BOB", "request oncall-sso 2s paged")
    approve(sso_bot, request_id, "U0CAROL")
    active = sso_bot.wait_status(request_id, "active")
    assert active.iam_user == "bob@example.com"  # found by UserName: no user has his email
    assert active.target_arn == center.group_id and active.grant_ref
    assert center.member("bob@example.com")
    sso_bot.wait_status(request_id, "expired", timeout=8)
    assert not center.member("bob@example.com")


def test_a_member_by_other_means_is_told_so_and_never_removed(sso_bot: Bot, slack: FakeSlack, center: Center) -> None:
    center.store.create_group_membership(
        IdentityStoreId=center.store_id, GroupId=center.group_id, MemberId={"UserId": center.users["alice.sso"]}
    )
    request_id = file_request(sso_bot, "U0ALICE", "request oncall-sso 1h paged")
    approve(sso_bot, request_id)
    failed = sso_bot.wait_status(request_id, "failed")
    assert failed.grant_started_at is None
    assert failed.last_error is not None and "by other means" in failed.last_error
    dm_containing(slack, "U0ALICE", "by other means")
    time.sleep(0.5)
    assert center.member("alice.sso")


def test_a_permission_set_held_by_other_means_is_left_alone(sso_bot: Bot, center: Center) -> None:
    center.sso.create_account_assignment(
        InstanceArn=center.instance_arn,
        TargetId=STAGING,
        TargetType="AWS_ACCOUNT",
        PermissionSetArn=center.permission_set_arn,
        PrincipalType="USER",
        PrincipalId=center.users["alice.sso"],
    )
    request_id = file_request(sso_bot, "U0ALICE", "request prod-admin-sso 1h deploy")
    approve(sso_bot, request_id)
    failed = sso_bot.wait_status(request_id, "failed")
    assert failed.grant_started_at is None and "by other means" in (failed.last_error or "")
    assert center.assigned("alice.sso") == {STAGING}


# -- identity --------------------------------------------------------------------------------------


def test_a_person_missing_from_the_identity_store_gets_a_private_specific_answer(sso_bot: Bot, center: Center) -> None:
    answer = sso_bot.ask("U0CAROL", "request oncall-sso 1h paged")
    assert "No IAM Identity Center user has the email or user name carol@example.com" in answer
    assert sso_bot.count() == 0


def test_identity_static_may_name_an_identity_store_user(
    make_bot: Callable[..., Bot], catalog_file: Path, center: Center
) -> None:
    text = catalog_with(SSO_RESOURCES).replace("    U0DAVE: dave\n", "    U0DAVE: dave\n    U0CAROL: alice.sso\n")
    catalog_file.write_text(text)
    bot = make_bot()
    request_id = file_request(bot, "U0CAROL", "request oncall-sso 1h paged")
    row = bot.request(request_id)
    assert row is not None and row.iam_user == "alice.sso"
    assert "does not exist in the identity store" in bot.ask("U0DAVE", "request oncall-sso 1h paged")


# -- check-config and the least-privilege policy ---------------------------------------------------


def test_check_config_checks_the_instance_permission_sets_accounts_groups_and_static_users(
    center: Center, catalog_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = """
  missing-ps:
    kind: sso_permission_set
    permission_set: Nope
    accounts: ["333333333333"]
    approvers: [platform]
  missing-group:
    kind: sso_group
    group: nobody-here
    approvers: [platform]
"""
    catalog_file.write_text(BASIC[: BASIC.index("  ghost-group:")] + SSO_RESOURCES.lstrip("\n") + broken.lstrip("\n"))
    monkeypatch.setenv("ACCESSBOT_CATALOG", str(catalog_file))
    code = main(["check-config"])
    lines = capsys.readouterr().out.splitlines()
    assert code == 1
    assert "ok   identity_center: IAM Identity Center instance" in lines
    assert f"ok   prod-admin-sso: sso_permission_set ProdAdmin in {PROD},{STAGING}" in lines
    assert "ok   oncall-sso: sso_group oncall-responders" in lines
    assert any(
        line.startswith("FAIL missing-ps:") and "the permission set 'Nope' does not exist" in line for line in lines
    )
    assert any(line.startswith("FAIL missing-group:") and "'nobody-here' does not exist" in line for line in lines)
    assert "ok   identity.static.U0DAVE: IAM user dave" in lines
    assert (
        "FAIL identity.static.U0DAVE: Identity Center user dave: no Identity Center user has the UserName 'dave'"
        in lines
    )


def test_every_identity_center_operation_is_allowed_by_the_policy(sso_bot: Bot, center: Center) -> None:
    start = len(iam_policy.CALLS)
    for text in ("request prod-admin-sso 2s a", "request oncall-sso 2s b"):
        request_id = file_request(sso_bot, "U0ALICE", text)
        approve(sso_bot, request_id)
        sso_bot.wait_status(request_id, "expired", timeout=8)
    flow = set(iam_policy.CALLS[start:])
    assert {
        "sso:CreateAccountAssignment",
        "sso:DeleteAccountAssignment",
        "identitystore:CreateGroupMembership",
        "identitystore:DeleteGroupMembership",
        "identitystore:GetUserId",
    } <= flow
    assert iam_policy.not_allowed(flow) == []


# -- reconcile -------------------------------------------------------------------------------------


def reconciler_of(bot: Bot, world: World) -> Reconciler:
    ctx = bot.runtime.workflow.ctx
    return Reconciler(engine=ctx.engine, catalog=ctx.catalog, granters=ctx.granters, iam=world.iam, kms=world.kms)


def test_reconcile_finds_and_puts_back_an_assignment_removed_behind_the_bots_back(
    sso_bot: Bot, world: World, center: Center
) -> None:
    request_id = file_request(sso_bot, "U0ALICE", "request prod-admin-sso 1h deploy")
    approve(sso_bot, request_id)
    sso_bot.wait_status(request_id, "active")
    reconciler = reconciler_of(sso_bot, world)
    assert reconciler.check().drift == ()

    center.sso.delete_account_assignment(
        InstanceArn=center.instance_arn,
        TargetId=STAGING,
        TargetType="AWS_ACCOUNT",
        PermissionSetArn=center.permission_set_arn,
        PrincipalType="USER",
        PrincipalId=center.users["alice.sso"],
    )
    report = reconciler.check()
    assert [(d.problem.value, d.kind.value, d.user, d.request_id) for d in report.drift] == [
        ("missing", "sso_permission_set", "alice.sso", request_id)
    ]
    fixed = reconciler.fix(report)
    assert [f.outcome for f in fixed.fixes] == ["re-applied"]
    assert center.assigned("alice.sso") == {PROD, STAGING}
    assert reconciler.check().drift == ()


def test_reconcile_removes_a_membership_the_bot_added_that_outlived_its_request(
    sso_bot: Bot, world: World, center: Center
) -> None:
    request_id = file_request(sso_bot, "U0ALICE", "request oncall-sso 2s paged")
    approve(sso_bot, request_id)
    sso_bot.wait_status(request_id, "expired", timeout=8)
    center.store.create_group_membership(
        IdentityStoreId=center.store_id, GroupId=center.group_id, MemberId={"UserId": center.users["alice.sso"]}
    )
    reconciler = reconciler_of(sso_bot, world)
    report = reconciler.check()
    assert [(d.problem.value, d.kind.value, d.target, d.request_id) for d in report.drift] == [
        ("orphan", "sso_group", "oncall-responders", request_id)
    ]
    assert report.drift[0].detail == f"added by accessbot, and request #{request_id} is expired"
    assert [f.outcome for f in reconciler.fix(report).fixes] == ["removed"]
    assert not center.member("alice.sso")
