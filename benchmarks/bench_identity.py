"""Identity at 5,000 IAM users tagged with emails: the index read, the request path, and the index's memory.

    .venv/bin/python -m benchmarks.run_all --only identity
    .venv/bin/python -m benchmarks.bench_identity --users 300 --requests 40 --senders 10   # a quick smoke run

(a) `read_s`: one read of the email index (paginated GetAccountAuthorizationDetails), timed alone; beside it
    `scan_s`, the ListUsers + one ListUserTags per user that requests used to wait for (what it replaces).
(b) The bot as `accessbot serve` runs it, started cold: `senders` people file at once the moment it listens
    (`cold_*`: the first of each sender, waiting for the first read), then the rest of `requests`, each from
    its own Slack user (`warm_*`). `ack_*` is the HTTP answer to the command; `approval_*` is from sending
    the command until the approval message reaches the approval channel (chat.postMessage, seen by a fake
    Slack in this process). `iam_calls`: the bot's IAM calls from its start to the last approval.
(c) `index_kib`: what the index keeps (tracemalloc, after garbage collection); `read_peak_kib`: the peak
    while reading it (the parsed AWS pages, freed once the index is built).
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import re
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import boto3

from benchmarks.harness import SECRET, Servers, fresh_database, percentile, servers, start_bot
from bot.aws.granters import RoleGranter
from bot.aws.identity import read_email_index
from bot.catalog import Kind
from bot.runtime import Runtime
from bot.testing.fake_slack import FakeSlack
from bot.testing.signing import APP, TEAM, SlackSender

USERS = 5_000
REQUESTS = 200
SENDERS = 20
APPROVALS = "C0APPROVALS"
MENTION = re.compile(r"<@(U0I\d+)>")

CATALOG = """
defaults:
  approval_channel: C0APPROVALS
  min_duration: 1s
  default_duration: 1h
  max_duration: 8h
  rate_limit: {requests: 10000, per: 1h}
  max_open_requests: 1000
identity:
  strategy: email_tag
  tag_key: email
approver_groups:
  platform: [U0BOB, U0CAROL]
resources:
  deploy-admins:
    kind: iam_group
    group_name: deploy-admins
    approvers: [platform]
"""


def slack_user(n: int) -> str:
    return f"U0I{n:05d}"


def email(n: int) -> str:
    return f"person{n:05d}@bench.example"


def populate(users: int, threads: int = 16) -> float:
    """Create `users` IAM users, each tagged with its email, on `threads` threads; return the seconds it took."""
    began = time.perf_counter()
    local = threading.local()

    def create(n: int) -> None:
        if not hasattr(local, "iam"):
            local.iam = boto3.session.Session().client("iam")
        local.iam.create_user(UserName=f"person{n:05d}", Tags=[{"Key": "email", "Value": email(n)}])

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(create, range(1, users + 1)))
    return time.perf_counter() - began


def scan_seconds(iam: Any) -> float:
    """The old request-path scan: ListUsers, then ListUserTags for every user."""
    began = time.perf_counter()
    for page in iam.get_paginator("list_users").paginate():
        for user in page["Users"]:
            iam.list_user_tags(UserName=user["UserName"])
    return time.perf_counter() - began


def index_figures(iam: Any, users: int, *, scan: bool) -> dict[str, float]:
    """(a) and (c): the read timed alone, the old scan, and the index's memory."""
    began = time.perf_counter()
    index = read_email_index(iam, "email")
    read_s = time.perf_counter() - began
    if len(index) < users:  # the benchmark's users, plus the harness's own tagged requesters
        raise RuntimeError(f"the index has {len(index)} emails, fewer than the {users} users")
    del index
    gc.collect()
    tracemalloc.start()
    try:
        before, _peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        kept = read_email_index(iam, "email")
        gc.collect()
        after, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del kept
    figures = {
        "read_s": read_s,
        "index_kib": (after - before) / 1024,
        "read_peak_kib": (peak - before) / 1024,
    }
    if scan:
        figures["scan_s"] = scan_seconds(iam)
    return figures


def command(user: str, response_url: str, *, trigger: str) -> str:
    """The form Slack posts for `/access request …`; each with its own trigger and response_url, as in Slack."""
    return urlencode(
        {
            "token": "legacy",
            "team_id": TEAM,
            "channel_id": "C0GENERAL",
            "user_id": user,
            "user_name": user.lower(),
            "command": "/access",
            "text": "request deploy-admins 1h identity benchmark",
            "api_app_id": APP,
            "response_url": response_url,
            "trigger_id": trigger,
        }
    )


