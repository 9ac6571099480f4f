"""Ends on one role written together: the denies asked for while another end held the role's lock go in one write.

A role's denies are one document set, read, merged and written under a lock every replica sees, so ends on one
role run one after the other. At a restart catch-up (150 people's ends on one role at once) that is 150 reads
and writes in a row. Group commit: each end queues its (person, cutoff) before waiting for the lock; whoever
holds the lock takes every end queued in this process and writes them all at once; an end whose ask a
previous holder already wrote returns that result without calling AWS. Across replicas each one batches its own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime


@dataclass
class Ask:
    """One end's wish: deny `iam_user`'s sessions issued before `cutoff`; then what came of it."""

    iam_user: str
    cutoff: datetime
    done: bool = False
    result: datetime | None = None
    error: Exception | None = None


# Writes the asks of one role (all merged into one write); returns each person's cutoff the role now has.
Writer = Callable[[Sequence[Ask]], dict[str, datetime]]


class DenyQueue:
    """The asks of this process not yet written, per role."""

    def __init__(self) -> None:
        self._waiting: dict[str, list[Ask]] = {}
        self._guard = threading.Lock()

    def ask(self, role_arn: str, iam_user: str, cutoff: datetime) -> Ask:
        """Queue an ask (before the caller waits for the role's lock)."""
        ask = Ask(iam_user, cutoff)
        with self._guard:
            self._waiting.setdefault(role_arn, []).append(ask)
        return ask

    def settle(self, role_arn: str, ask: Ask, write: Writer) -> datetime:
        """With the role's lock held: write every queued ask of the role unless a previous holder wrote this one."""
        if not ask.done:
            with self._guard:
                batch = self._waiting.pop(role_arn, [])
            try:
                cutoffs = write(batch)
            except Exception as exc:  # every end of the batch failed alike: each stays owed and is retried
                for each in batch:
                    each.error, each.done = exc, True
            else:
                for each in batch:
                    each.result, each.done = cutoffs[each.iam_user], True
        if ask.error is not None:
            raise ask.error
        assert ask.result is not None
        return ask.result
