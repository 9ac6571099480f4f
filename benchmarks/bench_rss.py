"""Memory of a real `accessbot serve` process: idle, and after it has filed 10,000 requests."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

from benchmarks.harness import DATABASE_URL, ROOT, SECRET, TOKEN, USERS, Servers, catalog_file, fresh_database

REQUESTS = 10_000


def rss_mb(pid: int) -> float:
    """Resident set size of a process, in MiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"VmRSS:\s+(\d+) kB", status)
    assert found is not None
    return int(found.group(1)) / 1024


def serve_rss(srv: Servers, workdir: Path, requests: int = REQUESTS) -> dict[str, float]:
    """RSS (MiB) of `python -m bot serve` after start-up, and after `requests` `/access request` commands."""
    fresh_database()
    srv.reset_aws()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "ACCESSBOT_", "DATABASE_"))}
    env.update(
        SLACK_BOT_TOKEN=TOKEN,
        SLACK_SIGNING_SECRET=SECRET,
        SLACK_API_URL=srv.slack,
        DATABASE_URL=DATABASE_URL,
        ACCESSBOT_CATALOG=str(catalog_file(workdir)),
        PORT="0",
        LOG_LEVEL="WARNING",
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "serve"], env={**env, "LOG_LEVEL": "INFO"}, cwd=workdir,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stderr is not None
        port = None
        for line in process.stderr:
            found = re.search(r"listening on 0\.0\.0\.0:(\d+)", line)
            if found:
                port = int(found.group(1))
                break
        assert port is not None, "serve never said where it listens"
        threading.Thread(target=process.stderr.read, daemon=True).start()  # keep draining its log
        time.sleep(5)
        idle = rss_mb(process.pid)
        url = f"http://127.0.0.1:{port}"
        per_sender = requests // USERS
        result = subprocess.run(
            [sys.executable, "-m", "benchmarks.load", url, SECRET, str(USERS), str(per_sender),
             "request deploy-admins 1h memory benchmark"],
            cwd=ROOT, capture_output=True, text=True, check=True,
        )  # fmt: skip
        answer = json.loads(result.stdout)
        if answer["failures"]:
            raise RuntimeError(f"{len(answer['failures'])} commands failed, e.g. {answer['failures'][0]}")
        time.sleep(10)  # the approval posts still queued in the background
        loaded = rss_mb(process.pid)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
    return {"idle_mib": idle, "after_mib": loaded}
