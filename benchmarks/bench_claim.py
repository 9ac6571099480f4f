"""The sweep's and the approvers' queries on PostgreSQL with 1,000,000 ended and 10,000 open requests.

Times the real queries (`queries.claim_due`, `queries.next_due_at`, `/access pending`'s query) and the App
Home build, and prints the plan PostgreSQL chose for each exact statement sent, saying whether it reads an
index: none of them may read the ended rows.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import event, insert, inspect, text
from sqlalchemy.engine import Engine
from sqlmodel import Session

from benchmarks.harness import DATABASE_URL, SECRET, TOKEN, Servers, catalog_file, fresh_database, percentile
from bot.clock import utcnow
from bot.config import Settings
from bot.runtime import Runtime
from bot.slack import views
from bot.store import queries
from bot.store.db import make_engine, session_scope
from bot.store.models import AWAITING_DECISION, AccessRequest

ENDED = 1_000_000
PENDING = 8_000
ACTIVE = 2_000
OPEN = PENDING + ACTIVE
EXTENDING = 1_000  # of the active ones: an extension waits for a decision
DUE_NOW = 100  # of the active ones
BATCH = 20  # Tuning.batch
CHUNK = 5_000
APPROVER = "U0BOB"  # approves every resource of the benchmark catalog, and asked for some of them (every 500th)
NEWCOMER = "U0CAROL"  # approves every resource too, and never asked for anything
INDEX_SCAN = r"(Index Scan|Index Scan Backward|Index Only Scan|Index Only Scan Backward) using|Bitmap Index Scan on"
RESOURCES = (("deploy-admins", "iam_group"), ("prod-readonly", "iam_role"), ("payments-key", "kms_key"))

# One statement on the server: generate_series writes a million rows in seconds, where row-by-row
# INSERTs from Python take minutes.
ENDED_ROWS = """
INSERT INTO access_requests (
    requester_id, resource, kind, target, iam_user, iam_user_arn, duration_seconds, reason, status,
    approvals_required, created_at, updated_at, grant_started_at, activated_at, expires_at, ended_at,
    extension_round, extensions_used, reminders_sent, auto_approved, break_glass, attempts
)
SELECT
    CASE WHEN n % 500 = 0 THEN :approver ELSE 'U' || lpad((n % 500)::text, 5, '0') END,
    (ARRAY['deploy-admins', 'prod-readonly', 'payments-key'])[1 + n % 3],
    (ARRAY['iam_group', 'iam_role', 'kms_key'])[1 + n % 3],
    'target',
    'user' || (n % 5000),
    'arn:aws:iam::123456789012:user/user' || (n % 5000),
    3600,
    'benchmark',
    (ARRAY['expired', 'revoked', 'denied', 'cancelled', 'timed_out'])[1 + n % 5],
    1,
    :now - make_interval(secs => n * 30),
    :now - make_interval(secs => n * 30) + interval '1 hour',
    :now - make_interval(secs => n * 30),
    :now - make_interval(secs => n * 30),
    :now - make_interval(secs => n * 30) + interval '1 hour',
    :now - make_interval(secs => n * 30) + interval '1 hour',
    0, 0, 0, false, false, 0
