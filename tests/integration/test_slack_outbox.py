"""Notifications are never lost: every post the bot owes goes through the durable outbox.

Slack answering 503 or 429, hanging, or the bot stopping or crashing before a post went out: the post waits
in the database and is sent later, in order, by this process or the next; a request whose approval message
is not out yet says so in `/access list` and App Home; no grant or revoke ever waits for Slack.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlmodel import select

from bot.clock import utcnow
from bot.config import Settings
from bot.runtime import Runtime
from bot.slack.messages import ACTION_APPROVE
from bot.store.db import session_scope
from bot.store.models import SlackPost
from bot.testing.fake_slack import Call
from bot.workflow import Tuning
from tests.conftest import TEST_TUNING, Bot, wait_until
from tests.integration.faults import dying_after_commit
from tests.integration.flows import approve, file_request
from tests.support.aws import World, members
from tests.support.fake_slack import FakeSlack
from tests.support.operator import operator_for

NOT_POSTED = "approval message not posted yet"


def fast(**changes: Any) -> Tuning:
    """The test bot's timings, with some changed."""
    return replace(TEST_TUNING, **changes)


def approval_message(request_id: int) -> Callable[[Call], bool]:
    return lambda c: (
        c.ok and c.channel == "C0APPROVALS" and f"#{request_id}" in c.text() and not c.args.get("thread_ts")
    )


def refused_about(request_id: int) -> Callable[[Call], bool]:
    return lambda c: not c.ok and f"#{request_id}" in c.text()


def refused(method: str, slack: FakeSlack, after: int = 0) -> Call:
    """The first call of `method` Slack refused (waits for it)."""
    return slack.wait_for(method, lambda c: not c.ok, after=after)


def posts(bot: Bot) -> list[SlackPost]:
    with session_scope(bot.runtime.workflow.engine) as session:
        return list(session.exec(select(SlackPost).order_by(SlackPost.id)).all())  # type: ignore[arg-type]


def home_of(bot: Bot, slack: FakeSlack, user: str) -> str:
    mark = slack.mark()
    assert bot.sender.event({"type": "app_home_opened", "user": user, "tab": "home"}).status_code == 200
    return json.dumps(slack.wait_for("views.publish", lambda c: c.args.get("user_id") == user, after=mark).args)


def test_an_approval_message_slack_refused_is_posted_when_slack_is_back_and_its_buttons_work(
    bot: Bot, slack: FakeSlack, world: World
) -> None:
    slack.outages["chat.postMessage"] = (503, None)
    request_id = file_request(bot, "U0ALICE", "request deploy-admins 1h deploy fix")
    refused("chat.postMessage", slack)

    # Nobody was told yet, and the request says so where its requester and its approvers look.
    assert bot.status(request_id) == "pending"
    assert NOT_POSTED in bot.ask("U0ALICE", "list")
    assert NOT_POSTED in home_of(bot, slack, "U0ALICE")
    assert NOT_POSTED in home_of(bot, slack, "U0BOB")
    time.sleep(0.5)  # a few retries, all refused: still owed, in order, nothing given up
    owed = posts(bot)
    assert [p.request_id for p in owed] == [request_id, request_id]  # the approval message, then the DM
    assert owed[0].render == "approval" and owed[0].attempts >= 1 and owed[0].given_up_at is None

    slack.outages.clear()
    message = slack.wait_for("chat.postMessage", approval_message(request_id))
    assert [b["text"]["text"] for b in message.buttons()] == ["Approve", "Deny"]
    wait_until(lambda: NOT_POSTED not in bot.ask("U0ALICE", "list"))

    # The late message's button works like any other.
    approve_button = message.button("Approve")
    assert approve_button is not None
    assert bot.sender.click("U0BOB", ACTION_APPROVE, str(request_id)).status_code == 200
    bot.wait_status(request_id, "active")
    assert "alice" in members(world.iam, "deploy-admins")
    slack.wait_for("chat.update", lambda c: c.ts == message.ts and "Approved by <@U0BOB>" in c.text())

    # The requester heard every step, in the order they happened.
    wait_until(lambda: any("You now have" in t for t in slack.dms_to("U0ALICE")))
    told = [t for t in slack.dms_to("U0ALICE")]
    steps = [
        next(i for i, t in enumerate(told) if phrase in t)
        for phrase in ("waiting for approval", "approved by", "You now have")
    ]
    assert steps == sorted(steps), told
    wait_until(lambda: posts(bot) == [], timeout=5)  # what Slack took is forgotten


