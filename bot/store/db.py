"""Engines, one transaction per unit of work, and cross-replica locks."""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import InvalidatePoolError
from sqlmodel import Session, create_engine


def normalize_url(url: str) -> str:
    """Accept Heroku-style `postgres://` URLs and pick psycopg 3 for PostgreSQL."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


# A pooled connection is pinged before use only after sitting idle this long (see _ping_when_idle), and none
# is kept longer than RECYCLE_SECONDS (a proxy or firewall may drop connections it thinks are idle).
PING_AFTER_IDLE_SECONDS = 10.0
RECYCLE_SECONDS = 1800


def make_engine(url: str) -> Engine:
    """An engine for the URL; on SQLite every transaction takes the write lock at BEGIN."""
    url = normalize_url(url)
    if make_url(url).get_backend_name() != "sqlite":
        engine = create_engine(url, pool_size=10, max_overflow=20, pool_recycle=RECYCLE_SECONDS)
        _ping_when_idle(engine, PING_AFTER_IDLE_SECONDS)
        return engine
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take over transaction control from pysqlite so that BEGIN IMMEDIATE below is what runs.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # IMMEDIATE: a read-then-write transaction can never deadlock against another writer.
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _ping_when_idle(engine: Engine, idle: float) -> None:
    """Check a pooled connection with a round trip only when it sat unused for `idle` seconds.

    SQLAlchemy's pool_pre_ping would ping before every transaction: a round trip per unit of work, three
    per revoke. A connection in steady use needs none: when the server drops it anyway (a restart, a
    failover, pg_terminate_backend), the statement fails with a disconnect error, SQLAlchemy invalidates
    every connection of the pool made before it, and the unit of work is done again: owed AWS work stays in
    the row (the next sweep claims it at once if its claim was what failed, a lease later if a step did),
    and a person sees one error and tries again. The ping after idleness spares that error after a quiet
    spell, the likeliest moment for a connection to have been dropped.
    """

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since < idle:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            if engine.dialect.is_disconnect(error, dbapi_connection, None):
                # The pool retries the checkout with a new connection, and drops the others made before.
                raise InvalidatePoolError() from error
            raise


def is_sqlite(engine: Engine) -> bool:
    """Whether the engine talks to SQLite (single-process mode)."""
    return engine.dialect.name == "sqlite"


_AFTER_COMMIT = "accessbot.after_commit"  # Session.info key: the unit of work's steps once it committed


def after_commit(session: Session, step: Callable[[], None]) -> None:
    """Run `step` once `session`'s unit of work (see `session_scope`) committed; never if it rolls back."""
    session.info.setdefault(_AFTER_COMMIT, []).append(step)


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on error, always close; then its after-commit steps."""
    session = Session(engine, expire_on_commit=False)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        steps = session.info.pop(_AFTER_COMMIT, [])
        session.close()
    for step in steps:  # reached only once the commit succeeded
        step()


def ping(engine: Engine) -> bool:
    """Whether the database answers."""
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return True
    except Exception:
        return False


_WAIT_FOR_LOCK = text("SELECT pg_advisory_xact_lock(:k)")
_TRY_LOCKS = text("SELECT bool_and(pg_try_advisory_xact_lock(k)) FROM unnest(CAST(:ks AS bigint[])) AS k")
_local_locks: dict[str, threading.Lock] = {}
_local_guard = threading.Lock()


@contextmanager
def hold_lock(engine: Engine, key: str) -> Iterator[None]:
    """Hold a named lock across threads and, on PostgreSQL, across replicas (waiting for it)."""
    with hold_locks(engine, [key], wait=True):
        yield


@contextmanager
def hold_locks(engine: Engine, keys: Sequence[str], *, wait: bool) -> Iterator[bool]:
    """Hold several named locks at once, taken in a fixed order; yield whether they were all taken.

    With wait=False nothing blocks: the block runs with False when another thread or replica holds any of
    them. On PostgreSQL they are transaction advisory locks on one connection, so a process that dies frees
    them at once (the server ends its session), and the work they guard can be taken over without a lease.
    """
    ordered = sorted(set(keys))
    taken: list[threading.Lock] = []
    try:
        for key in ordered:
            with _local_guard:
                local = _local_locks.setdefault(key, threading.Lock())
            if not local.acquire(blocking=wait):
                yield False
                return
            taken.append(local)
        if is_sqlite(engine):
            yield True
            return
        with engine.connect() as connection, connection.begin():
            ids = [_lock_id(key) for key in ordered]
            if wait:
                for lock_id in ids:
                    connection.execute(_WAIT_FOR_LOCK, {"k": lock_id})
            else:
                # One round trip for all of them; any taken before a refusal is freed with the transaction.
                taken_all = connection.execute(_TRY_LOCKS, {"ks": ids}).scalar()
                if not taken_all:
                    yield False
                    return
            yield True
    finally:
        for local in reversed(taken):
            local.release()


def _lock_id(key: str) -> int:
    return zlib.crc32(key.encode()) - 2**31
