"""The expiry engine under real latency: a restart catch-up with 50 ms on every AWS call, beside a raw loop.

Every AWS call of the bot and of the raw loop goes through benchmarks/latency_proxy.py (a process of its
own in front of moto), which sleeps `LATENCY` before forwarding, may answer some calls with AWS's
throttling error, and counts the calls by operation. The grants are set up through moto directly (no
latency), so only the ends are timed.
"""

from __future__ import annotations

import itertools
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from sqlmodel import col, select

from benchmarks.bench_expiry import KINDS, TimedGranter, cpu_seconds, put_grants
from benchmarks.harness import DATABASE_URL, ROOT, Servers, fresh_database, start_bot
from bot.aws.clients import RETRIES
from bot.aws.granters import PREFIX, Ended, Granter, GrantSpec, role_name, session_deny
from bot.catalog import Kind
from bot.clock import utcnow
from bot.runtime import Runtime
from bot.store.db import make_engine, session_scope
from bot.store.models import AccessRequest
from bot.workflow import Tuning
from tests.support.grants import ROLE_ARN

LATENCY = 0.050  # seconds on every AWS call
GRANTS = 160
RAW_THREADS = 8
TUNING = Tuning(lease=timedelta(seconds=60))  # the bot's defaults (4 sweep threads, batches of 20), a long lease


@dataclass
class LatencyProxy:
    """The proxy's process: its URL, and its settings and counts over stdin/stdout."""

    url: str
    process: subprocess.Popen[str]

    def ask(self, command: dict[str, Any]) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        answer: dict[str, Any] = json.loads(self.process.stdout.readline())
        return answer

    def set(self, **settings: float) -> None:
        """Change delay, throttle or page_size from now on."""
        self.ask({"set": settings})

    def counts(self) -> dict[str, int]:
        """Calls seen since the last time asked, as 'Operation sent|throttled' -> count."""
        counts: dict[str, int] = self.ask({"counts": True})["counts"]
        return counts


@contextmanager
def latency_proxy(srv: Servers) -> Iterator[LatencyProxy]:
    """Start the proxy in front of the servers' moto."""
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.latency_proxy", srv.moto],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stdin is not None
    try:
        yield LatencyProxy(json.loads(process.stdout.readline())["url"], process)
    finally:
        process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


@contextmanager
def through(proxy: LatencyProxy) -> Iterator[None]:
    """boto3 clients built inside go through the proxy (boto3 reads AWS_ENDPOINT_URL when a client is built)."""
    direct = os.environ["AWS_ENDPOINT_URL"]
    os.environ["AWS_ENDPOINT_URL"] = proxy.url
    try:
        yield
    finally:
        os.environ["AWS_ENDPOINT_URL"] = direct


class SpanGranter(TimedGranter):
    """A granter that notes when each revoke's AWS calls began and when AWS accepted the last (monotonic)."""

    def __init__(self, inner: Granter, found: dict[int, tuple[float, float, int]], lock: threading.Lock) -> None:
        super().__init__(inner, {}, lock)
        self._found = found

    def revoke(self, spec: GrantSpec, grant_ref: str | None) -> Ended:
        began = time.monotonic()
        ended = self._inner.revoke(spec, grant_ref)
        with self._lock:
            self._found[spec.request_id] = (began, time.monotonic(), threading.get_ident())
        return ended


def spans(runtime: Runtime, found: dict[int, tuple[float, float, int]]) -> None:
    """Instrument the bot's granters (before it starts) to fill `found` with request ID -> its revoke's span."""
    lock = threading.Lock()
    workflow: Any = runtime.workflow
    workflow.ctx.granters = {kind: SpanGranter(g, found, lock) for kind, g in workflow.ctx.granters.items()}


