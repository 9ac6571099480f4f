"""Role session denies still owed: each must be on its role with a cutoff at least the owed one.

A session whose role lets it write IAM policies could delete its own deny before the deny applies; reconcile
finds that, and puts the deny back (the scheduled check does it by itself, and alerts).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy.engine import Engine

from bot.aws.granters import Granter, RoleGranter, iso
from bot.catalog import Catalog, Kind
from bot.domain.audit import AuditAction
from bot.reconcile.report import Drift, Fix, Problem
from bot.store import queries
from bot.store.db import hold_locks, session_scope
from bot.workflow.base import SYSTEM, access_lock_key, grant_spec

DENY_THING = "session deny"


def missing_denies(engine: Engine, catalog: Catalog, granters: Mapping[Kind, Granter], now: datetime) -> list[Drift]:
    """Every owed deny that its role does not have (or has with an earlier cutoff), owed before and after the read."""
    role = granters.get(Kind.IAM_ROLE)
    if not isinstance(role, RoleGranter):
        return []
    with session_scope(engine) as session:
        first = queries.owed_denies(session=session, now=now)
    before = {r.id: r.sessions_denied_before for r in first}
    found = {target: role.denied(target) for target in sorted({r.target for r in first})}
    with session_scope(engine) as session:
        again = queries.owed_denies(session=session, now=now)
    after = [r for r in again if before.get(r.id) == r.sessions_denied_before]
    drift = []
    for row in after:
        owed = row.sessions_denied_before
        have = found.get(row.target, {}).get(row.iam_user)
        assert owed is not None
        if have is not None and have >= owed:
            continue
        what = "is gone" if have is None else f"ends at {iso(have)}"
        detail = (
            f"the deny of {row.iam_user}'s sessions issued before {iso(owed)} {what} from the role "
            f"(owed until {iso(row.sessions_denied_until or owed)})"
        )
        channel = row.approval_channel or catalog.defaults.approval_channel
        drift.append(
            Drift(Problem.MISSING, Kind.IAM_ROLE, row.iam_user, row.target, DENY_THING, row.id, detail, channel)
        )
    return drift


def restore(engine: Engine, catalog: Catalog, granters: Mapping[Kind, Granter], drift: Drift, now: datetime) -> Fix:
    """Put an owed deny back on its role, under the locks the workflow's steps on the request take."""
    role = granters[Kind.IAM_ROLE]
    assert isinstance(role, RoleGranter) and drift.request_id is not None
    keys = [f"request:{drift.request_id}", access_lock_key(Kind.IAM_ROLE.value, drift.user, drift.target)]
    with hold_locks(engine, keys, wait=True), session_scope(engine) as session:
        row = queries.lock_request(drift.request_id, session=session)
        if row is None or row.sessions_denied_before is None or not (row.sessions_denied_until or now) > now:
            return Fix(drift, "nothing to do: the deny is no longer owed", True)
        cutoff = role.deny(grant_spec(row, catalog, now), row.sessions_denied_before)
        queries.record_audit(
            session=session,
            actor=SYSTEM,
            action=AuditAction.SESSIONS_DENY_RESTORED,
            request_id=row.id,
            at=now,
            found=drift.detail,
            cutoff=cutoff,
        )
    return Fix(drift, "put back", True)
