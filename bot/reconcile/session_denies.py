"""Identity Center session denies still owed: put back one that disappeared (an IaC apply reverted the policy).

The permission set's inline policy is often Terraform's too: an apply that does not ignore it removes the
bot's statements, and the person's sessions from before the end work again. For as long as a deny is owed
(until its lift), reconcile checks it is there and writes and provisions it again when it is not.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime

from sqlalchemy.engine import Engine

from bot.aws.errors import AwsError
from bot.aws.granters import Granter, PermissionSetGranter, SsoGroupGranter
from bot.catalog import Catalog, Kind
from bot.domain.audit import AuditAction
from bot.store import queries
from bot.store.db import hold_lock, session_scope
from bot.workflow.base import SYSTEM, grant_spec

log = logging.getLogger(__name__)


def restore(engine: Engine, catalog: Catalog, granters: Mapping[Kind, Granter], now: datetime) -> list[int]:
    """Put back every owed Identity Center session deny AWS no longer holds; the requests whose deny was put back."""
    with session_scope(engine) as session:
        owed = queries.session_denies_owed(now, session=session)
    restored: list[int] = []
    for row in owed:
        assert row.id is not None and row.sessions_denied_until is not None
        granter = granters.get(Kind(row.kind))
        if not isinstance(granter, PermissionSetGranter | SsoGroupGranter):
            continue
        # Under the request's lock, so that the lift (the same lock) never runs between the check and the write.
        with hold_lock(engine, f"request:{row.id}"), session_scope(engine) as session:
            current = queries.lock_request(row.id, session=session)
            if current is None or current.sessions_denied_until is None or current.sessions_denied_until <= now:
                continue
            if queries.others_may_hold(current, session=session):
                continue  # a later grant of the same set lifted it on purpose; its own end will deny again
            try:
                put_back = granter.restore(grant_spec(current, catalog, now), current.sessions_denied_until)
            except AwsError as exc:
                log.warning("could not put back the session deny of #%s: %s", row.id, exc)
                continue
            if put_back:
                restored.append(row.id)
                queries.record_audit(
                    session=session, actor=SYSTEM, action=AuditAction.ALERT, request_id=row.id, at=now,
                    error="the session deny had disappeared from the permission set's inline policy; put back",
                )  # fmt: skip
                log.warning("put back the session deny of #%s", row.id, extra={"request_id": row.id})
    return restored
