"""run_all's `latency` and `paging` entries: repeats of bench_latency and bench_paging, with their call counts."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from benchmarks import bench_latency, bench_paging
from benchmarks.harness import Servers, repeat
from bot.workflow import Tuning


def latency(srv: Servers, work: Path, repeats: int) -> dict[str, Any]:
    """The catch-up beside the raw loop, 50 ms on every call: plain, throttled, with 8 sweep threads, one batch."""
    found: dict[str, Any] = {
        "grants": bench_latency.GRANTS,
        "latency_s": bench_latency.LATENCY,
        "raw_threads": bench_latency.RAW_THREADS,
    }
    with bench_latency.latency_proxy(srv) as proxy:
        variants: dict[str, dict[str, Any]] = {
            "bot defaults (4 sweep threads, batch 20)": {},
            "10% of calls throttled": {"throttle": 0.10},
            "sweep_threads=8 (a Tuning the bot allows; not its default)": {
                "tuning": Tuning(lease=timedelta(seconds=60), sweep_threads=8)
            },
            # One claim for all 160: no batch boundary where the threads wait for the batch's slowest end.
            "sweep_threads=8, batch=160 (not its default)": {
                "tuning": Tuning(lease=timedelta(seconds=60), sweep_threads=8, batch=160)
            },
        }
        for label, options in variants.items():
            last: dict[str, Any] = {}

            def once(options: dict[str, Any] = options, last: dict[str, Any] = last) -> dict[str, float]:
                run = bench_latency.side_by_side(srv, work, proxy, **options)
                last.update(bot=run["bot"]["calls"], raw=run["raw"]["calls"])
                return figures(run)

            found[label] = repeat(label, repeats, once)
            found[label]["calls_last_run"] = last
        found["calls per end (20 ends of one kind, bot defaults, one run)"] = bench_latency.calls_per_end(
            srv, work, proxy
        )
    return found


def figures(run: dict[str, Any]) -> dict[str, float]:
    """One side-by-side run as the flat numbers `repeat` summarises."""
    bot, raw = run["bot"], run["raw"]
    return {
        "bot_per_second": bot["per_second"],
        "raw_per_second": raw["per_second"],
        "ratio": run["ratio"],
        "bot_cpu_ms_per_end": bot["bot_cpu_ms_per_end"],
        "raw_client_cpu_ms_per_end": raw["client_cpu_ms_per_end"],
        "bot_until_first_call_s": bot["until_first_call_s"],
        "bot_aws_in_flight": bot["aws_in_flight"],
        "bot_aws_ms_per_end": bot["aws_ms_per_end"],
        "bot_after_last_answer_s": bot["after_last_answer_s"],
        "bot_between_ends_p50_ms": bot["between_ends_p50_ms"],
        "bot_between_ends_p90_ms": bot["between_ends_p90_ms"],
        "bot_calls": float(sum(bot["calls"].values())),
        "raw_calls": float(sum(raw["calls"].values())),
        "bot_throttled": float(sum(n for op, n in bot["calls"].items() if op.endswith("throttled"))),
        "raw_throttled": float(sum(n for op, n in raw["calls"].items() if op.endswith("throttled"))),
        "bot_ends_failed_once": float(bot["ends_failed_once"]),
        "bot_not_ended": float(bot["not_ended"]),
        "bot_left_in_aws": float(bot["left_in_aws"]),
        "raw_left_in_aws": float(raw["left_in_aws"]),
    }


def paging(srv: Servers, _work: Path, repeats: int) -> dict[str, Any]:
    """The 5,000-user email index read as moto answers it and as IAM pages it (100 a page), with and without latency."""
    users = bench_paging.USERS
    created = bench_paging.populated(srv, users)
    with bench_latency.latency_proxy(srv) as proxy:
        found = repeat("paging", repeats, lambda: bench_paging.paging(proxy, users))
    return {"users": users, "page_size": bench_paging.PAGE, "create_users_s": created, **found}
