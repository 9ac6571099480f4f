"""Approve-by-on-call latency, PagerDuty's answers cached (warm) or not (cold).

    .venv/bin/python -m benchmarks.bench_oncall [--requests 40] [--repeats 3] [--pagerduty-ms 0,100]

The bot as `accessbot serve` runs it (HTTP plus scheduler, in this process, SQLite in a temporary
directory), moto and the fake Slack in a child process (benchmarks/servers.py), the fake PagerDuty
(bot/testing/fake_pagerduty.py) in this process on loopback. Each request is `/access request
payments-oncall 1h …` from a requester on call in schedule PBENCH1; the figure is from sending the
command until the request is approved in the database (the on-call check happens before the request is
written, so this is the check plus filing). `cold`: every PagerDuty answer forgotten before each request
(user search, schedule name, on-call now: 3 calls); `warm`: all answered from the 60 s cache. One
requester files them all (auto_approve_limit raised), so that `warm` is warm for every answer.
`--pagerduty-ms` adds that delay to each fake PagerDuty answer, standing in for the real API's round trip.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.harness import CATALOG, SECRET, USERS, Servers, percentile, servers, start_bot, summarize
from bot.runtime import Runtime
from bot.store import queries
from bot.store.db import session_scope
from bot.testing.fake_pagerduty import FakePagerDuty
from bot.testing.signing import SlackSender

ON_CALL = """
  payments-oncall:
    kind: iam_group
    group_name: deploy-admins
    approvers: [platform]
    auto_approve_limit: 1000
    auto_approve: {max_duration: 2h, on_call: {pagerduty: {schedules: [PBENCH1]}}}
"""


def _newest(runtime: Runtime, user: str) -> tuple[int, str]:
    with session_scope(runtime.workflow.engine) as session:
        rows = queries.requests_of(user, session=session, limit=1)
    return (rows[0].id or 0, rows[0].status) if rows else (0, "")


def once(srv: Servers, requests: int, delay_ms: float) -> dict[str, float]:
    """One run: `requests` cold, then `requests` warm; seconds from command to approved."""
    srv.reset_aws()
    with tempfile.TemporaryDirectory(prefix="accessbot-bench-oncall-") as scratch, FakePagerDuty() as pagerduty:
        work = Path(scratch)
        users = [f"U0S{i:03d}" for i in range(1, USERS + 1)]
        for i in range(1, USERS + 1):
            pagerduty.add_user(f"PB{i:03d}", f"bench{i:03d}@example.com")
        pagerduty.add_schedule("PBENCH1", "payments-primary", [f"PB{i:03d}" for i in range(1, USERS + 1)])
        for about in ("users", "PBENCH1"):
            pagerduty.hanging[about] = delay_ms / 1000
        catalog = work / "oncall.yaml"
        catalog.write_text(CATALOG + ON_CALL)
        runtime = start_bot(
            srv,
            work,
            url=f"sqlite:///{work / 'bench.db'}",
            accessbot_catalog=catalog,
            accessbot_pagerduty_token=pagerduty.token,
            accessbot_pagerduty_url=pagerduty.url,
        )
        try:
            assert runtime.http is not None
            sender = SlackSender(runtime.http.url, SECRET, srv.slack.removesuffix("/api/") + "/response/")
            checker: Any = getattr(runtime.workflow.ctx.on_call, "__self__", None)
            figures: dict[str, list[float]] = {"cold": [], "warm": []}
            for mode in ("cold", "warm"):
                for n in range(requests):
                    user = users[0]  # one requester: warm, every answer about them is cached
                    if mode == "cold":
                        checker.forget(names=True)
                    before, _ = _newest(runtime, user)
                    started = time.perf_counter()
                    answer = sender.command(user, f"request payments-oncall 1h bench {mode} {n}")
                    assert answer.status_code == 200, answer.text
                    while True:
                        newest, status = _newest(runtime, user)
                        if newest > before and status in ("approved", "active"):
                            break
                        if time.perf_counter() - started > 30:
                            raise RuntimeError(f"request by {user} not approved: {status}")
                        time.sleep(0.002)
                    figures[mode].append(time.perf_counter() - started)
        finally:
            runtime.stop()
    return {
        "cold_p50_ms": percentile(figures["cold"], 50) * 1000,
        "cold_p90_ms": percentile(figures["cold"], 90) * 1000,
        "warm_p50_ms": percentile(figures["warm"], 50) * 1000,
        "warm_p90_ms": percentile(figures["warm"], 90) * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--pagerduty-ms", default="0,100", help="comma-separated delays added to each PagerDuty answer")
    args = parser.parse_args()
    results: dict[str, Any] = {}
    with servers() as srv:
        for delay in [float(d) for d in args.pagerduty_ms.split(",") if d]:
            runs = []
            for i in range(args.repeats):
                run = once(srv, args.requests, delay)
                print(f"  pagerduty +{delay:.0f} ms, run {i + 1}/{args.repeats}: {run}", flush=True)
                runs.append(run)
            results[f"pagerduty_{delay:.0f}ms"] = {"runs": runs, "summary": summarize(runs)}
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
