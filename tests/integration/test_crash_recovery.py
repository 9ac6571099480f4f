"""A worker killed (SIGKILL) right after AWS applied a grant, before it could record it: the work it left is
taken over within 10 s of a restart (one process), or within 15 s of the crash by another replica, and the
grant still ends on time. The crashed worker's AWS call is held by a proxy in front of moto: AWS has applied
it, the answer never reaches the worker."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from bot.catalog import Kind
from bot.clock import utcnow
from bot.store.db import session_scope
from bot.store.models import AccessRequest
from tests.conftest import wait_until
from tests.support.aws import World, members
from tests.support.catalogs import BASIC
from tests.support.chaos_proxy import ChaosProxy
from tests.support.fake_slack import FakeSlack
from tests.support.workers import Wanted, Workers, plant_approved

pytestmark = pytest.mark.xdist_group("worker_processes")

RESTART_TAKEOVER = 10.0  # the issue: within 10 s of a restart
REPLICA_TAKEOVER = 15.0  # the issue: within 15 s of the crash, by another replica
# How often the test reads the row: every read is a write-locked transaction on SQLite (BEGIN IMMEDIATE), and a
# test process starved of CPU while it holds that lock would hold up the very worker it is timing.
POLL = 0.2


@pytest.fixture
def stalled_aws(moto_url: str, world: World) -> Iterator[ChaosProxy]:
    with ChaosProxy(moto_url, seed=9) as proxy:
        proxy.add_rule("AddUserToGroup", "stall", delay=120.0)
        yield proxy


@pytest.fixture
def crew(database_url: str, stalled_aws: ChaosProxy, slack: FakeSlack, tmp_path: Path) -> Iterator[Workers]:
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(BASIC)
    started = Workers(database_url=database_url, aws_url=stalled_aws.url, slack_url=slack.url, catalog=catalog)
    yield started
    started.stop()


def row(engine: Engine, request_id: int) -> AccessRequest:
    with session_scope(engine) as session:
        found = session.get(AccessRequest, request_id)
    assert found is not None
    return found


def activated_at(engine: Engine, request_id: int) -> datetime | None:
    """When the grant was recorded as applied (it may have expired since: its 3 s can be over at once)."""
    return row(engine, request_id).activated_at


def plant(engine: Engine, world: World) -> int:
    arn = world.iam.get_user(UserName="alice")["User"]["Arn"]
    [request_id] = plant_approved(engine, [Wanted(Kind.IAM_GROUP, "deploy-admins", "deploy-admins", "alice", arn, 3)])
    return request_id


@pytest.mark.both_databases
def test_a_restarted_process_takes_over_a_grant_its_crashed_self_left_within_10s(
    engine: Engine, world: World, crew: Workers, stalled_aws: ChaosProxy
) -> None:
    [first] = crew.start()
    request_id = plant(engine, world)
    wait_until(lambda: "alice" in members(world.iam, "deploy-admins"), timeout=15)  # AWS has it; the answer hangs
    first.kill()
    stalled_aws.clear_rules()

    crew.start()  # returns once the restarted process runs its scheduler (its start-up is the machine's, not ours)
    restarted = utcnow()
    activated = wait_until(lambda: activated_at(engine, request_id), timeout=RESTART_TAKEOVER + 1, interval=POLL)
    taken_over = (activated - restarted).total_seconds()
    assert taken_over <= RESTART_TAKEOVER, f"taken over {taken_over:.1f}s after the restart"
    ended = wait_until(lambda: (r := row(engine, request_id)).status == "expired" and r, timeout=10, interval=POLL)
    assert "alice" not in members(world.iam, "deploy-admins")
    assert ended.expires_at is not None and ended.ended_at is not None


@pytest.mark.postgres
def test_another_replica_takes_over_within_15s_of_the_crash_and_not_while_the_holder_lives(
    engine: Engine, database_url: str, world: World, crew: Workers, stalled_aws: ChaosProxy
) -> None:
    crew.start(2)
    request_id = plant(engine, world)
    wait_until(lambda: "alice" in members(world.iam, "deploy-admins"), timeout=15)
    holder = wait_until(lambda: crew.owner_of(row(engine, request_id).claimed_by), interval=POLL)

    # Longer than a lease (8 s): the holder is slow, not dead; its heartbeat keeps the other replica off.
    time.sleep(9.0)
    assert stalled_aws.count("AddUserToGroup") == 1 and row(engine, request_id).status == "approved"

    holder.kill()
    crashed = utcnow()
    stalled_aws.clear_rules()
    activated = wait_until(lambda: activated_at(engine, request_id), timeout=REPLICA_TAKEOVER + 1, interval=POLL)
    taken_over = (activated - crashed).total_seconds()
    assert taken_over <= REPLICA_TAKEOVER, f"taken over {taken_over:.1f}s after the crash"
    wait_until(lambda: row(engine, request_id).status == "expired", timeout=10, interval=POLL)
    assert "alice" not in members(world.iam, "deploy-admins")
    assert row(engine, request_id).ended_at is not None and utcnow() > row(engine, request_id).ended_at
