"""Durations as people write them: `90s`, `45m`, `2h`, `1d`, `1h30m`."""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_PATTERN = re.compile(r"^(?:(\d{1,6})d)?(?:(\d{1,6})h)?(?:(\d{1,6})m)?(?:(\d{1,6})s)?$")
LONGEST = timedelta(days=3650)


class DurationError(ValueError):
    """Text that is not a duration; the message says how to write one."""


def parse_duration(text: object) -> timedelta:
    """Parse `1h30m`-style text into a positive timedelta, or raise DurationError."""
    if isinstance(text, timedelta):
        return text
    if not isinstance(text, str):
        raise DurationError("write durations as text like 90s, 45m, 2h, 1d or 1h30m")
    cleaned = text.strip().lower()
    match = _PATTERN.match(cleaned)
    if not cleaned or match is None:
        shown = text if len(text) <= 20 else text[:20] + "…"
        raise DurationError(f"'{shown}' is not a duration; write it like 90s, 45m, 2h, 1d or 1h30m")
    seconds = sum(int(n) * _UNITS[u] for n, u in zip(match.groups(), "dhms", strict=True) if n)
    if seconds <= 0:
        raise DurationError("a duration must be longer than zero")
    if seconds > LONGEST.total_seconds():
        raise DurationError("a duration may be at most 3650d")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """Render a timedelta the way parse_duration reads it, largest units first."""
    remaining = max(0, int(value.total_seconds()))
    if remaining == 0:
        return "0s"
    parts = []
    for unit, size in _UNITS.items():
        amount, remaining = divmod(remaining, size)
        if amount:
            parts.append(f"{amount}{unit}")
    return "".join(parts)
