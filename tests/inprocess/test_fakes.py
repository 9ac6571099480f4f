"""The fakes hold what the in-process tier relies on: a clock that only moves forward, AWS failures and hooks that
fire exactly as many times as asked, and news that reaches nobody when its transaction rolls back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.aws.errors import AwsError
from bot.aws.granters import GrantSpec
from bot.store.db import session_scope
from bot.testing.clock import FakeClock
from bot.testing.granter import FakeGranter
from bot.testing.inprocess import InProcess
from bot.testing.people import FakeDirectory

SPEC = GrantSpec(request_id=7, iam_user="alice", iam_user_arn="arn:aws:iam::1:user/alice", target="g",
                 expires_at=datetime(2026, 3, 3, 10, tzinfo=UTC))  # fmt: skip


def test_the_clock_moves_only_forward_and_only_when_told() -> None:
    clock = FakeClock()
    start = clock()
    assert clock.advance(timedelta(minutes=5)) == start + timedelta(minutes=5) == clock.now()
    with pytest.raises(ValueError, match="only moves forward"):
        clock.set(start)
    with pytest.raises(ValueError, match="timezone-aware"):
        FakeClock(datetime(2026, 1, 1))


def test_a_failure_is_raised_as_many_times_as_asked_then_aws_acts() -> None:
    granter = FakeGranter(shared=True, clock=FakeClock())
    error = AwsError("throttled", operation="iam:AddUserToGroup", code="Throttling")
    granter.fail("grant", error, times=2)
    for _ in range(2):
        with pytest.raises(AwsError) as raised:
            granter.grant(SPEC)
        assert raised.value is error
        assert not granter.has("alice", "g")
    granter.grant(SPEC)
    assert granter.has("alice", "g") and granter.called("grant") == [7, 7, 7]
    with pytest.raises(ValueError, match="unknown operation"):
        granter.fail("delete", error)


def test_hooks_run_once_before_or_after_aws_acts() -> None:
    granter = FakeGranter(shared=False, clock=FakeClock())
    seen: list[tuple[str, bool]] = []
    granter.before("grant", lambda spec: seen.append(("before", granter.has(spec.iam_user, spec.target))))
    granter.after("grant", lambda spec: seen.append(("after", granter.has(spec.iam_user, spec.target))))
    granter.grant(SPEC)
    granter.grant(SPEC)
    assert seen == [("before", False), ("after", True)]


def test_a_revoke_leaves_a_session_deny_only_where_sessions_end() -> None:
    clock = FakeClock()
    granter = FakeGranter(shared=False, clock=clock, session_deny=timedelta(hours=12))
    granter.grant(SPEC)
    assert granter.revoke(SPEC, None).lift_at == clock() + timedelta(hours=12)
    kept = GrantSpec(**{**SPEC.__dict__, "end_sessions": False})
    assert granter.revoke(kept, None).lift_at is None


def test_a_user_group_slack_cannot_list_approves_nobody() -> None:
    directory = FakeDirectory({"S0TEAM": ["U0A"]})
    assert directory.expand(frozenset({"S0TEAM", "U0B"})) == {"U0A", "U0B"}
    directory.unreachable.add("S0TEAM")
    with pytest.raises(Exception, match="Slack cannot tell"):
        directory.expand(frozenset({"S0TEAM"}))


def test_news_owed_in_a_rolled_back_transaction_reaches_nobody(bot: InProcess) -> None:
    request_id = bot.file("U0ALICE", "deploy-admins")
    before = list(bot.notifier.posts)
    with pytest.raises(RuntimeError), session_scope(bot.engine) as session:
        bot.notifier.tell_requester(bot.row(request_id), "approved", session=session)
        raise RuntimeError("the change fails after the news was owed")
    assert bot.notifier.posts == before
    with session_scope(bot.engine) as session:
        bot.notifier.tell_requester(bot.row(request_id), "approved", session=session)
        assert bot.notifier.posts == before, "kept only once the transaction commits"
    assert bot.notifier.told("U0ALICE")[-1] == "approved"
