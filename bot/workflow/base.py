"""What every use case shares: collaborators, the one state-change function, loading and locking."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.aws.granters import Granter, GrantSpec
from bot.aws.identity import IdentityResolver
from bot.catalog import Catalog, KeyResource, Kind
from bot.clock import utcnow
from bot.domain.audit import transitioned_to
from bot.domain.lifecycle import FINAL, Status, transition
from bot.domain.schedule import Timeline, next_due
from bot.errors import UserError
from bot.metrics import Metrics
from bot.store import queries
from bot.store.db import hold_locks, session_scope
from bot.store.models import AccessRequest, Vote
from bot.workflow.claims import ClaimKeeper

log = logging.getLogger("bot.workflow")

SYSTEM = "accessbot"
# Kinds whose AWS state several requests of one user can share: a group membership, a role's sessions.
SHARED_STATE = frozenset({Kind.IAM_GROUP, Kind.IAM_ROLE})
# Actors who act through the operator CLI, not Slack: `cli:<login>`.
OPERATOR_PREFIX = "cli:"


class Notifier(Protocol):
    """Tells people what happened; failing to tell never undoes what happened."""

    def request_filed(self, request: AccessRequest, votes: list[Vote]) -> tuple[str, str] | None:
        """Post the approval message; return (channel, ts) to update it later."""
        ...

    def request_changed(self, request: AccessRequest, votes: list[Vote]) -> None:
        """Update the approval message in place."""
        ...

    def tell_requester(self, request: AccessRequest, event: str, note: str | None = None) -> None:
        """DM the requester about a step in their request's life (with an operator's note, if any)."""
        ...

    def in_thread(self, request: AccessRequest, text: str) -> None:
        """Post under the approval message (reminders, notices)."""
        ...

    def alert(self, request: AccessRequest, text: str) -> None:
        """Raise an alert about a request in its approval channel."""
        ...

    def audit_post(self, channel: str, request: AccessRequest, event: str, note: str | None = None) -> None:
        """Post one line about a grant, end, denial, break-glass or alert to an audit channel."""
        ...


class Directory(Protocol):
    """Slack's view of people: user-group members."""

    def expand(self, ids: frozenset[str]) -> frozenset[str]:
        """User IDs, with user-group IDs replaced by their members."""
        ...


@dataclass(frozen=True)
class Tuning:
    """Timings the tests and benchmarks may shorten."""

    lease: timedelta = timedelta(seconds=8)
    retry_base: timedelta = timedelta(seconds=5)
    batch: int = 20
    sweep_threads: int = 4
    alert_after: int = 3
    # How soon to look again at a row whose AWS work another thread or replica is doing right now.
    busy_retry: timedelta = timedelta(seconds=1)


def grant_spec(request: AccessRequest, catalog: Catalog, now: datetime) -> GrantSpec:
    """What a granter needs to apply or remove a request's access (`now` stands in for a missing expiry)."""
    item = catalog.resource(request.resource)
    assert request.id is not None
    return GrantSpec(
        request_id=request.id,
        iam_user=request.iam_user,
        iam_user_arn=request.iam_user_arn,
        target=request.target,
        expires_at=request.expires_at or now,
        require_mfa=bool(item and item.require_mfa),
        operations=item.operations if isinstance(item, KeyResource) else (),
        target_arn=request.target_arn,
    )


def _aws_times(row: AccessRequest) -> dict[str, Any]:
    """The row's AWS work, as the schedule reads it."""
    return {
        "approved_at": row.decided_at,
        "grant_started": row.grant_started_at is not None,
        "ended": row.ended_at is not None,
        "end_owed_since": row.end_requested_at or row.revoke_started_at,
        "extension_approved_at": row.extension_approved_at,
        "lift_at": row.sessions_denied_until,
        "retry_at": row.retry_at,
    }