FROM generate_series(1, :count) AS n
"""


def _requester(i: int) -> str:
    return APPROVER if i % 500 == 0 else f"U{i % 500:05d}"


def _open_rows(count: int, offset: int) -> list[dict[str, Any]]:
    """Open requests: PENDING pending ones, then ACTIVE active ones (DUE_NOW due, EXTENDING extending)."""
    now = utcnow()
    rows = []
    for i in range(offset, offset + count):
        resource, kind = RESOURCES[i % len(RESOURCES)]
        filed = now - timedelta(seconds=OPEN - i)
        row = AccessRequest(
            requester_id=_requester(i), resource=resource, kind=kind, target=resource, iam_user=f"user{i % 5000}",
            iam_user_arn=f"arn:aws:iam::123456789012:user/user{i % 5000}", duration_seconds=3600,
            reason="benchmark", status="pending", created_at=filed, updated_at=filed,
            next_due_at=filed + timedelta(days=1),  # its pending timeout
        )  # fmt: skip
        active = i - PENDING
        if active >= 0:
            # A few are due now; the rest fall due over the next week.
            due = now - timedelta(seconds=active) if active < DUE_NOW else now + timedelta(minutes=active % 10_080)
            row.status, row.grant_started_at, row.activated_at = "active", filed, filed
            row.expires_at = row.next_due_at = due
            if active >= ACTIVE - EXTENDING:
                row.extension_seconds, row.extension_round = 1800, 1
        rows.append(row.model_dump(exclude={"id"}))
    return rows


def fill() -> None:
    """A fresh schema holding ENDED ended and OPEN open requests, analysed (kept when already there)."""
    engine = make_engine(DATABASE_URL)
    if _filled(engine):
        engine.dispose()
        return
    engine.dispose()
    fresh_database()
    engine = make_engine(DATABASE_URL)
    began = time.perf_counter()
    with engine.begin() as connection:
        connection.execute(text(ENDED_ROWS), {"count": ENDED, "now": utcnow(), "approver": APPROVER})
    for offset in range(0, OPEN, CHUNK):
        with engine.begin() as connection:
            connection.execute(insert(AccessRequest), _open_rows(min(CHUNK, OPEN - offset), offset))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE access_requests"))
    print(f"  filled {ENDED:,} ended + {OPEN:,} open requests in {time.perf_counter() - began:.0f}s", flush=True)
    engine.dispose()


def _filled(engine: Engine) -> bool:
    """Whether the database holds this benchmark's rows, untouched (another benchmark recreates the tables)."""
    if not inspect(engine).has_table("access_requests"):
        return False
    with engine.connect() as connection:
        counts = connection.execute(
            text("SELECT count(*), count(*) FILTER (WHERE status IN ('pending', 'active')) FROM access_requests")
        ).one()
    return (int(counts[0]), int(counts[1])) == (ENDED + OPEN, OPEN)


def _awaiting_approver() -> int:
    """How many open rows wait for APPROVER's decision: the pending and extending ones they did not ask for."""
    waiting = [i for i in range(OPEN) if i < PENDING or i - PENDING >= ACTIVE - EXTENDING]
    return sum(1 for i in waiting if _requester(i) != APPROVER)


def claim_query(samples: int = 300) -> tuple[dict[str, float], dict[str, str]]:
    """Milliseconds per claim (the real queries.claim_due, rolled back) and per next_due_at; their plans."""
    engine = make_engine(DATABASE_URL)
    claims, nexts = [], []
    with _statements(engine) as sent:
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
    plans = {
        "claim_due": _explain(engine, _first(sent, "FOR UPDATE SKIP LOCKED")),
        "next_due_at (free rows)": _explain(engine, _first(sent, "min(access_requests.next_due_at)")),
        "next_due_at (leased rows)": _explain(engine, _first(sent, "min(access_requests.claimed_until)")),
    }
    engine.dispose()
    figures = {
        "claim_p50_ms": percentile(claims, 50) * 1000,
        "claim_p99_ms": percentile(claims, 99) * 1000,
        "next_due_p50_ms": percentile(nexts, 50) * 1000,
        "next_due_p99_ms": percentile(nexts, 99) * 1000,
    }
    return figures, plans


