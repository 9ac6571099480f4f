"""`accessbot worker` processes for tests that crash or kill them, and approved rows planted for them to grant."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from sqlalchemy.engine import Engine

from bot.catalog import Kind
from bot.clock import utcnow
from bot.domain.audit import AuditAction
from bot.store import queries
from bot.store.db import session_scope
from bot.store.models import AccessRequest
from tests.conftest import TOKEN, wait_until

STARTUP = 30.0  # seconds a worker may take to start on a busy two-core machine


@dataclass
class Worker:
    """One `python -m bot worker` process and what it wrote to stderr."""

    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)

    def read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line)

    @property
    def pid(self) -> int:
        return self.process.pid

    def kill(self) -> None:
        """SIGKILL: no clean-up of any kind, as in a crash."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)


class Workers:
    """Starts worker processes with one environment, and stops whatever is left of them."""

    def __init__(self, *, database_url: str, aws_url: str, slack_url: str, catalog: Path, **settings: str) -> None:
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "ACCESSBOT_", "DATABASE_"))}
        self.env.update(
            SLACK_BOT_TOKEN=TOKEN,
            SLACK_API_URL=slack_url,
            DATABASE_URL=database_url,
            AWS_ENDPOINT_URL=aws_url,
            ACCESSBOT_CATALOG=str(catalog),
            ACCESSBOT_RECONCILE_SECONDS="0",
            LOG_LEVEL="INFO",
        )
        self.env.update({f"ACCESSBOT_{k.upper()}": v for k, v in settings.items()})
        self.cwd = catalog.parent
        self.started: list[Worker] = []

    def start(self, count: int = 1) -> list[Worker]:
        """Start `count` workers and wait until each has its scheduler running."""
        new = []
        for _ in range(count):
            process = subprocess.Popen(
                [sys.executable, "-m", "bot", "worker"], env=self.env, cwd=self.cwd, stderr=subprocess.PIPE, text=True
            )
            worker = Worker(process)
            threading.Thread(target=worker.read, daemon=True).start()
            new.append(worker)
        self.started += new
        for worker in new:
            wait_until(lambda w=worker: any("scheduler started" in line for line in w.lines), timeout=STARTUP)
        return new

    def owner_of(self, claimed_by: str | None) -> Worker | None:
        """The worker whose claim this is (claims are host:pid:nonce[#token])."""
        parts = (claimed_by or "").split(":")
        return next((w for w in self.started if len(parts) > 1 and parts[1] == str(w.pid)), None)

    def stop(self) -> None:
        for worker in self.started:
            if worker.process.poll() is None:
                worker.process.terminate()
        for worker in self.started:
            try:
                worker.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                worker.process.kill()


@dataclass(frozen=True)
class Wanted:
    """An approved request to plant: who gets what, for how long."""

    kind: Kind
    resource: str
    target: str
    user: str
    user_arn: str
    seconds: int
    requester: str = "U0ALICE"


def plant_approved(engine: Engine, wanted: list[Wanted]) -> list[int]:
    """Approved requests whose grant is owed now and claimed by nobody, as a vote that reached the quorum
    leaves them once the approving process is gone: the workers' sweeps grant them."""
    now = utcnow()
    ids = []
    with session_scope(engine) as session:
        for want in wanted:
            row = AccessRequest(
                requester_id=want.requester,
                resource=want.resource,
                kind=want.kind.value,
                target=want.target,
                iam_user=want.user,
                iam_user_arn=want.user_arn,
                duration_seconds=want.seconds,
                reason="planted by the test",
                status="approved",
                approval_channel="C0APPROVALS",
                decided_by="U0BOB",
                decided_at=now,
                created_at=now - timedelta(seconds=1),
                updated_at=now,
                next_due_at=now,
            )
            session.add(row)
            session.flush()
            queries.record_audit(session=session, actor="U0BOB", action=AuditAction.APPROVED, request_id=row.id, at=now)
            assert row.id is not None
            ids.append(row.id)
    return ids