class Approvals:
    """A fake Slack that keeps nothing but when each requester's approval message arrived."""

    def __init__(self, people: int) -> None:
        self.fake = FakeSlack(emails={slack_user(n): email(n) for n in range(1, people + 1)})
        self.posted: dict[str, float] = {}
        self.answers: list[str] = []  # what the bot said on response_urls, to tell why an approval is missing
        self._lock = threading.Lock()
        self.fake.record = self._record  # type: ignore[method-assign]

    def _record(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        if method == "response_url":
            with self._lock:
                self.answers.append(str(args.get("text", "")))
        if method == "chat.postMessage" and args.get("channel") == APPROVALS:
            found = MENTION.search(json.dumps(args.get("blocks")))
            if found:
                with self._lock:
                    self.posted.setdefault(found.group(1), time.perf_counter())
        return self.fake._answer(method, args)

    def wait(self, people: set[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if people <= set(self.posted):
                    return
            time.sleep(0.01)
        missing = sorted(people - set(self.posted))
        said = sorted({answer[:160] for answer in self.answers if not answer.startswith("Request #")})
        raise RuntimeError(f"{len(missing)} approval message(s) never arrived, e.g. {missing[:3]}; the bot said {said}")


def request_path(srv: Servers, workdir: Path, requests: int, senders: int) -> dict[str, float]:
    """(b): a cold start met by `senders` people at once, then the rest of `requests`, each its own user."""
    fresh_database()
    approvals = Approvals(requests)
    approvals.fake.start()
    catalog = workdir / "identity-catalog.yaml"
    catalog.write_text(CATALOG)
    calls: list[str] = []

    def watch(runtime: Runtime) -> None:
        granter = runtime.workflow.ctx.granters[Kind.IAM_ROLE]
        assert isinstance(granter, RoleGranter)
        granter._iam.meta.events.register("before-call.iam.*", lambda model, **_: calls.append(model.name))

    sent: dict[str, float] = {}
    acks: dict[str, float] = {}
    failures: list[str] = []
    lock = threading.Lock()
    runtime = start_bot(srv, workdir, before_start=watch, slack_api_url=approvals.fake.url, accessbot_catalog=catalog)
    try:
        assert runtime.http is not None
        url = runtime.http.url
        response_base = approvals.fake.base + "/response/"

        def send(first: int) -> None:
            sender = SlackSender(url, SECRET)
            for n in range(first, requests + 1, senders):
                who = slack_user(n)
                body = command(who, f"{response_base}cmd/{n}", trigger=f"{n}.1337.identity")
                began = time.perf_counter()
                answer = sender.post(body)
                took = time.perf_counter() - began
                with lock:
                    sent[who], acks[who] = began, took
                    if answer.status_code != 200 or "went wrong" in answer.text:
                        failures.append(f"{who}: {answer.status_code} {answer.text[:200]}")

        with ThreadPoolExecutor(senders) as pool:
            list(pool.map(send, range(1, senders + 1)))
        if failures:
            raise RuntimeError(f"{len(failures)} commands failed, e.g. {failures[0]}")
        approvals.wait(set(sent), timeout=60)
    finally:
        runtime.stop()
        approvals.fake.stop()

    cold = {slack_user(n) for n in range(1, min(senders, requests) + 1)}
    figures: dict[str, float] = {"iam_calls": float(len(calls))}
    for phase, people in (("cold", cold), ("warm", set(sent) - cold)):
        if not people:
            continue
        ack = [acks[p] * 1000 for p in people]
        approval = [(approvals.posted[p] - sent[p]) * 1000 for p in people]
        figures |= {
            f"{phase}_ack_p50_ms": percentile(ack, 50),
            f"{phase}_ack_max_ms": max(ack),
            f"{phase}_approval_p50_ms": percentile(approval, 50),
            f"{phase}_approval_max_ms": max(approval),
        }
        if phase == "warm":
            figures |= {"warm_ack_p99_ms": percentile(ack, 99), "warm_approval_p99_ms": percentile(approval, 99)}
    return figures


def identity(
    srv: Servers,
    workdir: Path,
    *,
    users: int = USERS,
    requests: int = REQUESTS,
    senders: int = SENDERS,
    scan: bool = True,
) -> dict[str, float]:
    """One run: a fresh AWS with `users` tagged IAM users, then (a), (c) and (b)."""
    if requests > users:
        raise ValueError("every request needs a user of its own: requests <= users")
    srv.reset_aws()  # the world the harness's catalog names: deploy-admins, and 50 untagged users
    figures = {"users": float(users), "create_users_s": populate(users)}
    figures |= index_figures(boto3.client("iam"), users, scan=scan)
    figures |= request_path(srv, workdir, requests, senders)
    return figures


def from_environment() -> Callable[[Servers, Path], dict[str, float]]:
    """The run run_all makes: BENCH_IDENTITY_USERS / _REQUESTS / _SENDERS shrink it for a smoke run."""
    users = int(os.environ.get("BENCH_IDENTITY_USERS", USERS))
    requests = int(os.environ.get("BENCH_IDENTITY_REQUESTS", min(REQUESTS, users)))
    senders = int(os.environ.get("BENCH_IDENTITY_SENDERS", SENDERS))
    return lambda srv, work: identity(srv, work, users=users, requests=requests, senders=senders)


def main() -> None:
    """Run once with the given sizes and print the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=USERS)
    parser.add_argument("--requests", type=int, default=REQUESTS)
    parser.add_argument("--senders", type=int, default=SENDERS)
    parser.add_argument("--no-scan", action="store_true", help="skip timing the old ListUsers + ListUserTags scan")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    with servers() as srv, tempfile.TemporaryDirectory() as tmp:
        figures = identity(
            srv, Path(tmp), users=args.users, requests=args.requests, senders=args.senders, scan=not args.no_scan
        )
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
