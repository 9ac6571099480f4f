"""The audit trail for operators: verify the hash chain, export events (`accessbot audit ...`)."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, TextIO

from sqlalchemy.engine import Engine

from bot.durations import DurationError, parse_duration
from bot.errors import ConfigError
from bot.store import chain, queries
from bot.store.db import session_scope
from bot.store.models import AuditEvent

BATCH = 1000
FORMATS = ("jsonl", "csv")
COLUMNS = (
    "id",
    "created_at",
    "request_id",
    "actor",
    "action",
    "from_status",
    "to_status",
    "details",
    "prev_hash",
    "hash",
)


@dataclass(frozen=True)
class Link:
    """One event as the chain sees it: its ID, hashed content, and the two hashes it stores."""

    id: int
    fields: dict[str, Any]
    prev_hash: str | None
    hash: str | None

    def intact(self) -> bool:
        """Whether the stored hash is the hash of the stored content and prev_hash."""
        if self.hash is None or self.prev_hash is None:
            return False
        return chain.event_hash(self.fields, self.prev_hash) == self.hash


@dataclass(frozen=True)
class Verdict:
    """What verification found: the first problem (naming its event), or that the chain is intact."""

    checked: int
    unchained: int = 0
    head_id: int | None = None
    head_hash: str | None = None
    problem: str | None = None
    event_id: int | None = None

    @property
    def ok(self) -> bool:
        """Whether no problem was found."""
        return self.problem is None


def check_chain(links: Iterable[Link], *, start: str | None = chain.GENESIS) -> Verdict:
    """Walk the links in order and name the first event that was changed, removed or inserted.

    `start` is the hash the first chained event must link to; None trusts the first event's own
    prev_hash (an export that begins mid-chain). Events before the chain began (hash and prev_hash
    both empty, written before migration 0002) are counted as unchained, and allowed only at the start.
    """
    stream = iter(links)
    current = next(stream, None)
    unchained = checked = 0
    expected = start  # the hash the current event must link to
    before: str | None = None  # the hash the previous event linked to
    previous_id: int | None = None
    while current is not None:
        following = next(stream, None)
        if previous_id is None and current.hash is None and current.prev_hash is None:
            unchained += 1
            current = following
            continue
        if expected is None:
            expected = current.prev_hash
        problem = _problem(current, following, expected, before, previous_id)
        if problem is not None:
            return Verdict(checked, unchained, previous_id, expected, problem[0], problem[1])
        checked += 1
        before, expected, previous_id = expected, current.hash, current.id
        current = following
    return Verdict(checked, unchained, previous_id, expected if previous_id is not None else None)


def _problem(
    current: Link, following: Link | None, expected: str | None, before: str | None, previous_id: int | None
) -> tuple[str, int] | None:
    linked = current.prev_hash == expected
    if not current.intact():
        if following is not None and following.prev_hash == expected and following.prev_hash != current.hash:
            return f"event #{current.id} was inserted: the event after it links to the one before it", current.id
        return f"event #{current.id} was changed: its content no longer matches its hash", current.id
    if linked:
        return None
    if following is not None and following.prev_hash == expected:
        return f"event #{current.id} was inserted or moved: the event after it links to the one before it", current.id
    if previous_id is None:
        return f"events before #{current.id} were removed: it does not link to the start of the chain", current.id
    if current.prev_hash == before:
        return f"event #{previous_id} was inserted: #{current.id} links to the event before it", previous_id
    if current.id > previous_id + 1:
        missing = f"#{previous_id + 1}" if current.id == previous_id + 2 else f"#{previous_id + 1}..#{current.id - 1}"
        return (
            f"event(s) {missing} were removed: #{current.id} does not link to #{previous_id}",
            previous_id + 1,
        )
    return (
        f"event #{previous_id} was changed (and its hash recomputed): #{current.id} no longer links to it",
        previous_id,
    )


def links_from_db(engine: Engine) -> Iterator[Link]:
    """Every audit event in chain (ID) order, read in batches."""
    after = 0
    while True:
        with session_scope(engine) as session:
            rows = queries.audit_events(session=session, after_id=after, limit=BATCH)
        for row in rows:
            assert row.id is not None
            yield Link(row.id, row.model_dump(), row.prev_hash, row.hash)
        if len(rows) < BATCH:
            return
        after = int(rows[-1].id or 0)


def links_from_export(lines: Iterable[str], fmt: str) -> Iterator[Link]:
    """Events read back from `accessbot audit export` output."""
    for record in read_export(lines, fmt):
        yield Link(int(record["id"]), record, record.get("prev_hash"), record.get("hash"))


def record_of(event: AuditEvent) -> dict[str, Any]:
    """An event as exported: details parsed into an object, times in canonical UTC ISO 8601."""
    return {
        "id": event.id,
        "created_at": chain.timestamp(event.created_at),
        "request_id": event.request_id,
        "actor": event.actor,
        "action": event.action,
        "from_status": event.from_status,
        "to_status": event.to_status,
        "details": _parsed(event.details),
        "prev_hash": event.prev_hash,
        "hash": event.hash,
    }


def write_export(
    engine: Engine, out: TextIO, *, fmt: str, since: datetime | None = None, until: datetime | None = None
) -> int:
    """Write the events in [since, until) to `out` as JSON lines or CSV; return how many."""
    writer = csv.writer(out, lineterminator="\n") if fmt == "csv" else None
    if writer is not None:
        writer.writerow(COLUMNS)
    count, after = 0, 0
    while True:
        with session_scope(engine) as session:
            rows = queries.audit_events(session=session, after_id=after, since=since, until=until, limit=BATCH)
        for row in rows:
            record = record_of(row)
            if writer is None:
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
            else:
                record["details"] = row.details  # the stored text, exactly as hashed
                writer.writerow(["" if record[c] is None else record[c] for c in COLUMNS])
        count += len(rows)
        if len(rows) < BATCH:
            return count
        after = int(rows[-1].id or 0)


def read_export(lines: Iterable[str], fmt: str) -> Iterator[dict[str, Any]]:
    """Parse export output back into records whose fields hash exactly as the stored events did."""
    if fmt == "csv":
        for row in csv.DictReader(lines):
            record: dict[str, Any] = {k: (v if v != "" else None) for k, v in row.items()}
            record["id"] = int(record["id"])
            record["request_id"] = int(record["request_id"]) if record["request_id"] is not None else None
            record["details"] = record["details"] or "{}"
            yield record
        return
    for line in lines:
        if line.strip():
            record = json.loads(line)
            record["details"] = _stored(record["details"])
            yield record


def parse_moment(text: str, *, now: datetime) -> datetime:
    """`2026-11-24`, `2026-11-24T09:30` (UTC unless an offset is given), or a duration ago (`7d`)."""
    text = text.strip()
    if re.fullmatch(r"\d+[smhd](\d+[smhd])*", text):
        try:
            return now - parse_duration(text)
        except DurationError as exc:
            raise ConfigError(f"{text}: {exc}") from None
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"{text!r}: not a time; write 2026-11-24, 2026-11-24T09:30 (UTC) or a duration ago such as 7d"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def verify_command(engine: Engine, *, file: TextIO | None, fmt: str, say: Callable[[str], None]) -> int:
    """`accessbot audit verify`: 0 when the chain is intact, 1 naming the first broken event."""
    if file is not None:
        verdict = check_chain(links_from_export(file, fmt), start=None)
    else:
        verdict = check_chain(links_from_db(engine))
    if not verdict.ok:
        say(f"audit chain BROKEN after {verdict.checked} intact event(s): {verdict.problem}")
        return 1
    extra = f"; {verdict.unchained} older event(s) predate the chain" if verdict.unchained else ""
    head = f"; head #{verdict.head_id} {verdict.head_hash}" if verdict.head_id is not None else ""
    say(f"audit chain intact: {verdict.checked} event(s){extra}{head}")
    return 0


def _parsed(details: str) -> Any:
    try:
        return json.loads(details)
    except ValueError:
        return details  # not JSON (only if someone wrote it by hand): export it as it is


def _stored(details: Any) -> str:
    """The details text as record_audit stored it, from an exported JSON value."""
    return details if isinstance(details, str) else json.dumps(details, sort_keys=True, default=str)
