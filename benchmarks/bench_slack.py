"""Slack-facing latency: the slash-command ack at 1, 10 and 50 concurrent senders, a 40-person burst on a cold
bot, and Approve -> grant in AWS."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import boto3
from sqlalchemy import func
from sqlmodel import col, select

from benchmarks.harness import ROOT, SECRET, Servers, fresh_database, percentile, start_bot
from bot.runtime import Runtime
from bot.slack.messages import ACTION_APPROVE
from bot.store.db import session_scope
from bot.store.models import AccessRequest
from bot.testing.signing import SlackSender

REQUESTS_PER_LEVEL = 500


def ack_latency(srv: Servers, workdir: Path, senders: int, text: str) -> dict[str, float]:
    """p50/p99 (ms) of the ack to `/access <text>`, with `senders` senders sending at once."""
    fresh_database()
    srv.reset_aws()
    runtime = start_bot(srv, workdir)
    try:
        assert runtime.http is not None
        per_sender = max(20, REQUESTS_PER_LEVEL // senders)
        SlackSender(runtime.http.url, SECRET).command("U0S001", "help")  # warm up: first-request imports
        result = subprocess.run(
            [sys.executable, "-m", "benchmarks.load", runtime.http.url, SECRET, str(senders), str(per_sender), text],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            env=os.environ | {"BENCH_RESPONSE_BASE": srv.slack.removesuffix("/api/") + "/response/"},
        )
        answer = json.loads(result.stdout)
        if answer["failures"]:
            raise RuntimeError(f"{len(answer['failures'])} commands failed, e.g. {answer['failures'][0]}")
        latencies = answer["latencies"]
    finally:
        runtime.stop()
    return {"p50_ms": percentile(latencies, 50) * 1000, "p99_ms": percentile(latencies, 99) * 1000}


def approve_to_grant(srv: Servers, workdir: Path, samples: int = 40) -> dict[str, float]:
    """p50/p99 (ms) from the Approve click being sent until AWS lists the membership (polled every ~10 ms)."""
    fresh_database()
    srv.reset_aws()
    iam = boto3.client("iam")
    runtime = start_bot(srv, workdir)
    took: list[float] = []
    try:
        assert runtime.http is not None
        sender = SlackSender(runtime.http.url, SECRET, srv.slack.removesuffix("/api/") + "/response/")
        for n in range(1, samples + 1):
            user = f"U0S{n:03d}"
            sender.command(user, "request deploy-admins 1h benchmark")
            # A person clicks once the approval message is there (the ack only says filing is under way).
            request_id = str(_posted_for_approval(runtime, user, timeout=30))
            time.sleep(0.2)  # a person reads the message before clicking; the filing's last DMs go out meanwhile
            began = time.perf_counter()
            sender.click("U0BOB", ACTION_APPROVE, request_id)
            while not any(
                g["GroupName"] == "deploy-admins" for g in iam.list_groups_for_user(UserName=f"bench{n:03d}")["Groups"]
            ):
                if time.perf_counter() - began > 30:
                    raise RuntimeError(f"request #{request_id} was never granted")
            took.append(time.perf_counter() - began)
    finally:
        runtime.stop()
    return {"p50_ms": percentile(took, 50) * 1000, "p99_ms": percentile(took, 99) * 1000}


def burst(srv: Servers, workdir: Path, people: int = 40) -> dict[str, float]:
    """`people` real requests and as many `/access help` at one moment, on a bot that just started.

    The bot finds people by email tag (identity index not built yet, no email cached): the cold start
    is part of what is measured. Returns the slowest and median ack of each, their ratio, and the time
    from the burst until every request's approval message is posted.
    """
    fresh_database()
    srv.reset_aws()
    runtime = start_bot(srv, workdir, identity="email_tag")
    try:
        assert runtime.http is not None
        request = "request deploy-admins 1h burst {n}"
        result = subprocess.run(
            [sys.executable, "-m", "benchmarks.load", "burst", runtime.http.url, SECRET, str(people), request, "help"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            env=os.environ | {"BENCH_RESPONSE_BASE": srv.slack.removesuffix("/api/") + "/response/"},
        )
        answer = json.loads(result.stdout)
        if answer["failures"]:
            raise RuntimeError(f"{len(answer['failures'])} commands failed, e.g. {answer['failures'][0]}")
        deadline = time.monotonic() + 60
        while _approval_posts(runtime) < people:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {_approval_posts(runtime)} of {people} requests were posted for approval")
            time.sleep(0.01)
        all_posted = time.time() - answer["released"]
        filed, helped = answer["acks"][request], answer["acks"]["help"]
    finally:
        runtime.stop()
    return {
        "request_ack_max_ms": max(filed) * 1000,
        "request_ack_p50_ms": percentile(filed, 50) * 1000,
        "help_ack_max_ms": max(helped) * 1000,
        "help_ack_p50_ms": percentile(helped, 50) * 1000,
        "max_ratio": max(filed) / max(helped),
        "all_posted_s": all_posted,
    }


def _approval_posts(runtime: Runtime) -> int:
    with session_scope(runtime.workflow.engine) as session:
        stmt = select(func.count()).select_from(AccessRequest).where(col(AccessRequest.approval_ts).is_not(None))
        return int(session.exec(stmt).one())


def _posted_for_approval(runtime: Runtime, user: str, *, timeout: float) -> int:
    """The ID of `user`'s newest request once its approval message is posted."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with session_scope(runtime.workflow.engine) as session:
            stmt = (
                select(AccessRequest).where(AccessRequest.requester_id == user).order_by(col(AccessRequest.id).desc())
            )
            row = session.exec(stmt).first()
        if row is not None and row.approval_ts is not None and row.id is not None:
            return row.id
        time.sleep(0.005)
    raise RuntimeError(f"no request of {user} was posted for approval within {timeout}s")
