"""The heartbeat of this process's claims: short leases, renewed while the work behind them runs.

A claim's lease is what keeps other replicas off a row; the shorter it is, the sooner work a crashed
process left is taken over. So leases are short, and a live process renews the lease of every row it is
working on every third of a lease. A process that dies stops renewing, and its rows are free a lease later.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from sqlalchemy.engine import Engine

from bot.store import queries
from bot.store.db import session_scope

log = logging.getLogger(__name__)


class ClaimKeeper:
    """Renews the leases of the rows this process is working on, from one daemon thread."""

    def __init__(self, engine: Engine, *, owner: str, lease: timedelta, clock: Callable[[], datetime]) -> None:
        self._engine = engine
        self._owner = owner
        self._lease = lease
        self._clock = clock
        self._working: Counter[int] = Counter()
        self._guard = threading.Lock()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    @contextmanager
    def working(self, request_id: int) -> Iterator[None]:
        """Keep this process's claim on the row alive while the block runs."""
        with self._guard:
            self._working[request_id] += 1
            self._start()
        try:
            yield
        finally:
            with self._guard:
                self._working[request_id] -= 1
                if self._working[request_id] <= 0:
                    del self._working[request_id]

    def beat(self) -> int:
        """Renew every lease in use now; return how many rows were renewed."""
        with self._guard:
            ids = list(self._working)
        if not ids:
            return 0
        with session_scope(self._engine) as session:
            return queries.renew_claims(ids, session=session, owner=self._owner, now=self._clock(), lease=self._lease)

    def stop(self) -> None:
        """Stop the heartbeat thread."""
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _start(self) -> None:
        if self._thread is None and not self._stopped.is_set():
            self._thread = threading.Thread(target=self._run, name="claim-heartbeat", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        interval = self._lease.total_seconds() / 3
        while not self._stopped.wait(interval):
            try:
                self.beat()
            except Exception:
                log.exception("renewing claims failed; the next beat tries again")
