"""A grant's CloudTrail events summed up: pure, so that it can be stored, rendered and benchmarked alone."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

WRITES_LISTED = 20
DENIED_LISTED = 50
# CloudTrail's errorCode for a refused call; services spell it a few ways (Client.UnauthorizedOperation: EC2).
DENIED_CODES = ("AccessDenied", "AccessDeniedException", "Client.UnauthorizedOperation", "UnauthorizedOperation")


@dataclass(frozen=True)
class Call:
    """One API call as CloudTrail recorded it (the fields the report uses)."""

    event_id: str
    at: datetime
    service: str  # eventSource without ".amazonaws.com"
    name: str
    read_only: bool
    error: str | None
    region: str

    def brief(self) -> dict[str, Any]:
        """The call as stored in a report."""
        return {"at": self.at.isoformat(), "service": self.service, "name": self.name, "error": self.error}


def call_of(record: Mapping[str, Any], event: Mapping[str, Any]) -> Call:
    """A Call from one LookupEvents result (`record`) and its parsed `CloudTrailEvent` (`event`).

    ReadOnly is LookupEvents' own attribute ("true"/"false"); an event without it counts as a write, so that
    nothing that may have changed something is left out of the writes (CloudTrail User Guide, "CloudTrail
    record contents for management, data, and network activity events": readOnly).
    """
    source = str(event.get("eventSource") or record.get("EventSource") or "unknown")
    read_only = str(record.get("ReadOnly", event.get("readOnly", "false"))).lower() == "true"
    when = record.get("EventTime") or event.get("eventTime")
    return Call(
        event_id=str(record.get("EventId") or event.get("eventID") or ""),
        at=parse_time(when),
        service=source.removesuffix(".amazonaws.com"),
        name=str(event.get("eventName") or record.get("EventName") or "unknown"),
        read_only=read_only,
        error=str(event["errorCode"]) if event.get("errorCode") else None,
        region=str(event.get("awsRegion") or ""),
    )


def parse_time(value: Any) -> datetime:
    """A CloudTrail time (epoch seconds, ISO 8601, or a datetime) as an aware UTC datetime."""
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).astimezone(UTC)


@dataclass
class Reading:
    """What was read to make a report: each lookup as a line, whether it stopped early, what was left out."""

    lines: list[str] = field(default_factory=list)
    partial: bool = False
    not_read: list[str] = field(default_factory=list)
    pages: int = 0


def summarize(calls: Iterable[Call], reading: Reading, coverage: str) -> dict[str, Any]:
    """The stored report body: totals, calls by service and name, writes, AccessDenied, first and last call."""
    unique = {c.event_id or f"{c.at.isoformat()}:{c.name}:{n}": c for n, c in enumerate(calls)}
    ordered = sorted(unique.values(), key=lambda c: c.at)
    counts = Counter((c.service, c.name) for c in ordered)
    writes = [c for c in ordered if not c.read_only]
    denied = [c for c in ordered if c.error in DENIED_CODES]
    return {
        "calls": len(ordered),
        "writes": len(writes),
        "denied": len(denied),
        "first": ordered[0].at.isoformat() if ordered else None,
        "last": ordered[-1].at.isoformat() if ordered else None,
        "by_call": [[s, n, k] for (s, n), k in sorted(counts.items(), key=lambda i: (-i[1], i[0]))],
        "write_calls": [c.brief() for c in writes[:WRITES_LISTED]],
        "denied_calls": [c.brief() for c in denied[:DENIED_LISTED]],
        "partial": reading.partial,
        "pages": reading.pages,
        "read": list(reading.lines),
        "not_read": list(reading.not_read),
        "coverage": coverage,
    }
