"""The Reconciler: a check (read both sides, compare), its repair, and the scheduled check that alerts."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy.engine import Engine

from bot.aws.granters import Granter
from bot.catalog import Catalog, Kind
from bot.clock import utcnow
from bot.domain.audit import AuditAction
from bot.reconcile import snapshot
from bot.reconcile.denies import DENY_THING, missing_denies
from bot.reconcile.drift import compare
from bot.reconcile.repair import Repairer
from bot.reconcile.report import MAX_ALERT_LINES, Report, alerts
from bot.store import queries
from bot.store.db import hold_lock, session_scope
from bot.workflow.base import SYSTEM

log = logging.getLogger(__name__)
RUN_ACTION = AuditAction.RECONCILE


class Alerter(Protocol):
    """Posts an alert to a Slack channel."""

    def channel_alert(self, channel: str, text: str) -> None:
        """Post `text` in `channel`."""
        ...


class Reconciler:
    """Finds and repairs drift between the requests table and AWS."""

    def __init__(
        self,
        *,
        engine: Engine,
        catalog: Catalog,
        granters: Mapping[Kind, Granter],
        iam: Any,
        kms: Any,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.engine = engine
        self.catalog = catalog
        self._iam = iam
        self._kms = kms
        self._clock = clock
        self._granters = granters
        self._repairer = Repairer(engine=engine, catalog=catalog, granters=granters, kms=kms, clock=clock)

    def check(self) -> Report:
        """Compare every active grant with AWS, and everything the bot made in AWS with the database."""
        database, aws = snapshot.take(
            self.engine, self.catalog, iam=self._iam, kms=self._kms, now=self._clock(), granters=self._granters
        )
        denies = missing_denies(self.engine, self.catalog, self._granters, self._clock())
        return Report(checked=len(database.owed), drift=tuple(compare(database, aws, self.catalog) + denies))

    def fix(self, report: Report) -> Report:
        """Re-apply missing grants and remove orphans; audit each repair."""
        return self._repairer.fix(report)

    def scheduled(self, alerter: Alerter, *, interval: float) -> Report | None:
        """The scheduler's periodic check: one replica per interval runs it and alerts on drift."""
        now = self._clock()
        with hold_lock(self.engine, RUN_ACTION), session_scope(self.engine) as session:
            last = queries.last_audit_at(RUN_ACTION, session=session)
            if last is not None and now - last < timedelta(seconds=interval * 0.9):
                return None  # another replica ran it recently
            queries.record_audit(session=session, actor=SYSTEM, action=RUN_ACTION, at=now)
        report = self.check()
        if not report.unresolved:
            return report
        # An owed session deny gone from its role is put back at once: sessions it covers may be live.
        denies = replace(report, drift=tuple(d for d in report.drift if d.thing == DENY_THING))
        if denies.drift:
            restored = self.fix(denies).fixes
            log.warning("reconcile put back %d session deny(s)", sum(f.done for f in restored))
        log.warning("reconcile found %d drift(s) between the database and AWS", report.unresolved)
        with session_scope(self.engine) as session:
            queries.record_audit(
                session=session, actor=SYSTEM, action=AuditAction.DRIFT_FOUND, at=self._clock(),
                drift=[d.line for d in report.drift[:MAX_ALERT_LINES]], count=len(report.drift),
            )  # fmt: skip
        for channel, text in alerts(report, self.catalog).items():
            alerter.channel_alert(channel, text)
        return report
