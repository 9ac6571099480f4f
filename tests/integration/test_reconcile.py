"""`accessbot reconcile [--fix]` against drift made behind the bot's back with boto3, and the scheduled
check that alerts the approval channel."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from itertools import pairwise
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from bot.aws.clients import AwsClients
from bot.catalog import Kind, load_catalog
from bot.clock import utcnow
from bot.reconcile import Reconciler
from bot.store.db import session_scope
from bot.store.models import AccessRequest, AuditEvent
from bot.wiring import build_granters
from tests.conftest import Bot, wait_until
from tests.support.aws import World, members
from tests.support.fake_slack import FakeSlack
from tests.support.grants import Planned, bot_key_grants, bot_policies, grant_directly

POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}


def reconcile(args: list[str], database_url: str, catalog: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "ACCESSBOT_", "DATABASE_"))}
    env.update(DATABASE_URL=database_url, ACCESSBOT_CATALOG=str(catalog))
    return subprocess.run(
        [sys.executable, "-m", "bot", "reconcile", *args],
        env=env,
        cwd=catalog.parent,
        capture_output=True,
        text=True,
        timeout=60,
    )


def drift_rows(stdout: str) -> list[list[str]]:
    """The table's rows (without its header), each split into its first six columns."""
    lines = [line for line in stdout.splitlines() if line.startswith(("missing ", "orphan "))]
    return [line.split()[:6] for line in lines]


def arn(world: World, user: str) -> str:
    return str(world.iam.get_user(UserName=user)["User"]["Arn"])


def audit(engine: Engine, action: str) -> list[AuditEvent]:
    with session_scope(engine) as session:
        return list(session.exec(select(AuditEvent).where(AuditEvent.action == action)).all())


@pytest.fixture
def grants(engine: Engine, world: World) -> dict[str, int]:
    """Four grants the bot made: three active (one of each kind), and one group membership that ended."""
    later = utcnow() + timedelta(hours=1)
    plans = [
        Planned(Kind.IAM_GROUP, "alice", arn(world, "alice")),
        Planned(Kind.IAM_ROLE, "bob", arn(world, "bob")),
        Planned(Kind.KMS_KEY, "carol", arn(world, "carol")),
        Planned(Kind.IAM_GROUP, "dave", arn(world, "dave")),
    ]
    group, role, key, ended = grant_directly(engine, world.iam, world.kms, plans, lambda _i: later, due=False)
    world.iam.remove_user_from_group(GroupName="deploy-admins", UserName="dave")
    with session_scope(engine) as session:
        row = session.get(AccessRequest, ended)
        assert row is not None
        row.status, row.ended_at = "expired", utcnow()
    return {"group": group, "role": role, "key": key, "ended": ended}


def test_reconcile_finds_drift_and_fix_repairs_it(
    engine: Engine, database_url: str, catalog_file: Path, world: World, grants: dict[str, int]
) -> None:
    clean = reconcile([], database_url, catalog_file)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "3 active grant(s) checked, no drift" in clean.stdout

    # Behind the bot's back: an active grant's membership and KMS grant deleted, an accessbot-999 policy
    # no request of this bot made (another installation's, say), an ended grant's membership added again;
    # and a membership the bot never granted.
    world.iam.remove_user_from_group(GroupName="deploy-admins", UserName="alice")
    key_arn = world.kms.describe_key(KeyId="alias/payments")["KeyMetadata"]["Arn"]
    for grant in world.kms.list_grants(KeyId=key_arn)["Grants"]:
        world.kms.revoke_grant(KeyId=key_arn, GrantId=grant["GrantId"])
    world.iam.put_user_policy(UserName="alice", PolicyName="accessbot-999", PolicyDocument=json.dumps(POLICY))
    world.iam.put_user_policy(UserName="alice", PolicyName="accessbot-readonly", PolicyDocument=json.dumps(POLICY))
    world.iam.add_user_to_group(GroupName="deploy-admins", UserName="dave")
    world.iam.add_user_to_group(GroupName="auditors", UserName="bob")

    found = reconcile([], database_url, catalog_file)
    assert found.returncode == 1, found.stdout + found.stderr
    assert sorted(drift_rows(found.stdout)) == sorted(
        [
            ["missing", "iam_group", "alice", "deploy-admins", "membership", f"#{grants['group']}"],
            ["missing", "kms_key", "carol", key_arn, f"accessbot-{grants['key']}", f"#{grants['key']}"],
            ["orphan", "iam_group", "dave", "deploy-admins", "membership", f"#{grants['ended']}"],
        ]
    )
    assert any(line.split()[:5] == ["foreign", "iam_role", "alice", "-", "accessbot-999"] for line in
               found.stdout.splitlines())  # fmt: skip
    assert found.stdout.splitlines()[0].split()[:3] == ["PROBLEM", "KIND", "USER"]
    assert "3 active grant(s) checked, 3 drift(s) (1 object(s) named like the bot's but not its own" in found.stdout
    assert audit(engine, "grant_reapplied") == [] and audit(engine, "orphan_removed") == []

    fixed = reconcile(["--fix"], database_url, catalog_file)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "fixed 3, failed 0" in fixed.stdout
    assert members(world.iam, "deploy-admins") == {"alice"}
    assert members(world.iam, "auditors") == {"bob"}, "membership the bot never granted is left alone"
    assert bot_policies(world.iam, ["alice", "bob"]) == [
        ("alice", "accessbot-999"),  # not the bot's to remove
        ("alice", "accessbot-readonly"),
        ("bob", f"accessbot-{grants['role']}"),
    ]
    assert bot_key_grants(world.kms) == [f"accessbot-{grants['key']}"]
    with session_scope(engine) as session:
        row = session.get(AccessRequest, grants["key"])
        assert row is not None
        new_grant = world.kms.list_grants(KeyId=key_arn)["Grants"][0]
        assert row.grant_ref == new_grant["GrantId"] and new_grant["GranteePrincipal"] == arn(world, "carol")
    reapplied = sorted(e.request_id or 0 for e in audit(engine, "grant_reapplied"))
    assert reapplied == sorted([grants["group"], grants["key"]])
    removed = audit(engine, "orphan_removed")
    assert [json.loads(e.details)["name"] for e in removed] == ["membership"]
    assert [e.request_id for e in removed] == [grants["ended"]]

    again = reconcile([], database_url, catalog_file)
    assert again.returncode == 0 and "no drift" in again.stdout, again.stdout


