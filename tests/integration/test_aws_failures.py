"""AWS failing under the running bot: retries, failed grants, owed revokes, alerts, missing resources."""

from __future__ import annotations

import itertools
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from tests.conftest import TEST_TUNING, Bot, wait_until
from tests.integration.faults import bot_iam, bot_kms, dying_after_commit, inject
from tests.integration.flows import approval_update, approve, catalog_with, dm_containing, file_request
from tests.support.aws import ACCOUNT, World, members
from tests.support.fake_slack import FakeSlack

RETRY_BASE = 0.2  # tests/conftest.py make_bot: Tuning(retry_base=0.2s)
ALERT_AFTER = 3  # the issue: an alert after 3 failed revokes


def audit_actions(bot: Bot, request_id: int) -> list[str]:
    return [e.action for e in bot.audit(request_id)]


def grants_on(world: World) -> list[dict[str, object]]:
    return list(world.kms.list_grants(KeyId=world.key_arn)["Grants"])


# -- grants ------------------------------------------------------------------------------------


def test_throttled_iam_grant_is_retried_by_botocore_and_succeeds(bot: Bot, world: World) -> None:
    throttle = inject(bot_iam(bot), "PutUserPolicy", code="Throttling", status=400, message="Rate exceeded", times=2)
    request_id = file_request(bot, "U0ALICE", "request prod-readonly 1h reading logs")
    approve(bot, request_id)

    bot.wait_status(request_id, "active")
    assert (throttle.failed, throttle.passed) == (2, 1)
    assert world.iam.list_user_policies(UserName="alice")["PolicyNames"] == [f"accessbot-{request_id}"]
    assert "failed" not in audit_actions(bot, request_id)


def test_throttled_kms_grant_is_retried_by_botocore_and_succeeds(bot: Bot, world: World) -> None:
    throttle = inject(bot_kms(bot), "CreateGrant", code="ThrottlingException", status=400, times=1)
    request_id = file_request(bot, "U0ALICE", "request payments-key 1h rotating secrets")
    approve(bot, request_id, "U0DAVE", "U0ERIN")

    active = bot.wait_status(request_id, "active")
    assert (throttle.failed, throttle.passed) == (1, 1)
    assert [g["GrantId"] for g in grants_on(world)] == [active.grant_ref]


SOLO_KEY = """
  solo-key:
    kind: kms_key
    key_id: alias/payments
    operations: [Decrypt]
    approvers: [platform]
"""


def test_persistent_server_error_fails_the_request_after_every_retry(
    make_bot: Callable[..., Bot], catalog_file: Path, slack: FakeSlack, world: World
) -> None:
    catalog_file.write_text(catalog_with(SOLO_KEY))
    bot = make_bot()
    # Every try of the grant fails; the undo's own CreateGrant (sent again to learn the GrantId) then passes.
    outage = inject(
        bot_kms(bot), "CreateGrant", code="KMSInternalException", status=500, message="Internal error", times=5
    )
    request_id = file_request(bot, "U0ALICE", "request solo-key 1h rotating secrets")
    approve(bot, request_id)

    failed = bot.wait_status(request_id, "failed", timeout=15)
    assert outage.failed == 5  # botocore's standard mode, total_max_attempts 5
    wait_until(lambda: (row := bot.request(request_id)) is not None and row.ended_at is not None)
    assert grants_on(world) == []
    expected = "AWS refused kms:CreateGrant: Internal error (KMSInternalException: AWS had a temporary problem"
    assert failed.last_error is not None and failed.last_error.startswith(expected)
    assert expected in dm_containing(slack, "U0ALICE", "failed")
    assert "but AWS refused the grant" in approval_update(slack, request_id, expected)
    assert failed.activated_at is None and failed.expires_at is not None


def test_access_denied_fails_the_request_with_a_clear_message(bot: Bot, slack: FakeSlack, world: World) -> None:
    message = f"User: arn:aws:iam::{ACCOUNT}:user/accessbot is not authorized to perform: iam:AddUserToGroup"
    denied = inject(bot_iam(bot), "AddUserToGroup", code="AccessDenied", status=403, message=message)
    request_id = file_request(bot, "U0ALICE", "request deploy-admins 1h deploying")
    approve(bot, request_id)

    bot.wait_status(request_id, "failed")
    assert denied.failed == 1  # not retryable: botocore gives up at once
    assert "alice" not in members(world.iam, "deploy-admins")
    expected = (
        f"AWS refused iam:AddUserToGroup: {message} (AccessDenied: the bot's own IAM permissions do not allow this)"
    )
    assert expected in dm_containing(slack, "U0ALICE", "failed")
    assert expected in approval_update(slack, request_id, "AWS refused the grant")
    failed = [json.loads(e.details) for e in bot.audit(request_id) if e.action == "failed"]
    assert failed == [{"error": expected, "operation": "iam:AddUserToGroup"}]


