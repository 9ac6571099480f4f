"""The servers the bot talks to, in a process of their own so their CPU is not the bot's: moto and the fake Slack.

Run as `python -m benchmarks.servers`: prints one JSON line with both URLs, serves until stdin closes.
"""

from __future__ import annotations

import json
import logging
import sys

from moto.server import ThreadedMotoServer

from benchmarks.harness import USERS
from bot.testing.fake_slack import start_fake_slack
from tests.support.catalogs import EMAILS


def main() -> None:
    """Start both servers, say where they are, and wait for the parent to go away."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    fake, _server = start_fake_slack()
    fake.emails = dict(EMAILS) | {f"U0S{i:03d}": f"bench{i:03d}@example.com" for i in range(1, USERS + 1)}
    # Keep no record of calls: a benchmark sends tens of thousands, and nobody reads them here.
    fake.record = lambda method, args: fake._answer(method, args)  # type: ignore[method-assign]
    print(json.dumps({"moto": f"http://{host}:{port}", "slack": fake.url}), flush=True)
    sys.stdin.read()
    moto.stop()


if __name__ == "__main__":
    main()