def test_a_rate_limited_post_waits_the_retry_after_slack_asked_for(bot: Bot, slack: FakeSlack) -> None:
    slack.outages["chat.postMessage"] = (429, 2)
    request_id = file_request(bot, "U0ALICE", "request deploy-admins 1h deploy fix")
    limited = refused("chat.postMessage", slack)
    slack.outages.clear()

    message = slack.wait_for("chat.postMessage", approval_message(request_id), timeout=10)
    later = [c for c in slack.find("chat.postMessage") if c.at > limited.at]
    assert later and min(c.at for c in later) - limited.at >= 1.9, "nothing is posted before Retry-After passed"
    assert message.at - limited.at < 5


@pytest.mark.both_databases
def test_posts_owed_when_the_bot_stopped_are_sent_by_the_next_process(
    make_bot: Callable[..., Bot], slack: FakeSlack, world: World
) -> None:
    first = make_bot()
    slack.outages["chat.postMessage"] = (503, None)
    request_id = file_request(first, "U0ALICE", "request deploy-admins 1h deploy fix")
    refused("chat.postMessage", slack)
    first.runtime.stop()
    assert [p.request_id for p in posts(first)] == [request_id, request_id]

    slack.outages.clear()
    second = make_bot()
    slack.wait_for("chat.postMessage", approval_message(request_id))
    slack.wait_for("chat.postMessage", lambda c: c.ok and c.channel == "U0ALICE" and "waiting for approval" in c.text())
    approve(second, request_id)
    second.wait_status(request_id, "active")
    assert "alice" in members(world.iam, "deploy-admins")


def test_a_post_written_with_the_request_survives_a_crash_before_it_was_sent(
    make_settings: Callable[..., Settings], make_bot: Callable[..., Bot], slack: FakeSlack, world: World
) -> None:
    # A process files a request and dies at the commit, before anything was sent (it never runs its pump).
    crashed = Runtime.build(make_settings(), http=False, scheduler=False, tuning=fast(slack_lease=timedelta(seconds=1)))
    crashed.outbox._dispatch = lambda *_a, **_k: None  # type: ignore[method-assign]
    request_id = crashed.workflow.submit(
        requester="U0ALICE", resource="deploy-admins", duration="1h", reason="deploy fix"
    ).request.id
    with session_scope(crashed.workflow.engine) as session:
        owed = [p.request_id for p in session.exec(select(SlackPost).order_by(SlackPost.id))]  # type: ignore[arg-type]
    crashed.workflow.engine.dispose()
    assert owed == [request_id, request_id]  # the approval message and the DM, committed with the request
    assert not slack.find("chat.postMessage")
    survivor = make_bot()  # another replica, or the restarted process: it takes the posts over after the lease

    slack.wait_for("chat.postMessage", approval_message(request_id or 0), timeout=10)
    slack.wait_for("chat.postMessage", lambda c: c.ok and c.channel == "U0ALICE" and "waiting for approval" in c.text())
    approve(survivor, request_id or 0)
    survivor.wait_status(request_id or 0, "active")
    assert "alice" in members(world.iam, "deploy-admins")


def test_slack_hanging_or_down_never_holds_up_a_grant_or_a_revoke(
    make_bot: Callable[..., Bot], slack: FakeSlack, world: World
) -> None:
    bot = make_bot(accessbot_sweep_seconds=30.0)  # on time only through the expiry's own wake-up
    request_id = file_request(bot, "U0ALICE", "request deploy-admins 3s deploy fix")
    approve(bot, request_id)  # the approval message is out; from now on Slack takes nothing
    with slack.holding("chat.postMessage"), slack.holding("chat.update"):
        active = bot.wait_status(request_id, "active", timeout=5)
        assert "alice" in members(world.iam, "deploy-admins")
        slack.outages["chat.postMessage"] = slack.outages["chat.update"] = (503, None)
        ended = bot.wait_status(request_id, "expired", timeout=8)
        assert "alice" not in members(world.iam, "deploy-admins")
        assert ended.ended_at is not None and active.expires_at is not None
        assert (ended.ended_at - active.expires_at).total_seconds() < 5, "revoked on time while Slack hung"
    slack.outages.clear()
    wait_until(lambda: any("has ended" in t for t in slack.dms_to("U0ALICE")), timeout=15)


