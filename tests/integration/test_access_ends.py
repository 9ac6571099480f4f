"""Access ends when it must: every path that used to leave AWS access in place after its end.

Each test drives the real bot over HTTP against moto, with AWS misbehaving the way it does in production:
calls held at a gate (botocore's before-send), or answered by a fault-injecting proxy in front of moto
(applied and then refused, refused, throttled). The numbers refer to the issue's numbered paths.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from sqlalchemy import update

from bot.aws.clients import AwsClients
from bot.aws.granters.role_denies import INLINE_NAME
from bot.catalog import load_catalog
from bot.clock import utcnow
from bot.reconcile import Problem, Reconciler
from bot.store.db import session_scope
from bot.store.models import AccessRequest
from bot.wiring import build_granters
from tests.conftest import Bot, wait_until
from tests.integration.faults import bot_iam, inject
from tests.integration.flows import approve, catalog_with, dm_containing, file_request
from tests.support.aws import World, members
from tests.support.chaos_proxy import ChaosProxy
from tests.support.fake_slack import FakeSlack

ROLE = "prod-readonly"


def actions(bot: Bot, request_id: int) -> list[str]:
    return [e.action for e in bot.audit(request_id)]


def user_policies(world: World, user: str = "alice") -> list[str]:
    return list(world.iam.list_user_policies(UserName=user)["PolicyNames"])


def document(text: str | dict[str, Any]) -> dict[str, Any]:
    """A policy document as IAM returns it (URL-encoded JSON, or already parsed by boto3)."""
    return json.loads(unquote(text)) if isinstance(text, str) else dict(text)


def role_policy(world: World, name: str) -> dict[str, Any] | None:
    try:
        return document(world.iam.get_role_policy(RoleName=ROLE, PolicyName=name)["PolicyDocument"])
    except world.iam.exceptions.NoSuchEntityException:
        return None


def set_row(bot: Bot, request_id: int, **values: Any) -> None:
    with session_scope(bot.runtime.workflow.engine) as session:
        session.execute(update(AccessRequest).where(AccessRequest.id == request_id).values(**values))  # type: ignore[arg-type]


@pytest.fixture
def proxy(moto_url: str, world: World, monkeypatch: pytest.MonkeyPatch) -> Iterator[ChaosProxy]:
    """A fault-injecting proxy in front of moto; bots made after this fixture talk to AWS through it."""
    with ChaosProxy(moto_url, seed=11) as chaos:
        monkeypatch.setenv("AWS_ENDPOINT_URL", chaos.url)
        yield chaos


# -- 1. a revoke while the grant is in flight -----------------------------------------------------


@pytest.mark.both_databases
def test_revoke_during_a_slow_grant_ends_the_access_as_soon_as_aws_has_it(
    bot: Bot, slack: FakeSlack, world: World
) -> None:
    gate = threading.Event()
    slow = inject(bot_iam(bot), "AddUserToGroup", code="unused", status=500, times=0, gate=gate)
    request_id = file_request(bot, "U0ALICE", "request deploy-admins 1h hotfix")
    approve(bot, request_id)
    wait_until(lambda: slow.passed == 1)  # the grant is on its way to AWS, the row still approved
    assert bot.status(request_id) == "approved"

    answer = bot.ask("U0ALICE", f"revoke #{request_id}")
    assert answer.startswith(f"Revoking #{request_id} now")
    gate.set()

    ended = bot.wait_status(request_id, "revoked")
    assert "alice" not in members(world.iam, "deploy-admins")
    assert ended.ended_at is not None and ended.activated_at is not None
    trail = actions(bot, request_id)
    assert trail.index("revoke_requested") < trail.index("active") < trail.index("revoked")
    dm_containing(slack, "U0ALICE", "revoked")


@pytest.mark.both_databases
def test_revoke_before_the_grant_was_applied_ends_it_without_granting(bot: Bot, world: World) -> None:
    gate = threading.Event()
    # The membership check before the intent is recorded: the grant has not started when the revoke arrives.
    check = inject(bot_iam(bot), "ListGroupsForUser", code="unused", status=500, times=0, gate=gate)
    adds = inject(bot_iam(bot), "AddUserToGroup", code="unused", status=500, times=0)
    request_id = file_request(bot, "U0ALICE", "request deploy-admins 1h hotfix")
    approve(bot, request_id)
    wait_until(lambda: check.passed == 1)

    assert bot.ask("U0BOB", f"revoke {request_id}").startswith("Revoking")
    gate.set()

    ended = bot.wait_status(request_id, "revoked")
    assert adds.passed == 0 and "alice" not in members(world.iam, "deploy-admins")
    assert ended.activated_at is None and ended.grant_started_at is None
    assert "active" not in actions(bot, request_id)


# -- 2. an early revoke is owed from the moment it is recorded -------------------------------------


# On SQLite: tests/inprocess/test_ends.py (same name); here PostgreSQL's locks, claims and leases.
@pytest.mark.postgres
def test_an_early_revoke_recorded_by_a_process_that_died_is_finished_by_the_sweep(bot: Bot, world: World) -> None:
    request_id = file_request(bot, "U0ALICE", "request prod-readonly 4h reading logs")
    approve(bot, request_id)
    bot.wait_status(request_id, "active")
    # The revoke is recorded, and the process that recorded it never gets to run the end (it died).
    bot.runtime.workflow.revoke_early(request_id=request_id, actor="U0ALICE")

    ended = bot.wait_status(request_id, "revoked", timeout=15)  # the claim's 5 s lease, then the sweep
    assert user_policies(world) == []
    assert ended.ended_by == "U0ALICE"


# -- 3. a KMS grant made through an alias that then moved ----------------------------------------


def test_kms_grant_is_revoked_on_the_key_it_was_made_on_after_the_alias_moved(bot: Bot, world: World) -> None:
    request_id = file_request(bot, "U0ALICE", "request payments-key 1h rotating secrets")
    approve(bot, request_id, "U0DAVE", "U0ERIN")
    active = bot.wait_status(request_id, "active")
    assert active.target_arn == world.key_arn

    rotated = world.kms.create_key(Description="payments, rotated")["KeyMetadata"]
    world.kms.update_alias(AliasName="alias/payments", TargetKeyId=rotated["KeyId"])
    assert bot.ask("U0ALICE", f"revoke {request_id}").startswith("Revoking")

    bot.wait_status(request_id, "revoked")
    assert world.kms.list_grants(KeyId=world.key_arn)["Grants"] == []
    assert world.kms.list_grants(KeyId=rotated["Arn"])["Grants"] == []


def test_reconcile_checks_a_kms_grant_on_its_recorded_key_after_the_alias_moved(
    bot: Bot, world: World, engine: Any, catalog_file: Path
) -> None:
    request_id = file_request(bot, "U0ALICE", "request payments-key 1h rotating secrets")
    approve(bot, request_id, "U0DAVE", "U0ERIN")
    bot.wait_status(request_id, "active")
    rotated = world.kms.create_key(Description="payments, rotated")["KeyMetadata"]
    world.kms.update_alias(AliasName="alias/payments", TargetKeyId=rotated["KeyId"])

    aws = AwsClients.create()
    reconciler = Reconciler(
        engine=engine, catalog=load_catalog(catalog_file), granters=build_granters(aws), iam=aws.iam, kms=aws.kms
    )
    assert reconciler.check().drift == ()
    grant_id = world.kms.list_grants(KeyId=world.key_arn)["Grants"][0]["GrantId"]
    world.kms.revoke_grant(KeyId=world.key_arn, GrantId=grant_id)
    [drift] = reconciler.check().drift
    assert (drift.problem, drift.target, drift.request_id) == (Problem.MISSING, world.key_arn, request_id)


# -- 4. AWS applies a grant but answers with an error, and the undo fails too ---------------------


def test_a_grant_applied_despite_an_error_is_undone_as_owed_work_until_aws_accepts(
    proxy: ChaosProxy, make_bot: Callable[..., Bot], slack: FakeSlack, world: World
) -> None:
    # LimitExceeded is not retried by botocore: the request fails, though AWS did add the member.
    proxy.add_rule("AddUserToGroup", "applied_then_error", times=1, code="LimitExceeded", status=409)
    refusals = proxy.add_rule("RemoveUserFromGroup", "error", times=4, code="AccessDenied", status=403)
    bot = make_bot()
    request_id = file_request(bot, "U0ALICE", "request deploy-admins 1h hotfix")
    approve(bot, request_id)

    failed = bot.wait_status(request_id, "failed")
    assert failed.ended_at is None  # the membership AWS added is still owed its removal
    wait_until(lambda: "alert" in actions(bot, request_id), timeout=15)  # after 3 failed undos
    dm_containing(slack, "U0ALICE", "failed")
    wait_until(lambda: "alice" not in members(world.iam, "deploy-admins"), timeout=15)
    done = wait_until(lambda: (row := bot.request(request_id)) is not None and row.ended_at is not None and row)
    assert done.status == "failed" and done.retry_at is None
    trail = actions(bot, request_id)
    assert trail.count("undo_failed") + trail.count("revoke_failed") == 4 and trail[-1] == "undone"
    assert refusals.fired == 4


def test_a_failed_grant_still_owed_its_undo_does_not_count_as_membership_by_other_means(
    proxy: ChaosProxy, make_bot: Callable[..., Bot], world: World
) -> None:
    proxy.add_rule("AddUserToGroup", "applied_then_error", times=1, code="LimitExceeded", status=409)
    outage = proxy.add_rule("RemoveUserFromGroup", "error", code="AccessDenied", status=403)
    bot = make_bot()
    first = file_request(bot, "U0ALICE", "request deploy-admins 1h hotfix")
    approve(bot, first)
    bot.wait_status(first, "failed")

    second = file_request(bot, "U0ALICE", "request deploy-admins 1h hotfix, second try")
    approve(bot, second)
    bot.wait_status(second, "active")
    proxy.clear_rules()
    assert outage.fired >= 1
    # The failed request's undo now goes through, and leaves the membership the active grant keeps.
    wait_until(lambda: (row := bot.request(first)) is not None and row.ended_at is not None)
    assert "alice" in members(world.iam, "deploy-admins")
    assert bot.ask("U0ALICE", f"revoke {second}").startswith("Revoking")
    bot.wait_status(second, "revoked")
    assert "alice" not in members(world.iam, "deploy-admins")


# -- 5. two replicas: the activation is never done twice -----------------------------------------


@pytest.mark.postgres
def test_a_slow_activation_past_its_lease_is_not_taken_over_by_another_replica(
    make_bot: Callable[..., Bot], database_url: str, moto_url: str, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ChaosProxy(moto_url, seed=5) as slow_aws:
        # Replica A's grant reaches AWS, and its refusal comes back only after three of B's leases.
        slow_aws.add_rule("AddUserToGroup", "applied_then_error", delay=6.0, code="LimitExceeded", status=409)
        monkeypatch.setenv("AWS_ENDPOINT_URL", slow_aws.url)
        replica_a = make_bot()
        # Its clients are built on first use: build them now, while the endpoint is the slow proxy.
        assert bot_iam(replica_a).meta.endpoint_url.rstrip("/") == slow_aws.url.rstrip("/")
        monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
        replica_b = make_bot()
        set_lease = [replica_a, replica_b]
        for replica in set_lease:
            # 2 s: the holder's heartbeat (every third of it) keeps the lease through a stalled moment
            replica.runtime.workflow.ctx.tuning = replace_lease(replica.runtime.workflow.ctx.tuning, 2.0)
            replica.runtime.workflow.ctx.claims._lease = timedelta(seconds=2)
        b_adds = inject(bot_iam(replica_b), "AddUserToGroup", code="unused", status=500, times=0)

        request_id = file_request(replica_a, "U0ALICE", "request deploy-admins 1h hotfix")
        approve(replica_a, request_id)
        replica_a.wait_status(request_id, "failed", timeout=30)
        # The undo of what AWS applied follows the failure (the same owed-removal step as any end).
        failed = wait_until(lambda: (r := replica_a.request(request_id)) is not None and r.ended_at and r)

    assert b_adds.passed == 0
    assert failed.status == "failed" and "alice" not in members(world.iam, "deploy-admins")
    assert actions(replica_a, request_id).count("failed") == 1


def replace_lease(tuning: Any, seconds: float) -> Any:
    from dataclasses import replace

    return replace(tuning, lease=timedelta(seconds=seconds))


# -- 6 and 7. an extension, an expiry and a revoke racing each other --------------------------------

AUTO_ROLE = """
  quick-role:
    kind: iam_role
    role_arn: arn:aws:iam::123456789012:role/prod-readonly
    approvers: [platform]
    auto_approve: {max_duration: 1h}
    auto_approve_limit: 10
