"""A key -> value index read in the background: rebuilt on a schedule, and on a miss at most once per interval.

Requests never read AWS themselves. A hit answers from the current index at once; a miss may ask the one
refresher thread for a rebuild (at most one per `miss_seconds` for the whole process) and waits for the
rebuild under way, with a bound, on a condition that is never held across the read itself.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from bot.aws.errors import AwsError

log = logging.getLogger(__name__)
V = TypeVar("V")


@dataclass(frozen=True)
class IndexTiming:
    """How often the index is rebuilt, and how long a miss may wait for a rebuild."""

    refresh_seconds: float = 300.0  # the scheduled rebuild
    miss_seconds: float = 10.0  # a miss asks for a rebuild at most this often, for the whole process
    retry_seconds: float = 30.0  # after a failed rebuild, the next scheduled try
    wait_seconds: float = 5.0  # how long a miss waits for the rebuild under way


class IndexUnavailable(Exception):
    """The index was never read: `str()` is the last read's error, empty while the first read still runs."""


class EmailIndex(Generic[V]):
    """A mapping read by `load` on a daemon thread; `get` never calls `load` itself."""

    def __init__(self, load: Callable[[], Mapping[str, V]], *, timing: IndexTiming | None = None) -> None:
        self._load = load
        self.timing = timing or IndexTiming()
        self._changed = threading.Condition()  # guards everything below; never held while `load` runs
        self._entries: Mapping[str, V] | None = None  # None until the first read succeeds
        self._started_at = float("-inf")  # when the last read began (monotonic)
        self._last_ok = False
        self._error = ""
        self._running = False
        self._wanted = False
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.reads = 0  # reads finished, successful or not

    def start(self) -> None:
        """Start the refresher (once); it reads the index right away."""
        with self._changed:
            if self._thread is not None or self._stopping:
                return
            self._wanted = True
            self._thread = threading.Thread(target=self._run, name="accessbot-email-index", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the refresher; a read under way is left to finish on its daemon thread."""
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)

    @property
    def ready(self) -> bool:
        """Whether a read has succeeded at least once."""
        with self._changed:
            return self._entries is not None

    def get(self, key: str) -> V | None:
        """The value for `key`, or None; raise IndexUnavailable when the index was never read."""
        self.start()
        with self._changed:
            if self._entries is not None and key in self._entries:
                return self._entries[key]
            since = time.monotonic() - self._started_at
            if not self._running and not self._wanted and since >= self.timing.miss_seconds:
                self._wanted = True  # a newly tagged user: one rebuild for every miss in this interval
                self._changed.notify_all()
            if self._running or self._wanted:
                target = self.reads + 1
                self._changed.wait_for(lambda: self.reads >= target or self._stopping, self.timing.wait_seconds)
            if self._entries is None:
                raise IndexUnavailable(self._error)
            return self._entries.get(key)

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._wanted and not self._stopping:
                    pause = self.timing.refresh_seconds if self._last_ok else self.timing.retry_seconds
                    remaining = self._started_at + pause - time.monotonic()
                    if remaining <= 0:
                        break
                    self._changed.wait(remaining)
                if self._stopping:
                    return
                self._wanted, self._running = False, True
                self._started_at = time.monotonic()
            entries, error = self._read()
            with self._changed:
                if entries is not None:
                    self._entries = entries
                self._last_ok, self._error = entries is not None, error
                self._running = False
                self.reads += 1
                self._changed.notify_all()

    def _read(self) -> tuple[Mapping[str, V] | None, str]:
        began = time.monotonic()
        try:
            entries = self._load()
        except AwsError as exc:
            log.warning("reading the email index failed, the previous one stays in use: %s", exc)
            return None, str(exc)
        except Exception:  # the refresher thread must outlive a bug in one read; the next read may succeed
            log.exception("reading the email index failed unexpectedly, the previous one stays in use")
            return None, "an unexpected error, which is logged"
        log.info("email index read: %d entries in %.2fs", len(entries), time.monotonic() - began)
        return entries, ""
