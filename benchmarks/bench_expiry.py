"""Expiry at scale, one bot process: revoke lag for 1,000 grants due within a minute, and restart catch-up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from sqlalchemy import func, update
from sqlmodel import col, select

from benchmarks.harness import (
    DATABASE_URL,
    ROOT,
    TOKEN,
    Servers,
    catalog_file,
    fresh_database,
    percentile,
    start_bot,
)
from bot.aws.clients import RETRIES
from bot.aws.granters import PREFIX, Ended, Granter, GrantSpec, role_name, session_deny
from bot.catalog import Kind
from bot.clock import utcnow
from bot.runtime import Runtime
from bot.store.db import make_engine, session_scope
from bot.store.models import AccessRequest
from bot.workflow import Tuning
from tests.support.grants import ROLE_ARN, Planned, create_users, grant_directly

GRANTS = 1000
KINDS = (Kind.IAM_GROUP, Kind.IAM_ROLE, Kind.KMS_KEY)


class TimedGranter:
    """A granter that notes the moment AWS accepted each revoke (the end of its last call)."""

    def __init__(self, inner: Granter, done: dict[int, datetime], lock: threading.Lock) -> None:
        self.shared = inner.shared
        self._inner = inner
        self._done = done
        self._lock = lock

    def locate(self, spec: GrantSpec) -> str | None:
        return self._inner.locate(spec)

    def holds(self, spec: GrantSpec) -> bool:
        return self._inner.holds(spec)

    def grant(self, spec: GrantSpec) -> str | None:
        return self._inner.grant(spec)

    def revoke(self, spec: GrantSpec, grant_ref: str | None) -> Ended:
        ended = self._inner.revoke(spec, grant_ref)
        with self._lock:
            self._done[spec.request_id] = utcnow()
        return ended

    def lift(self, spec: GrantSpec) -> None:
        self._inner.lift(spec)


def timed(runtime: Runtime, done: dict[int, datetime]) -> None:
    """Instrument the bot's granters (before it starts) to fill `done` with request ID -> revoke accepted."""
    lock = threading.Lock()
    workflow: Any = runtime.workflow
    workflow.ctx.granters = {kind: TimedGranter(g, done, lock) for kind, g in workflow.ctx.granters.items()}


def put_grants(count: int, expiry: Callable[[int], datetime], kinds: Sequence[Kind] = KINDS) -> list[int]:
    """`count` active grants with real AWS access behind them, one IAM user each, kinds in turn."""
    iam, kms = boto3.client("iam"), boto3.client("kms")
    names = [f"load{i:05d}" for i in range(count)]
    arns = create_users(iam, names)
    plans = [Planned(kinds[i % len(kinds)], name, arns[name]) for i, name in enumerate(names)]
    engine = make_engine(DATABASE_URL)
    try:
        ids = grant_directly(engine, iam, kms, plans, expiry)
        # The bot records the key's ARN with every grant intent (revokes go to that key): so do these rows.
        key_arn = str(kms.describe_key(KeyId="alias/payments")["KeyMetadata"]["Arn"])
        with engine.begin() as connection:
            connection.execute(
                update(AccessRequest)
                .where(col(AccessRequest.id).in_(ids), col(AccessRequest.kind) == Kind.KMS_KEY.value)
                .values(target_arn=key_arn)
            )
        return ids
    finally:
        engine.dispose()


def active_left(runtime: Runtime, ids: list[int]) -> int:
    with session_scope(runtime.workflow.engine) as session:
        stmt = select(func.count()).where(col(AccessRequest.id).in_(ids), AccessRequest.status == "active")
        return int(session.exec(stmt).one())


def expiries(runtime: Runtime, ids: list[int]) -> dict[int, datetime]:
    with session_scope(runtime.workflow.engine) as session:
        rows = session.exec(select(AccessRequest.id, AccessRequest.expires_at).where(col(AccessRequest.id).in_(ids)))
        return {int(i or 0): e for i, e in rows.all() if e is not None}