def between_ends(found: list[tuple[float, float, int]]) -> dict[str, float]:
    """On each sweep thread, the time from AWS accepting one end to the next end's first call: the end's
    database work (its record, audit and DM), the next one's start, and any wait for the batch's slowest."""
    gaps: list[float] = []
    for thread in {t for _s, _e, t in found}:
        mine = sorted((s, e) for s, e, t in found if t == thread)
        gaps += [(b[0] - a[1]) * 1000 for a, b in itertools.pairwise(mine)]
    if not gaps:
        return {"between_ends_p50_ms": 0.0, "between_ends_p90_ms": 0.0}
    ordered = sorted(gaps)
    return {"between_ends_p50_ms": statistics.median(ordered), "between_ends_p90_ms": ordered[int(0.9 * len(ordered))]}


def overdue_grants(srv: Servers, count: int, kinds: Sequence[Kind]) -> list[int]:
    """A fresh database and AWS, and `count` grants that fell due a minute ago (set up without latency)."""
    fresh_database()
    srv.reset_aws()
    overdue = utcnow() - timedelta(minutes=1)
    return put_grants(count, lambda _i: overdue, kinds)


def rows(ids: list[int]) -> list[AccessRequest]:
    engine = make_engine(DATABASE_URL)
    try:
        with session_scope(engine) as session:
            found = list(session.exec(select(AccessRequest).where(col(AccessRequest.id).in_(ids))).all())
            session.expunge_all()
            return found
    finally:
        engine.dispose()


def left_in_aws(found: list[AccessRequest]) -> int:
    """How many of the grants still hold access in AWS (read through moto directly, after the run)."""
    iam, kms = boto3.client("iam"), boto3.client("kms")
    members = {u["UserName"] for u in iam.get_group(GroupName="deploy-admins")["Users"]}
    key_arn = str(kms.describe_key(KeyId="alias/payments")["KeyMetadata"]["Arn"])
    grants = {g["GrantId"] for page in kms.get_paginator("list_grants").paginate(KeyId=key_arn) for g in page["Grants"]}
    left = 0
    for row in found:
        if row.kind == Kind.IAM_GROUP.value:
            left += row.iam_user in members
        elif row.kind == Kind.IAM_ROLE.value:
            left += f"{PREFIX}{row.id}" in iam.list_user_policies(UserName=row.iam_user)["PolicyNames"]
        else:
            left += row.grant_ref in grants
    return left


