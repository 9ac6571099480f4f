"""What every benchmark shares: the servers, a fresh database, the bot in-process, and statistics.

Everything runs on loopback: moto and the fake Slack in a child process (benchmarks/servers.py), the
bot in this process through Runtime exactly as tests/conftest.py's make_bot builds it, PostgreSQL
on 127.0.0.1 (a database of the benchmarks' own, never the tests' one).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import text
from sqlmodel import SQLModel

from bot.config import Settings
from bot.runtime import Runtime
from bot.store import schema
from bot.store.db import make_engine
from bot.workflow import Tuning

ROOT = Path(__file__).resolve().parent.parent
DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/accessbot_bench")
SECRET = "bench-signing-secret"
TOKEN = "xoxb-bench-token"
USERS = 50  # distinct requesters, U0S001.. -> IAM users bench001..

CATALOG = """
defaults:
  approval_channel: C0APPROVALS
  min_duration: 1s
  default_duration: 1h
  max_duration: 8h
  warn_before: 1s
  rate_limit: {requests: 10000, per: 1h}
  max_open_requests: 1000
identity:
  strategy: static
  static:
STATIC
approver_groups:
  platform: [U0BOB, U0CAROL]
resources:
  deploy-admins:
    kind: iam_group
    group_name: deploy-admins
    approvers: [platform]
  prod-readonly:
    kind: iam_role
    role_arn: arn:aws:iam::123456789012:role/prod-readonly
    approvers: [platform]
  payments-key:
    kind: kms_key
    key_id: alias/payments
    operations: [Decrypt, GenerateDataKey]
    approvers: [platform]
""".replace("STATIC", "\n".join(f"    U0S{i:03d}: bench{i:03d}" for i in range(1, USERS + 1)))


@dataclass
class Servers:
    """moto and the fake Slack, running in a child process."""

    moto: str
    slack: str
    process: subprocess.Popen[str]

    def reset_aws(self) -> None:
        """Forget every AWS resource, then create the world the catalog names."""
        import boto3

        requests.post(f"{self.moto}/moto-api/reset", timeout=30).raise_for_status()
        iam, kms = boto3.client("iam"), boto3.client("kms")
        iam.create_group(GroupName="deploy-admins")
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"}, "Action": "sts:AssumeRole"}
            ],
        }
        iam.create_role(RoleName="prod-readonly", AssumeRolePolicyDocument=json.dumps(trust))
        key = kms.create_key(Description="payments")["KeyMetadata"]
        kms.create_alias(AliasName="alias/payments", TargetKeyId=key["KeyId"])
        for i in range(1, USERS + 1):
            # Tagged with the email the fake Slack gives U0S<i> (benchmarks/servers.py), for email_tag identity.
            iam.create_user(UserName=f"bench{i:03d}", Tags=[{"Key": "email", "Value": f"bench{i:03d}@example.com"}])


@contextmanager
def servers() -> Iterator[Servers]:
    """Start the servers' process and point boto3 (through the environment) at its moto."""
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.servers"], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None and process.stdin is not None
    urls = json.loads(process.stdout.readline())
    os.environ.update(
        AWS_ENDPOINT_URL=urls["moto"],
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_REGION="us-east-1",
    )
    os.environ.pop("AWS_PROFILE", None)
    try:
        yield Servers(moto=urls["moto"], slack=urls["slack"], process=process)
    finally:
        process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def fresh_database(url: str = DATABASE_URL) -> None:
    """Drop every table and migrate from nothing."""
    engine = make_engine(url)
    with engine.begin() as connection:
        SQLModel.metadata.drop_all(connection)
        connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
    schema.upgrade(engine)
    engine.dispose()


def catalog_file(workdir: Path, *, identity: str = "static") -> Path:
    """Write the benchmark catalog; `identity="email_tag"` finds people by their IAM users' email tags instead."""
    path = workdir / "catalog.yaml"
    text = CATALOG
    if identity == "email_tag":
        text = (
            CATALOG[: CATALOG.index("identity:")]
            + "identity:\n  strategy: email_tag\n"
            + CATALOG[CATALOG.index("approver_groups:") :]
        )
    path.write_text(text)
    return path


def start_bot(
    srv: Servers,
    workdir: Path,
    *,
    tuning: Tuning | None = None,
    url: str = DATABASE_URL,
    before_start: Callable[[Runtime], object] = lambda _r: None,
    identity: str = "static",
    **overrides: Any,
) -> Runtime:
    """The bot as `accessbot serve` runs it (HTTP plus scheduler), in this process, on an OS-chosen port."""
    values: dict[str, Any] = {
        "slack_bot_token": TOKEN,
        "slack_signing_secret": SECRET,
        "slack_api_url": srv.slack,
        "database_url": url,
        "accessbot_catalog": catalog_file(workdir, identity=identity),
        "accessbot_reconcile_seconds": 0,
        "port": 0,
    }
    values.update(overrides)
    runtime = Runtime.build(Settings(**values), tuning=tuning or Tuning(lease=timedelta(seconds=60)))
    before_start(runtime)
    runtime.start(host="127.0.0.1", port=0)
    return runtime


# -- statistics ----------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), nearest-rank on the sorted values."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def summarize(runs: Sequence[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Per metric over repeated runs: median, and the spread as min and max."""
    keys = list(runs[0]) if runs else []
    return {
        key: {
            "median": statistics.median(run[key] for run in runs),
            "min": min(run[key] for run in runs),
            "max": max(run[key] for run in runs),
        }
        for key in keys
    }


def repeat(name: str, times: int, once: Callable[[], dict[str, float]]) -> dict[str, Any]:
    """Run a benchmark `times` times; print and return each run and the summary."""
    runs = []
    for i in range(times):
        started = time.monotonic()
        result = once()
        runs.append(result)
        shown = ", ".join(f"{k}={v:.4g}" for k, v in result.items())
        print(f"  {name} run {i + 1}/{times} ({time.monotonic() - started:.0f}s): {shown}", flush=True)
    return {"runs": runs, "summary": summarize(runs)}


def machine() -> dict[str, str]:
    """What the figures were measured on: the CPU model and cores (the VMs differ), Python, PostgreSQL, OS."""
    lines = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in lines if "model name" in line), platform.processor())
    engine = make_engine(DATABASE_URL)
    with engine.connect() as connection:
        version = str(connection.execute(text("SHOW server_version")).scalar())
    engine.dispose()
    return {
        "cpus": str(os.cpu_count()),
        "cpu": cpu,
        "python": platform.python_version(),
        "postgresql": version,
        "os": platform.platform(),
    }


def source() -> dict[str, Any]:
    """The git commit measured, and whether the work tree differed from it."""
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    status = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True).stdout
    return {"commit": commit, "dirty": bool(status.strip())}
