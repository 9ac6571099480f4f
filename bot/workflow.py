"""The use cases: submit, decide, activate, end, and the sweep that finds what is owed."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.aws.errors import AwsError
from bot.aws.granters import Granter, GrantSpec
from bot.aws.identity import IdentityResolver
from bot.catalog import Catalog, KeyResource, Kind
from bot.clock import utcnow
from bot.domain import policy
from bot.domain.lifecycle import Status, transition
from bot.domain.schedule import next_due, retry_delay
from bot.durations import DurationError, format_duration, parse_duration
from bot.errors import UserError
from bot.metrics import Metrics
from bot.store import queries
from bot.store.db import hold_lock, session_scope
from bot.store.models import AccessRequest, Vote

log = logging.getLogger(__name__)

MAX_REASON = 500
LEASE = timedelta(seconds=60)
ALERT_AFTER = 3
SYSTEM = "accessbot"


class Notifier(Protocol):
    """Tells people what happened; failures to tell never undo what happened."""

    def request_filed(self, request: AccessRequest, approvers: frozenset[str]) -> tuple[str, str] | None:
        """Post the approval message; return (channel, ts) to update it later."""
        ...

    def request_changed(self, request: AccessRequest, votes: list[Vote]) -> None:
        """Update the approval message in place."""
        ...

    def tell_requester(self, request: AccessRequest, event: str) -> None:
        """DM the requester about a step in their request's life."""
        ...

    def alert(self, request: AccessRequest, text: str) -> None:
        """Raise an alert about a request in its approval channel."""
        ...


class Directory(Protocol):
    """Slack's view of people: profile emails and user-group members."""

    def expand(self, ids: frozenset[str]) -> frozenset[str]:
        """User IDs, with user-group IDs replaced by their members."""
        ...


@dataclass(frozen=True)
class Tuning:
    """Timings the tests and benchmarks may shorten."""

    lease: timedelta = LEASE
    retry_base: timedelta = timedelta(seconds=5)
    batch: int = 100