def pending_query(srv: Servers, workdir: Path, samples: int = 300) -> tuple[dict[str, float], dict[str, str]]:
    """Milliseconds for `/access pending`'s query (Workflow.waiting_page) and for building the App Home (the
    person's own requests, what waits for them, the view) through the bot's own Workflow; and the plans.

    Two people: APPROVER, who also asked for access ~2,000 times, and NEWCOMER, who never asked for anything.
    Both may decide every one of the ~9,000 open requests waiting for a decision.
    """
    settings = Settings(
        slack_bot_token=TOKEN,
        slack_signing_secret=SECRET,
        slack_api_url=srv.slack,
        database_url=DATABASE_URL,
        accessbot_catalog=catalog_file(workdir),
    )
    runtime = Runtime.build(settings, http=False, scheduler=False)
    workflow = runtime.workflow

    def home(user: str) -> views.View:  # as bot/slack/listeners.py builds it
        mine, waiting = workflow.mine(user), workflow.waiting_page(user)
        return views.home_view(mine, waiting, utcnow(), given_up=workflow.unposted([*mine, *waiting.rows]))

    try:
        page = workflow.waiting_page(APPROVER)
        assert page.total == _awaiting_approver() and len(page.rows) == 25, page.total
        with _statements(workflow.engine) as sent:
            pages = [_timed(lambda: workflow.waiting_page(APPROVER)) for _ in range(samples)]
            homes = [_timed(lambda: home(APPROVER)) for _ in range(samples)]
        with _statements(workflow.engine) as sent_new:
            newcomer = [_timed(lambda: home(NEWCOMER)) for _ in range(samples)]
        latest = ("ORDER BY access_requests.id DESC", "LIMIT")
        plans = {
            "pending: the page's IDs and the total": _first(sent, AWAITING_DECISION),
            "pending: the page's rows": _first(sent, "WHERE access_requests.id IN"),
            "mine: open requests": _first(sent, "access_requests.status IN", "LIMIT"),
            "mine: latest requests": _first(sent, *latest, without="access_requests.status IN"),
            "mine: latest requests of a newcomer": _first(sent_new, *latest, without="access_requests.status IN"),
        }
        explained = {name: _explain(workflow.engine, statement) for name, statement in plans.items()}
    finally:
        runtime.stop()
    figures = {
        "pending_p50_ms": percentile(pages, 50) * 1000,
        "pending_p99_ms": percentile(pages, 99) * 1000,
        "home_p50_ms": percentile(homes, 50) * 1000,
        "home_p99_ms": percentile(homes, 99) * 1000,
        "home_newcomer_p50_ms": percentile(newcomer, 50) * 1000,
        "home_newcomer_p99_ms": percentile(newcomer, 99) * 1000,
    }
    return figures, explained


def index_scan(plan: str) -> bool:
    """Whether the plan reads access_requests through an index only, never scanning the whole table."""
    return "Seq Scan on access_requests" not in plan and re.search(INDEX_SCAN, plan) is not None


def verdicts(plans: dict[str, str]) -> str:
    """One line per plan: the query, and whether it is an index scan."""
    return "\n".join(f"  {name}: {'index scan' if index_scan(p) else 'NOT AN INDEX SCAN'}" for name, p in plans.items())


def _timed(work: Callable[[], object]) -> float:
    began = time.perf_counter()
    work()
    return time.perf_counter() - began


@contextmanager
def _statements(engine: Engine) -> Iterator[list[tuple[str, Any]]]:
    """Every statement the engine sends meanwhile, with its parameters."""
    sent: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        if len(sent) < 10_000:
            sent.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", capture)


def _first(sent: list[tuple[str, Any]], *parts: str, without: str = "\0") -> tuple[str, Any]:
    """The first statement sent that contains every one of `parts` (and not `without`)."""
    return next((s, p) for s, p in sent if all(part in s for part in parts) and without not in s)


def _explain(engine: Engine, statement: tuple[str, Any]) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of the exact statement and parameters, rolled back."""
    sql, parameters = statement
    with engine.connect() as connection, connection.begin() as transaction:
        raw = connection.connection.dbapi_connection
        assert raw is not None
        cursor = raw.cursor()
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, parameters)
        plan = "\n".join(str(row[0]) for row in cursor.fetchall())
        transaction.rollback()
    return plan