"""


@pytest.mark.both_databases
def test_an_extension_racing_a_revoke_never_puts_the_role_policy_back(
    make_bot: Callable[..., Bot], catalog_file: Path, world: World
) -> None:
    catalog_file.write_text(catalog_with(AUTO_ROLE))
    bot = make_bot()
    request_id = file_request(bot, "U0ALICE", "request quick-role 30m reading logs")
    bot.wait_status(request_id, "active")
    gate = threading.Event()
    held = inject(bot_iam(bot), "PutUserPolicy", code="unused", status=500, times=0, gate=gate)
    assert "approved automatically" in bot.ask("U0ALICE", f"extend {request_id} 30m")
    wait_until(lambda: held.passed == 1)  # the extension's PutUserPolicy is on its way

    assert bot.ask("U0ALICE", f"revoke {request_id}").startswith("Revoking")
    gate.set()

    bot.wait_status(request_id, "revoked", timeout=15)
    wait_until(lambda: held.passed >= 1 and user_policies(world) == [])
    assert user_policies(world) == []


# On SQLite: tests/inprocess/test_ends.py (same name); here PostgreSQL's locks, claims and leases.
@pytest.mark.postgres
def test_a_revoke_recorded_while_the_expiry_is_applied_keeps_its_reason(
    bot: Bot, slack: FakeSlack, world: World
) -> None:
    request_id = file_request(bot, "U0ALICE", "request prod-readonly 1s quick look")
    gate = threading.Event()
    held = inject(bot_iam(bot), "DeleteUserPolicy", code="unused", status=500, times=0, gate=gate)
    approve(bot, request_id)
    wait_until(lambda: held.passed == 1, timeout=10)  # the expiry's revoke is on its way

    bot.runtime.workflow.revoke_early(request_id=request_id, actor="cli:sec", reason="laptop stolen", operator=True)
    gate.set()

    ended = bot.wait_status(request_id, "revoked")
    assert ended.ended_by == "cli:sec"
    dm_containing(slack, "U0ALICE", "laptop stolen")


# On SQLite: tests/inprocess/test_ends.py (same name); here PostgreSQL's locks, claims and leases.
@pytest.mark.postgres
def test_an_extension_applied_while_the_expiry_was_due_is_not_revoked(
    make_bot: Callable[..., Bot], catalog_file: Path, world: World
) -> None:
    catalog_file.write_text(catalog_with(AUTO_ROLE))
    bot = make_bot()
    # 8 s: the extension below reaches AWS before the expiry on a loaded machine too.
    request_id = file_request(bot, "U0ALICE", "request quick-role 8s quick look")
    bot.wait_status(request_id, "active")
    gate = threading.Event()
    held = inject(bot_iam(bot), "PutUserPolicy", code="unused", status=500, times=0, gate=gate)
    bot.sender.command("U0ALICE", f"extend {request_id} 30m")
    wait_until(lambda: held.passed == 1)
    row = bot.request(request_id)
    assert row is not None and row.expires_at is not None
    wait_until(lambda: utcnow() > row.expires_at + timedelta(seconds=1), timeout=15)  # the expiry falls due
    gate.set()

    extended = wait_until(lambda: (r := bot.request(request_id)) is not None and r.extensions_used == 1 and r)
    assert extended.status == "active" and extended.expires_at is not None and extended.expires_at > utcnow()
    assert user_policies(world) == [f"accessbot-{request_id}"]


# -- 8. PostgreSQL: a quorum of three real Slack IDs -----------------------------------------------

QUORUM = """
  three-keys:
    kind: iam_group
    group_name: auditors
    approvers: [U01ABCDEFGH, U02ABCDEFGH, U03ABCDEFGH]
    approvals_required: 3
