"""The Identity Center assignment creations the bot asked for, kept so that an undo can await each one."""

from __future__ import annotations

import threading

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from bot.store.db import is_sqlite, session_scope
from bot.store.models import AssignmentCreation


class StoredCreations:
    """Records creation request IDs in their own transaction, at once: a crash right after AWS answered loses none.

    On SQLite (one process, for development) they are kept in memory instead: SQLite has one writer, and
    the caller may be inside a write transaction of its own (a reconcile re-apply holds the request's row).
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._memory: dict[int, list[tuple[str, str]]] | None = {} if is_sqlite(engine) else None
        self._lock = threading.Lock()

    def record(self, request_id: int, account: str, creation_id: str) -> None:
        """Remember one creation request (twice is once)."""
        if self._memory is not None:
            with self._lock:
                rows = self._memory.setdefault(request_id, [])
                if (account, creation_id) not in rows:
                    rows.append((account, creation_id))
            return
        try:
            with session_scope(self._engine) as session:
                session.add(AssignmentCreation(request_id=request_id, account=account, creation_id=creation_id))
        except IntegrityError:
            pass  # recorded already (a retry sent the same request ID back)

    def creations(self, request_id: int) -> list[tuple[str, str]]:
        """(account, creation request ID) of every creation recorded for the request, oldest first."""
        if self._memory is not None:
            with self._lock:
                return list(self._memory.get(request_id, []))
        with session_scope(self._engine) as session:
            rows = session.exec(
                select(AssignmentCreation)
                .where(AssignmentCreation.request_id == request_id)
                .order_by(col(AssignmentCreation.id))
            ).all()
            return [(row.account, row.creation_id) for row in rows]
