"""LookupEvents' rate, shared by every replica: one row per account and Region says when the next call may go.

CloudTrail allows two LookupEvents calls a second per account and Region, shared with every other caller
there (CloudTrail API Reference, "LookupEvents": "The rate of lookup requests is limited to two per
second, per account, per Region"). Each replica reserves its slot in the database (the row's next_at moves
on by one interval in the same transaction), then sleeps until the slot: no lock is held while it waits, so
that on SQLite (one writer at a time) nothing else is held up. A throttled call pushes next_at further
for everyone.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from bot.clock import utcnow
from bot.store.activity_tables import CloudTrailPace
from bot.store.db import session_scope

# 1.4 calls a second at most: below AWS's two, leaving some to the account's other callers (and margin for
# a replica that wakes late from its sleep, which would bunch its call with the next one).
INTERVAL = timedelta(seconds=0.7)


class Pacer:
    """Reserves LookupEvents slots per (account, Region) in the database, so replicas share one pace."""

    def __init__(
        self,
        engine: Engine,
        *,
        interval: timedelta = INTERVAL,
        clock: Callable[[], datetime] = utcnow,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._engine = engine
        self._interval = interval
        self._clock = clock
        self._sleep = sleep

    def wait(self, account: str, region: str) -> None:
        """Return at this replica's next slot for the account and Region (reserved before waiting)."""
        slot = self._reserve(account, region, self._interval, at_least=None)
        delay = (slot - self._clock()).total_seconds()
        if delay > 0:
            self._sleep(delay)

    def back_off(self, account: str, region: str, seconds: float) -> None:
        """After a ThrottlingException: nobody calls there for `seconds` from now."""
        self._reserve(account, region, timedelta(0), at_least=self._clock() + timedelta(seconds=seconds))

    def _reserve(self, account: str, region: str, step: timedelta, *, at_least: datetime | None) -> datetime:
        for _ in range(2):  # the row is made on first use; a replica that lost that race reads it again
            try:
                with session_scope(self._engine) as session:
                    row = session.exec(
                        select(CloudTrailPace)
                        .where(CloudTrailPace.account == account, CloudTrailPace.region == region)
                        .with_for_update()
                    ).first()
                    now = self._clock()
                    if row is None:
                        row = CloudTrailPace(account=account, region=region, next_at=now)
                        session.add(row)
                    slot = max(now, row.next_at, at_least or now)
                    row.next_at = slot + step
                    return slot
            except IntegrityError:
                continue
        raise RuntimeError(f"could not reserve a LookupEvents slot for {account} {region}")
