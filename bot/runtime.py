"""The composition root: builds the engine, clients, workflow, Slack app, scheduler and web app once."""

from __future__ import annotations

import logging
import os
import socket
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from slack_bolt import App
from slack_sdk import WebClient
from sqlalchemy.engine import Engine

from bot.activity.reporter import ActivityReporter
from bot.activity.wiring import build_reporter
from bot.aws.identity import IdentityResolver
from bot.aws.identity_center import StoreUsers
from bot.background import Background
from bot.catalog import Catalog, Kind, load_catalog
from bot.clock import utcnow
from bot.config import Settings
from bot.errors import ConfigError, UserError
from bot.httpserver import HttpServer
from bot.metrics import Metrics
from bot.oncall.checker import OnCallChecker
from bot.oncall.pagerduty import PagerDuty
from bot.reconcile import Reconciler
from bot.scheduler import ExpiryScheduler
from bot.slack.app import build_app
from bot.slack.notify import SlackDirectory, SlackNotifier
from bot.slack.outbox import Outbox
from bot.store import queries
from bot.store.db import session_scope
from bot.store.models import AccessRequest
from bot.web import WebApp
from bot.wiring import aws_clients, build_granters, identity_center, open_database
from bot.workflow import Tuning, Workflow

if TYPE_CHECKING:
    from slack_bolt.adapter.socket_mode import SocketModeHandler

