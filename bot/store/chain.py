"""The audit hash chain: what an event's hash covers, and how it is computed."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

# prev_hash of the first chained event.
GENESIS = "0" * 64
# pg_advisory_xact_lock key that serialises appends across replicas; outside the 32-bit range of
# db.hold_lock's keys, so the two can never collide.
APPEND_LOCK_ID = 0x6163636573736175  # "accessau"

# The fields an event's hash covers, besides prev_hash. The row ID is not covered: it is assigned by
# the database at INSERT, and the bot needs no UPDATE on audit_events to store the hash afterwards.
CONTENT_FIELDS = ("request_id", "actor", "action", "from_status", "to_status", "details", "created_at")


def timestamp(moment: datetime) -> str:
    """The canonical text of a time: UTC, ISO 8601, microseconds (what the database stores exactly)."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def canonical(fields: Mapping[str, Any], prev_hash: str) -> bytes:
    """Canonical JSON of an event's content and the hash before it: sorted keys, no spaces, ASCII."""
    content = {name: fields[name] for name in CONTENT_FIELDS}
    if isinstance(content["created_at"], datetime):
        content["created_at"] = timestamp(content["created_at"])
    content["prev_hash"] = prev_hash
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def event_hash(fields: Mapping[str, Any], prev_hash: str) -> str:
    """SHA-256 (hex) over the canonical JSON of an event's fields and prev_hash."""
    return hashlib.sha256(canonical(fields, prev_hash)).hexdigest()