def test_inline_policy_size_limit_is_explained_to_the_requester(bot: Bot, slack: FakeSlack, world: World) -> None:
    inject(
        bot_iam(bot),
        "PutUserPolicy",
        code="LimitExceeded",
        status=409,
        message="Maximum policy size of 2048 bytes exceeded for user alice",
    )
    request_id = file_request(bot, "U0ALICE", "request prod-readonly 1h reading logs")
    approve(bot, request_id)

    bot.wait_status(request_id, "failed")
    dm = dm_containing(slack, "U0ALICE", "failed")
    assert "inline policies of the IAM user 'alice' would exceed AWS's size limit" in dm
    assert "remove unused inline policies" in dm and "Maximum policy size of 2048 bytes exceeded" in dm
    assert world.iam.list_user_policies(UserName="alice")["PolicyNames"] == []


# -- missing or unusable resources at request time ---------------------------------------------

MISSING = """
  ghost-role:
    kind: iam_role
    role_arn: arn:aws:iam::123456789012:role/does-not-exist
    approvers: [platform]
  ghost-key:
    kind: kms_key
    key_id: alias/does-not-exist
    operations: [Decrypt]
    approvers: [platform]
  off-key:
    kind: kms_key
    key_id: alias/off
    operations: [Decrypt]
    approvers: [platform]
"""


@pytest.mark.parametrize(
    ("resource", "expected"),
    [
        ("ghost-group", "the IAM group 'does-not-exist' does not exist, so nothing was granted"),
        (
            "ghost-role",
            f"the IAM role arn:aws:iam::{ACCOUNT}:role/does-not-exist does not exist, so nothing was granted",
        ),
        ("ghost-key", "the KMS key alias/does-not-exist does not exist"),
        ("off-key", "the KMS key alias/off is disabled, so no grant can be made"),
    ],
)
def test_a_missing_or_disabled_resource_fails_the_request_clearly(
    resource: str,
    expected: str,
    make_bot: Callable[..., Bot],
    catalog_file: Path,
    slack: FakeSlack,
    world: World,
) -> None:
    off = world.kms.create_key(Description="off")["KeyMetadata"]["KeyId"]
    world.kms.create_alias(AliasName="alias/off", TargetKeyId=off)
    world.kms.disable_key(KeyId=off)
    catalog_file.write_text(catalog_with(MISSING))
    bot = make_bot()

    request_id = file_request(bot, "U0ALICE", f"request {resource} 1h investigating")
    approve(bot, request_id)
    failed = bot.wait_status(request_id, "failed")

    assert failed.last_error is not None and expected in failed.last_error
    assert expected in dm_containing(slack, "U0ALICE", "failed")
    assert expected in approval_update(slack, request_id, "AWS refused the grant")
    assert world.iam.list_user_policies(UserName="alice")["PolicyNames"] == []
    assert world.kms.list_grants(KeyId=off)["Grants"] == []


# -- revokes -----------------------------------------------------------------------------------


def test_a_failing_revoke_stays_owed_and_ends_only_once_aws_accepts_it(
    bot: Bot, slack: FakeSlack, world: World
) -> None:
    gate = threading.Event()
    outage = inject(bot_iam(bot), "DeleteUserPolicy", code="AccessDenied", status=403, times=2, gate=gate)
    request_id = file_request(bot, "U0ALICE", "request prod-readonly 1s quick look")
    approve(bot, request_id)
    bot.wait_status(request_id, "active")
    name = f"accessbot-{request_id}"

    # Two failures, then the third attempt reaches AWS and waits at the gate: look at the state now.
    wait_until(lambda: outage.passed == 1, timeout=10)
    row = bot.request(request_id)
    assert row is not None and row.status == "active" and row.ended_at is None
    assert row.attempts == 2 and row.last_error is not None and "AccessDenied" in row.last_error
    assert audit_actions(bot, request_id).count("revoke_failed") == 2
    assert world.iam.list_user_policies(UserName="alice")["PolicyNames"] == [name]
    assert not any("has ended" in t for t in slack.dms_to("U0ALICE"))

    gate.set()
    ended = bot.wait_status(request_id, "expired")
    assert world.iam.list_user_policies(UserName="alice")["PolicyNames"] == []
    actions = audit_actions(bot, request_id)
    assert actions[actions.index("active") + 1 :] == ["revoke_failed", "revoke_failed", "expired"]
    # Nothing is owed any more but lifting the role's session deny, once the role's longest session is over.
    assert ended.ended_at is not None and ended.sessions_denied_until is not None
    assert ended.next_due_at == ended.sessions_denied_until
    dm_containing(slack, "U0ALICE", "has ended (expired)")
    gaps = [b - a for a, b in itertools.pairwise(outage.failure_times())]
    assert gaps[0] >= RETRY_BASE * 0.9


