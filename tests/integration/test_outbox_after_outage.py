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

# Short, for a test: whether the old backoff (2, 4, 8, 16 s ... with Retry-After as a floor) missed the bound
# depended on where its tries fell; the bound itself is checked exactly, for outages up to a minute, on a
# simulated clock in tests/unit/test_slack_backoff.py.
OUTAGE = 8.0


def test_an_approval_message_owed_through_503s_then_a_429_goes_out_within_10s_of_slack_answering(
    make_bot: object, slack: FakeSlack
) -> None:
    bot: Bot = make_bot(tuning=fast(slack_retry_base=timedelta(seconds=2)))  # type: ignore[operator]
    slack.outages["chat.postMessage"] = (503, None)
    started = time.monotonic()
    request_id = file_request(bot, "U0ALICE", "request deploy-admins 1h deploy fix")

    def recover() -> None:
        # Slack is back, and asks the first post it sees to wait a second (then takes the next one).
        slack.outages["chat.postMessage"] = (429, 1)
        slack.wait_for("chat.postMessage", lambda c: c.status == 429, timeout=20)
        slack.outages.clear()

    threading.Timer(OUTAGE - (time.monotonic() - started), recover).start()
    message = slack.wait_for("chat.postMessage", approval_message(request_id), timeout=25)
    back = started + OUTAGE
    refused: list[Call] = [c for c in slack.find("chat.postMessage") if not c.ok]
    assert refused, "Slack refused posts during the outage"
    # 10 s is the bound (exact on a simulated clock in the unit test); the margin is for a loaded machine.
    assert message.at - back < 11.5
    # Not hammered: two posts owed (the approval message and the DM), each tried every 1-8 s, not in a loop.
    assert len(refused) <= 2 * (OUTAGE / 1.0 + 2)
    assert any(c.status == 429 for c in refused), "Slack's 429 was met and waited out"


def test_a_rate_limit_on_one_method_does_not_hold_up_the_others(bot: Bot, slack: FakeSlack) -> None:
    # Slack's rate limits are per method: a 429 on chat.postMessage says nothing about chat.update.
    first = file_request(bot, "U0ALICE", "request deploy-admins 1h deploy fix")
    slack.wait_for("chat.postMessage", approval_message(first))
    slack.outages["chat.postMessage"] = (429, 4)
    file_request(bot, "U0CAROL", "request deploy-admins 1h another fix")  # its approval message is refused
    limited = slack.wait_for("chat.postMessage", lambda c: not c.ok)
    assert bot.ask("U0ALICE", f"cancel #{first}").startswith("Request #")  # an update of the first message
    update = slack.wait_for("chat.update", lambda c: f"#{first}" in c.text(), timeout=10)
    assert update.at - limited.at < 3.0, "chat.update waited out chat.postMessage's Retry-After"
    slack.outages.clear()
