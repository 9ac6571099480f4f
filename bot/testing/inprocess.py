"""The real workflow on SQLite with in-memory ports and a clock the test moves: no servers, no sleeps.

As procrastinate ships an in-memory connector, the package ships this: `InProcess` builds the same
Workflow the composition root (bot/runtime.py) builds, on a SQLite database migrated with Alembic, with
FakeGranter, FakeNotifier, FakeDirectory, FakeIdentity and FakeClock as its ports. It acts the way the
Slack listeners and the scheduler do (file then announce, vote then grant, revoke then advance, sweep what
is due), so a test drives the whole life of a request by calling it and moving the clock.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Mapping
from datetime import timedelta
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import select

from bot.catalog import Catalog, Kind, parse_catalog
from bot.metrics import Metrics
from bot.store import schema
from bot.store.db import make_engine, session_scope
from bot.store.models import AccessRequest, AuditEvent
from bot.testing.clock import FakeClock
from bot.testing.granter import FakeGranter, as_granters, fake_granters
from bot.testing.people import FakeDirectory, FakeIdentity, FakeNotifier, iam_users
from bot.workflow import Tuning, Workflow

# The production timings, but one sweep thread: rows are handled in order, so a test reads the same every run.
TUNING = Tuning(sweep_threads=1)
USERS = {"U0ALICE": "alice", "U0BOB": "bob", "U0CAROL": "carol", "U0DAVE": "dave", "U0ERIN": "erin"}
# A bound on sweeps in one `advance`: a schedule that never settles is a bug, not a reason to hang.
MAX_SWEEPS = 50
TICK = timedelta(milliseconds=1)


def migrated_template(path: Path) -> Path:
    """A SQLite database at `path` migrated to the newest revision with Alembic (made once, then copied)."""
    if not path.exists():
        engine = make_engine(f"sqlite:///{path}")
        try:
            schema.upgrade(engine)
        finally:
            engine.dispose()
    return path


def copy_database(template: Path, target: Path) -> Path:
    """A fresh database for one test: a copy of the migrated template (milliseconds, not a migration)."""
    shutil.copy(template, target)
    return target


class InProcess:
    """One accessbot process's workflow, in this process: real services and database, fake ports."""

    def __init__(
        self,
        database: Path,
        catalog: str | Catalog,
        *,
        users: Mapping[str, str] = USERS,
        groups: Mapping[str, Iterable[str]] | None = None,
        mfa: Iterable[str] = (),
        clock: FakeClock | None = None,
        tuning: Tuning = TUNING,
        owner: str = "replica-1",
    ) -> None:
        self.clock = clock or FakeClock()
        self.engine: Engine = make_engine(f"sqlite:///{database}")
        self.catalog = parse_catalog(catalog) if isinstance(catalog, str) else catalog
        self.granters: dict[Kind, FakeGranter] = fake_granters(self.clock)
        self.notifier = FakeNotifier()
        self.directory = FakeDirectory(groups)
        self.identity = FakeIdentity(iam_users(users), mfa=mfa)
        self.tuning = tuning
        self._replicas: list[Workflow] = []
        self.workflow = self.replica(owner)

    def replica(self, owner: str) -> Workflow:
        """Another process's workflow on the same database, AWS, Slack and clock (a restart, or a replica)."""
        workflow = Workflow(
            engine=self.engine,
            catalog=self.catalog,
            granters=as_granters(self.granters),
            identity=self.identity,
            notifier=self.notifier,
            directory=self.directory,
            owner=owner,
            metrics=Metrics(),
            clock=self.clock,
            tuning=self.tuning,
        )
        # The claim heartbeat renews leases from a thread on real time: here leases run out only when the
        # test moves the clock (`workflow.ctx.claims.beat()` renews them), and no thread runs.
        workflow.ctx.claims.stop()
        self._replicas.append(workflow)
        return workflow

    def restart(self, owner: str | None = None) -> Workflow:
        """The process died: from now on a new one (another owner, nothing in memory) does the work."""
        self.workflow.close()  # a dead process renews no lease
        self.workflow = self.replica(owner or f"replica-{len(self._replicas) + 1}")
        return self.workflow

    def close(self) -> None:
        """Stop every replica's claim heartbeat and close the database."""
        for workflow in self._replicas:
            workflow.close()
        self.engine.dispose()

    # -- acting as the Slack listeners do ------------------------------------------------------

    def file(
        self,
        user: str,
        resource: str,
        duration: str | None = "1h",
        reason: str = "on call",
        *,
        break_glass: bool = False,
        start: str | None = None,
        filed_by: str | None = None,
    ) -> int:
        """File a request (/access request) and do what the listener does next: grant it if no vote is needed."""
        filed = self.workflow.submit(
            requester=user,
            resource=resource,
            duration=duration,
            reason=reason,
            break_glass=break_glass,
            start=start,
            filed_by=filed_by,
        )
        request_id = filed.request.id
        assert request_id is not None
        self.workflow.announce(request_id, filed.request.claimed_by)
        return request_id

    def vote(self, request_id: int, approver: str, *, approve: bool = True, comment: str | None = None) -> None:
        """Click Approve (or submit Deny's form), then grant or extend what the vote approved."""
        round = self.row(request_id).extension_round
        decided = self.workflow.decide(
            request_id=request_id, actor=approver, approve=approve, comment=comment, round=round
        )
        self.workflow.after_decision(request_id, decided.claimed_by)

    def approve(self, request_id: int, *approvers: str) -> AccessRequest:
        """Every approver clicks Approve, in turn; the row as it is afterwards."""
        for approver in approvers or ("U0BOB",):
            self.vote(request_id, approver)
        return self.row(request_id)

    def revoke(self, request_id: int, actor: str) -> None:
        """/access revoke: record the end, then do it (as the listener's follow-up does)."""
        self.workflow.revoke_early(request_id=request_id, actor=actor)
        self.workflow.advance(request_id)

    def extend(self, request_id: int, actor: str, duration: str) -> None:
        """/access extend: ask for more time, and apply it at once when it was auto-approved."""
        asked = self.workflow.request_extension(request_id=request_id, actor=actor, duration=duration)
        self.workflow.after_extension_request(request_id, asked.claimed_by)

    # -- acting as the scheduler does -----------------------------------------------------------

    def sweep(self) -> int:
        """One sweep, as the scheduler's wake-up runs it: everything due now."""
        return self.workflow.run_due()

    def advance(self, delta: timedelta) -> int:
        """Move the clock by `delta`, stopping at every moment something falls due and sweeping it (as the
        scheduler wakes at each due time); return how many rows were handled."""
        end = self.clock.now() + delta
        handled = self.sweep()
        for _ in range(MAX_SWEEPS):
            due = self.workflow.next_due_at()
            if due is None or due > end:
                break
            if due > self.clock.now():
                self.clock.set(due)
            swept = self.sweep()
            if not swept:
                # Due at this very instant but not claimable yet (a lease ends at `due`, and a claim needs it
                # over): real time moves on by itself; the fake one by a tick.
                self.clock.advance(TICK)
            handled += swept
        else:
            raise AssertionError(f"the schedule did not settle within {MAX_SWEEPS} sweeps")
        if end > self.clock.now():
            self.clock.set(end)
        return handled + self.sweep()

    # -- reading the outcome --------------------------------------------------------------------

    def row(self, request_id: int) -> AccessRequest:
        """The request as stored now."""
        with session_scope(self.engine) as session:
            row = session.get(AccessRequest, request_id)
        assert row is not None, f"request #{request_id} does not exist"
        return row

    def status(self, request_id: int) -> str:
        """The request's status now."""
        return self.row(request_id).status

    def audit(self, request_id: int) -> list[AuditEvent]:
        """The request's audit trail, oldest first."""
        with session_scope(self.engine) as session:
            stmt = select(AuditEvent).where(AuditEvent.request_id == request_id).order_by(AuditEvent.id)  # type: ignore[arg-type]
            return list(session.exec(stmt).all())

    def moves(self, request_id: int) -> list[tuple[str | None, str, str]]:
        """The request's state changes: (from, to, by whom)."""
        return [(e.from_status, e.to_status, e.actor) for e in self.audit(request_id) if e.to_status]

    def actions(self, request_id: int) -> list[str]:
        """The request's audit actions, oldest first."""
        return [e.action for e in self.audit(request_id)]

    def granter(self, kind: Kind | str) -> FakeGranter:
        """The fake AWS of one kind."""
        return self.granters[Kind(kind)]