log = logging.getLogger(__name__)
# slack_sdk's Socket Mode client reopens a connection Slack closed only at its next ping, and gives up on a
# silent one after five failed pings: at bolt's 10 s that is 10 s deaf after a close and a minute after a
# network drop. Every 3 s makes it 3 s and about 15 s, for a few bytes each way.
SOCKET_MODE_PING_SECONDS = 3.0


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
    outbox: Outbox
    activity: ActivityReporter | None = None
    http: HttpServer | None = None
    socket_mode: SocketModeHandler | None = None

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
        aws = aws_clients(catalog)
        metrics = Metrics()
        metrics.watch_active_grants(lambda: active_grants(engine))
        center = identity_center(aws, catalog)
        margin = timedelta(seconds=settings.accessbot_iam_propagation_seconds)
        granters = build_granters(aws, center, engine=engine, margin=margin)
        client = WebClient(token=settings.slack_bot_token, base_url=settings.slack_api_url, timeout=10)
        owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        tuning = tuning or Tuning(lease=timedelta(seconds=settings.accessbot_lease_seconds))
        outbox = Outbox(
            engine,
            client,
            metrics,
            owner=owner,
            tuning=tuning,
            tickets=lambda request: catalog.ticket_of(request.resource, request.reason),
        )
        metrics.watch_outbox(lambda: posts_owed(engine))
        notifier = SlackNotifier(client, metrics, outbox)
        directory = SlackDirectory(client, metrics)
        workflow = Workflow(
            engine=engine,
            catalog=catalog,
            granters=granters,
            identity=IdentityResolver(
                catalog.identity, aws.iam, directory.email_of, store_users=StoreUsers(aws.identitystore, center)
            ),
            notifier=notifier,
            directory=directory,
            owner=owner,
            metrics=metrics,
            tuning=tuning,
        )
        activity = build_reporter(
            settings,
            engine,
            outbox,
            sts=aws.sts,
            owner=owner,
            acknowledgers=lambda r: _acknowledgers(catalog, directory, r),
            members=aws.members,
        )
        token = settings.accessbot_pagerduty_token
        checker = OnCallChecker(
            pagerduty=PagerDuty(settings.accessbot_pagerduty_url, token) if token else None,
            email_of=directory.email_of,
            group_members=directory.expand,
        )
        workflow.ctx.on_call = checker.check
        background = Background()
        bolt = build_app(
            activity=activity,
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
            outbox=outbox,
            activity=activity,
        )
        return runtime

    def start(self, *, host: str = "0.0.0.0", port: int | None = None) -> None:
        """Start the scheduler (if this process runs one), the identity index and the HTTP server."""
        self._start_jobs()
        self.http = HttpServer(self.web, host=host, port=self.settings.port if port is None else port)
        self.http.start()
        log.info("accessbot listening on %s:%d", host, self.http.port)

    def start_socket_mode(self, app_token: str) -> None:
        """Start the scheduler and the identity index, and take Slack's traffic over a Socket Mode WebSocket.

        Raise ConfigError when Slack refuses the app-level token; a connection that drops later is reopened
        by slack_sdk's client, which asks apps.connections.open for a new URL each time.
        """
        from slack_bolt.adapter.socket_mode import SocketModeHandler
        from slack_sdk.errors import SlackApiError

        try:
            # Asked here rather than inside connect(), which logs its own error line before raising.
            first_url = str(self.bolt.client.apps_connections_open(app_token=app_token)["url"])
        except SlackApiError as exc:
            raise ConfigError(
                f"SLACK_APP_TOKEN: Slack refused to open a Socket Mode connection ({exc.response.get('error')}); "
                "it needs an app-level token with connections:write, for an app with Socket Mode enabled"
            ) from None
        self._start_jobs()
        handler = SocketModeHandler(self.bolt, app_token, ping_interval=SOCKET_MODE_PING_SECONDS)
        handler.client.wss_uri = first_url  # connect() uses it; every reconnect asks for a new one
        handler.connect()  # type: ignore[no-untyped-call]
        self.socket_mode = handler
        if handler.client.is_connected():
            log.info("accessbot connected to Slack in Socket Mode (session %s)", handler.client.session_id())
        else:
            log.warning("accessbot could not open its Socket Mode connection yet; retrying")

    def _start_jobs(self) -> None:
        self.outbox.start()  # resends what Slack refused, this process's or one that stopped
        if self.scheduler is not None:
            self.scheduler.start()
            if self.activity is not None:
                self.activity.start()  # reports owed after ends, once CloudTrail has the events
        self.workflow.ctx.identity.start()  # read the email index now, not on the first request

    def stop(self) -> None:
        """Stop serving and scheduling; wait for work under way. Safe to call twice."""
        if self.socket_mode is not None:
            self.socket_mode.close()  # type: ignore[no-untyped-call]  # waits for envelopes under way
            self.socket_mode = None
        if self.http is not None:
            self.http.stop()
            self.http = None
        self.background.stop()
        if self.scheduler is not None:
            self.scheduler.stop()
        if self.activity is not None:
            self.activity.stop()
        self.workflow.ctx.identity.stop()
        self.workflow.close()
        self.outbox.stop()  # a moment to send what is queued; the rest waits in the table for the next process
        self.workflow.engine.dispose()


def _acknowledgers(catalog: Catalog, directory: SlackDirectory, request: AccessRequest) -> frozenset[str]:
    """Who must acknowledge a break-glass use: the resource's approvers (its user groups' members when Slack
    can say, else the user IDs listed)."""
    if catalog.resource(request.resource) is None:
        return frozenset()
    approvers = catalog.approvers_of(request.resource)
    try:
        return directory.expand(approvers)
    except UserError:
        return frozenset(a for a in approvers if not a.startswith("S"))


def posts_owed(engine: Engine) -> tuple[int, float]:
    """Slack posts owed, and the oldest one's age in seconds (0 when none), read when /metrics is scraped."""
    with session_scope(engine) as session:
        count, oldest = queries.posts_owed(session=session)
    return count, (utcnow() - oldest).total_seconds() if oldest is not None else 0.0


def active_grants(engine: Engine) -> dict[str, int]:
    """Active grants per kind (every kind present, zero included), read when /metrics is scraped."""
    with session_scope(engine) as session:
        counts = queries.active_by_kind(session=session)
    return {kind.value: counts.get(kind.value, 0) for kind in Kind}