"""


@pytest.mark.both_databases
def test_a_quorum_of_three_real_slack_ids_is_recorded(
    make_bot: Callable[..., Bot], catalog_file: Path, world: World
) -> None:
    catalog_file.write_text(catalog_with(QUORUM))
    bot = make_bot()
    request_id = file_request(bot, "U0ALICE", "request three-keys 1h audit")
    approve(bot, request_id, "U01ABCDEFGH", "U02ABCDEFGH", "U03ABCDEFGH")

    active = bot.wait_status(request_id, "active")
    # The clicks are acknowledged at once and recorded as they come: the order is the votes', not the clicks'.
    assert active.decided_by is not None
    assert sorted(active.decided_by.split(", ")) == ["U01ABCDEFGH", "U02ABCDEFGH", "U03ABCDEFGH"]
    assert "alice" in members(world.iam, "auditors")


# -- 10. role sessions already open end with the grant -------------------------------------------


def test_ending_a_role_grant_denies_the_sessions_it_issued_until_they_have_expired(bot: Bot, world: World) -> None:
    request_id = file_request(bot, "U0ALICE", "request prod-readonly 1h reading logs")
    approve(bot, request_id)
    bot.wait_status(request_id, "active")
    name = f"accessbot-{request_id}"
    [statement] = document(world.iam.get_user_policy(UserName="alice", PolicyName=name)["PolicyDocument"])["Statement"]
    assert statement["Condition"]["StringEquals"] == {"sts:SourceIdentity": "alice"}
    assert "sts:SetSourceIdentity" in statement["Action"]

    assert bot.ask("U0ALICE", f"revoke {request_id}").startswith("Revoking")
    ended = bot.wait_status(request_id, "revoked")
    deny = role_policy(world, INLINE_NAME)
    assert deny is not None
    [rule] = deny["Statement"]
    assert (rule["Effect"], rule["Action"], rule["Resource"]) == ("Deny", "*", "*")
    assert rule["Condition"]["StringEquals"] == {"aws:SourceIdentity": "alice"}
    until = rule["Condition"]["DateLessThan"]["aws:TokenIssueTime"]
    # The cutoff is the end plus the margin (ACCESSBOT_IAM_PROPAGATION_SECONDS, 5 minutes by default).
    assert ended.ended_at is not None and ended.sessions_denied_before is not None
    assert until == ended.sessions_denied_before.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert timedelta(minutes=5) <= ended.sessions_denied_before - ended.ended_at <= timedelta(minutes=5, seconds=3)
    # Kept 12 hours past the cutoff: console sessions last up to 12 hours whatever the role's maximum.
    assert ended.sessions_denied_until == ended.sessions_denied_before + timedelta(hours=12)

    # Once no session it covers can be alive, the deny goes.
    set_row(bot, request_id, sessions_denied_until=utcnow(), next_due_at=utcnow())
    wait_until(lambda: role_policy(world, INLINE_NAME) is None, timeout=10)
    wait_until(lambda: "sessions_deny_lifted" in actions(bot, request_id))  # written once AWS answered


def test_a_full_role_gets_its_session_deny_as_a_managed_policy(bot: Bot, world: World) -> None:
    full = inject(bot_iam(bot), "PutRolePolicy", code="LimitExceeded", status=409, message="Maximum policy size")
    request_id = file_request(bot, "U0ALICE", "request prod-readonly 1h reading logs")
    approve(bot, request_id)
    bot.wait_status(request_id, "active")
    bot.sender.command("U0ALICE", f"revoke {request_id}")
    bot.wait_status(request_id, "revoked")
    assert full.failed >= 1
    attached = world.iam.list_attached_role_policies(RoleName=ROLE)["AttachedPolicies"]
    assert [p["PolicyName"] for p in attached] == [f"{INLINE_NAME}-{ROLE}-1"]

    def managed_denies() -> list[str]:
        local = world.iam.list_policies(Scope="Local")["Policies"]
        return [p["PolicyName"] for p in local if p["PolicyName"].startswith("accessbot")]

    set_row(bot, request_id, sessions_denied_until=utcnow(), next_due_at=utcnow())
    # Detached, then deleted: the lift is two calls, so wait for both.
    wait_until(
        lambda: not world.iam.list_attached_role_policies(RoleName=ROLE)["AttachedPolicies"] and not managed_denies(),
        timeout=10,
    )
    wait_until(lambda: "sessions_deny_lifted" in actions(bot, request_id))


def test_overlapping_role_grants_end_sessions_only_when_the_last_ends(bot: Bot, world: World) -> None:
    first = file_request(bot, "U0ALICE", "request prod-readonly 1h reading logs")
    approve(bot, first)
    bot.wait_status(first, "active")
    second = file_request(bot, "U0ALICE", "request prod-readonly 2h more logs")
    approve(bot, second)
    bot.wait_status(second, "active")

    bot.sender.command("U0ALICE", f"revoke {first}")
    bot.wait_status(first, "revoked")
    assert role_policy(world, INLINE_NAME) is None  # the second grant's sessions must live on
    bot.sender.command("U0ALICE", f"revoke {second}")
    bot.wait_status(second, "revoked")
    assert role_policy(world, INLINE_NAME) is not None


# -- 11. smaller holes ------------------------------------------------------------------------------

SELF_GLASS = """
  glass:
    kind: iam_group
    group_name: auditors
    approvers: [U0ALICE, U0BOB]
    break_glass: true
