"""The email index's monotonic clock, moved forward by the test instead of slept past (the `index_clock`
fixture in tests/conftest.py)."""

from __future__ import annotations

import time


class IndexClock:
    """Real monotonic time plus what the test added: an interval passes when the test says so, however slow
    the machine is, and never before."""

    def __init__(self) -> None:
        self.offset = 0.0

    def monotonic(self) -> float:
        return time.monotonic() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds
