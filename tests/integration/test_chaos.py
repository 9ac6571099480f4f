"""Chaos on PostgreSQL: about a hundred grants of every kind, three workers, AWS misbehaving at random
(refusals, changes applied and then refused, throttling, slow calls), early revokes and extensions at random,
and one worker killed at a random moment. At the end AWS holds exactly what the database says is active,
nothing for what ended, every role end left its session deny, and `accessbot audit verify` passes.

Seedable: CHAOS_SEED=<n> replays a run's random choices (AWS's timing is not replayable); the seed is
printed with any failure.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from bot.aws.granters import RoleGranter
from bot.catalog import Kind
from bot.clock import utcnow
from bot.config import Settings
from bot.errors import UserError
from bot.runtime import Runtime
from bot.store.db import session_scope
from bot.store.models import AccessRequest, AuditEvent
from tests.conftest import TOKEN, wait_until
from tests.support.aws import World, members
from tests.support.aws_model.outcome import policies_now, still_held
from tests.support.catalogs import BASIC
from tests.support.chaos_proxy import ChaosProxy
from tests.support.fake_slack import FakeSlack
from tests.support.grants import ROLE_ARN, bot_key_grants, bot_policies, create_users
from tests.support.workers import Wanted, Workers, plant_approved

pytestmark = [pytest.mark.postgres, pytest.mark.xdist_group("worker_processes")]

USERS = 40
MUTATING = [
    "AddUserToGroup",
    "RemoveUserFromGroup",
    "PutUserPolicy",
    "DeleteUserPolicy",
    "PutRolePolicy",
    "DeleteRolePolicy",
    "CreateGrant",
    "RevokeGrant",
]
ROLE = "prod-readonly"
DEADLINE = 150.0  # seconds for everything to settle; the run is bounded whatever AWS does


@pytest.fixture
def seed() -> int:
    return int(os.environ.get("CHAOS_SEED") or random.SystemRandom().randrange(1, 10**6))


@pytest.fixture
def chaotic_aws(moto_url: str, world: World, seed: int) -> Iterator[ChaosProxy]:
    with ChaosProxy(moto_url, seed=seed) as proxy:
        # Errors botocore retries (5xx, throttling), sometimes after AWS already applied the change ...
        proxy.randomize(MUTATING, rate=0.2, delay=0.4)
        yield proxy


def refuse_some(proxy: ChaosProxy) -> None:
    """... and errors it does not retry: a grant that fails after AWS applied it, revokes that are refused."""
    proxy.clear_rules()
    for operation in ("AddUserToGroup", "PutUserPolicy"):
        proxy.add_rule(operation, "applied_then_error", probability=0.06, code="LimitExceeded", status=409)
    proxy.add_rule("CreateGrant", "applied_then_error", probability=0.06, code="LimitExceededException", status=400)
    for operation in ("RemoveUserFromGroup", "DeleteUserPolicy", "PutRolePolicy"):
        proxy.add_rule(operation, "error", probability=0.05, code="AccessDenied", status=403)
    proxy.add_rule("RevokeGrant", "error", probability=0.05, code="AccessDeniedException", status=400)
    proxy.randomize(MUTATING, rate=0.15, delay=0.4)


def everyone(engine: Engine) -> list[AccessRequest]:
    with session_scope(engine) as session:
        return list(session.exec(select(AccessRequest).order_by(col(AccessRequest.id))).all())


def release(engine: Engine, request_id: int) -> None:
    """Hand a row decided in the test process to the workers (as if that process had died right after)."""
    with session_scope(engine) as session:
        session.execute(
            update(AccessRequest).where(col(AccessRequest.id) == request_id).values(claimed_by=None, claimed_until=None)
        )


def aws_holds(world: World, users: list[str], key_users: dict[str, str]) -> set[tuple[str, str]]:
    """(kind, user) pairs AWS grants the test's users now."""
    held = {("iam_group", u) for u in members(world.iam, "deploy-admins") if u in users}
    held |= {("iam_role", user) for user, _name in bot_policies(world.iam, users)}
    arns = {arn: user for user, arn in key_users.items()}
    for grant in world.kms.list_grants(KeyId=world.key_arn)["Grants"]:
        if grant["GranteePrincipal"] in arns and grant["Name"].startswith("accessbot-"):
            held.add(("kms_key", arns[grant["GranteePrincipal"]]))
    return held


