"""Concurrent senders of signed `/access` commands, in a process of their own (so their CPU is not the bot's).

`python -m benchmarks.load URL SECRET SENDERS PER_SENDER TEXT` prints a JSON list of latencies in
seconds, one per command: from sending the request to having Slack's whole HTTP answer (the ack).
Sender n is Slack user U0S<n>; `{n}` in TEXT is replaced by the sender's number.

`python -m benchmarks.load burst URL SECRET PEOPLE TEXT OTHER_TEXT`: 2 x PEOPLE senders released at one
moment, each sending one command (PEOPLE send TEXT, PEOPLE send OTHER_TEXT); prints the wall-clock
moment of the release and each ack's latency by text.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time

from bot.testing.signing import SlackSender

# Where commands' response_url points: the fake Slack's (set by the benchmark), so answers sent there land.
RESPONSE_BASE = os.environ.get("BENCH_RESPONSE_BASE", "http://127.0.0.1:9/response/")


def burst() -> None:
    """Everyone at once, one command each: what 40 people typing in the same second look like to the bot."""
    url, secret, people, texts = sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5:7]
    acks: dict[str, list[float]] = {text: [] for text in texts}
    failures: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(2 * people + 1)
    senders = [SlackSender(url, secret, RESPONSE_BASE) for _ in range(2 * people)]

    def send(index: int) -> None:
        n, text = index % people + 1, texts[index // people]
        command = text.replace("{n}", str(n))
        start.wait()
        began = time.perf_counter()
        answer = senders[index].command(f"U0S{n:03d}", command)
        took = time.perf_counter() - began
        with lock:
            acks[text].append(took)
            if answer.status_code != 200 or "went wrong" in answer.text:
                failures.append(f"{answer.status_code} {answer.text[:200]}")

    threads = [threading.Thread(target=send, args=(i,)) for i in range(2 * people)]
    for thread in threads:
        thread.start()
    start.wait()
    released = time.time()
    for thread in threads:
        thread.join()
    print(json.dumps({"released": released, "acks": acks, "failures": failures}))


def main() -> None:
    """Run the senders; each sends its commands one after another (a closed loop)."""
    if sys.argv[1] == "burst":
        burst()
        return
    url, secret, senders, per_sender, text = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(senders)

    def send(n: int) -> None:
        sender = SlackSender(url, secret, RESPONSE_BASE)
        user = f"U0S{n:03d}"
        start.wait()
        for _ in range(per_sender):
            began = time.perf_counter()
            answer = sender.command(user, text.replace("{n}", str(n)))
            took = time.perf_counter() - began
            with lock:
                latencies.append(took)
                if answer.status_code != 200 or "went wrong" in answer.text:
                    failures.append(f"{answer.status_code} {answer.text[:200]}")

    threads = [threading.Thread(target=send, args=(n,)) for n in range(1, senders + 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(json.dumps({"latencies": latencies, "failures": failures}))


if __name__ == "__main__":
    main()
