"""Start times as people write them: `+30m`, `14:00` (in their own time zone), or ISO 8601."""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.durations import DurationError, format_duration, parse_duration

_CLOCK = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
HOW = "write it like start=+30m, start=14:00 or start=2026-12-01T09:00"


class StartError(ValueError):
    """Text that is not an acceptable start; the message says why and how to write one."""


def parse_start(text: str, now: datetime, zone: tzinfo) -> datetime:
    """The moment `text` names, as aware UTC: `+<duration>` from now, `HH:MM` next (today, else tomorrow)
    on the wall clock of `zone`, or an ISO 8601 date-time (in `zone` when it has no offset)."""
    cleaned = text.strip()
    shown = cleaned if len(cleaned) <= 30 else cleaned[:30] + "…"
    if cleaned.startswith("+"):
        try:
            return now.astimezone(UTC) + parse_duration(cleaned[1:])
        except DurationError as exc:
            raise StartError(f"start={shown}: {exc}") from exc
    if (match := _CLOCK.fullmatch(cleaned)) is not None:
        local_now = now.astimezone(zone)
        at = time(int(match.group(1)), int(match.group(2)))
        moment = datetime.combine(local_now.date(), at, tzinfo=zone)
        if moment <= local_now:
            moment = datetime.combine(local_now.date() + timedelta(days=1), at, tzinfo=zone)
        return moment.astimezone(UTC)
    try:
        moment = datetime.fromisoformat(cleaned)
    except ValueError as exc:
        raise StartError(f"'{shown}' is not a start time; {HOW}.") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(UTC)


def check_start(start: datetime, now: datetime, most_ahead: timedelta) -> None:
    """Raise StartError unless `start` is still to come and at most `most_ahead` after `now`."""
    if start < now:
        raise StartError(f"The start {start:%Y-%m-%d %H:%M} UTC is in the past; give a time to come ({HOW}).")
    if start - now > most_ahead:
        raise StartError(
            f"The start {start:%Y-%m-%d %H:%M} UTC is {format_duration(start - now)} away; "
            f"a request may start at most {format_duration(most_ahead)} ahead."
        )


def zone_of(name: object, offset: object = None) -> tzinfo:
    """A Slack user's time zone from `users.info`: the IANA name `tz`, else the fixed `tz_offset`, else UTC."""
    if isinstance(name, str) and name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    if isinstance(offset, int) and not isinstance(offset, bool) and abs(offset) < 86400:
        return timezone(timedelta(seconds=offset))
    return UTC