def access_lock_key(kind: str, iam_user: str, target: str) -> str:
    """The name of the lock that serialises every change to one user's access to one target."""
    return f"{kind}:{iam_user}:{target}"


class Base:
    """Collaborators and helpers shared by the request, grant and sweep flows."""

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
        self._granters = granters
        self._identity = identity
        self._notifier = notifier
        self._directory = directory
        self.owner = owner
        self.on_due: Callable[[datetime], None] = lambda _when: None
        self._metrics = metrics or Metrics()
        self._clock = clock
        self._tuning = tuning or Tuning()
        self._claims = ClaimKeeper(engine, owner=owner, lease=self._tuning.lease, clock=clock)

    @property
    def lease_seconds(self) -> float:
        """How long a claim lasts unless renewed."""
        return self._tuning.lease.total_seconds()

    def close(self) -> None:
        """Stop the claim heartbeat (the process is stopping)."""
        self._claims.stop()

    def _move(
        self, session: Session, request: AccessRequest, target: Status, actor: str, now: datetime, **details: Any
    ) -> None:
        """The one place a request changes state; every change writes an audit event."""
        current = Status(request.status)
        request.status = transition(current, target).value
        request.updated_at = now
        self._metrics.transitions.labels(kind=request.kind, status=target.value).inc()
        if target in FINAL:
            self._metrics.requests.labels(kind=request.kind, status=target.value).inc()
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

    def _timeline(self, row: AccessRequest) -> Timeline:
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

    def _reschedule(self, row: AccessRequest) -> None:
        """Recompute when the row is next due and release this process's claim on it."""
        row.next_due_at = next_due(self._timeline(row))
        row.claimed_by = row.claimed_until = None

    def _approvers(self, request: AccessRequest) -> frozenset[str]:
        if self.catalog.resource(request.resource) is None:
            return frozenset()
        escalated = self._timeline(request).escalate_at
        late = escalated is not None and self._clock() >= escalated
        return self._directory.expand(self.catalog.approvers_of(request.resource, escalated=late))

    def _spec(self, request: AccessRequest) -> GrantSpec:
        return grant_spec(request, self.catalog, self._clock())

    def _guard(self, request: AccessRequest) -> AbstractContextManager[bool]:
        """Try to take the locks every AWS step on the request holds; False when another thread or replica has them.

        One lock per request makes its AWS steps (grant, extension, end) strictly one after the other, each on
        the state the one before left; one per user and target serialises requests that share AWS state (a
        group membership; a role's sessions). On PostgreSQL they free the moment a process dies.
        """
        keys = [f"request:{request.id}"]
        if Kind(request.kind) in SHARED_STATE:
            keys.append(access_lock_key(request.kind, request.iam_user, request.target))
        return hold_locks(self.engine, keys, wait=False)

    def _load(self, request_id: int) -> AccessRequest:
        with session_scope(self.engine) as session:
            row = queries.get_request(request_id, session=session)
        if row is None:
            raise UserError(f"Request #{request_id} does not exist.")
        return row

    def _locked(self, request_id: int, session: Session) -> AccessRequest:
        row = queries.lock_request(request_id, session=session)
        if row is None:
            raise UserError(f"Request #{request_id} does not exist.")
        return row

    def _votes(self, request: AccessRequest, session: Session) -> list[Vote]:
        assert request.id is not None
        return [v for v in queries.votes_for(request.id, session=session) if v.round == request.extension_round]

    def _to_audit_channel(self, request: AccessRequest, event: str, note: str | None = None) -> None:
        """Post to the resource's audit channel, if it has one; call only after the transaction committed."""
        item = self.catalog.resource(request.resource)
        channel = item.audit_channel if item is not None else self.catalog.defaults.audit_channel
        if channel:
            self._notifier.audit_post(channel, request, event, note)

    def _notify_due(self, row: AccessRequest) -> None:
        if row.next_due_at is not None:
            self.on_due(row.next_due_at)