def revoke_lag(srv: Servers, workdir: Path, *, window: float = 60.0, threads: int | None = None) -> dict[str, float]:
    """1,000 grants falling due evenly within `window` seconds: seconds from expires_at to AWS accepting the revoke."""
    fresh_database()
    srv.reset_aws()
    written: list[datetime] = []

    def expiry(i: int) -> datetime:
        written[:] = written or [utcnow() + timedelta(seconds=3)]
        return written[0] + timedelta(seconds=window * i / GRANTS)

    ids = put_grants(GRANTS, expiry)
    tuning = Tuning(lease=timedelta(seconds=60), **({"sweep_threads": threads} if threads else {}))
    done: dict[int, datetime] = {}
    # Its first sweep arms the wake-up for the first expiry.
    runtime = start_bot(srv, workdir, tuning=tuning, before_start=lambda r: timed(r, done))
    try:
        deadline = time.monotonic() + window + 120
        while active_left(runtime, ids) and time.monotonic() < deadline:
            time.sleep(0.5)
        due = expiries(runtime, ids)
    finally:
        runtime.stop()
    missing = [i for i in ids if i not in done]
    if missing:
        raise RuntimeError(f"{len(missing)} grants were not revoked, e.g. #{missing[0]}")
    lags = [(done[i] - due[i]).total_seconds() for i in ids]
    return {
        "p50_s": percentile(lags, 50),
        "p99_s": percentile(lags, 99),
        "max_s": max(lags),
    }


def catch_up(
    srv: Servers,
    workdir: Path,
    *,
    threads: int | None = None,
    kinds: Sequence[Kind] = KINDS,
    grants: int = GRANTS,
    raw_threads: int = 8,
) -> dict[str, float]:
    """`grants` grants that fell due while no bot ran: the bot's catch-up rate beside the backend's raw rate.

    First the floor: the same number and mix of grants, revoked by plain boto3 calls from `raw_threads`
    threads on the same moto (raw_revokes). Then a fresh world, and the bot: from its start until none is
    active. CPU is the bot's process's (this one: the bot runs in-process) over the catch-up alone.
    """
    raw = raw_revokes(grants, kinds, threads=raw_threads, srv=srv)
    fresh_database()
    srv.reset_aws()
    overdue = utcnow() - timedelta(minutes=1)
    ids = put_grants(grants, lambda _i: overdue, kinds)
    tuning = Tuning(lease=timedelta(seconds=60), **({"sweep_threads": threads} if threads else {}))
    done: dict[int, datetime] = {}
    mark: dict[str, float] = {}

    def starting(runtime: Runtime) -> None:
        timed(runtime, done)
        # Measured from here: the runtime is built (engine, clients, app); its start begins the catch-up.
        mark.update(began=time.monotonic(), cpu=cpu_seconds(os.getpid()), servers=cpu_seconds(srv.process.pid))

    runtime = start_bot(srv, workdir, tuning=tuning, before_start=starting)
    try:
        # Watched in memory until AWS accepted every revoke, then in the database until none is active: a
        # query every 50 ms for the whole run would be CPU of this process counted as the bot's.
        while len(done) < grants or active_left(runtime, ids):
            if time.monotonic() - mark["began"] > 600:
                raise RuntimeError("catch-up took over ten minutes")
            time.sleep(0.01)
        took = time.monotonic() - mark["began"]
        cpu = cpu_seconds(os.getpid()) - mark["cpu"], cpu_seconds(srv.process.pid) - mark["servers"]
    finally:
        runtime.stop()
    assert len(done) == grants
    return {
        "seconds": took,
        "per_second": grants / took,
        "raw_per_second": raw["per_second"],
        "ratio": grants / took / raw["per_second"],
        # Where the two cores went: the bot's process, and the one running moto and the fake Slack.
        "bot_cpu_ms_per_revoke": cpu[0] * 1000 / grants,
        "servers_cpu_ms_per_revoke": cpu[1] * 1000 / grants,
        "raw_client_cpu_ms_per_revoke": raw["client_cpu_ms_per_revoke"],
        "raw_servers_cpu_ms_per_revoke": raw["servers_cpu_ms_per_revoke"],
    }


