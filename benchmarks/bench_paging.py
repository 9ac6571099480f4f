"""The email index's read of 5,000 IAM users as IAM answers it (100 users a page), not as moto does (one page).

moto answers `GetAccountAuthorizationDetails` with every user in one page and `IsTruncated` false,
whatever MaxItems says; IAM's MaxItems "defaults to 100" (IAM API Reference,
GetAccountAuthorizationDetails, Request Parameters). The bot reads it with botocore's paginator and no
MaxItems (bot/aws/identity.py read_email_index), so against IAM it makes one call per 100 users. The
latency proxy (benchmarks/latency_proxy.py) cuts moto's answer into IAM's pages; this times the read
three ways on the same users: moto as it is, paged without latency, and paged with LATENCY on each page.
"""

from __future__ import annotations

import time
from typing import Any

import boto3

from benchmarks.bench_identity import populate
from benchmarks.bench_latency import LATENCY, LatencyProxy, through
from benchmarks.harness import Servers
from bot.aws.identity import read_email_index

USERS = 5_000
PAGE = 100  # IAM's default MaxItems


def populated(srv: Servers, users: int = USERS) -> float:
    """A fresh AWS with `users` tagged IAM users (created once for every repeat): the seconds it took."""
    srv.reset_aws()
    return populate(users)


def read_once(proxy: LatencyProxy, *, users: int, page_size: int, delay: float) -> dict[str, float]:
    """One index read through the proxy: seconds and GetAccountAuthorizationDetails calls."""
    proxy.counts()
    proxy.set(delay=delay, page_size=page_size, throttle=0.0)
    try:
        with through(proxy):
            iam = boto3.client("iam")
            began = time.perf_counter()
            index = read_email_index(iam, "email")
            took = time.perf_counter() - began
    finally:
        proxy.set(delay=0.0, page_size=0)
    if len(index) < users:
        raise RuntimeError(f"the index has {len(index)} emails, fewer than the {users} users")
    calls = proxy.counts()
    return {"seconds": took, "calls": float(sum(n for op, n in calls.items() if op.startswith("GetAccountAuth")))}


def paging(proxy: LatencyProxy, users: int = USERS) -> dict[str, Any]:
    """One repeat: the read as moto answers it, paged as IAM does, and paged with latency on each page."""
    moto = read_once(proxy, users=users, page_size=0, delay=0.0)
    paged = read_once(proxy, users=users, page_size=PAGE, delay=0.0)
    slow = read_once(proxy, users=users, page_size=PAGE, delay=LATENCY)
    return {
        "moto_one_page_s": moto["seconds"],
        "moto_calls": moto["calls"],
        "paged_s": paged["seconds"],
        "paged_calls": paged["calls"],
        "paged_latency_s": slow["seconds"],
        "paged_latency_calls": slow["calls"],
    }
