"""The workflow's front: one object the Slack listeners, the scheduler and the CLI talk to.

It only wires the services together (composition: one shared Context, no class chain) and hands each
call to the service that owns it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

from sqlalchemy.engine import Engine

from bot.aws.granters import Granter
from bot.aws.identity import IdentityResolver
from bot.catalog import Catalog, Kind
from bot.clock import utcnow
from bot.domain.lifecycle import Status
from bot.metrics import Metrics
from bot.store import queries
from bot.store.db import session_scope
from bot.store.models import AccessRequest
from bot.workflow.base import Directory, Notifier, Tuning
from bot.workflow.context import Context
from bot.workflow.extensions import ExtensionService
from bot.workflow.grants import GrantService
from bot.workflow.requests import RequestService
from bot.workflow.sweep import SweepService


class Workflow:
    """Every use case, each handed to the service that owns it."""

    def __init__(
        self,
        *,
        engine: Engine,
        catalog: Catalog,
        granters: Mapping[Kind, Granter],
        identity: IdentityResolver,
        notifier: Notifier,
        directory: Directory,
        owner: str,
        metrics: Metrics | None = None,
        clock: Callable[[], datetime] = utcnow,
        tuning: Tuning | None = None,
    ) -> None:
        self.ctx = Context(
            engine=engine,
            catalog=catalog,
            granters=granters,
            identity=identity,
            notifier=notifier,
            directory=directory,
            owner=owner,
            metrics=metrics,
            clock=clock,
            tuning=tuning,
        )
        self.grants = GrantService(self.ctx)
        self.extensions = ExtensionService(self.ctx, self.grants)
        self.requests = RequestService(self.ctx, self.grants, self.extensions)
        self.sweeper = SweepService(self.ctx, self.grants)
        # requests
        self.requestable = self.requests.requestable
        self.precheck = self.requests.precheck
        self.submit = self.requests.submit
        self.filed_from = self.requests.filed_from
        self.announce = self.requests.announce
        self.decide = self.requests.decide
        self.check_vote = self.requests.check_vote
        self.after_decision = self.requests.after_decision
        self.cancel = self.requests.cancel
        self.acknowledge = self.requests.acknowledge
        self.mine = self.requests.mine
        self.mine_one = self.requests.mine_one
        self.waiting_for = self.requests.waiting_for
        self.waiting_page = self.requests.waiting_page
        # extensions
        self.request_extension = self.extensions.request
        self.after_extension_request = self.extensions.after_request
        # AWS work: one visit does whatever a request is owed (grant, extension, end, undo)
        self.advance = self.grants.advance
        self.activate = self.end = self.apply_extension = self.grants.advance
        self.revoke_early = self.grants.revoke_early
        # the sweep
        self.run_due = self.sweeper.run_due
        self.next_due_at = self.sweeper.next_due_at
        self.process = self.sweeper.process

    @property
    def engine(self) -> Engine:
        """The database."""
        return self.ctx.engine

    @property
    def catalog(self) -> Catalog:
        """What may be requested."""
        return self.ctx.catalog

    @property
    def owner(self) -> str:
        """This process's name in claims."""
        return self.ctx.owner

    @property
    def lease_seconds(self) -> float:
        """How long a claim lasts unless renewed."""
        return self.ctx.tuning.lease.total_seconds()

    @property
    def on_due(self) -> Callable[[datetime], None]:
        """Where "something is due at this moment" goes; the composition root connects the scheduler's wake-up."""
        return self.ctx.on_due

    @on_due.setter
    def on_due(self, listener: Callable[[datetime], None]) -> None:
        self.ctx.on_due = listener

    def unposted(self, rows: Sequence[AccessRequest]) -> dict[int, str]:
        """Of these requests, the pending ones whose approval message is not coming: Slack refused it for good
        (given up, with its last answer; an operator may resend it), or an operator dropped it ("dropped")."""
        ids = [r.id for r in rows if r.id is not None and r.status == Status.PENDING and not r.approval_ts]
        if not ids:
            return {}
        with session_scope(self.ctx.engine) as session:
            return queries.approvals_given_up(ids, session=session)

    def close(self) -> None:
        """Stop the claim heartbeat (the process is stopping)."""
        self.ctx.claims.stop()