def test_a_post_that_keeps_failing_is_given_up_at_the_bound_with_an_error_and_a_metric(
    make_bot: Callable[..., Bot], slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    bot = make_bot(tuning=fast(slack_give_up=timedelta(seconds=1)))
    slack.outages["chat.postMessage"] = (503, None)
    with caplog.at_level(logging.ERROR, logger="bot.slack.outbox"):
        request_id = file_request(bot, "U0ALICE", "request deploy-admins 1h deploy fix")
        wait_until(lambda: len([p for p in posts(bot) if p.given_up_at is not None]) == 2, timeout=10)
    assert any("given up" in r.getMessage() and getattr(r, "request_id", None) == request_id for r in caplog.records)
    metrics = requests.get(bot.url + "/metrics", timeout=5).text
    assert 'accessbot_slack_posts_given_up_total{method="chat_postMessage"} 2.0' in metrics
    assert "accessbot_slack_outbox_owed 0.0" in metrics  # given up: no longer owed
    # Still visible to people: the request waits with nobody told and no retry coming, and says so.
    given_up = "the approval message could not be posted (Slack: service_unavailable)"
    listed = bot.ask("U0ALICE", "list")
    assert given_up in listed and "accessbot outbox retry" in listed and NOT_POSTED not in listed, listed
    assert given_up in bot.ask("U0BOB", "pending")
    assert given_up in home_of(bot, slack, "U0BOB")

    # An error no retry cures (the bot is not in the channel) is given up after a few tries, not a day.
    slack.outages.clear()
    slack.failures["chat.postMessage"] = "not_in_channel"
    patient = make_bot()
    other = file_request(patient, "U0CAROL", "request deploy-admins 1h deploy fix")

    def approval_given_up() -> SlackPost | None:
        return next(
            (p for p in posts(patient) if p.request_id == other and p.render == "approval" and p.given_up_at), None
        )

    given_up = wait_until(approval_given_up, timeout=10)
    assert given_up.attempts == 3 and given_up.last_error == "not_in_channel"


@pytest.mark.both_databases
def test_two_replicas_send_each_owed_post_exactly_once(make_bot: Callable[..., Bot], slack: FakeSlack) -> None:
    one, two = make_bot(), make_bot()
    slack.outages["chat.postMessage"] = (503, None)
    ids = [file_request(bot, "U0ALICE" if i % 2 else "U0CAROL", f"request deploy-admins 1h fix {i}")
           for i, bot in enumerate([one, two, one, two])]  # fmt: skip
    wait_until(lambda: all(slack.find("chat.postMessage", refused_about(i)) for i in ids))
    time.sleep(0.3)  # both replicas' pumps are retrying now
    slack.outages.clear()
    for request_id in ids:
        slack.wait_for("chat.postMessage", approval_message(request_id))
    wait_until(lambda: posts(one) == [], timeout=5)
    for request_id in ids:
        assert len(slack.find("chat.postMessage", approval_message(request_id))) == 1, request_id


@pytest.mark.both_databases
def test_news_one_replica_writes_waits_for_what_another_replica_still_owes_about_that_request(
    make_bot: Callable[..., Bot], slack: FakeSlack
) -> None:
    filer = make_bot(tuning=fast(slack_retry_base=timedelta(seconds=4)))  # its next try comes seconds later
    voter = make_bot()
    slack.outages["chat.postMessage"] = (503, None)
    request_id = file_request(filer, "U0ALICE", "request deploy-admins 1h deploy fix")
    refused("chat.postMessage", slack)
    # The approval message refused, the DM waiting behind it; the other replica's pump has seen that.
    wait_until(lambda: len(owed := posts(filer)) == 2 and owed[0].attempts >= 1)
    wait_until(lambda: request_id in voter.runtime.outbox._held_back)
    slack.outages.clear()  # Slack is back; the filer's retries come in a moment

    # The other replica takes the approval (from App Home: the message is not out yet) before the filer's
    # next try: its news about the request must not overtake the filer's.
    assert voter.sender.click("U0BOB", ACTION_APPROVE, str(request_id)).status_code == 200
    voter.wait_status(request_id, "active")
    wait_until(lambda: any("You now have" in t for t in slack.dms_to("U0ALICE")), timeout=15)
    told = [c.text() for c in slack.find("chat.postMessage") if c.ok and c.channel == "U0ALICE"]
    said = [phrase for t in told for phrase in ("waiting for approval", "approved by", "You now have") if phrase in t]
    assert said == ["waiting for approval", "approved by", "You now have"], told  # in order, none overtaken
    message = slack.wait_for("chat.postMessage", approval_message(request_id))
    update = slack.wait_for("chat.update", lambda c: c.ok and "Approved by" in c.text())
    assert update.ts == message.ts and update.at > message.at


def test_a_post_slack_keeps_refusing_holds_back_only_the_posts_to_the_same_place(bot: Bot, slack: FakeSlack) -> None:
    slack.failures["chat.postMessage U0ALICE"] = "fatal_error"  # the requester's DMs fail, with a retryable error
    request_id = file_request(bot, "U0ALICE", "request deploy-admins 1h deploy fix")
    message = slack.wait_for("chat.postMessage", approval_message(request_id))
    slack.wait_for("chat.postMessage", lambda c: not c.ok and c.channel == "U0ALICE")
    approve(bot, request_id)
    bot.wait_status(request_id, "active")
    # The approval message's update does not wait for the DMs Slack keeps refusing ...
    slack.wait_for("chat.update", lambda c: c.ok and c.ts == message.ts and "Approved by" in c.text())
    assert not [c for c in slack.find("chat.postMessage") if c.ok and c.channel == "U0ALICE"]
    del slack.failures["chat.postMessage U0ALICE"]
    # ... and the DMs, once Slack takes them, arrive in the order they were written.
    wait_until(lambda: any("You now have" in t for t in slack.dms_to("U0ALICE")), timeout=15)
    told = [c.text() for c in slack.find("chat.postMessage") if c.ok and c.channel == "U0ALICE"]
    said = [phrase for t in told for phrase in ("waiting for approval", "approved by", "You now have") if phrase in t]
    assert said == ["waiting for approval", "approved by", "You now have"], told


def test_an_error_only_a_person_can_fix_is_given_up_after_a_few_tries(bot: Bot, slack: FakeSlack) -> None:
    slack.failures["chat.postMessage U0ALICE"] = "restricted_action"  # a workspace preference forbids it
    request_id = file_request(bot, "U0ALICE", "request deploy-admins 1h deploy fix")
    wait_until(lambda: any(p.given_up_at for p in posts(bot)), timeout=10)
    given_up = next(p for p in posts(bot) if p.given_up_at)
    assert (given_up.request_id, given_up.attempts, given_up.last_error) == (request_id, 3, "restricted_action")


def test_a_votes_news_is_owed_with_the_vote_even_when_its_follow_up_never_runs(
    bot: Bot, slack: FakeSlack, world: World
) -> None:
    request_id = file_request(bot, "U0ALICE", "request deploy-admins 1h deploy fix")
    message = slack.wait_for("chat.postMessage", approval_message(request_id))
    # The process dies right after the vote's commit: the step that would grant never runs.
    bot.runtime.workflow.after_decision = lambda *_a, **_k: None  # type: ignore[method-assign]
    assert bot.sender.click("U0BOB", ACTION_APPROVE, str(request_id)).status_code == 200
    slack.wait_for("chat.update", lambda c: c.ts == message.ts and "Approved by <@U0BOB>" in c.text())
    slack.wait_for("chat.postMessage", lambda c: c.ok and c.channel == "U0ALICE" and "approved by" in c.text())
    # ... and the claim the vote left is taken over by the sweep, which grants it.
    bot.wait_status(request_id, "active", timeout=15)
    assert "alice" in members(world.iam, "deploy-admins")


REMINDED_ONLY = """
resources:
  remind-me:
    kind: iam_group
    group_name: auditors
    approvers: [U0OSCAR]
    approval_channel: C0APPROVALS
    remind_after: 1s
    max_reminders: 2
    pending_timeout: 1h
"""


def test_every_reminder_the_audit_records_is_posted_even_when_the_process_dies_around_it(
    make_bot: Callable[..., Bot], catalog_file: Any, slack: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog_file.write_text(REMINDED_ONLY)
    bot = make_bot(tuning=fast(lease=timedelta(seconds=1), slack_lease=timedelta(seconds=1)))
    request_id = file_request(bot, "U0ALICE", "request remind-me 1h look at the logs")
    slack.wait_for("chat.postMessage", approval_message(request_id))
    ctx = bot.runtime.workflow.ctx
    asked = {"times": 0}
    real = ctx.approvers

    def dies_once(request: Any, **kwargs: Any) -> frozenset[str]:
        asked["times"] += 1
        if asked["times"] == 1:
            raise RuntimeError("the process died while asking Slack whom to remind")
        return real(request, **kwargs)

    monkeypatch.setattr(ctx, "approvers", dies_once)

    def reminders() -> list[Call]:
        threaded = [c for c in slack.find("chat.postMessage") if c.ok and c.args.get("thread_ts")]
        return [c for c in threaded if "Reminder" in c.text()]

    # The first try dies before it records anything; the next dies right after its commit, before anything
    # after the commit ran: the reminder it recorded is owed all the same, and sent.
    with dying_after_commit("reminded") as struck:
        wait_until(lambda: len(reminders()) == 2, timeout=15)
    assert struck == [request_id]
    assert asked["times"] >= 3
    assert all("<@U0OSCAR>" in c.text() for c in reminders())
    recorded = [e for e in bot.audit(request_id) if e.action == "reminded"]
    assert len(recorded) == 2  # one per reminder sent: none for the try that died first, none untold
    row = bot.request(request_id)
    assert row is not None and row.reminders_sent == 2 and row.status == "pending"


@pytest.mark.both_databases
def test_an_operator_sees_given_up_posts_and_sends_them_again_once_the_cause_is_fixed(
    make_bot: Callable[..., Bot],
    slack: FakeSlack,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    slack.failures["chat.postMessage"] = "not_in_channel"  # nobody invited the bot to the approval channel
    bot = make_bot(tuning=fast(slack_give_up=timedelta(seconds=5)))
    operator = operator_for(bot.runtime.settings, monkeypatch, capsys, tmp_path)
    request_id = file_request(bot, "U0ALICE", "request deploy-admins 1h deploy fix")
    wait_until(lambda: len([p for p in posts(bot) if p.given_up_at]) == 2, timeout=10)  # the approval and the DM

    listed = operator("outbox")
    assert listed.code == 0, listed.err
    lines = listed.out.splitlines()
    assert lines[0].split()[:4] == ["ID", "STATE", "REQUEST", "WHAT"]
    approval = next(line for line in lines if "approval message" in line)
    assert "given up" in approval and f"#{request_id}" in approval and "C0APPROVALS" in approval
    assert "not_in_channel" in approval
    assert "0 owed, 2 given up" in listed.out and "accessbot outbox retry" in listed.out

    missing = operator("outbox", "retry", "9999")
    assert missing.code == 1 and "post 9999 is not in the outbox" in missing.err
    assert operator("outbox", "retry").code == 2  # neither IDs nor --all

    # Past their give-up bound since written: a retry gives them a bound of their own, and keeps their age.
    written = {p.id: p.created_at for p in posts(bot)}
    wait_until(lambda: utcnow() > max(written.values()) + timedelta(seconds=5.5), timeout=10)
    del slack.failures["chat.postMessage"]  # the bot was invited ...
    slack.outages["chat.postMessage"] = (503, None)  # ... and Slack has a bad minute
    retried = operator("outbox", "retry", "--all")
    assert retried.code == 0 and "2 given-up post(s) queued again" in retried.out, retried.out
    # Refused again at once (the DM waits behind the approval message): tried, and not given up.
    again = wait_until(lambda: (found := posts(bot)) and found[0].attempts >= 1 and found)
    assert all(p.given_up_at is None and p.requeued_at is not None for p in again)
    assert {p.id: p.created_at for p in again} == written
    relisted = operator("outbox").out
    assert "owed (retried)" in relisted and "2 owed, 0 given up" in relisted
    refused = operator("outbox", "drop", str(again[0].id))
    assert refused.code == 1 and f"post {again[0].id} is still being tried" in refused.err
    assert len(posts(bot)) == 2

    slack.outages.clear()
    message = slack.wait_for("chat.postMessage", approval_message(request_id), timeout=10)
    assert message.buttons(), "the late approval message still carries its buttons"
    approve(bot, request_id)
    bot.wait_status(request_id, "active")
    wait_until(lambda: "0 owed, 0 given up" in operator("outbox").out, timeout=10)

    slack.failures["chat.postMessage"] = "channel_not_found"
    gone = file_request(bot, "U0BOB", "request prod-readonly 1h a look")
    wait_until(lambda: len([p for p in posts(bot) if p.request_id == gone and p.given_up_at]) == 2, timeout=10)
    ids = [p.id for p in posts(bot) if p.given_up_at]
    dropped = operator("outbox", "drop", *(str(i) for i in ids))
    assert dropped.code == 0 and f"{len(ids)} given-up post(s) dropped" in dropped.out, dropped.out
    assert not any(p.id in ids for p in posts(bot))
    assert "no approval message is on its way (dropped" in bot.ask("U0BOB", "list")
