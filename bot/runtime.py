"""The composition root: builds the engine, clients, workflow, Slack app, scheduler and web app once."""

from __future__ import annotations

import logging
import os
import socket
import uuid
from dataclasses import dataclass
from datetime import timedelta

from slack_bolt import App
from slack_sdk import WebClient
from sqlalchemy.engine import Engine

from bot.aws.identity import IdentityResolver
from bot.background import Background
from bot.catalog import Catalog, Kind, load_catalog
from bot.config import Settings
from bot.httpserver import HttpServer
from bot.metrics import Metrics
from bot.reconcile import Reconciler
from bot.scheduler import ExpiryScheduler
from bot.slack.app import build_app
from bot.slack.notify import SlackDirectory, SlackNotifier
from bot.store import queries
from bot.store.db import session_scope
from bot.web import WebApp
from bot.wiring import aws_clients, build_granters, open_database
from bot.workflow import Tuning, Workflow

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """Everything one accessbot process runs, wired together."""

    settings: Settings
    catalog: Catalog
    metrics: Metrics
    workflow: Workflow
    notifier: SlackNotifier
    web: WebApp
    scheduler: ExpiryScheduler | None
    bolt: App
    background: Background
    http: HttpServer | None = None

    @classmethod
    def build(
        cls,
        settings: Settings,
        *,
        http: bool = True,
        scheduler: bool | None = None,
        tuning: Tuning | None = None,
    ) -> Runtime:
        """Build every part from settings; raise ConfigError on anything missing or invalid."""
        settings.require_slack(http=http)
        catalog = load_catalog(settings.accessbot_catalog)
        engine = open_database(settings.database_url)
        aws = aws_clients()
        metrics = Metrics()
        metrics.watch_active_grants(lambda: active_grants(engine))
        granters = build_granters(aws)
        client = WebClient(token=settings.slack_bot_token, base_url=settings.slack_api_url, timeout=10)
        notifier = SlackNotifier(client, metrics)
        directory = SlackDirectory(client, metrics)
        workflow = Workflow(
            engine=engine,
            catalog=catalog,
            granters=granters,
            identity=IdentityResolver(catalog.identity, aws.iam, directory.email_of),
            notifier=notifier,
            directory=directory,
            owner=f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}",
            metrics=metrics,
            tuning=tuning or Tuning(lease=timedelta(seconds=settings.accessbot_lease_seconds)),
        )
        background = Background()
        bolt = build_app(
            client=client,
            signing_secret=settings.slack_signing_secret,
            workflow=workflow,
            notifier=notifier,
            background=background,
        )
        runs_scheduler = settings.scheduler_enabled if scheduler is None else scheduler
        reconciler = Reconciler(engine=engine, catalog=catalog, granters=granters, iam=aws.iam, kms=aws.kms)
        reconcile_seconds = settings.accessbot_reconcile_seconds
        expiry = ExpiryScheduler(
            workflow,
            sweep_seconds=settings.accessbot_sweep_seconds,
            takeover_seconds=workflow.lease_seconds,
            metrics=metrics,
            reconcile=lambda: reconciler.scheduled(notifier, interval=reconcile_seconds),
            reconcile_seconds=reconcile_seconds,
        )
        if runs_scheduler:
            workflow.on_due = expiry.nudge
        runtime = cls(
            settings=settings,
            catalog=catalog,
            metrics=metrics,
            workflow=workflow,
            notifier=notifier,
            web=WebApp(bolt=bolt, engine=engine, metrics=metrics),
            scheduler=expiry if runs_scheduler else None,
            bolt=bolt,
            background=background,
        )
        return runtime

    def start(self, *, host: str = "0.0.0.0", port: int | None = None) -> None:
        """Start the scheduler (if this process runs one), the identity index and the HTTP server."""
        if self.scheduler is not None:
            self.scheduler.start()
        self.workflow.ctx.identity.start()  # read the email index now, not on the first request
        self.http = HttpServer(self.web, host=host, port=self.settings.port if port is None else port)
        self.http.start()
        log.info("accessbot listening on %s:%d", host, self.http.port)

    def stop(self) -> None:
        """Stop serving and scheduling; wait for work under way. Safe to call twice."""
        if self.http is not None:
            self.http.stop()
            self.http = None
        self.background.stop()
        if self.scheduler is not None:
            self.scheduler.stop()
        self.workflow.ctx.identity.stop()
        self.workflow.close()
        self.workflow.engine.dispose()


def active_grants(engine: Engine) -> dict[str, int]:
    """Active grants per kind (every kind present, zero included), read when /metrics is scraped."""
    with session_scope(engine) as session:
        counts = queries.active_by_kind(session=session)
    return {kind.value: counts.get(kind.value, 0) for kind in Kind}
