"""`accessbot reconcile --fix`: re-apply missing grants and remove orphans, each audited.

Every repair takes the locks the workflow's AWS steps take on the same request and access, and re-checks
the row under them first: reconcile never re-applies a grant that has just ended, nor removes one that
has just been granted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Engine

from bot.aws import inventory
from bot.aws.errors import AwsError
from bot.aws.granters import Granter, GrantSpec
from bot.catalog import Catalog, Kind
from bot.domain.audit import AuditAction
from bot.reconcile.denies import DENY_THING, restore
from bot.reconcile.report import Drift, Fix, Problem, Report
from bot.reconcile.snapshot import owed
from bot.store import queries
from bot.store.db import hold_locks, session_scope
from bot.store.models import AccessRequest
from bot.workflow.base import SHARED_STATE, SYSTEM, access_lock_key, grant_spec

log = logging.getLogger(__name__)


class Repairer:
    """Repairs the drift a check found, under the same locks as the workflow."""

    def __init__(
        self,
        *,
        engine: Engine,
        catalog: Catalog,
        granters: Mapping[Kind, Granter],
        kms: Any,
        clock: Callable[[], datetime],
    ) -> None:
        self._engine = engine
        self._catalog = catalog
        self._granters = granters
        self._kms = kms
        self._clock = clock

    def fix(self, report: Report) -> Report:
        """Re-apply missing grants and remove orphans; audit each repair."""
        fixes = []
        for drift in report.drift:
            if drift.problem is Problem.FOREIGN:
                fixes.append(Fix(drift, "left alone: not the bot's", True))
                continue
            try:
                if drift.thing == DENY_THING:
                    fixes.append(restore(self._engine, self._catalog, self._granters, drift, self._clock()))
                    continue
                fixes.append(self._reapply(drift) if drift.problem is Problem.MISSING else self._remove(drift))
            except AwsError as exc:
                log.warning("reconcile could not repair %s: %s", drift.line, exc)
                fixes.append(Fix(drift, f"failed: {exc}", False))
        return replace(report, fixes=tuple(fixes))

    def _locks(self, drift: Drift) -> AbstractContextManager[bool]:
        """The locks the workflow's AWS steps on the same request and access hold (see Base._guard)."""
        keys = [f"request:{drift.request_id}"] if drift.request_id else []
        if drift.kind in SHARED_STATE and drift.target != "-":
            keys.append(access_lock_key(drift.kind.value, drift.user, drift.target))
        return hold_locks(self._engine, keys, wait=True)

    def _reapply(self, drift: Drift) -> Fix:
        assert drift.request_id is not None
        with self._locks(drift), session_scope(self._engine) as session:
            row = queries.lock_request(drift.request_id, session=session)
            now = self._clock()
            if row is None or not owed(row, now):
                return Fix(drift, "nothing to do: the grant ended meanwhile", True)
            # The AWS call runs under the row lock on purpose: the sweep cannot start revoking meanwhile,
            # so a grant that ends during the repair is never put back after its revoke.
            grant_ref = self._granters[drift.kind].grant(grant_spec(row, self._catalog, now))
            if grant_ref is not None:
                row.grant_ref = grant_ref
            queries.record_audit(
                session=session,
                actor=SYSTEM,
                action=AuditAction.GRANT_REAPPLIED,
                request_id=row.id,
                at=now,
                found=drift.detail,
                grant_ref=grant_ref,
            )
        return Fix(drift, "re-applied", True)

    def _remove(self, drift: Drift) -> Fix:
        request_id = drift.request_id or 0
        with self._locks(drift), session_scope(self._engine) as session:
            row = queries.lock_request(request_id, session=session) if request_id else None
            now = self._clock()
            if drift.kind in (Kind.IAM_GROUP, Kind.SSO_PERMISSION_SET, Kind.SSO_GROUP):
                if queries.holders_of(drift.kind.value, drift.user, drift.target, session=session):
                    return Fix(drift, "nothing to do: an active grant holds it now", True)
            elif row is not None and _holds(row, drift):
                return Fix(drift, f"nothing to do: request #{request_id} holds it now", True)
            if drift.kind is Kind.KMS_KEY:
                # Only the grant found: another grant of the same name may be a live request's own.
                inventory.revoke_key_grant(self._kms, drift.target, drift.grant_id)
            else:
                spec = GrantSpec(
                    request_id,
                    iam_user=drift.user,
                    iam_user_arn=drift.principal_id,
                    target=drift.target,
                    expires_at=now,
                )
                self._granters[drift.kind].revoke(spec, None)
            queries.record_audit(
                session=session,
                actor=SYSTEM,
                action=AuditAction.ORPHAN_REMOVED,
                request_id=row.id if row else None,
                at=now,
                kind=drift.kind.value,
                user=drift.user,
                target=drift.target,
                name=drift.thing,
                found=drift.detail,
            )
        return Fix(drift, "removed", True)


def _holds(row: AccessRequest, drift: Drift) -> bool:
    """Whether the row accounts for the AWS object of an orphan drift (granted meanwhile)."""
    return queries.holds(row) and row.kind == drift.kind.value and row.iam_user == drift.user
