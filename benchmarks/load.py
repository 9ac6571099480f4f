"""Concurrent senders of signed `/access` commands, in a process of their own (so their CPU is not the bot's).

`python -m benchmarks.load URL SECRET SENDERS PER_SENDER TEXT` prints a JSON list of latencies in
seconds, one per command: from sending the request to having Slack's whole HTTP answer (the ack).
Sender n is Slack user U0S<n>; `{n}` in TEXT is replaced by the sender's number.
"""

from __future__ import annotations

import json
import sys
import threading
import time

from bot.testing.signing import SlackSender


def main() -> None:
    """Run the senders; each sends its commands one after another (a closed loop)."""
    url, secret, senders, per_sender, text = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(senders)

    def send(n: int) -> None:
        sender = SlackSender(url, secret)
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
