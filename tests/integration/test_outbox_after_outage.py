"""After a Slack outage the owed posts go out promptly (issue 24, point 4), on the real outbox and fake Slack.

The full 20 s outage is checked on a simulated clock in tests/unit/test_slack_backoff.py; here a shorter one
runs for real, with the production backoff base, so the whole path (pump, senders, per-method pause) is used.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta

from bot.testing.fake_slack import Call
from tests.conftest import Bot
from tests.integration.flows import file_request
from tests.integration.test_slack_outbox import approval_message, fast
from tests.support.fake_slack import FakeSlack

OUTAGE = 6.0


def test_an_approval_message_owed_through_503s_then_a_429_goes_out_within_10s_of_slack_answering(
    make_bot: object, slack: FakeSlack
) -> None:
    bot: Bot = make_bot(tuning=fast(slack_retry_base=timedelta(seconds=2)))  # type: ignore[operator]
    slack.outages["chat.postMessage"] = (503, None)
    started = time.monotonic()
    request_id = file_request(bot, "U0ALICE", "request deploy-admins 1h deploy fix")

    def recover() -> None:
        slack.outages["chat.postMessage"] = (429, 1)  # Slack is back, and asks for a second's pause first
        time.sleep(0.3)
        slack.outages.clear()

    threading.Timer(OUTAGE - (time.monotonic() - started), recover).start()
    message = slack.wait_for("chat.postMessage", approval_message(request_id), timeout=25)
    back = started + OUTAGE
    refused: list[Call] = [c for c in slack.find("chat.postMessage") if not c.ok]
    assert refused, "Slack refused posts during the outage"
    assert message.at - back < 10.0
    # Not hammered: two posts owed (the approval message and the DM), each tried every 1-8 s, not in a loop.
    assert len(refused) <= 2 * (OUTAGE / 1.0 + 2)