def session_denies(world: World) -> dict[str, datetime]:
    """Who the role denies sessions to, with the cutoff, read straight from moto (not through the chaos proxy)."""
    return RoleGranter(world.iam).denied(world.role_arn)


def test_chaos(
    seed: int,
    chaotic_aws: ChaosProxy,
    engine: Engine,
    database_url: str,
    world: World,
    slack: FakeSlack,
    tmp_path: Path,
) -> None:
    try:
        run(seed, chaotic_aws, engine, database_url, world, slack, tmp_path)
    except BaseException as exc:
        raise AssertionError(f"chaos run failed; replay its choices with CHAOS_SEED={seed}: {exc}") from exc


def run(
    seed: int,
    proxy: ChaosProxy,
    engine: Engine,
    database_url: str,
    world: World,
    slack: FakeSlack,
    tmp_path: Path,
) -> None:
    rng = random.Random(seed)
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(BASIC)
    users = [f"chaos{i:02d}" for i in range(USERS)]
    arns = create_users(world.iam, users)
    # One grant of each kind per user at most, so that every role end must leave its own session deny.
    kinds = [Kind.IAM_GROUP, Kind.IAM_ROLE, Kind.KMS_KEY]
    where = {Kind.IAM_GROUP: ("deploy-admins", "deploy-admins"), Kind.IAM_ROLE: (ROLE, ROLE_ARN),
             Kind.KMS_KEY: ("payments-key", "alias/payments")}  # fmt: skip
    wanted = []
    for user in users:
        for kind in rng.sample(kinds, rng.choice([2, 3])):
            resource, target = where[kind]
            wanted.append(Wanted(kind, resource, target, user, arns[user], seconds=rng.choice([4, 8, 15, 600])))
    rng.shuffle(wanted)

    crew = Workers(
        database_url=database_url, aws_url=proxy.url, slack_url=slack.url, catalog=catalog, sweep_seconds="2"
    )
    # The test process is a fourth, Slack-facing replica: it records revokes and extensions, nothing else.
    front = Runtime.build(
        Settings(
            slack_bot_token=TOKEN,
            slack_signing_secret="unused",
            slack_api_url=slack.url,
            database_url=database_url,
            accessbot_catalog=catalog,
        ),
        http=False,
        scheduler=False,
    )
    try:
        replicas = crew.start(3)
        refuse_some(proxy)
        ids = plant_approved(engine, wanted)
        victim = rng.randrange(3)
        kill_at = time.monotonic() + rng.uniform(1.0, 8.0)
        killed = False
        poked: set[int] = set()
        deadline = time.monotonic() + 30.0
        while time.monotonic() < deadline:
            if not killed and time.monotonic() >= kill_at:
                replicas[victim].kill()
                killed = True
            request_id = rng.choice(ids)
            if request_id not in poked:
                poked.add(request_id)
                poke(front, engine, request_id, rng)
            time.sleep(rng.uniform(0.05, 0.3))
        assert killed
        modes = {call.mode for call in proxy.calls}
        assert {"error", "applied_then_error", "throttle", "slow"} <= modes, f"faults injected: {modes}"

        # Long grants still run: stop the faults, let everything settle, and compare.
        proxy.clear_rules()
        wait_until(lambda: settled(engine), timeout=DEADLINE, interval=0.5)
        rows = everyone(engine)
        holding = {(r.kind, r.iam_user) for r in rows if r.grant_started_at is not None and r.ended_at is None}
        active = {(r.kind, r.iam_user) for r in rows if r.status == "active"}
        assert holding == active, "nothing half-granted or half-ended is left"
        key_users = {u: arns[u] for u in users}
        assert aws_holds(world, users, key_users) == active, "AWS holds exactly what the database says is active"

        # End everything left, and look again: nothing for anyone.
        for row in rows:
            if row.status == "active":
                front.workflow.revoke_early(request_id=row.id or 0, actor="cli:chaos", operator=True)
                release(engine, row.id or 0)
        wait_until(lambda: all((r.status != "active" and r.ended_at is not None) or r.grant_started_at is None
                               for r in everyone(engine)), timeout=DEADLINE, interval=0.5)  # fmt: skip
        rows = everyone(engine)
        assert aws_holds(world, users, key_users) == set()
        assert bot_policies(world.iam, users) == [] and bot_key_grants(world.kms) == []
        denies = session_denies(world)
        role_users = {r.iam_user for r in rows if r.kind == "iam_role" and r.grant_started_at is not None}
        assert role_users <= set(denies), "every person's last role end put a deny of the sessions it had issued"
        owed = [(r, r.sessions_denied_before) for r in rows if r.kind == "iam_role" and r.sessions_denied_before]
        assert all(denies[r.iam_user] >= cutoff for r, cutoff in owed), "each owed deny at its cutoff at least"
        assert all(r.sessions_denied_until is not None for r, _cutoff in owed)
        role_ends = [r for r in rows if r.kind == "iam_role" and r.grant_started_at is not None]
        assert role_ends
        # Every role end denies the sessions it had issued, as AWS would decide on what IAM holds (the deny's
        # name and layout are the bot's business): no new session, and a session issued while granted denied.
        state, now = policies_now(world.iam), utcnow()
        left = [p for r in role_ends for p in still_held(state, ROLE_ARN, r.iam_user, r.grant_started_at, now)]
        assert left == [], left
        statuses = {r.status for r in rows}
        assert statuses <= {"expired", "revoked", "failed"}, statuses
        with session_scope(engine) as session:
            happened = {e.action for e in session.exec(select(AuditEvent)).all()}
        assert {"extended", "revoke_requested", "expired"} <= happened, happened
    finally:
        front.stop()
        crew.stop()
    verified = subprocess.run(
        [sys.executable, "-m", "bot", "audit", "verify"],
        env={**crew.env},
        cwd=catalog.parent,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr


def settled(engine: Engine) -> bool:
    """Nothing owed and nothing about to be: only long grants are still active, and nothing is being retried."""
    soon = utcnow() + timedelta(seconds=60)
    for row in everyone(engine):
        if row.retry_at is not None or row.status == "approved":
            return False
        if row.status == "active" and (
            row.end_requested_at or row.extension_approved_at or (row.expires_at and row.expires_at < soon)
        ):
            return False
        if row.status != "active" and row.grant_started_at is not None and row.ended_at is None:
            return False
    return True


def poke(front: Runtime, engine: Engine, request_id: int, rng: random.Random) -> None:
    """At random: revoke the request early, or extend it (approved by an approver), or leave it be."""
    workflow = front.workflow
    with session_scope(engine) as session:
        row = session.get(AccessRequest, request_id)
    if row is None:
        return
    choice = rng.random()
    try:
        if choice < 0.35:
            workflow.revoke_early(request_id=request_id, actor="cli:chaos", reason="chaos", operator=True)
        elif choice < 0.6 and row.status == "active":
            workflow.request_extension(request_id=request_id, actor=row.requester_id, duration="10s")
            approvers = ["U0DAVE", "U0ERIN"] if row.kind == Kind.KMS_KEY else ["U0BOB"]
            for approver in approvers:
                workflow.decide(request_id=request_id, actor=approver, approve=True, round=None)
        else:
            return
    except UserError:
        return  # not revocable or extendable in its state now: a person would be told so
    release(engine, request_id)
