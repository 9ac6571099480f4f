"""When a request next needs the scheduler's attention: pure arithmetic on its times."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from bot.domain.lifecycle import FINAL, Status

CEILING = timedelta(minutes=15)


@dataclass(frozen=True)
class Timeline:
    """The times and counters of one request that decide when something is next owed."""

    status: Status
    created_at: datetime
    pending_timeout: timedelta
    remind_after: timedelta = timedelta(minutes=30)
    max_reminders: int = 0
    reminders_sent: int = 0
    reminded_at: datetime | None = None
    escalate_at: datetime | None = None
    expires_at: datetime | None = None
    activated_at: datetime | None = None
    warn_before: timedelta = timedelta(0)
    warned: bool = True
    unacknowledged_break_glass: bool = False
    # AWS work: owed from these moments on (see aws_step); retry_at, when set, is the only time that counts.
    approved_at: datetime | None = None
    grant_started: bool = False
    ended: bool = False
    end_owed_since: datetime | None = None
    extension_approved_at: datetime | None = None
    lift_at: datetime | None = None
    retry_at: datetime | None = None
    # A scheduled start: an approved request owes nothing before it; its grant is owed from then on.
    starts_at: datetime | None = None


class Step(StrEnum):
    """The AWS work a request is owed now."""

    GRANT = "grant"  # approved: apply the grant
    DROP = "drop"  # approved, and an end was asked before anything was applied: end without touching AWS
    END = "end"  # take the access away: expiry, early revoke, or a revoke asked while the grant was in flight
    EXTEND = "extend"  # move an approved extension's expiry into AWS
    CLEANUP = "cleanup"  # a finished request (failed, say) may still hold access: remove it
    LIFT = "lift"  # a role's deny of old sessions has outlived every session it was for: remove it
    NONE = "none"


def aws_step(line: Timeline, now: datetime) -> Step:
    """Which AWS work is owed now; an end, once owed, comes before anything else the request wants."""
    if line.retry_at is not None and now < line.retry_at:
        return Step.NONE
    ending = line.end_owed_since is not None
    if line.status is Status.APPROVED:
        if ending:
            return Step.END if line.grant_started else Step.DROP
        if not line.grant_started and line.starts_at is not None and now < line.starts_at:
            return Step.NONE
        return Step.GRANT
    if line.status is Status.ACTIVE:
        if ending or (line.expires_at is not None and line.expires_at <= now):
            return Step.END
        return Step.EXTEND if line.extension_approved_at is not None else Step.NONE
    if line.status in FINAL and line.grant_started and not line.ended:
        return Step.CLEANUP
    if line.lift_at is not None and line.lift_at <= now:
        return Step.LIFT
    return Step.NONE


def _aws_due(line: Timeline) -> datetime | None:
    """When AWS work is next owed (see aws_step)."""
    if line.retry_at is not None:
        return line.retry_at
    moments: list[datetime] = []
    if line.status is Status.APPROVED:
        owed = line.approved_at or line.created_at
        if not line.grant_started and line.starts_at is not None:
            owed = max(owed, line.starts_at)
        moments.append(line.end_owed_since or owed)
    elif line.status is Status.ACTIVE:
        moments += [m for m in (line.end_owed_since, line.extension_approved_at) if m is not None]
    elif line.grant_started and not line.ended:
        moments.append(line.end_owed_since or line.created_at)
    if line.lift_at is not None:
        moments.append(line.lift_at)
    return min(moments) if moments else None


def next_due(line: Timeline) -> datetime | None:
    """The next moment something is owed for a request, or None when nothing ever will be."""
    aws = _aws_due(line)
    if line.retry_at is not None:
        return aws
    people = _people_due(line)
    found = [moment for moment in (aws, people) if moment is not None]
    return min(found) if found else None


def _people_due(line: Timeline) -> datetime | None:
    """Timeouts, reminders, warnings and expiry."""
    if line.status is Status.PENDING:
        moments = [line.created_at + line.pending_timeout]
        if line.reminders_sent < line.max_reminders:
            moments.append((line.reminded_at or line.created_at) + line.remind_after)
        if line.escalate_at is not None and (line.reminded_at is None or line.reminded_at < line.escalate_at):
            moments.append(line.escalate_at)
        return min(moments)
    if line.status is Status.ACTIVE and line.expires_at is not None:
        moments = [line.expires_at]
        warn_at = line.expires_at - line.warn_before
        # Warn only when the grant lasts longer than the warning period itself.
        if not line.warned and line.activated_at is not None and warn_at > line.activated_at:
            moments.append(warn_at)
        if line.unacknowledged_break_glass:
            moments.append((line.reminded_at or line.activated_at or line.created_at) + line.remind_after)
        return min(moments)
    return None


def pending_action(line: Timeline, now: datetime) -> str:
    """What a due pending request needs now: 'time_out', 'remind' or 'wait'."""
    if now >= line.created_at + line.pending_timeout:
        return "time_out"
    due = next_due(line)
    return "remind" if due is not None and due <= now else "wait"


def active_action(line: Timeline, now: datetime, *, revoke_started: bool) -> str:
    """What a due active grant needs now: 'end', 'warn', 'remind_ack' or 'wait'."""
    if revoke_started or (line.expires_at is not None and line.expires_at <= now):
        return "end"
    if line.expires_at is not None and not line.warned and now >= line.expires_at - line.warn_before:
        return "warn"
    if line.unacknowledged_break_glass:
        start = line.reminded_at or line.activated_at or line.created_at
        if now >= start + line.remind_after:
            return "remind_ack"
    return "wait"


def retry_delay(attempts: int, base: timedelta, ceiling: timedelta = CEILING) -> timedelta:
    """Exponential backoff after `attempts` failures: base, 2*base, 4*base ... up to the ceiling."""
    exponent = min(max(0, attempts - 1), 64)
    # In float seconds first: base * 2**exponent as a timedelta would overflow long before the ceiling matters.
    seconds = base.total_seconds() * (2.0**exponent)
    return min(timedelta(seconds=min(seconds, ceiling.total_seconds())), ceiling)