def raw_revokes(count: int, kinds: Sequence[Kind], *, threads: int, srv: Servers) -> dict[str, float]:
    """The backend's capacity: `count` grants revoked with the AWS calls a revoke needs at least, no bot.

    Per kind, what the bot's granter must call: RemoveUserFromGroup; DeleteUserPolicy and the session
    deny's PutRolePolicy (the role's GetRole is cached by the bot, so it is left out here too); RevokeGrant
    by the stored GrantId. Plain boto3 clients (standard retries, as the bot's), `threads` at once.
    """
    fresh_database()
    srv.reset_aws()
    ids = put_grants(count, lambda _i: utcnow() - timedelta(minutes=1), kinds)
    engine = make_engine(DATABASE_URL)
    try:
        with session_scope(engine) as session:
            rows = list(session.exec(select(AccessRequest).where(col(AccessRequest.id).in_(ids))).all())
    finally:
        engine.dispose()
    config = RETRIES.merge(Config(max_pool_connections=threads))  # the bot's retry mode
    iam, kms = boto3.client("iam", config=config), boto3.client("kms", config=config)
    key_arn = str(kms.describe_key(KeyId="alias/payments")["KeyMetadata"]["Arn"])
    role = role_name(ROLE_ARN)

    def revoke(row: AccessRequest) -> None:
        name = f"{PREFIX}{row.id}"
        if row.kind == Kind.IAM_GROUP.value:
            iam.remove_user_from_group(GroupName=row.target, UserName=row.iam_user)
        elif row.kind == Kind.IAM_ROLE.value:
            iam.delete_user_policy(UserName=row.iam_user, PolicyName=name)
            deny = session_deny(row.iam_user, utcnow().replace(microsecond=0) + timedelta(seconds=1))
            iam.put_role_policy(RoleName=role, PolicyName=name, PolicyDocument=json.dumps(deny))
        else:
            kms.revoke_grant(KeyId=key_arn, GrantId=row.grant_ref)

    cpu = cpu_seconds(os.getpid()), cpu_seconds(srv.process.pid)
    began = time.monotonic()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(revoke, rows))
    took = time.monotonic() - began
    return {
        "per_second": count / took,
        "client_cpu_ms_per_revoke": (cpu_seconds(os.getpid()) - cpu[0]) * 1000 / count,
        "servers_cpu_ms_per_revoke": (cpu_seconds(srv.process.pid) - cpu[1]) * 1000 / count,
    }


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def catch_up_processes(srv: Servers, workdir: Path, *, processes: int) -> dict[str, float]:
    """The same catch-up done by `processes` real `accessbot worker` processes on PostgreSQL, started together."""
    fresh_database()
    srv.reset_aws()
    overdue = utcnow() - timedelta(minutes=1)
    ids = put_grants(GRANTS, lambda _i: overdue)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "ACCESSBOT_", "DATABASE_"))}
    env.update(
        SLACK_BOT_TOKEN=TOKEN,
        SLACK_API_URL=srv.slack,
        DATABASE_URL=DATABASE_URL,
        ACCESSBOT_CATALOG=str(catalog_file(workdir)),
        ACCESSBOT_RECONCILE_SECONDS="0",
        LOG_LEVEL="WARNING",
    )
    engine = make_engine(DATABASE_URL)
    began = time.monotonic()
    workers = [
        subprocess.Popen([sys.executable, "-m", "bot", "worker"], env=env, cwd=ROOT, stderr=subprocess.DEVNULL)
        for _ in range(processes)
    ]
    try:
        while True:
            with session_scope(engine) as session:
                stmt = select(func.count()).where(col(AccessRequest.id).in_(ids), AccessRequest.status == "active")
                if not int(session.exec(stmt).one()):
                    break
            if time.monotonic() - began > 600:
                raise RuntimeError("catch-up took over ten minutes")
            time.sleep(0.05)
        took = time.monotonic() - began
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(timeout=30)
        engine.dispose()
    return {"seconds": took, "per_second": GRANTS / took}