class Workflow:
    """Every use case, each as short transactions around the AWS and Slack calls."""

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

    # -- filing and deciding -------------------------------------------------------------------

    def submit(self, *, requester: str, resource: str, duration: str | None, reason: str) -> AccessRequest:
        """Validate and store a new pending request; raise UserError for any bad input."""
        item = self.catalog.resource(resource)
        if item is None:
            raise UserError(f"Unknown resource '{_short(resource)}'. {self._available()}")
        try:
            wanted = parse_duration(duration) if duration else item.default_duration
        except DurationError as exc:
            raise UserError(f"{exc}.") from None
        if not item.min_duration <= wanted <= item.max_duration:
            raise UserError(
                f"{resource} can be granted for {format_duration(item.min_duration)} to "
                f"{format_duration(item.max_duration)}; you asked for {format_duration(wanted)}."
            )
        reason = " ".join(reason.split())
        if not reason:
            raise UserError("Say why you need access: /access request <resource> <duration> <reason>.")
        if len(reason) > MAX_REASON:
            raise UserError(f"The reason is {len(reason)} characters long; keep it under {MAX_REASON}.")
        user = self._identity.resolve(requester)
        if item.require_mfa and not self._identity.has_mfa(user):
            raise UserError(
                f"{resource} requires MFA, and your IAM user '{user.name}' has no MFA device. "
                "Register one (IAM console -> Security credentials -> Assign MFA device), then ask again."
            )
        now = self._clock()
        with session_scope(self.engine) as session:
            request = AccessRequest(
                requester_id=requester,
                resource=resource,
                kind=item.kind.value,
                target=item.target,
                iam_user=user.name,
                iam_user_arn=user.arn,
                duration_seconds=int(wanted.total_seconds()),
                reason=reason,
                status=Status.PENDING.value,
                approvals_required=item.approvals_required,
                approval_channel=item.approval_channel,
                created_at=now,
                updated_at=now,
                next_due_at=now + item.pending_timeout,
            )
            session.add(request)
            session.flush()
            queries.record_audit(
                session=session,
                actor=requester,
                action="submitted",
                request_id=request.id,
                to_status=Status.PENDING,
                at=now,
                resource=resource,
                duration=format_duration(wanted),
                reason=reason,
                iam_user=user.name,
            )
        self.on_due(now + item.pending_timeout)
        return request

    def announce(self, request_id: int) -> None:
        """Post the approval message for a new request and tell the requester it is filed."""
        request = self._load(request_id)
        where = self._notifier.request_filed(request, self.catalog.approvers_of(request.resource))
        if where is not None:
            with session_scope(self.engine) as session:
                row = queries.lock_request(request_id, session=session)
                assert row is not None
                row.approval_channel, row.approval_ts = where
            request.approval_channel, request.approval_ts = where
        self._notifier.tell_requester(request, "filed")

    def decide(self, *, request_id: int, actor: str, approve: bool, comment: str | None = None) -> AccessRequest:
        """Record an approver's vote (one short transaction); deny ends the request, a quorum approves it."""
        now = self._clock()
        with session_scope(self.engine) as session:
            request = self._locked(request_id, session)
            item = self.catalog.resource(request.resource)
            approvers = self._directory.expand(self.catalog.approvers_of(request.resource)) if item else frozenset()
            votes = list(queries.votes_for(request_id, session=session))
            decision = policy.may_decide(
                actor=actor,
                requester=request.requester_id,
                approvers=approvers,
                allow_self_approval=bool(item and item.allow_self_approval),
                status=Status(request.status),
                voted={v.approver_id for v in votes},
            )
            if not decision.allowed:
                raise UserError(_refusal(decision, request, actor))
            vote = Vote(request_id=request_id, approver_id=actor, approve=approve, comment=comment, created_at=now)
            session.add(vote)
            votes.append(vote)
            approved_by = [v.approver_id for v in votes if v.approve]
            if not approve:
                self._move(session, request, Status.DENIED, actor, now, comment=comment)
                request.decided_by, request.decided_at, request.deny_reason = actor, now, comment
                request.next_due_at = None
            elif policy.quorum_reached(approved_by, request.approvals_required):
                self._move(session, request, Status.APPROVED, actor, now, approvers=approved_by)
                request.decided_by, request.decided_at = ", ".join(approved_by), now
                # Activation is owed from now on; this process holds the claim and does it next.
                request.next_due_at = now
                request.claimed_by, request.claimed_until = self.owner, now + self._tuning.lease
            else:
                queries.record_audit(
                    session=session,
                    actor=actor,
                    action="approval_vote",
                    request_id=request_id,
                    at=now,
                    approvals=len(approved_by),
                    required=request.approvals_required,
                )
        return request

    def after_decision(self, request_id: int) -> None:
        """Update the approval message, tell the requester, and grant when approved (off the request thread)."""
        with session_scope(self.engine) as session:
            request = self._locked(request_id, session)
            votes = list(queries.votes_for(request_id, session=session))
        self._notifier.request_changed(request, votes)
        if request.status == Status.DENIED:
            self._notifier.tell_requester(request, "denied")
        elif request.status == Status.APPROVED:
            self._notifier.tell_requester(request, "approved")
            self.activate(request_id)

    # -- AWS: granting and revoking ------------------------------------------------------------

    def activate(self, request_id: int) -> None:
        """Apply an approved request's grant in AWS, then mark it active (or failed)."""
        request = self._load(request_id)
        if request.status != Status.APPROVED:
            return
        item = self.catalog.resource(request.resource)
        granter = self._granters[Kind(request.kind)]
        spec = self._spec(request)
        try:
            with self._exclusive(request, granter):
                if request.grant_started_at is None:
                    if item is None:
                        raise AwsError(f"{request.resource} is no longer in the catalog", operation="catalog")
                    self._refuse_if_held_elsewhere(request, granter, spec)
                    spec = self._record_grant_intent(request_id, spec)
                try:
                    grant_ref = granter.grant(spec)
                except AwsError:
                    self._undo(request, granter, spec)
                    raise
        except AwsError as exc:
            self._fail(request_id, exc)
            return
        now = self._clock()
        with session_scope(self.engine) as session:
            row = self._locked(request_id, session)
            self._move(session, row, Status.ACTIVE, SYSTEM, now, expires_at=row.expires_at, grant_ref=grant_ref)
            row.grant_ref, row.activated_at = grant_ref, now
            row.claimed_by = row.claimed_until = None
            row.next_due_at = self._next_due(row)
        self._notifier.tell_requester(row, "active")
        if row.next_due_at is not None:
            self.on_due(row.next_due_at)

    def end(self, request_id: int) -> None:
        """Remove an active grant from AWS, then mark it expired or revoked; retry later on failure."""
        request = self._load(request_id)
        if request.status != Status.ACTIVE:
            return
        now = self._clock()
        end_status = Status(request.end_status or Status.EXPIRED)
        if request.revoke_started_at is None:
            with session_scope(self.engine) as session:
                row = self._locked(request_id, session)
                row.revoke_started_at, row.end_status = now, end_status.value
            request = row
        granter = self._granters[Kind(request.kind)]
        try:
            with self._exclusive(request, granter):
                if not self._shared_elsewhere(request, granter):
                    granter.revoke(self._spec(request), request.grant_ref)
        except AwsError as exc:
            self._revoke_failed(request_id, exc)
            return
        with session_scope(self.engine) as session:
            row = self._locked(request_id, session)
            self._move(session, row, end_status, row.ended_by or SYSTEM, now, attempts=row.attempts)
            row.ended_at, row.next_due_at = now, None
            row.claimed_by = row.claimed_until = None
        if end_status is Status.EXPIRED and row.expires_at is not None:
            self._metrics.revoke_lag.observe(max(0.0, (self._clock() - row.expires_at).total_seconds()))
        self._notifier.tell_requester(row, "ended")

    # -- the sweep -----------------------------------------------------------------------------

    def run_due(self) -> int:
        """Claim and process everything due now; return how many rows were handled."""
        handled = 0
        while True:
            now = self._clock()
            with session_scope(self.engine) as session:
                ids = queries.claim_due(
                    session=session,
                    now=now,
                    owner=self.owner,
                    lease=self._tuning.lease,
                    limit=self._tuning.batch,
                )
            for request_id in ids:
                self._process(request_id)
            handled += len(ids)
            if len(ids) < self._tuning.batch:
                return handled

    def next_due_at(self) -> datetime | None:
        """The earliest moment anything is owed."""
        with session_scope(self.engine) as session:
            return queries.next_due_at(session=session, now=self._clock())

    def _process(self, request_id: int) -> None:
        try:
            request = self._load(request_id)
            status = Status(request.status)
            now = self._clock()
            if status is Status.APPROVED:
                self.activate(request_id)
            elif status is Status.ACTIVE:
                if request.revoke_started_at or (request.expires_at and request.expires_at <= now):
                    self.end(request_id)
                else:
                    self._warn(request_id)
            elif status is Status.PENDING:
                self._time_out(request_id)
            else:
                self._release(request_id, None)
        except Exception:
            # The scheduler's error boundary: the claim's lease runs out and the row is tried again.
            log.exception("processing request failed", extra={"request_id": request_id})

    def _time_out(self, request_id: int) -> None:
        now = self._clock()
        with session_scope(self.engine) as session:
            row = self._locked(request_id, session)
            if row.next_due_at is None or row.next_due_at > now:
                row.claimed_by = row.claimed_until = None
                return
            self._move(session, row, Status.TIMED_OUT, SYSTEM, now)
            row.next_due_at = row.claimed_by = row.claimed_until = None
            votes = list(queries.votes_for(request_id, session=session))
        self._notifier.request_changed(row, votes)
        self._notifier.tell_requester(row, "timed_out")

    def _warn(self, request_id: int) -> None:
        with session_scope(self.engine) as session:
            row = self._locked(request_id, session)
            row.warned_at = self._clock()
            row.claimed_by = row.claimed_until = None
            row.next_due_at = self._next_due(row)
        self._notifier.tell_requester(row, "expiring")
        if row.next_due_at is not None:
            self.on_due(row.next_due_at)

    # -- helpers -------------------------------------------------------------------------------

    def _move(
        self,
        session: Session,
        request: AccessRequest,
        target: Status,
        actor: str,
        now: datetime,
        **details: Any,
    ) -> None:
        """The one place a request changes state; every change writes an audit event."""
        current = Status(request.status)
        request.status = transition(current, target).value
        request.updated_at = now
        self._metrics.transitions.labels(kind=request.kind, status=target.value).inc()
        queries.record_audit(
            session=session,
            actor=actor,
            action=target.value,
            request_id=request.id,
            from_status=current,
            to_status=target,
            at=now,
            **details,
        )

    def _refuse_if_held_elsewhere(self, request: AccessRequest, granter: Granter, spec: GrantSpec) -> None:
        if not granter.shared:
            return
        with session_scope(self.engine) as session:
            ours = queries.other_holders(request, session=session)
        if not ours and granter.holds(spec):
            raise AwsError(
                f"{request.iam_user} is already a member of {request.target} by other means, so nothing "
                "was granted (and the bot will never remove membership it did not add)",
                operation="iam:ListGroupsForUser",
                code="AlreadyHeld",
            )

    def _record_grant_intent(self, request_id: int, spec: GrantSpec) -> GrantSpec:
        now = self._clock()
        with session_scope(self.engine) as session:
            row = self._locked(request_id, session)
            row.grant_started_at = now
            row.expires_at = now + timedelta(seconds=row.duration_seconds)
            queries.record_audit(
                session=session,
                actor=SYSTEM,
                action="grant_started",
                request_id=request_id,
                at=now,
                expires_at=row.expires_at,
            )
        return replace(spec, expires_at=row.expires_at)

    def _undo(self, request: AccessRequest, granter: Granter, spec: GrantSpec) -> None:
        """After a failed grant, remove whatever part of it AWS may have applied."""
        try:
            if not self._shared_elsewhere(request, granter):
                granter.revoke(spec, None)
        except AwsError:
            log.warning("undo after a failed grant failed too", extra={"request_id": request.id})

    def _shared_elsewhere(self, request: AccessRequest, granter: Granter) -> bool:
        if not granter.shared:
            return False
        with session_scope(self.engine) as session:
            return queries.other_holders(request, session=session) > 0

    def _fail(self, request_id: int, error: AwsError) -> None:
        now = self._clock()
        with session_scope(self.engine) as session:
            row = self._locked(request_id, session)
            self._move(session, row, Status.FAILED, SYSTEM, now, error=str(error), operation=error.operation)
            row.last_error = str(error)[:2000]
            row.next_due_at = row.claimed_by = row.claimed_until = None
            votes = list(queries.votes_for(request_id, session=session))
        log.warning("grant failed: %s", error, extra={"request_id": request_id})
        self._notifier.request_changed(row, votes)
        self._notifier.tell_requester(row, "failed")

    def _revoke_failed(self, request_id: int, error: AwsError) -> None:
        now = self._clock()
        with session_scope(self.engine) as session:
            row = self._locked(request_id, session)
            row.attempts += 1
            row.last_error = str(error)[:2000]
            row.next_due_at = now + retry_delay(row.attempts, self._tuning.retry_base)
            row.claimed_by = row.claimed_until = None
            queries.record_audit(
                session=session,
                actor=SYSTEM,
                action="revoke_failed",
                request_id=request_id,
                at=now,
                attempts=row.attempts,
                error=str(error),
            )
            alert = row.attempts == ALERT_AFTER
            if alert:
                queries.record_audit(
                    session=session, actor=SYSTEM, action="alert", request_id=request_id, at=now, error=str(error)
                )
        if alert:
            log.error(
                "revoke keeps failing (%d attempts): %s",
                row.attempts,
                error,
                extra={"request_id": request_id},
            )
            self._notifier.alert(row, f"Revoking #{request_id} failed {row.attempts} times: {error}")
        else:
            log.warning("revoke failed, will retry: %s", error, extra={"request_id": request_id})
        self.on_due(row.next_due_at)

    def _release(self, request_id: int, due: datetime | None) -> None:
        with session_scope(self.engine) as session:
            row = self._locked(request_id, session)
            row.claimed_by = row.claimed_until = None
            row.next_due_at = due

    def _next_due(self, row: AccessRequest) -> datetime | None:
        item = self.catalog.resource(row.resource)
        return next_due(
            status=Status(row.status),
            created_at=row.created_at,
            pending_timeout=item.pending_timeout if item else timedelta(0),
            expires_at=row.expires_at,
            warn_before=item.warn_before if item else timedelta(0),
            warned=row.warned_at is not None,
            activated_at=row.activated_at,
        )

    def _spec(self, request: AccessRequest) -> GrantSpec:
        item = self.catalog.resource(request.resource)
        assert request.id is not None
        return GrantSpec(
            request_id=request.id,
            iam_user=request.iam_user,
            iam_user_arn=request.iam_user_arn,
            target=request.target,
            expires_at=request.expires_at or self._clock(),
            require_mfa=bool(item and item.require_mfa),
            operations=item.operations if isinstance(item, KeyResource) else (),
        )

    def _exclusive(self, request: AccessRequest, granter: Granter) -> AbstractContextManager[None]:
        if not granter.shared:
            return nullcontext()
        return hold_lock(self.engine, f"{request.kind}:{request.iam_user}:{request.target}")

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

    def _available(self) -> str:
        names = sorted(self.catalog.resources)
        return "Available: " + ", ".join(names[:20]) + (" …" if len(names) > 20 else "") + "."


def _refusal(decision: policy.Decision, request: AccessRequest, actor: str) -> str:
    reason = policy.Reason
    messages = {
        reason.SELF_APPROVAL: f"You cannot approve or deny your own request #{request.id}.",
        reason.NOT_AN_APPROVER: f"Only the approvers of {request.resource} can decide request #{request.id}.",
        reason.ALREADY_DECIDED: f"Request #{request.id} is already {request.status.replace('_', ' ')}"
        + (f" (by {_mentions(request.decided_by)})." if request.decided_by else "."),
        reason.ALREADY_VOTED: f"You already voted on request #{request.id}; it needs "
        f"{request.approvals_required} distinct approvers.",
    }
    return messages.get(decision.reason, f"You cannot do that to request #{request.id}.")


def _mentions(ids: str | None) -> str:
    return ", ".join(f"<@{i.strip()}>" for i in (ids or "").split(",") if i.strip())


def _short(text: str) -> str:
    return text if len(text) <= 40 else text[:40] + "…"
