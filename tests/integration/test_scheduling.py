"""Scheduling is O(1): one precise wake-up plus the safety-net sweep, however many grants there are; and
which process schedules: `serve` with ACCESSBOT_SCHEDULER=off runs none, `worker` runs it alone."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import requests

from bot.catalog import Kind
from bot.clock import utcnow
from bot.scheduler import RECONCILE_JOB, SWEEP_JOB, TAKEOVER_JOB, WAKE_JOB
from bot.store.db import make_engine, session_scope
from bot.store.models import AccessRequest
from tests.conftest import SECRET, TOKEN, Bot, wait_until
from tests.support.aws import World, members
from tests.support.catalogs import BASIC
from tests.support.fake_slack import FakeSlack
from tests.support.grants import Planned, grant_directly


def test_thousands_of_due_times_keep_two_jobs_and_arm_the_earliest(make_bot: Callable[..., Bot]) -> None:
    bot = make_bot(accessbot_sweep_seconds=30.0)
    scheduler = bot.runtime.scheduler
    assert scheduler is not None
    now = utcnow()
    with session_scope(bot.runtime.workflow.engine) as session:
        for i in range(1000):
            due = now + timedelta(hours=1, seconds=i)
            session.add(
                AccessRequest(
                    requester_id="U0LOAD", resource="deploy-admins", kind="iam_group", target="deploy-admins",
                    iam_user=f"user{i}", iam_user_arn=f"arn:aws:iam::123456789012:user/user{i}",
                    duration_seconds=3600, reason="load", status="active", grant_started_at=now,
                    activated_at=now, warned_at=now, expires_at=due, next_due_at=due,
                )
            )  # fmt: skip
    for i in range(2000):  # what 2000 activations would ask for
        bot.runtime.workflow.on_due(now + timedelta(hours=2, seconds=i))
    scheduler.sweep()

    jobs = scheduler.jobs()
    assert set(jobs) == {SWEEP_JOB, TAKEOVER_JOB, WAKE_JOB, RECONCILE_JOB}, "one job each, none per grant"
    assert jobs[WAKE_JOB] == now + timedelta(hours=1), "woken exactly when the earliest grant falls due"


# -- which process schedules ---------------------------------------------------------------------------


def _env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "ACCESSBOT_", "DATABASE_"))}
    env.update(values)
    return env


class Process:
    """A `python -m bot ...` subprocess whose stderr is collected as it runs."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path) -> None:
        self.lines: list[str] = []
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "bot", *args], env=env, cwd=cwd, stderr=subprocess.PIPE, text=True
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.popen.stderr is not None
        for line in self.popen.stderr:
            self.lines.append(line)

    def said(self, pattern: str) -> re.Match[str] | None:
        return next((m for m in (re.search(pattern, line) for line in list(self.lines)) if m), None)

    def stop(self) -> int:
        self.popen.terminate()
        return self.popen.wait(timeout=15)


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    started: list[Process] = []
    yield started
    for process in started:
        if process.popen.poll() is None:
            process.popen.kill()
            process.popen.wait(timeout=5)


def test_serve_with_the_scheduler_off_revokes_nothing_and_a_worker_does(
    tmp_path: Path, slack: FakeSlack, world: World, processes: list[Process]
) -> None:
    (tmp_path / "catalog.yaml").write_text(BASIC)
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    base = {
        "SLACK_BOT_TOKEN": TOKEN, "SLACK_SIGNING_SECRET": SECRET, "SLACK_API_URL": slack.url, "DATABASE_URL": url,
        "ACCESSBOT_SWEEP_SECONDS": "0.5", "ACCESSBOT_RECONCILE_SECONDS": "0", "PORT": "0", "LOG_LEVEL": "INFO",
    }  # fmt: skip
    assert subprocess.run([sys.executable, "-m", "bot", "migrate"], env=_env(**base), cwd=tmp_path).returncode == 0
    engine = make_engine(url)
    alice = world.iam.get_user(UserName="alice")["User"]["Arn"]
    [request_id] = grant_directly(
        engine, world.iam, world.kms, [Planned(Kind.IAM_GROUP, "alice", alice)], lambda _i: utcnow()
    )
    assert "alice" in members(world.iam, "deploy-admins")

    serve = Process(["serve"], _env(**base, ACCESSBOT_SCHEDULER="off"), tmp_path)
    processes.append(serve)
    port = int(wait_until(lambda: serve.said(r"listening on 0\.0\.0\.0:(\d+)"), timeout=30).group(1))
    assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
    # Several sweep intervals pass: nobody revokes the overdue grant.
    threading.Event().wait(2.0)
    with session_scope(engine) as session:
        row = session.get(AccessRequest, request_id)
        assert row is not None and row.status == "active" and row.claimed_by is None
    assert "alice" in members(world.iam, "deploy-admins")
    assert not serve.said("scheduler started")

    worker = Process(["worker"], _env(**base), tmp_path)
    processes.append(worker)
    wait_until(lambda: worker.said("scheduler started"), timeout=30)
    wait_until(lambda: "alice" not in members(world.iam, "deploy-admins"), timeout=10)

    def status() -> str | None:
        with session_scope(engine) as session:
            row = session.get(AccessRequest, request_id)
            return row.status if row else None

    wait_until(lambda: status() == "expired", timeout=5)
    assert not worker.said("listening on"), "the worker serves no HTTP"
    assert worker.stop() == 0 and serve.stop() == 0
    engine.dispose()
