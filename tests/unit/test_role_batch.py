"""Group commit of a role's denies: ends that wait for the role's lock together are written in one write."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from bot.aws.granters.role_batch import Ask, DenyQueue

ROLE = "arn:aws:iam::123456789012:role/prod-readonly"
T0 = datetime(2026, 12, 8, 12, 0, tzinfo=UTC)


def test_ends_queued_while_the_lock_is_held_are_written_by_the_next_holder_in_one_write() -> None:
    queue, lock, writes = DenyQueue(), threading.Lock(), []
    first_in = threading.Event()
    release = threading.Event()

    def write(batch: Sequence[Ask]) -> dict[str, datetime]:
        writes.append(sorted(a.iam_user for a in batch))
        if len(writes) == 1:
            first_in.set()
            release.wait(5)  # the first holder is slow: the others queue behind it
        return {a.iam_user: a.cutoff for a in batch}

    results: dict[str, datetime] = {}

    def end(user: str, offset: int) -> None:
        ask = queue.ask(ROLE, user, T0 + timedelta(seconds=offset))
        with lock:
            results[user] = queue.settle(ROLE, ask, write)

    first = threading.Thread(target=end, args=("alice", 0))
    first.start()
    assert first_in.wait(5)
    others = [threading.Thread(target=end, args=(user, i)) for i, user in enumerate(["bob", "carol", "dave"], 1)]
    for thread in others:
        thread.start()
    while sum(len(v) for v in queue._waiting.values()) < 3:  # all three queued behind the holder
        threading.Event().wait(0.01)
    release.set()
    for thread in [first, *others]:
        thread.join(5)

    assert writes == [["alice"], ["bob", "carol", "dave"]], "three ends, one write"
    assert results == {u: T0 + timedelta(seconds=i) for i, u in enumerate(["alice", "bob", "carol", "dave"])}


def test_a_failed_write_fails_every_end_of_its_batch_and_the_next_end_writes_afresh() -> None:
    queue = DenyQueue()
    a, b = queue.ask(ROLE, "alice", T0), queue.ask(ROLE, "bob", T0)

    def refuse(batch: Sequence[Ask]) -> dict[str, datetime]:
        raise RuntimeError("LimitExceeded")

    with pytest.raises(RuntimeError):
        queue.settle(ROLE, a, refuse)
    with pytest.raises(RuntimeError):  # bob's ask was in alice's batch: it failed with it, without a write
        queue.settle(ROLE, b, lambda batch: pytest.fail("written twice"))
    again = queue.ask(ROLE, "bob", T0)
    assert queue.settle(ROLE, again, lambda batch: {x.iam_user: x.cutoff for x in batch}) == T0