def bot_catch_up(
    srv: Servers, workdir: Path, proxy: LatencyProxy, *, grants: int = GRANTS, kinds: Sequence[Kind] = KINDS,
    throttle: float = 0.0, tuning: Tuning | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The bot started on `grants` overdue grants, every AWS call through the proxy: time until none is active."""
    ids = overdue_grants(srv, grants, kinds)
    proxy.counts()
    proxy.set(delay=LATENCY, throttle=throttle)
    done: dict[int, tuple[float, float, int]] = {}
    mark: dict[str, float] = {}

    def starting(runtime: Runtime) -> None:
        spans(runtime, done)
        mark.update(began=time.monotonic(), cpu=cpu_seconds(os.getpid()))

    try:
        with through(proxy):
            runtime = start_bot(srv, workdir, tuning=tuning or TUNING, before_start=starting)
            try:
                while len(done) < grants or any(r.status == "active" for r in rows(ids)):
                    if time.monotonic() - mark["began"] > 300:
                        raise RuntimeError("catch-up took over five minutes")
                    time.sleep(0.05)
                took = time.monotonic() - mark["began"]
                cpu = cpu_seconds(os.getpid()) - mark["cpu"]
            finally:
                runtime.stop()
    finally:
        proxy.set(delay=0.0, throttle=0.0)
    found = rows(ids)
    starts, ends = [s for s, _e, _t in done.values()], [e for _s, e, _t in done.values()]
    return {
        "seconds": took,
        "per_second": grants / took,
        "bot_cpu_ms_per_end": cpu * 1000 / grants,
        # Where the time went: until the first end's AWS calls began (start-up, first claim), the ends' AWS
        # calls in flight on average from the first call to the last answer, and after the last answer.
        "until_first_call_s": min(starts) - mark["began"],
        "aws_in_flight": sum(e - s for s, e, _t in done.values()) / (max(ends) - min(starts)),
        "aws_ms_per_end": statistics.median(e - s for s, e, _t in done.values()) * 1000,
        **between_ends(list(done.values())),
        "after_last_answer_s": took - (max(ends) - mark["began"]),
        # An end that failed once is retried later (attempts > 0): none may, throttled or not.
        "ends_failed_once": sum(1 for r in found if r.attempts),
        "not_ended": sum(1 for r in found if r.ended_at is None),
        "left_in_aws": left_in_aws(found),
        "calls": proxy.counts(),
    }


def raw_loop(srv: Servers, proxy: LatencyProxy, *, grants: int = GRANTS, throttle: float = 0.0) -> dict[str, Any]:
    """The floor: the calls each end needs, plain boto3 on RAW_THREADS threads, through the same proxy.

    A group end: RemoveUserFromGroup. A role end: the deny of older sessions on the role (PutRolePolicy),
    then the user's allow deleted (DeleteUserPolicy). A KMS end: RevokeGrant by the stored GrantId.
    """
    ids = overdue_grants(srv, grants, KINDS)
    found = rows(ids)
    config = RETRIES.merge(Config(max_pool_connections=RAW_THREADS))  # the bot's retry mode
    proxy.counts()
    proxy.set(delay=LATENCY, throttle=throttle)
    try:
        with through(proxy):
            iam, kms = boto3.client("iam", config=config), boto3.client("kms", config=config)
            role = role_name(ROLE_ARN)
            key_arn = next(r.target_arn for r in found if r.kind == Kind.KMS_KEY.value)

            def end(row: AccessRequest) -> None:
                if row.kind == Kind.IAM_GROUP.value:
                    iam.remove_user_from_group(GroupName=row.target, UserName=row.iam_user)
                elif row.kind == Kind.IAM_ROLE.value:
                    deny = session_deny(row.iam_user, utcnow().replace(microsecond=0) + timedelta(seconds=1))
                    iam.put_role_policy(RoleName=role, PolicyName=f"{PREFIX}{row.id}", PolicyDocument=json.dumps(deny))
                    iam.delete_user_policy(UserName=row.iam_user, PolicyName=f"{PREFIX}{row.id}")
                else:
                    kms.revoke_grant(KeyId=key_arn, GrantId=row.grant_ref)

            cpu = cpu_seconds(os.getpid())
            began = time.monotonic()
            with ThreadPoolExecutor(max_workers=RAW_THREADS) as pool:
                list(pool.map(end, found))
            took = time.monotonic() - began
    finally:
        proxy.set(delay=0.0, throttle=0.0)
    return {
        "seconds": took,
        "per_second": grants / took,
        "client_cpu_ms_per_end": (cpu_seconds(os.getpid()) - cpu) * 1000 / grants,
        "left_in_aws": left_in_aws(found),
        "calls": proxy.counts(),
    }


def side_by_side(
    srv: Servers, workdir: Path, proxy: LatencyProxy, *, throttle: float = 0.0, tuning: Tuning | None = None
) -> dict[str, Any]:
    """One repeat: the raw loop, then the bot, on the same machine seconds apart; their rates and ratio."""
    raw = raw_loop(srv, proxy, throttle=throttle)
    bot = bot_catch_up(srv, workdir, proxy, throttle=throttle, tuning=tuning)
    return {"bot": bot, "raw": raw, "ratio": bot["per_second"] / raw["per_second"]}


def calls_per_end(srv: Servers, workdir: Path, proxy: LatencyProxy, *, per_kind: int = 20) -> dict[str, Any]:
    """Per kind, `per_kind` ends of that kind alone by the bot: the AWS calls it made, per end."""
    found: dict[str, Any] = {}
    for kind in KINDS:
        run = bot_catch_up(srv, workdir, proxy, grants=per_kind, kinds=(kind,))
        found[kind.value] = {
            "ends": per_kind,
            "per_second": run["per_second"],
            "calls_per_end": {op: n / per_kind for op, n in sorted(run["calls"].items())},
        }
    return found
