"""Right-sizing: per resource, how much of the granted time was used, to shorten durations where it is not."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from statistics import median


@dataclass(frozen=True)
class Used:
    """One reported grant: its resource, when it was held, and its last call (None: never used)."""

    resource: str
    started: datetime
    ended: datetime
    last_call: datetime | None


@dataclass(frozen=True)
class Sizing:
    """One resource's line of `accessbot report`."""

    resource: str
    grants: int
    median_used: float  # the median of (last call - start) / (end - start); 0 for an unused grant
    never_used: int


def fraction(used: Used) -> float:
    """The share of the held time until the last call (0 when unused)."""
    held = (used.ended - used.started).total_seconds()
    if used.last_call is None or held <= 0:
        return 0.0
    return min(1.0, max(0.0, (used.last_call - used.started).total_seconds() / held))


def sizing(grants: Iterable[Used]) -> list[Sizing]:
    """Per resource (by name): grants, median fraction used, grants never used."""
    by: dict[str, list[Used]] = {}
    for used in grants:
        by.setdefault(used.resource, []).append(used)
    return [
        Sizing(name, len(items), median(fraction(u) for u in items), sum(u.last_call is None for u in items))
        for name, items in sorted(by.items())
    ]
