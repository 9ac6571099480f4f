"""Hostile input, the authorization matrix, replays and races, and per-user limits."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.slack.messages import ACTION_ACK, ACTION_APPROVE, ACTION_CANCEL, ACTION_DENY, ACTION_EXTEND, ACTION_REVOKE
from tests.conftest import Bot, wait_until
from tests.integration.flows import file_request
from tests.support.aws import World, members
from tests.support.catalogs import BASIC
from tests.support.fake_slack import FakeSlack

SECURE = BASIC.replace(
    "    description: Deploy to production\n",
    "    description: Deploy to production\n    break_glass: true\n    max_extensions: 5\n",
)
REQUESTER, APPROVER, OTHER_APPROVER, STRANGER = "U0ALICE", "U0BOB", "U0DAVE", "U0MALLORY"


@pytest.fixture
def bot(make_bot: Callable[..., Bot], catalog_file: Path) -> Bot:
    catalog_file.write_text(SECURE)
    return make_bot()


def pending(bot: Bot) -> int:
    return file_request(bot, REQUESTER, "request deploy-admins 1h deploy")


def active(bot: Bot) -> int:
    request_id = pending(bot)
    bot.sender.click(APPROVER, ACTION_APPROVE, f"{request_id}:0")
    bot.wait_status(request_id, "active")
    return request_id


def break_glass(bot: Bot) -> int:
    request_id = file_request(bot, REQUESTER, "breakglass deploy-admins 1h prod down")
    bot.wait_status(request_id, "active")
    return request_id


def snapshot(bot: Bot, request_id: int) -> tuple[Any, ...]:
    row = bot.request(request_id)
    assert row is not None
    return (row.status, row.expires_at, row.extension_seconds, row.acknowledged_by, len(bot.audit(request_id)))


def do_approve(bot: Bot, actor: str, request_id: int) -> None:
    bot.sender.click(actor, ACTION_APPROVE, f"{request_id}:0")


def do_deny(bot: Bot, actor: str, request_id: int) -> None:
    # The Deny button checks first and opens the reason form only for someone who may deny.
    bot.sender.click(actor, ACTION_DENY, f"{request_id}:0")
    from bot.slack import views

    bot.sender.submit_view(actor, views.deny_view(request_id, 0), {"reason": "no"})


def do_cancel(bot: Bot, actor: str, request_id: int) -> None:
    bot.sender.click(actor, ACTION_CANCEL, str(request_id), channel="D0HOME")


def do_revoke(bot: Bot, actor: str, request_id: int) -> None:
    bot.sender.command(actor, f"revoke #{request_id}")


def do_extend(bot: Bot, actor: str, request_id: int) -> None:
    bot.sender.command(actor, f"extend #{request_id} 30m")


def do_acknowledge(bot: Bot, actor: str, request_id: int) -> None:
    bot.sender.click(actor, ACTION_ACK, str(request_id))


ACTIONS: dict[str, tuple[Callable[[Bot], int], Callable[[Bot, str, int], None], set[str]]] = {
    "approve": (pending, do_approve, {APPROVER}),
    "deny": (pending, do_deny, {APPROVER}),
    "cancel": (pending, do_cancel, {REQUESTER}),
    "revoke": (active, do_revoke, {REQUESTER, APPROVER}),
    "extend": (active, do_extend, {REQUESTER}),
    "acknowledge break-glass": (break_glass, do_acknowledge, {APPROVER}),
}
ACTORS = {"the requester": REQUESTER, "an approver of this resource": APPROVER,
          "an approver of another resource": OTHER_APPROVER, "anyone else": STRANGER}  # fmt: skip


@pytest.mark.parametrize("actor_name", list(ACTORS))
@pytest.mark.parametrize("action", list(ACTIONS))
def test_authorization_matrix(bot: Bot, slack: FakeSlack, world: World, action: str, actor_name: str) -> None:
    setup, perform, allowed = ACTIONS[action]
    actor = ACTORS[actor_name]
    request_id = setup(bot)
    before = snapshot(bot, request_id)
    member_before = "alice" in members(world.iam, "deploy-admins")
    slack.reset()
    perform(bot, actor, request_id)
    if actor in allowed:
        wait_until(lambda: snapshot(bot, request_id) != before)
    else:

        def refusals() -> list[Any]:
            return [c for c in slack.calls if c.method in ("chat.postEphemeral", "response_url")]

        # Commands answer through their response_url, buttons with an ephemeral message; either way: no change.
        if action in ("revoke", "extend"):
            text = f"extend #{request_id} 30m" if action == "extend" else f"revoke #{request_id}"
            assert any(word in bot.ask(actor, text) for word in ("Only", "only"))
            assert all(c.args.get("response_type") == "ephemeral" for c in slack.find("response_url"))
        else:
            wait_until(refusals)
        assert snapshot(bot, request_id) == before
        assert ("alice" in members(world.iam, "deploy-admins")) == member_before
        assert slack.find("views.open") == []


@pytest.mark.both_databases
def test_two_approvers_clicking_at_once_on_two_replicas_grant_once(
    make_bot: Callable[..., Bot], catalog_file: Path, slack: FakeSlack, world: World
) -> None:
    catalog_file.write_text(SECURE)
    first, second = make_bot(), make_bot()
    for round_ in range(3):
        request_id = file_request(first, REQUESTER, f"request deploy-admins 1h race {round_}")
        barrier = threading.Barrier(2)

        def click(bot: Bot, actor: str, rid: int = request_id, gate: threading.Barrier = barrier) -> None:
            gate.wait()
            bot.sender.click(actor, ACTION_APPROVE, f"{rid}:0")

        threads = [threading.Thread(target=click, args=(first, "U0BOB")),
                   threading.Thread(target=click, args=(second, "U0CAROL"))]  # fmt: skip
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        first.wait_status(request_id, "active")
        actions = [e.action for e in first.audit(request_id)]
        assert actions.count("approved") == 1 and actions.count("active") == 1, actions
        assert actions.count("grant_started") == 1
    assert "alice" in members(world.iam, "deploy-admins")


def test_rate_limit_and_open_request_cap(make_bot: Callable[..., Bot], catalog_file: Path) -> None:
    catalog_file.write_text(SECURE.replace("  warn_before: 10m\n", "  warn_before: 10m\n  max_open_requests: 2\n"
                                           "  rate_limit: {requests: 3, per: 1h}\n"))  # fmt: skip
    bot = make_bot()
    first = pending(bot)
    pending(bot)
    capped = bot.ask(REQUESTER, "request deploy-admins 1h third")
    assert capped == "You already have 2 open requests; cancel or finish one first (/access list)."
    assert bot.count() == 2
    # Each cancel is answered (so done) before the next request: commands run after their ack, side by side.
    assert bot.ask(REQUESTER, f"cancel #{first}") == f"Request #{first} is cancelled."
    third = pending(bot)
    assert bot.ask(REQUESTER, f"cancel #{third}") == f"Request #{third} is cancelled."
    limited = bot.ask(REQUESTER, "request deploy-admins 1h fourth")
    assert limited == "You filed 3 requests in the last 1h, the most allowed; try again later."
    assert bot.count() == 3


@pytest.mark.both_databases
def test_a_reason_that_is_too_long_is_refused(bot: Bot) -> None:
    answer = bot.ask(REQUESTER, "request deploy-admins 1h " + "é" * 501)
    assert answer == "The reason is 501 characters long; keep it under 500."
    assert bot.count() == 0


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=50) | st.floats(allow_nan=False),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
KNOWN_ACTIONS = [ACTION_APPROVE, ACTION_DENY, ACTION_ACK, ACTION_EXTEND, ACTION_REVOKE, ACTION_CANCEL, "nope"]
payloads = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["block_actions", "view_submission", "shortcut", "message_action", "x"]) | json_values,
        "user": st.fixed_dictionaries({"id": st.sampled_from([REQUESTER, APPROVER, STRANGER]) | json_values})
        | json_values,
        "actions": st.lists(
            st.fixed_dictionaries(
                {"action_id": st.sampled_from(KNOWN_ACTIONS) | json_values,
                 "value": st.sampled_from(["1", "1:0", "2", "#1", "1:9", "x" * 3000, "\u0661", "-1"]) | json_values}
            ),
            max_size=2,
        ) | json_values,
        "view": st.fixed_dictionaries(
            {"callback_id": st.sampled_from(["accessbot_request", "accessbot_deny_reason", "accessbot_extend_view"])
             | json_values, "private_metadata": st.sampled_from(["1", "1:0", "zz"]) | json_values,
             "state": json_values}
        ) | json_values,
        "trigger_id": json_values,
        "callback_id": json_values,
    },
)  # fmt: skip


@pytest.mark.both_databases
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=payloads)
def test_hostile_interactive_payloads_never_500_and_change_nothing(bot: Bot, payload: dict[str, Any]) -> None:
    if bot.count() == 0:
        pending(bot)
    before = snapshot(bot, 1)
    answer = bot.sender.interactive(payload)
    assert answer.status_code < 500, (answer.status_code, answer.text)
    assert snapshot(bot, 1) == before
    assert bot.count() == 1


@pytest.mark.both_databases
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=200), user=st.sampled_from([STRANGER, "", "U" + "9" * 40]) | st.text(max_size=20))
def test_hostile_command_text_never_500_and_stores_nothing_it_should_not(bot: Bot, text: str, user: str) -> None:
    answer = bot.sender.command(user, text.replace("breakglass", "x").replace("request", "x"))
    assert answer.status_code < 500
    assert bot.count() == 0


def test_malformed_bodies_are_refused_cleanly(bot: Bot) -> None:
    for body in ("payload=%7Bnot-json", "payload=" + json.dumps([1, 2]), "", "x" * 5000, "command=%2Faccess"):
        answer = bot.sender.post(body)
        assert answer.status_code < 500, (body[:30], answer.status_code)
    assert bot.count() == 0
