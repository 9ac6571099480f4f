"""The demo's on-call chapter: Alice is on call in PagerDuty (a fake one on loopback) and is approved at once;
then PagerDuty cannot read the schedule, and the next request goes to people, saying why."""

from __future__ import annotations

import time
from typing import Any, Protocol

from bot.demo.standin import Person
from bot.store import queries
from bot.store.db import session_scope
from bot.testing.fake_pagerduty import FakePagerDuty


class Story(Protocol):
    """What this chapter uses of bot.demo.story.Story (which imports this module, so not the class itself)."""

    runtime: Any
    out: Any

    def step(self, title: str) -> None: ...
    def say(self, who: Person, text: str) -> None: ...
    def command(self, who: Person, text: str) -> Any: ...
    def settle(self) -> None: ...
    def wait_status(self, request_id: int, status: str, *, timeout: float = 15.0) -> None: ...
    def show_aws(self, *kinds: str, expect: bool | None = None) -> None: ...


SCHEDULE = "PDEMO01"
ON_CALL_CATALOG = f"""
  payments-oncall:
    kind: iam_group
    group_name: deploy-admins
    description: Deploy payments fixes, for whoever is on call
    approvers: [platform]
    warning: "Production payments: customer card data"
    auto_approve: {{max_duration: 1h, on_call: {{pagerduty: {{schedules: [{SCHEDULE}]}}}}}}
"""


def fake_pagerduty(emails: dict[str, str], on_call: str) -> FakePagerDuty:
    """A fake PagerDuty with the demo's people, and `on_call` (a user ID) on call in payments-primary."""
    fake = FakePagerDuty(token="pd-demo-token")
    for user_id, email in emails.items():
        fake.add_user("P" + user_id[2:], email)
    fake.add_schedule(SCHEDULE, "payments-primary", ["P" + on_call[2:]])
    return fake


def tell_on_call(story: Story, pagerduty: FakePagerDuty, grant: str, alice: Person, failed: type[Exception]) -> None:
    """The chapter: approved at once while on call; sent to people when the schedule cannot be read."""
    story.step("Alice is on call in PagerDuty (schedule payments-primary): she asks for payments-oncall")
    before = _latest(story, alice.user_id)
    story.say(alice, f"request payments-oncall {grant} hotfix for the failing refunds")
    with_on_call = _newer(story, alice.user_id, before, failed)
    story.wait_status(with_on_call, "active")
    story.settle()
    story.show_aws("iam_group", expect=True)

    story.step("PagerDuty fails to read the schedule: Alice's next request goes to the approvers, saying why")
    pagerduty.failing.add(SCHEDULE)
    pagerduty_cache_clear(story)
    story.command(alice, f"request payments-oncall {grant} follow-up on the refunds")
    story.out(f"  (waiting for the on-call grant #{with_on_call} to end)")
    story.wait_status(with_on_call, "expired", timeout=30)
    story.settle()
    story.show_aws("iam_group", expect=False)


def pagerduty_cache_clear(story: Story) -> None:
    """Forget PagerDuty's cached answers, as a minute passing would (the demo does not wait a minute)."""
    clear = getattr(story.runtime.workflow.ctx.on_call, "__self__", None)
    if clear is not None:
        clear.forget()


def _latest(story: Story, user: str) -> int:
    with session_scope(story.runtime.workflow.engine) as session:
        newest = queries.requests_of(user, session=session, limit=1)
    return newest[0].id or 0 if newest else 0


def _newer(story: Story, user: str, than: int, failed: type[Exception], timeout: float = 10.0) -> int:
    """The user's request filed after request `than` (filing answers through response_url, a moment later)."""
    deadline = time.monotonic() + timeout
    while (found := _latest(story, user)) <= than:
        if time.monotonic() > deadline:
            raise failed("the on-call request was not stored")
        time.sleep(0.05)
    return found