def test_a_revoke_that_keeps_failing_raises_one_alert_and_is_never_recorded_as_done(
    bot: Bot, slack: FakeSlack, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="bot.workflow")
    outage = inject(bot_kms(bot), "RevokeGrant", code="AccessDeniedException", status=400, message="no kms:RevokeGrant")
    request_id = file_request(bot, "U0ALICE", "request payments-key 1s one decrypt")
    approve(bot, request_id, "U0DAVE", "U0ERIN")
    active = bot.wait_status(request_id, "active")

    alert = slack.wait_for(
        "chat.postMessage", lambda c: c.args.get("channel") == "C0APPROVALS" and "Revoking #" in c.text(), timeout=15
    )
    assert f"Revoking #{request_id} failed {ALERT_AFTER} times" in alert.text()
    assert "no kms:RevokeGrant (AccessDeniedException: the bot's own IAM permissions do not allow this)" in alert.text()
    assert alert.args.get("thread_ts") == bot.request(request_id).approval_ts  # type: ignore[union-attr]
    events = [e for e in bot.audit(request_id) if e.action == "alert"]
    assert len(events) == 1 and "AccessDeniedException" in json.loads(events[0].details)["error"]
    errors = [r for r in caplog.records if r.levelno == logging.ERROR and r.name == "bot.workflow"]
    assert [r.getMessage() for r in errors] == [
        f"revoke keeps failing ({ALERT_AFTER} attempts): " + json.loads(events[0].details)["error"]
    ]
    assert getattr(errors[0], "request_id", None) == request_id

    # Still owed, still held in AWS, retried with growing backoff.
    wait_until(lambda: outage.failed >= ALERT_AFTER + 1, timeout=10)
    row = bot.request(request_id)
    assert row is not None and row.status == "active" and row.ended_at is None and row.next_due_at is not None
    assert [g["GrantId"] for g in grants_on(world)] == [active.grant_ref]
    times = outage.failure_times()
    gaps = [b - a for a, b in itertools.pairwise(times)]
    for attempt, gap in enumerate(gaps[:ALERT_AFTER], start=1):
        assert gap >= RETRY_BASE * 2 ** (attempt - 1) * 0.9, (attempt, gaps)

    outage.stop()
    bot.wait_status(request_id, "expired", timeout=15)
    assert grants_on(world) == []
    assert [e.action for e in bot.audit(request_id)].count("alert") == 1
    alerts = slack.find("chat.postMessage", lambda c: c.args.get("channel") == "C0APPROVALS" and "Revoking" in c.text())
    assert len(alerts) == 1


def test_an_alert_the_audit_records_is_posted_even_when_the_process_dies_right_after_its_commit(
    make_bot: Callable[..., Bot], slack: FakeSlack
) -> None:
    bot = make_bot(tuning=replace(TEST_TUNING, slack_lease=timedelta(seconds=1)))
    outage = inject(bot_kms(bot), "RevokeGrant", code="AccessDeniedException", status=400, message="no kms:RevokeGrant")
    with dying_after_commit("alert") as struck:
        request_id = file_request(bot, "U0ALICE", "request payments-key 1s one decrypt")
        approve(bot, request_id, "U0DAVE", "U0ERIN")
        alert = slack.wait_for(
            "chat.postMessage", lambda c: c.channel == "C0APPROVALS" and "Revoking #" in c.text(), timeout=20
        )
    assert struck == [request_id]  # the alert's transaction committed, and nothing after it ran
    assert f"Revoking #{request_id} failed {ALERT_AFTER} times" in alert.text()
    assert [e.action for e in bot.audit(request_id)].count("alert") == 1
    outage.stop()
    bot.wait_status(request_id, "expired", timeout=15)


