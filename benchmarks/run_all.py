"""Run every benchmark, print each run as it finishes, and write benchmarks/results.json.

    .venv/bin/python -m benchmarks.run_all [--repeats 3] [--only ack,approve,lag,catchup,workers,claim,rss]

Needs PostgreSQL on 127.0.0.1:5432 and a database of the benchmarks' own (they drop its tables):
`createdb -h 127.0.0.1 -U postgres accessbot_bench` (or set BENCH_DATABASE_URL). Takes about 45 minutes
on two cores with the defaults. Not part of pytest: nothing here is collected as a test.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import bench_claim, bench_expiry, bench_rss, bench_slack
from benchmarks.harness import ROOT, Servers, machine, repeat, servers

BENCHMARKS = ("ack", "approve", "lag", "catchup", "workers", "claim", "rss")


def main() -> None:
    """Parse the options, run the chosen benchmarks, save the results."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each benchmark (median and spread)")
    parser.add_argument("--only", default=",".join(BENCHMARKS), help="comma-separated subset")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results.json")
    args = parser.parse_args()
    chosen = [name for name in args.only.split(",") if name]
    unknown = sorted(set(chosen) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)

    # A partial run (--only) updates the figures it measured and keeps the others.
    results: dict[str, Any] = json.loads(args.out.read_text()) if args.out.is_file() else {}
    results.update(machine=machine(), repeats=args.repeats, started=time.strftime("%FT%T%z"))
    print(f"machine: {results['machine']}", flush=True)
    with servers() as srv, tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        plan: dict[str, Callable[[Servers, Path, int], dict[str, Any]]] = {
            "ack": _ack,
            "approve": lambda s, w, n: repeat("approve", n, lambda: bench_slack.approve_to_grant(s, w)),
            "lag": lambda s, w, n: repeat("revoke lag", n, lambda: bench_expiry.revoke_lag(s, w)),
            "catchup": _catch_up,
            "workers": _workers,
            "claim": _claim,
            "rss": lambda s, w, n: repeat("rss", 1, lambda: bench_rss.serve_rss(s, w)),
        }
        for name in chosen:
            print(f"{name}:", flush=True)
            results[name] = plan[name](srv, work, args.repeats)
            args.out.write_text(json.dumps(results, indent=2, default=str))
    print(f"results written to {args.out}")


def _ack(srv: Servers, work: Path, repeats: int) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for command, text in (("help", "help"), ("request", "request deploy-admins 1h benchmark {n}")):
        for senders in (1, 10, 50):
            label = f"{command} x{senders}"
            found[label] = repeat(label, repeats, lambda t=text, n=senders: bench_slack.ack_latency(srv, work, n, t))
    return found


def _catch_up(srv: Servers, work: Path, repeats: int) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for threads in (1, 4):
        label = f"sweep_threads={threads}"
        found[label] = repeat(label, repeats, lambda t=threads: bench_expiry.catch_up(srv, work, threads=t))
    return found


def _workers(srv: Servers, work: Path, repeats: int) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for processes in (1, 2, 3):
        label = f"{processes} worker process(es)"
        found[label] = repeat(
            label, repeats, lambda p=processes: bench_expiry.catch_up_processes(srv, work, processes=p)
        )
    return found


def _claim(_srv: Servers, _work: Path, repeats: int) -> dict[str, Any]:
    bench_claim.fill()
    plans: list[str] = []

    def once() -> dict[str, float]:
        figures, plan = bench_claim.claim_query()
        plans.append(plan)
        return figures

    found = repeat("claim query", repeats, once)
    found["plan"] = plans[-1]
    print(plans[-1], flush=True)
    return found


if __name__ == "__main__":
    main()
