"""A clock the test moves: the workflow reads `now()` through it, so nothing waits on real time."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

# A fixed, ordinary moment (a Tuesday morning, UTC): tests read the same whatever day they run.
START = datetime(2026, 3, 3, 9, 0, tzinfo=UTC)


class FakeClock:
    """A settable UTC clock; call it (or `now()`) for the time, `advance()` to move it forward."""

    def __init__(self, start: datetime = START) -> None:
        if start.tzinfo is None:
            raise ValueError("the clock's start must be timezone-aware (the database rejects naive datetimes)")
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        return self.now()

    def now(self) -> datetime:
        """The current fake time."""
        with self._lock:
            return self._now

    def advance(self, delta: timedelta) -> datetime:
        """Move the clock forward by `delta` (never back: the workflow's schedule assumes time only grows)."""
        if delta < timedelta(0):
            raise ValueError(f"the clock only moves forward; asked to move by {delta}")
        with self._lock:
            self._now += delta
            return self._now

    def set(self, moment: datetime) -> datetime:
        """Move the clock forward to `moment`."""
        return self.advance(moment - self.now())
