"""APScheduler wiring: a safety-net sweep plus one precise wake-up at the next due time.

There is no job per grant: the database holds every due time (next_due_at), so memory stays flat
and nothing depends on APScheduler's own persistence (whose misfire grace would drop late jobs).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler

from bot.clock import utcnow
from bot.metrics import Metrics
from bot.workflow import Workflow

log = logging.getLogger(__name__)
WAKE_JOB = "wake"
SWEEP_JOB = "sweep"
TAKEOVER_JOB = "takeover"
RECONCILE_JOB = "reconcile"


class ExpiryScheduler:
    """Decides *when* to look; the workflow decides what is owed."""

    def __init__(
        self,
        workflow: Workflow,
        *,
        sweep_seconds: float,
        metrics: Metrics,
        takeover_seconds: float = 0,
        reconcile: Callable[[], object] | None = None,
        reconcile_seconds: float = 0,
    ) -> None:
        self._workflow = workflow
        self._sweep_seconds = sweep_seconds
        self._takeover_seconds = takeover_seconds
        self._reconcile = reconcile
        self._reconcile_seconds = reconcile_seconds
        self._metrics = metrics
        self._aps = BackgroundScheduler(
            timezone=UTC, job_defaults={"misfire_grace_time": None, "coalesce": True, "max_instances": 1}
        )
        self._running = threading.Lock()
        self._again = threading.Event()
        self._armed: datetime | None = None
        self._arm_lock = threading.Lock()

    def start(self) -> None:
        """Start sweeping now (catching up on anything overdue) and every sweep interval after."""
        self._aps.start()
        self._aps.add_job(self.sweep, "interval", seconds=self._sweep_seconds, id=SWEEP_JOB, next_run_time=utcnow())
        if 0 < self._takeover_seconds < self._sweep_seconds:
            # Work another replica claimed after this one last looked, and then left when it died, is free a
            # lease after its last heartbeat: looking once a lease (and waking when a seen lease ends) takes it over
            # about a lease after the crash, well within the safety-net sweep.
            self._aps.add_job(self.sweep, "interval", seconds=self._takeover_seconds, id=TAKEOVER_JOB)
        if self._reconcile is not None and self._reconcile_seconds > 0:
            self._aps.add_job(self._reconciled, "interval", seconds=self._reconcile_seconds, id=RECONCILE_JOB)
        log.info("expiry scheduler started (safety-net sweep every %gs)", self._sweep_seconds)

    def stop(self) -> None:
        """Stop, waiting for a sweep under way to finish."""
        if self._aps.running:
            self._aps.shutdown(wait=True)

    def jobs(self) -> dict[str, datetime | None]:
        """The APScheduler jobs and when each runs next: a fixed few, however many grants there are."""
        return {job.id: job.next_run_time for job in self._aps.get_jobs()}

    def nudge(self, when: datetime) -> None:
        """Make sure the scheduler wakes no later than `when`."""
        with self._arm_lock:
            if self._armed is not None and self._armed <= when and self._armed > utcnow():
                return
            self._armed = when
            if self._aps.running:
                self._aps.add_job(self.sweep, "date", run_date=when, id=WAKE_JOB, replace_existing=True)

    def sweep(self) -> None:
        """Process everything due; if asked again meanwhile, go round once more; then re-arm."""
        if not self._running.acquire(blocking=False):
            self._again.set()
            return
        try:
            while True:
                self._again.clear()
                started = time.monotonic()
                self._workflow.run_due()
                self._metrics.sweep_duration.observe(time.monotonic() - started)
                if not self._again.is_set():
                    break
        except Exception:
            log.exception("sweep failed; the next one will try again")
        finally:
            self._running.release()
        self._rearm()

    def _reconciled(self) -> None:
        assert self._reconcile is not None
        try:
            self._reconcile()
        except Exception:
            log.exception("reconcile failed; it runs again at its next interval")

    def _rearm(self) -> None:
        try:
            due = self._workflow.next_due_at()
        except Exception:
            log.exception("could not read the next due time")
            return
        with self._arm_lock:
            self._armed = None
        if due is not None:
            # Never arm in the past: a row still leased by another replica would spin the loop.
            self.nudge(max(due, utcnow() + timedelta(milliseconds=50)))
