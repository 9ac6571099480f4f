"""The sweep's queries on PostgreSQL with 100,000 ended and 10,000 active requests: time, and the plan."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from sqlalchemy import event, insert, text
from sqlmodel import Session

from benchmarks.harness import DATABASE_URL, fresh_database, percentile
from bot.clock import utcnow
from bot.store import queries
from bot.store.db import make_engine, session_scope
from bot.store.models import AccessRequest

ENDED = 100_000
ACTIVE = 10_000
DUE_NOW = 100  # of the active ones
BATCH = 20  # Tuning.batch
CHUNK = 5_000


def _rows(count: int, *, active: bool, offset: int) -> list[dict[str, Any]]:
    now = utcnow()
    rows = []
    for i in range(offset, offset + count):
        if active:
            # A few are due now; the rest fall due over the next week.
            due = now - timedelta(seconds=i % DUE_NOW) if i - offset < DUE_NOW else now + timedelta(minutes=i % 10_080)
            status, expires, ended = "active", due, None
        else:
            due, status, expires, ended = None, "expired", now - timedelta(days=1 + i % 300), now
        row = AccessRequest(
            requester_id=f"U{i % 500:05d}", resource="deploy-admins", kind="iam_group", target="deploy-admins",
            iam_user=f"user{i % 5000}", iam_user_arn=f"arn:aws:iam::123456789012:user/user{i % 5000}",
            duration_seconds=3600, reason="benchmark", status=status, created_at=now - timedelta(days=2),
            updated_at=now, grant_started_at=now, activated_at=now, expires_at=expires, ended_at=ended,
            warned_at=now, next_due_at=due,
        )  # fmt: skip
        rows.append(row.model_dump(exclude={"id"}))
    return rows


def fill() -> None:
    """A fresh schema holding ENDED ended and ACTIVE active requests, analysed."""
    fresh_database()
    engine = make_engine(DATABASE_URL)
    for active, total in ((False, ENDED), (True, ACTIVE)):
        for offset in range(0, total, CHUNK):
            with engine.begin() as connection:
                rows = _rows(min(CHUNK, total - offset), active=active, offset=offset)
                connection.execute(insert(AccessRequest), rows)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE access_requests"))
    engine.dispose()


def claim_query(samples: int = 300) -> tuple[dict[str, float], str]:
    """Milliseconds per claim (the real queries.claim_due, rolled back) and per next_due_at; the claim's plan."""
    engine = make_engine(DATABASE_URL)
    captured: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        if "FOR UPDATE SKIP LOCKED" in statement and not captured:
            captured.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    claims, nexts = [], []
    for _ in range(samples):
        with engine.connect() as connection, connection.begin() as transaction:
            began = time.perf_counter()
            with Session(bind=connection) as session:
                now = utcnow()
                lease = timedelta(minutes=1)
                ids = queries.claim_due(session=session, now=now, owner="bench", lease=lease, limit=BATCH)
                claims.append(time.perf_counter() - began)
                assert len(ids) == BATCH
            transaction.rollback()
        with session_scope(engine) as session:
            began = time.perf_counter()
            queries.next_due_at(session=session, now=utcnow())
            nexts.append(time.perf_counter() - began)
    statement, parameters = captured[0]
    with engine.connect() as connection, connection.begin() as transaction:
        raw = connection.connection.dbapi_connection
        assert raw is not None
        cursor = raw.cursor()
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters)
        plan = "\n".join(str(row[0]) for row in cursor.fetchall())
        transaction.rollback()
    engine.dispose()
    figures = {
        "claim_p50_ms": percentile(claims, 50) * 1000,
        "claim_p99_ms": percentile(claims, 99) * 1000,
        "next_due_p50_ms": percentile(nexts, 50) * 1000,
        "next_due_p99_ms": percentile(nexts, 99) * 1000,
    }
    return figures, plan
