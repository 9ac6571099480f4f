"""The outbox's sender threads: a request's posts always go to the same one, so they leave in order."""

from __future__ import annotations

import logging
import queue
import threading
import time
import zlib
from collections.abc import Callable

from bot.store.models import SlackPost

log = logging.getLogger("bot.slack.outbox")  # the outbox's own logger: its lines keep their name


class Senders:
    """A pool of sender threads, each working through its own queue of posts in order."""

    def __init__(self, count: int, *, send: Callable[[SlackPost, bool], None], after: Callable[[], None]) -> None:
        self._send = send  # (post, pumped): sends one post, or puts it back
        self._after = after  # run by a sender after each post (forgetting what Slack took)
        self._queues: list[queue.SimpleQueue[tuple[SlackPost, bool] | None]] = [
            queue.SimpleQueue() for _ in range(count)
        ]
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._in_flight = 0
        self._held: set[int] = set()  # posts queued or being sent here: never claimed twice, their lease renewed

    def start(self) -> None:
        """Start the sender threads (once)."""
        with self._lock:
            if self._threads:
                return
            self._threads = [
                threading.Thread(target=self._serve, args=(line,), name=f"slack-sender-{i}", daemon=True)
                for i, line in enumerate(self._queues)
            ]
        for thread in self._threads:
            thread.start()

    def put(self, post: SlackPost, *, pumped: bool) -> None:
        """Queue a post for its request's sender, unless it is already queued here."""
        key = post.request_id if post.request_id is not None else zlib.crc32(post.payload.encode())
        with self._lock:
            if post.id in self._held:
                return  # already queued here (its lease ran out while it waited): one send, not two
            self._held.add(post.id or 0)
            self._in_flight += 1
        self._queues[key % len(self._queues)].put((post, pumped))

    def in_flight(self) -> int:
        """How many posts are queued or being sent."""
        with self._lock:
            return self._in_flight

    def held(self) -> list[int]:
        """The IDs of the posts queued or being sent."""
        with self._lock:
            return list(self._held)

    def flush(self, timeout: float) -> bool:
        """Wait until every queued post was tried; False when some still were not."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._in_flight:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def stop(self, grace: float) -> None:
        """End the threads once their queues are done, waiting `grace` at most (a hung call is left behind)."""
        for line in self._queues:
            line.put(None)
        deadline = time.monotonic() + grace
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))

    def _serve(self, line: queue.SimpleQueue[tuple[SlackPost, bool] | None]) -> None:
        while (item := line.get()) is not None:
            post, pumped = item
            try:
                self._send(post, pumped)
            except Exception:
                log.exception("Slack outbox: post %s could not be handled", post.id)
            finally:
                with self._idle:
                    self._in_flight -= 1
                    self._held.discard(post.id or 0)
                    self._idle.notify_all()
            try:
                self._after()
            except Exception:
                log.exception("Slack outbox: could not forget sent posts; trying again later")
