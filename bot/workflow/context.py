"""What every service of the workflow shares: its dependencies, and the helpers they all use.

One small object handed to each service (requests, grants, sweep) instead of a class chain: the one
state-change function, loading and locking rows, the schedule, the locks around AWS steps.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.aws.granters import Granter, GrantSpec
from bot.aws.identity import IdentityResolver
from bot.catalog import Catalog, Kind
from bot.catalog.oncall import OnCall
from bot.clock import utcnow
from bot.domain.audit import transitioned_to
from bot.domain.lifecycle import FINAL, Status, transition
from bot.domain.oncall import OnCallDecision, OnCallReason
from bot.domain.schedule import Timeline, next_due
from bot.errors import UserError
from bot.metrics import Metrics
from bot.store import queries
from bot.store.db import hold_locks, session_scope
from bot.store.models import AccessRequest, Vote
from bot.workflow.base import (
    SHARED_STATE,
    Alert,
    Directory,
    Notifier,
    Tuning,
    _aws_times,
    access_lock_key,
    grant_spec,
    log,
)
from bot.workflow.claims import ClaimKeeper


class Context:
    """The workflow's dependencies and shared helpers; every service holds the same one."""

    def __init__(
        self,
        *,
        engine: Engine,
        catalog: Catalog,
        granters: Mapping[Kind, Granter],
        identity: IdentityResolver,
        notifier: Notifier,
        directory: Directory,
        owner: str,
        metrics: Metrics | None = None,
        clock: Callable[[], datetime] = utcnow,
        tuning: Tuning | None = None,
    ) -> None:
        self.engine = engine
        self.catalog = catalog
        self.granters = dict(granters)
        self.identity = identity
        self.notifier = notifier
        self.directory = directory
        self.owner = owner
        self.metrics = metrics or Metrics()
        self.clock = clock
        self.tuning = tuning or Tuning()
        self.claims = ClaimKeeper(engine, owner=owner, lease=self.tuning.lease, clock=clock)
        # Where "something is due at this moment" goes: the scheduler's wake-up, once it is connected.
        self.on_due: Callable[[datetime], None] = lambda _when: None
        # Who is on call (bot.oncall.checker), for `auto_approve: {on_call: ...}`; set by the composition root.
        self.on_call: Callable[[str, OnCall], OnCallDecision] = _no_on_call

    def move(
        self, session: Session, request: AccessRequest, target: Status, actor: str, now: datetime, **details: Any
    ) -> None:
        """The one place a request changes state; every change writes an audit event."""
        current = Status(request.status)
        request.status = transition(current, target).value
        request.updated_at = now
        self.metrics.transitions.labels(kind=request.kind, status=target.value).inc()
        if target in FINAL:
            self.metrics.requests.labels(kind=request.kind, status=target.value).inc()
        log.info(
            "request #%s: %s -> %s by %s",
            request.id,
            current.value,
            target.value,
            actor,
            extra={"request_id": request.id, "kind": request.kind, "resource": request.resource, "actor": actor},
        )
        queries.record_audit(
            session=session,
            actor=actor,
            action=transitioned_to(target),
            request_id=request.id,
            from_status=current,
            to_status=target,
            at=now,
            **details,
        )

    def timeline(self, row: AccessRequest) -> Timeline:
        """The row's times as the schedule reads them."""
        item = self.catalog.resource(row.resource)
        if item is None:  # removed from the catalog: still expire it, with no reminders
            return Timeline(
                status=Status(row.status),
                created_at=row.created_at,
                pending_timeout=timedelta(0),
                expires_at=row.expires_at,
                **_aws_times(row),
            )
        return Timeline(
            status=Status(row.status),
            created_at=row.created_at,
            pending_timeout=item.pending_timeout,
            remind_after=item.remind_after,
            max_reminders=item.max_reminders,
            reminders_sent=row.reminders_sent,
            reminded_at=row.reminded_at,
            escalate_at=row.created_at + item.escalate_after if item.escalate_to else None,
            expires_at=row.expires_at,
            activated_at=row.activated_at,
            warn_before=item.warn_before,
            warned=row.warned_at is not None,
            unacknowledged_break_glass=row.break_glass and row.acknowledged_at is None,
            **_aws_times(row),
        )

    def reschedule(self, row: AccessRequest) -> None:
        """Recompute when the row is next due and release this process's claim on it."""
        row.next_due_at = next_due(self.timeline(row))
        row.claimed_by = row.claimed_until = None

    def approvers(self, request: AccessRequest, *, at: datetime | None = None) -> frozenset[str]:
        """Who may decide the request now, or `at` (user groups expanded; escalation contacts once it escalated)."""
        if self.catalog.resource(request.resource) is None:
            return frozenset()
        escalated = self.timeline(request).escalate_at
        late = escalated is not None and (at or self.clock()) >= escalated
        return self.directory.expand(self.catalog.approvers_of(request.resource, escalated=late))

    def notified(self, request: AccessRequest, *, at: datetime | None = None) -> frozenset[str]:
        """Who the approval message and reminders mention: the resource's `notify` (user groups mentioned as
        groups), else its approvers as today."""
        item = self.catalog.resource(request.resource)
        if item is None or not item.notify:
            return self.approvers(request, at=at)
        escalated = self.timeline(request).escalate_at
        late = escalated is not None and (at or self.clock()) >= escalated
        return self.catalog.notified_of(request.resource, escalated=late)

    def spec(self, request: AccessRequest) -> GrantSpec:
        """What the granter needs for the request."""
        return grant_spec(request, self.catalog, self.clock())

    def guard(self, request: AccessRequest) -> AbstractContextManager[bool]:
        """Try to take the locks every AWS step on the request holds; False when another thread or replica has them.

        One lock per request makes its AWS steps (grant, extension, end) strictly one after the other, each on
        the state the one before left; one per user and target serialises requests that share AWS state (a
        group membership; a role's sessions). On PostgreSQL they free the moment a process dies.
        """
        keys = [f"request:{request.id}"]
        if Kind(request.kind) in SHARED_STATE:
            keys.append(access_lock_key(request.kind, request.iam_user, request.target))
        return hold_locks(self.engine, keys, wait=False)

    def load(self, request_id: int) -> AccessRequest:
        """The row, read without a lock; UserError when there is none."""
        with session_scope(self.engine) as session:
            row = queries.get_request(request_id, session=session)
        if row is None:
            raise UserError(f"Request #{request_id} does not exist.")
        return row

    def locked(self, request_id: int, session: Session) -> AccessRequest:
        """The row, locked until the session's transaction ends; UserError when there is none."""
        row = queries.lock_request(request_id, session=session)
        if row is None:
            raise UserError(f"Request #{request_id} does not exist.")
        return row

    def votes(self, request: AccessRequest, session: Session) -> list[Vote]:
        """The votes of the decision open now (the request's, or its extension's)."""
        assert request.id is not None
        return queries.open_votes(request, session=session)

    def audit_channel(self, request: AccessRequest) -> str | None:
        """The resource's audit channel, if it has one."""
        item = self.catalog.resource(request.resource)
        return item.audit_channel if item is not None else self.catalog.defaults.audit_channel

    def to_audit_channel(
        self, request: AccessRequest, event: str, note: str | None = None, *, session: Session | None = None
    ) -> None:
        """Post to the resource's audit channel, if it has one (owed in `session`'s transaction when given)."""
        channel = self.audit_channel(request)
        if channel:
            self.notifier.audit_post(channel, request, event, note, session=session)

    def alert(self, request: AccessRequest, alert: Alert, *, attempts: int, error: str, session: Session) -> None:
        """Raise an alert in the approval channel and the audit channel, owed in `session`'s transaction."""
        self.notifier.alert(
            request, alert, attempts=attempts, error=error, audit_channel=self.audit_channel(request), session=session
        )

    def claim_now(self, request: AccessRequest, now: datetime) -> None:
        """Work is owed from now on; this process holds the claim and does it next (or the sweep, after a crash)."""
        request.next_due_at = now
        # A token of its own, so that only this decision's follow-up (or, after a crash, the sweep) acts on it.
        request.claimed_by, request.claimed_until = (
            f"{self.owner}#{secrets.token_hex(4)}",
            now + self.tuning.lease,
        )

    def notify_due(self, row: AccessRequest) -> None:
        """Make sure the scheduler wakes for the row's next due time."""
        if row.next_due_at is not None:
            self.on_due(row.next_due_at)


def _no_on_call(_user: str, _on_call: OnCall) -> OnCallDecision:
    return OnCallDecision(OnCallReason.NOT_CONFIGURED, "on-call could not be checked: no on-call lookup configured")
