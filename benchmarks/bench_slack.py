"""Slack-facing latency: the slash-command ack at 1, 10 and 50 concurrent senders, and Approve -> grant in AWS."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import boto3

from benchmarks.harness import ROOT, SECRET, Servers, fresh_database, percentile, start_bot
from bot.slack.messages import ACTION_APPROVE
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
        sender = SlackSender(runtime.http.url, SECRET)
        for n in range(1, samples + 1):
            user = f"U0S{n:03d}"
            answer = sender.command(user, "request deploy-admins 1h benchmark").json()
            request_id = answer["text"].split("#", 1)[1].split()[0]
            time.sleep(0.2)  # let the approval message go out first, as it would before a person clicks
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
