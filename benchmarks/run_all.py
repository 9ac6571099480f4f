"""Run every benchmark, print each run as it finishes, and write benchmarks/results.json.

    .venv/bin/python -m benchmarks.run_all [--repeats 3] [--only NAME,...]
    (names: ack, burst, approve, sso, lag, catchup, workers, claim, pending, identity, rss, latency, paging)

Needs PostgreSQL on 127.0.0.1:5432 and a database of the benchmarks' own (they drop its tables):
`createdb -h 127.0.0.1 -U postgres accessbot_bench` (or set BENCH_DATABASE_URL). Takes about 45 minutes
on two cores with the defaults (latency and paging: a few minutes each). Not part of pytest: nothing here
is collected as a test.

Every benchmark's entry in results.json carries its own `run`: the machine (CPU model and cores), when it
started, its repeats and the git commit measured (with `dirty` when the work tree had changes). A partial
run replaces the entries it measured and leaves the others, with their own runs, as they were: compare
figures only within one entry, or between entries whose `run` names the same machine.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import bench_claim, bench_expiry, bench_identity, bench_rss, bench_slack, bench_sso
from benchmarks.harness import ROOT, Servers, machine, repeat, servers, source
from benchmarks.run_latency import latency, paging

BENCHMARKS = (
    "ack", "burst", "approve", "sso", "lag", "catchup", "workers", "claim", "pending", "identity", "rss", "latency",
    "paging",
)  # fmt: skip


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

    # A partial run (--only) replaces the entries it measured; the others keep their own `run`.
    results: dict[str, Any] = json.loads(args.out.read_text()) if args.out.is_file() else {}
    for stale in ("machine", "repeats", "started"):  # the old file-wide labels, which named only the latest run
        results.pop(stale, None)
    where, commit = machine(), source()
    print(f"machine: {where}, commit: {commit}", flush=True)
    with servers() as srv, tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        plan: dict[str, Callable[[Servers, Path, int], dict[str, Any]]] = {
            "ack": _ack,
            "burst": lambda s, w, n: repeat("burst", n, lambda: bench_slack.burst(s, w)),
            "approve": lambda s, w, n: repeat("approve", n, lambda: bench_slack.approve_to_grant(s, w)),
            "lag": lambda s, w, n: repeat("revoke lag", n, lambda: bench_expiry.revoke_lag(s, w)),
            "catchup": _catch_up,
            "workers": _workers,
            "claim": _claim,
            "pending": _pending,
            # BENCH_IDENTITY_USERS=300 BENCH_IDENTITY_REQUESTS=40 for a quick smoke run (default 5,000 and 200).
            "identity": lambda s, w, n: repeat("identity", n, lambda: bench_identity.from_environment()(s, w)),
            "sso": lambda s, w, n: repeat("sso", n, lambda: bench_sso.approve_to_active(s, w)),
            "rss": lambda s, w, n: repeat("rss", 1, lambda: bench_rss.serve_rss(s, w)),
            "latency": latency,
            "paging": paging,
        }
        for name in chosen:
            print(f"{name}:", flush=True)
            run = {"machine": where, "started": time.strftime("%FT%T%z"), "repeats": args.repeats, **commit}
            if name == "rss":
                run["repeats"] = 1
            results[name] = {"run": run, **plan[name](srv, work, args.repeats)}
            results[name]["run"]["finished"] = time.strftime("%FT%T%z")
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
    # BENCH_CATCHUP_GRANTS=150 for a quick smoke run; the figures in docs/ are for the default 1,000.
    grants = int(os.environ.get("BENCH_CATCHUP_GRANTS", bench_expiry.GRANTS))
    found: dict[str, Any] = {"grants": grants}
    for threads in (1, 4):
        label = f"sweep_threads={threads}"
        found[label] = repeat(
            label, repeats, lambda t=threads: bench_expiry.catch_up(srv, work, threads=t, grants=grants)
        )
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
    return _with_plans("claim query", repeats, bench_claim.claim_query)


def _pending(srv: Servers, work: Path, repeats: int) -> dict[str, Any]:
    bench_claim.fill()  # the same rows as "claim": filled once for both
    return _with_plans("pending", repeats, lambda: bench_claim.pending_query(srv, work))


def _with_plans(name: str, repeats: int, once: Callable[[], tuple[dict[str, float], dict[str, str]]]) -> dict[str, Any]:
    """Repeat a measurement that also returns query plans; print the last plans and whether each uses an index."""
    plans: dict[str, str] = {}

    def figures() -> dict[str, float]:
        measured, found = once()
        plans.update(found)
        return measured

    result = repeat(name, repeats, figures)
    result["plans"] = plans
    result["index_scans"] = {query: bench_claim.index_scan(plan) for query, plan in plans.items()}
    for query, plan in plans.items():
        print(f"{query}:\n{plan}", flush=True)
    print(bench_claim.verdicts(plans), flush=True)
    return result


if __name__ == "__main__":
    main()