def test_access_already_gone_at_revoke_counts_as_done(bot: Bot, world: World) -> None:
    # 6 s: both must still be active when the test takes their access away by hand, on a loaded machine too.
    role = file_request(bot, "U0ALICE", "request prod-readonly 6s reading")
    approve(bot, role)
    key = file_request(bot, "U0ALICE", "request payments-key 6s decrypting")
    approve(bot, key, "U0DAVE", "U0ERIN")
    bot.wait_status(role, "active")
    active_key = bot.wait_status(key, "active")

    world.iam.delete_user_policy(UserName="alice", PolicyName=f"accessbot-{role}")
    world.kms.revoke_grant(KeyId=world.key_arn, GrantId=active_key.grant_ref)

    for request_id in (role, key):
        ended = bot.wait_status(request_id, "expired", timeout=15)
        assert ended.attempts == 0 and "revoke_failed" not in audit_actions(bot, request_id)


def test_a_deleted_alias_does_not_pass_for_a_revoked_grant(bot: Bot, world: World) -> None:
    request_id = file_request(bot, "U0ALICE", "request payments-key 2s decrypting")
    approve(bot, request_id, "U0DAVE", "U0ERIN")
    active = bot.wait_status(request_id, "active")
    world.kms.delete_alias(AliasName="alias/payments")  # the key, and the grant on it, remain

    ended = bot.wait_status(request_id, "expired", timeout=8)
    assert grants_on(world) == []
    assert ended.grant_ref == active.grant_ref and ended.attempts == 0


# On SQLite (one process: the request's lock is a thread lock): tests/inprocess/test_grants.py. Here
# PostgreSQL's advisory lock and a real sweep taking the claim over.
@pytest.mark.postgres
def test_a_grant_that_outlasts_its_claim_leaves_no_kms_grant_behind(bot: Bot, world: World) -> None:
    """CreateGrant hangs past the claim's lease (5 s here), so the sweep may take the activation over."""
    calls: list[float] = []
    second = threading.Event()

    def first_call_hangs(**_kwargs: object) -> None:
        calls.append(time.monotonic())
        if len(calls) == 1:
            second.wait(7)  # until a second activation calls too, or lease and a sweep have passed
        else:
            second.set()

    bot_kms(bot).meta.events.register("before-send.kms.CreateGrant", first_call_hangs)
    request_id = file_request(bot, "U0ALICE", "request payments-key 10s decrypting")
    approve(bot, request_id, "U0DAVE", "U0ERIN")

    bot.wait_status(request_id, "expired", timeout=20)
    assert grants_on(world) == []


@pytest.mark.both_databases
def test_the_last_of_two_approvals_grants_exactly_once(
    make_bot: Callable[..., Bot], catalog_file: Path, world: World
) -> None:
    catalog_file.write_text(catalog_with(SOLO_KEY))
    bot = make_bot()
    workers: int = bot.runtime.background._pool._max_workers
    busy = threading.Event()
    blocked: list[str] = []
    lock = threading.Lock()
    again = threading.Event()

    def hold_solo_grants(params: dict[str, object], **_kwargs: object) -> None:
        with lock:
            hold = len(blocked) < workers
            name = str(params.get("Name"))
            first = name not in blocked
            blocked.append(name)
        if hold:
            assert busy.wait(20)
        elif first:
            again.wait(2)  # a correct workflow never grants the request a second time: go on after 2 s
        else:
            again.set()  # a second activation of the same request: let both go, as in a real race

    request_id = file_request(bot, "U0ALICE", "request payments-key 1h decrypting")
    wait_until(lambda: (row := bot.request(request_id)) is not None and row.approval_ts is not None)
    # Keep every background worker busy granting solo-key, so both approvals' follow-ups wait in the queue.
    bot_kms(bot).meta.events.register("before-parameter-build.kms.CreateGrant", hold_solo_grants)
    # Spread over two requesters (a requester may have only a few open requests); each approves the other's.
    people = [("U0ALICE", "U0BOB"), ("U0BOB", "U0CAROL")]
    solo = []
    for n in range(workers):
        requester, approver = people[n % 2]
        solo.append(file_request(bot, requester, f"request solo-key 1h batch {n}"))
        approve(bot, solo[-1], approver)
    wait_until(lambda: len(blocked) == workers)
    approve(bot, request_id, "U0DAVE", "U0ERIN")
    busy.set()

    bot.wait_status(request_id, "active")
    wait_until(lambda: all(bot.status(i) == "active" for i in solo))
    named = [g for g in grants_on(world) if g["Name"] == f"accessbot-{request_id}"]
    assert len(named) == 1
