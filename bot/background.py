"""Work that runs after Slack has its answer (AWS grants, posts), on a small thread pool."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from bot.logs import about_request

log = logging.getLogger(__name__)


class Background:
    """Runs tasks off the request thread; a failing task is logged with an ID, never lost silently."""

    def __init__(self, workers: int = 8) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="background")

    def submit(self, task: Callable[..., Any], *args: Any) -> Future[Any]:
        """Run task(*args) soon."""
        return self._pool.submit(self._run, task, *args)

    def stop(self) -> None:
        """Wait for tasks under way, then stop."""
        self._pool.shutdown(wait=True)

    @staticmethod
    def _run(task: Callable[..., Any], *args: Any) -> Any:
        # Tasks take a request ID first: every log event of the task carries it.
        request_id = args[0] if args and isinstance(args[0], int) else None
        with about_request(request_id):
            try:
                return task(*args)
            except Exception:
                error_id = secrets.token_hex(4)
                log.exception("background task %s failed (error %s)", getattr(task, "__name__", task), error_id)
                return None