"""


def test_a_break_glass_user_who_is_also_an_approver_cannot_acknowledge_their_own_use(
    make_bot: Callable[..., Bot], catalog_file: Path, slack: FakeSlack
) -> None:
    from bot.slack.messages import ACTION_ACK

    catalog_file.write_text(catalog_with(SELF_GLASS))
    bot = make_bot()
    request_id = file_request(bot, "U0ALICE", "breakglass glass 1h prod is down")
    bot.wait_status(request_id, "active")
    bot.sender.click("U0ALICE", ACTION_ACK, str(request_id))
    told = slack.wait_for("chat.postEphemeral", lambda c: c.args.get("user") == "U0ALICE")
    assert "another approver must acknowledge it" in told.text()
    row = bot.request(request_id)
    assert row is not None and row.acknowledged_by is None
    bot.sender.click("U0BOB", ACTION_ACK, str(request_id))
    wait_until(lambda: (r := bot.request(request_id)) is not None and r.acknowledged_by == "U0BOB")


GROUP_APPROVED = """
  oncall-group:
    kind: iam_group
    group_name: auditors
    approvers: [S0ONCALL]
"""


def test_approvers_from_a_user_group_fail_closed_when_slack_cannot_list_it(
    make_bot: Callable[..., Bot], catalog_file: Path, slack: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.slack import notify
    from bot.slack.messages import ACTION_APPROVE

    monkeypatch.setattr(notify, "GROUP_CACHE_SECONDS", 0.0)
    monkeypatch.setattr(notify, "GROUP_STALE_SECONDS", 60.0)
    catalog_file.write_text(catalog_with(GROUP_APPROVED))
    slack.usergroups = {"S0ONCALL": ["U0OSCAR"]}
    bot = make_bot()
    first = file_request(bot, "U0ALICE", "request oncall-group 1h look")
    second = file_request(bot, "U0ALICE", "request oncall-group 1h look again")
    approve(bot, first, "U0OSCAR")
    bot.wait_status(first, "active")

    slack.failures["usergroups.users.list"] = "internal_error"
    bot.sender.click("U0OSCAR", ACTION_APPROVE, str(second))  # within the bounded age: still an approver
    bot.wait_status(second, "active")
    third = file_request(bot, "U0ALICE", "request oncall-group 1h third")
    wait_until(lambda: (r := bot.request(third)) is not None and r.approval_ts is not None)
    monkeypatch.setattr(notify, "GROUP_STALE_SECONDS", 0.0)  # the cached membership is now too old to trust
    bot.sender.click("U0OSCAR", ACTION_APPROVE, str(third))
    told = slack.wait_for(
        "chat.postEphemeral", lambda c: c.args.get("user") == "U0OSCAR" and "Slack cannot tell" in c.text()
    )
    assert "S0ONCALL" in told.text()
    assert bot.status(third) == "pending"


def test_objects_named_like_the_bots_but_not_its_own_are_never_adopted_or_removed(
    bot: Bot, world: World, engine: Any, catalog_file: Path
) -> None:
    request_id = file_request(bot, "U0ALICE", "request payments-key 1h rotating secrets")
    # Another installation in the same account made a grant with the name this request will get, for bob.
    bob = world.iam.get_user(UserName="bob")["User"]["Arn"]
    theirs = world.kms.create_grant(
        KeyId=world.key_arn, GranteePrincipal=bob, Operations=["Decrypt"], Name=f"accessbot-{request_id}"
    )["GrantId"]
    world.iam.put_user_policy(
        UserName="carol",
        PolicyName=f"accessbot-{request_id}",
        PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
        ),
    )
    approve(bot, request_id, "U0DAVE", "U0ERIN")
    active = bot.wait_status(request_id, "active")
    assert active.grant_ref != theirs  # not adopted: a grant of its own

    aws = AwsClients.create()
    reconciler = Reconciler(
        engine=engine, catalog=load_catalog(catalog_file), granters=build_granters(aws), iam=aws.iam, kms=aws.kms
    )
    report = reconciler.fix(reconciler.check())
    found = {(d.problem, d.kind.value, d.user) for d in report.drift}
    assert found == {(Problem.FOREIGN, "kms_key", "bob"), (Problem.FOREIGN, "iam_role", "carol")}
    assert report.unresolved == 0

    bot.sender.command("U0ALICE", f"revoke {request_id}")
    bot.wait_status(request_id, "revoked")
    left = world.kms.list_grants(KeyId=world.key_arn)["Grants"]
    assert [g["GrantId"] for g in left] == [theirs]
    assert world.iam.list_user_policies(UserName="carol")["PolicyNames"] == [f"accessbot-{request_id}"]


class LockProbe:
    """A Directory that, whenever asked for user-group members, checks no transaction holds the request's row."""

    def __init__(self, inner: Any, database_url: str) -> None:
        self._inner = inner
        self._url = database_url
        self.request_id = 0
        self.seen_locked: list[bool] = []

    def expand(self, ids: frozenset[str]) -> frozenset[str]:
        self.seen_locked.append(self._row_locked())
        return self._inner.expand(ids)  # type: ignore[no-any-return]

    def tz_of(self, user: str) -> Any:
        return self._inner.tz_of(user)

    def _row_locked(self) -> bool:
        import psycopg

        with psycopg.connect(self._url.replace("postgresql+psycopg://", "postgresql://")) as probe:
            try:
                probe.execute("SELECT id FROM access_requests WHERE id = %s FOR UPDATE NOWAIT", (self.request_id,))
                return False
            except psycopg.errors.LockNotAvailable:
                return True


