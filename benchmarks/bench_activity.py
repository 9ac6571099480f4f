"""The cost of one activity report for a grant with 10,000 calls: 200 pages of LookupEvents.

Runs the real Lookup (boto3 to the fake CloudTrail on loopback, JSON 1.1 protocol), the summary and the
rendering, with the shared pacer on a SQLite database. Two figures per run:

- the bot's own cost: the pacer's interval set to 0 and the fake's rate limit off, so the wall time is
  boto3, HTTP on loopback, JSON, the pacer's 200 database round trips, attribution, summary and rendering;
- CloudTrail's pace: 200 pages at the pacer's interval (0.7 s) is the floor a real report of this size takes
  per Region, computed rather than waited for (AWS allows 2 calls a second per account and Region).

    .venv/bin/python -m benchmarks.bench_activity --repeats 5
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.activity.attribution import Grant
from bot.activity.lookup import Window
from bot.activity.pacer import INTERVAL
from bot.activity.render import report_text
from bot.activity.summary import summarize
from bot.store import schema
from bot.store.db import make_engine
from bot.testing.fake_cloudtrail import event, iam_user, running
from tests.support.cloudtrail import ACCOUNT, lookup_on

CALLS = 10_000
T0 = datetime(2026, 12, 8, 1, 0, tzinfo=UTC)


def once(fake_url_events: object, engine: object, fake: object) -> dict[str, float]:
    """One report: read, summed up, rendered; wall and CPU seconds."""
    grant = Grant("iam_group", "alice", f"arn:aws:iam::{ACCOUNT}:user/alice", "deploy-admins", None)
    lookup = lookup_on(fake, engine, interval=0.0, max_pages=1000)  # type: ignore[arg-type]
    wall, cpu = time.perf_counter(), time.process_time()
    calls, reading, coverage = lookup.read(grant, Window(T0, T0 + timedelta(hours=8)))
    body = summarize(calls, reading, coverage)
    text = report_text(1, body, asked=timedelta(hours=8), started=T0, ended=T0 + timedelta(hours=8))
    took, used = time.perf_counter() - wall, time.process_time() - cpu
    assert body["calls"] == CALLS and reading.pages == CALLS // 50 and text
    return {"wall_s": took, "cpu_s": used, "pages": float(reading.pages)}


def main() -> None:
    """Seed the fake, run the report `--repeats` times, print the median and spread as JSON."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    alice = iam_user("alice")
    with tempfile.TemporaryDirectory() as scratch, running() as fake:
        fake.rate_limit = False
        names = ("ListBuckets", "GetObjectAcl", "DescribeInstances", "PutObjectAcl", "DeleteStack")
        fake.add(
            "us-east-1",
            *[
                event(names[i % 5], "s3.amazonaws.com", T0 + timedelta(seconds=2 * i), alice, read_only=i % 5 < 3)
                for i in range(CALLS)
            ],
        )
        engine = make_engine(f"sqlite:///{Path(scratch) / 'bench.db'}")
        schema.upgrade(engine)
        runs = [once(None, engine, fake) for _ in range(args.repeats)]
        engine.dispose()
    walls, cpus = [r["wall_s"] for r in runs], [r["cpu_s"] for r in runs]
    print(
        json.dumps(
            {
                "calls": CALLS,
                "pages": CALLS // 50,
                "wall_s": {"median": statistics.median(walls), "min": min(walls), "max": max(walls)},
                "cpu_s": {"median": statistics.median(cpus), "min": min(cpus), "max": max(cpus)},
                "paced_floor_s_per_region": CALLS // 50 * INTERVAL.total_seconds(),
                "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "runs": runs,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
