"""When a request next needs the scheduler's attention: pure arithmetic on its times."""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.domain.lifecycle import Status


def next_due(
    *,
    status: Status,
    created_at: datetime,
    pending_timeout: timedelta,
    expires_at: datetime | None,
    warn_before: timedelta,
    warned: bool,
    activated_at: datetime | None,
) -> datetime | None:
    """The next moment something is owed for a request, or None when nothing ever will be."""
    if status is Status.PENDING:
        return created_at + pending_timeout
    if status is Status.ACTIVE and expires_at is not None:
        warn_at = expires_at - warn_before
        # Warn only when the grant lasts longer than the warning period itself.
        if not warned and activated_at is not None and warn_at > activated_at:
            return warn_at
        return expires_at
    return None


def retry_delay(attempts: int, base: timedelta, ceiling: timedelta = timedelta(minutes=15)) -> timedelta:
    """Exponential backoff after `attempts` failures: base, 2*base, 4*base ... up to the ceiling."""
    try:
        delay: timedelta = base * (2 ** max(0, attempts - 1))
    except OverflowError:  # after enough failures the doubling leaves timedelta's range; the ceiling applies
        return ceiling
    return min(delay, ceiling)