@pytest.mark.postgres
def test_slack_user_group_lookups_happen_outside_the_row_lock(
    make_bot: Callable[..., Bot], catalog_file: Path, slack: FakeSlack, database_url: str
) -> None:
    """A slow usergroups.users.list must never hold a request's row lock (PostgreSQL: row locks are per row)."""
    from bot.slack.messages import ACTION_APPROVE

    catalog_file.write_text(catalog_with(GROUP_APPROVED))
    slack.usergroups = {"S0ONCALL": ["U0OSCAR"]}
    bot = make_bot()
    probe = LockProbe(bot.runtime.workflow.ctx.directory, database_url)
    bot.runtime.workflow.ctx.directory = probe
    probe.request_id = file_request(bot, "U0ALICE", "request oncall-group 1h look")
    wait_until(lambda: (r := bot.request(probe.request_id)) is not None and r.approval_ts is not None)

    bot.sender.click("U0OSCAR", ACTION_APPROVE, str(probe.request_id))  # a vote
    bot.wait_status(probe.request_id, "active")
    bot.sender.command("U0OSCAR", f"revoke {probe.request_id}")  # a revoke by an approver
    bot.wait_status(probe.request_id, "revoked")
    assert probe.seen_locked and not any(probe.seen_locked), probe.seen_locked


def test_lifting_a_session_deny_that_aws_refuses_stays_owed_until_it_goes_through(bot: Bot, world: World) -> None:
    request_id = file_request(bot, "U0ALICE", "request prod-readonly 1h reading logs")
    approve(bot, request_id)
    bot.wait_status(request_id, "active")
    bot.sender.command("U0ALICE", f"revoke {request_id}")
    bot.wait_status(request_id, "revoked")
    name = INLINE_NAME
    assert role_policy(world, name) is not None
    refusal = inject(bot_iam(bot), "DeleteRolePolicy", code="AccessDenied", status=403, times=1)

    set_row(bot, request_id, sessions_denied_until=utcnow(), next_due_at=utcnow())
    wait_until(lambda: role_policy(world, name) is None, timeout=10)  # tried again after the backoff
    assert refusal.failed == 1
    wait_until(lambda: "sessions_deny_lifted" in actions(bot, request_id))
    assert actions(bot, request_id).count("lift_failed") == 1
    lifted = bot.request(request_id)
    assert lifted is not None and lifted.sessions_denied_until is None and lifted.retry_at is None