def test_fix_does_not_reapply_a_grant_that_ended_meanwhile(
    engine: Engine, catalog_file: Path, world: World, grants: dict[str, int]
) -> None:
    aws = AwsClients.create()
    reconciler = Reconciler(
        engine=engine, catalog=load_catalog(catalog_file), granters=build_granters(aws), iam=aws.iam, kms=aws.kms
    )
    world.iam.delete_user_policy(UserName="bob", PolicyName=f"accessbot-{grants['role']}")
    report = reconciler.check()
    assert [(d.problem.value, d.request_id) for d in report.drift] == [("missing", grants["role"])]
    with session_scope(engine) as session:  # the grant expires between the check and the fix
        row = session.get(AccessRequest, grants["role"])
        assert row is not None
        row.status, row.ended_at = "expired", utcnow()
    fixed = reconciler.fix(report)
    assert [f.outcome for f in fixed.fixes] == ["nothing to do: the grant ended meanwhile"]
    assert bot_policies(world.iam, ["bob"]) == []


@pytest.mark.both_databases
def test_the_scheduled_check_alerts_the_approval_channel_once_per_interval(
    make_bot: Callable[..., Bot], engine: Engine, world: World, slack: FakeSlack, grants: dict[str, int]
) -> None:
    world.iam.add_user_to_group(GroupName="deploy-admins", UserName="dave")  # the ended grant's, put back
    # Two replicas on one database, both checking every 2 seconds.
    replicas = [make_bot(accessbot_reconcile_seconds=2.0), make_bot(accessbot_reconcile_seconds=2.0)]

    def alerts() -> list[str]:
        calls = slack.find("chat.postMessage", lambda c: "reconcile found" in str(c.args.get("text", "")))
        return [str(c.args.get("channel")) + " " + str(c.args.get("text")) for c in calls]

    first = wait_until(alerts, timeout=10)
    assert first[0].startswith("C0APPROVALS ")
    assert f"orphan iam_group deploy-admins for dave (request #{grants['ended']})" in first[0]
    assert "accessbot reconcile --fix" in first[0]
    started = len(audit(engine, "reconcile"))
    wait_until(lambda: len(audit(engine, "reconcile")) >= started + 2, timeout=10)
    for replica in replicas:
        replica.runtime.stop()  # waits for a check under way
    runs = sorted(e.created_at for e in audit(engine, "reconcile"))
    gaps = [(b - a).total_seconds() for a, b in pairwise(runs)]
    assert min(gaps) >= 2.0 * 0.9, f"one run per interval across both replicas: {gaps}"
    # An alert still queued at the stop waits in the outbox: a later process (no check of its own due) sends it.
    make_bot(accessbot_reconcile_seconds=0.0)
    wait_until(lambda: len(alerts()) == len(runs), timeout=10)
    assert len(alerts()) == len(audit(engine, "drift_found")) == len(runs)
    with session_scope(engine) as session:
        left = session.exec(select(AuditEvent).where(col(AuditEvent.action) == "orphan_removed")).all()
    assert left == [], "the scheduled check only alerts; --fix is for people"
    assert "dave" in members(world.iam, "deploy-admins")
