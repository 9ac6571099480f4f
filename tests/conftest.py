"""Fixtures: a moto server, a fake Slack Web API, a database (SQLite, and PostgreSQL when
TEST_DATABASE_URL is set), and the bot itself running as a real HTTP server; all on 127.0.0.1.

Which tests run on PostgreSQL. A test that takes `database_url` (itself or through `engine`,
`make_settings`, `make_bot` or `bot`) runs on SQLite only, unless it is marked:

- `@pytest.mark.both_databases`: on SQLite and on PostgreSQL;
- `@pytest.mark.postgres` ("needs PostgreSQL"): on PostgreSQL only.

The rule: a test runs on PostgreSQL when what it checks is something PostgreSQL does differently from
SQLite, which is otherwise the same SQLAlchemy code on both. That is: concurrency in one database (row
locks, `FOR UPDATE SKIP LOCKED` claims, leases and takeover, advisory locks: the per-request AWS lock
and the audit chain's append lock), several bots, replicas or worker processes sharing one database,
values the server checks and SQLite does not (column widths, types, timestamps round-tripped into a
hash, GROUP BY and time-window queries), and the schema on PostgreSQL (migrations, `serve` refusing a
schema that is behind). A test that means something only where processes share the database's locks
(replicas, row locks held by another transaction) is `postgres`; one whose behaviour must hold on both
is `both_databases`. Everything else (flows, rendering, parsing, policy, AWS faults) runs once, on
SQLite: there both databases run the same code.

The PostgreSQL variants carry the `postgres` marker (`-m "not postgres"` leaves them out). With
ACCESSBOT_REQUIRE_POSTGRES=1 a run in which none of them passed fails (.ci/run sets it).

Under pytest-xdist every worker is its own process with its own moto, fake Slack and PostgreSQL
database (TEST_DATABASE_URL's name + `_gw0`, `_gw1`, ..., created when missing); the workers hand what
the end-of-run checks need (AWS operations called) to the controller, which runs the checks. Tests that
start several `accessbot worker` processes and hold them to deadlines are marked
`xdist_group("worker_processes")` so that one xdist worker runs them in turn: run side by side they
starve each other of CPU on a two-core machine and miss their deadlines."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from hypothesis import settings
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DBAPIError
from sqlmodel import SQLModel, select

from bot.aws import email_index
from bot.aws.clients import AwsClients, botocore_session
from bot.config import Settings
from bot.runtime import Runtime
from bot.store import schema
from bot.store.db import make_engine, session_scope
from bot.store.models import AccessRequest, AuditEvent
from bot.testing import fake_cloudtrail
from bot.workflow import Tuning
from tests.support import iam_policy
from tests.support.aws import World, reset_moto, seed, start_moto
from tests.support.catalogs import BASIC, EMAILS
from tests.support.cloudtrail import moto_account_of
from tests.support.fake_slack import FakeSlack, start_fake_slack
from tests.support.index_clock import IndexClock
from tests.support.slack_sender import SlackSender

SECRET = "signing-secret-TEST-1f2e3d"
TOKEN = "xoxb-TEST-token-4c5b6a"
# Property tests check what is true, not how fast: on two shared cores under a parallel suite a single
# example can take longer than Hypothesis's default 200 ms deadline, which would fail a correct test.
settings.register_profile("accessbot", deadline=None)
settings.load_profile("accessbot")
REQUIRE_POSTGRES = os.environ.get("ACCESSBOT_REQUIRE_POSTGRES") == "1"
_postgres_ran = {"count": 0}  # PostgreSQL tests that passed, counted where the reports arrive (the controller)


def wait_until(predicate: Callable[[], Any], *, timeout: float = 10.0, interval: float = 0.02) -> Any:
    """Poll until predicate() is truthy; return its value, or fail after timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


# -- logging: what a test installs is taken away after it ----------------------------------------


@pytest.fixture(autouse=True)
def _logging_as_it_was() -> Iterator[None]:
    """Put the root logger's handlers and level back after each test.

    `main()` (check-config, serve) installs a handler on the stderr pytest captured for that test; left in
    place, a background thread of a later test (moto's server, the email index) logs into that closed
    stream and prints "--- Logging error ---". moto's server logs every request: kept to warnings.
    """
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def index_clock(monkeypatch: pytest.MonkeyPatch) -> IndexClock:
    """The email index's clock for the rest of the test: moved forward by the test instead of slept past."""
    clock = IndexClock()
    monkeypatch.setattr(email_index, "time", clock)
    return clock


# -- every AWS operation the bot calls, checked against docs/iam-policy.json at the end -----------


@pytest.fixture(scope="session", autouse=True)
def _record_aws_operations() -> Iterator[None]:
    original = AwsClients.create

    def create(session: Any = None) -> AwsClients:
        # On the session, so that every client it builds (each on its first call) records its calls.
        session = session or boto3.session.Session(botocore_session=botocore_session())
        session.events.register("before-call.*.*", iam_policy.record)
        return original(session)

    AwsClients.create = staticmethod(create)  # type: ignore[method-assign,assignment]
    yield
    AwsClients.create = original  # type: ignore[method-assign]


# -- servers shared by the whole session ---------------------------------------------------------


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    server, url = start_moto()
    # moto has no CloudTrail LookupEvents: the fake stands in for it (activity reports, check-config).
    with fake_cloudtrail.running() as trail:
        trail.account_of = moto_account_of()  # credentials assumed into another account read that account's
        os.environ["AWS_ENDPOINT_URL_CLOUDTRAIL"] = trail.url
        yield url
    server.stop()


@pytest.fixture
def world(moto_url: str) -> World:
    reset_moto(moto_url)
    return seed()


@pytest.fixture(scope="session")
def _fake_slack() -> Iterator[FakeSlack]:
    fake, server = start_fake_slack()
    yield fake
    server.shutdown()


@pytest.fixture
def slack(_fake_slack: FakeSlack) -> FakeSlack:
    _fake_slack.reset()
    _fake_slack.emails = dict(EMAILS)
    _fake_slack.usergroups = {}
    _fake_slack.timezones = {}
    return _fake_slack


# -- databases -----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    schema.upgrade(engine)
    engine.dispose()
    return path


def _worker_database(url: str) -> str:
    """Under pytest-xdist, this worker's own database beside the one named by `url` (created when missing)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker:
        return url
    base = make_url(url)
    mine = base.set(database=f"{base.database}_{worker}")
    admin = create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            exists = connection.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": mine.database})
            if exists.first() is None:
                # Another run's worker of the same number may make it meanwhile; any other failure shows
                # when the database is used.
                with contextlib.suppress(DBAPIError):
                    connection.execute(text(f'CREATE DATABASE "{mine.database}"'))
    finally:
        admin.dispose()
    return mine.render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def postgres_url() -> str:
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        if REQUIRE_POSTGRES:
            pytest.fail("ACCESSBOT_REQUIRE_POSTGRES=1 but TEST_DATABASE_URL is not set")
        pytest.skip("TEST_DATABASE_URL is not set")
    url = _worker_database(url)
    engine = make_engine(url)
    with engine.begin() as connection:
        SQLModel.metadata.drop_all(connection)
        connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
    schema.upgrade(engine)
    engine.dispose()
    return url


def _truncate(url: str) -> None:
    engine = make_engine(url)
    names = ", ".join(t.name for t in SQLModel.metadata.sorted_tables)
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Refuse to run when pytest-xdist could not group the tests marked xdist_group (it names each grouped test
    `<id>@<group>`): they would run side by side, each against deadlines the others' processes eat into."""
    if not getattr(config.option, "loadgroup", False):
        return
    ungrouped = [item.nodeid for item in items if item.get_closest_marker("xdist_group") and "@" not in item.nodeid]
    if ungrouped:
        raise pytest.UsageError(
            f"pytest-xdist ignored xdist_group for {len(ungrouped)} tests (e.g. {ungrouped[0]}): this pytest and "
            "pytest-xdist do not work together; keep pytest within the range pyproject.toml pins"
        )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Give `database_url` its databases by the rule in this module's docstring."""
    if "database_url" not in metafunc.fixturenames:
        return
    postgres = pytest.param("postgres", marks=pytest.mark.postgres)
    if metafunc.definition.get_closest_marker("postgres"):
        databases: list[Any] = [postgres]
    elif metafunc.definition.get_closest_marker("both_databases"):
        databases = ["sqlite", postgres]
    else:
        databases = ["sqlite"]
    metafunc.parametrize("database_url", databases, indirect=True)


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path: Path, _sqlite_template: Path) -> str:
    if request.param == "sqlite":
        target = tmp_path / "accessbot.db"
        shutil.copy(_sqlite_template, target)
        return f"sqlite:///{target}"
    url: str = request.getfixturevalue("postgres_url")
    _truncate(url)
    return url


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


# -- the bot -------------------------------------------------------------------------------------


@dataclass
class Bot:
    """A running bot and a way to talk to it like Slack does."""

    runtime: Runtime
    sender: SlackSender
    slack: FakeSlack

    def ask(self, user: str, text: str, **kw: Any) -> str:
        """Send `/access <text>` and return the answer the person sees.

        That is the ack's text when it is the whole answer; when the ack is empty or says the work is under
        way (`Filing your request…`), it is the message that follows on the command's response_url.
        """
        url = f"{self.sender.response_base}ask/{uuid.uuid4().hex}"
        answer = self.sender.command(user, text, response_url=url, **kw)
        assert answer.status_code == 200, (answer.status_code, answer.text)
        said = str(answer.json().get("text", "")) if answer.content else ""
        if said and not said.startswith("Filing your request"):
            return said
        return str(
            self.slack.wait_for("response_url", lambda c: c.args.get("response_url") == url).args.get("text", "")
        )

    @property
    def url(self) -> str:
        assert self.runtime.http is not None
        return self.runtime.http.url

    def request(self, request_id: int) -> AccessRequest | None:
        with session_scope(self.runtime.workflow.engine) as session:
            return session.get(AccessRequest, request_id)

    def status(self, request_id: int) -> str | None:
        row = self.request(request_id)
        return row.status if row else None

    def wait_status(self, request_id: int, status: str, timeout: float = 10.0) -> AccessRequest:
        wait_until(lambda: self.status(request_id) == status, timeout=timeout)
        row = self.request(request_id)
        assert row is not None
        return row

    def count(self) -> int:
        with session_scope(self.runtime.workflow.engine) as session:
            return len(session.exec(select(AccessRequest)).all())

    def audit(self, request_id: int | None = None) -> list[AuditEvent]:
        with session_scope(self.runtime.workflow.engine) as session:
            stmt = select(AuditEvent).order_by(AuditEvent.id)  # type: ignore[arg-type]
            if request_id is not None:
                stmt = stmt.where(AuditEvent.request_id == request_id)
            return list(session.exec(stmt).all())


@pytest.fixture
def catalog_file(tmp_path: Path) -> Path:
    path = tmp_path / "catalog.yaml"
    path.write_text(BASIC)
    return path


@pytest.fixture
def make_settings(database_url: str, catalog_file: Path, slack: FakeSlack) -> Callable[..., Settings]:
    def _make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "slack_bot_token": TOKEN,
            "slack_signing_secret": SECRET,
            "slack_api_url": slack.url,
            "database_url": database_url,
            "accessbot_catalog": catalog_file,
            "accessbot_sweep_seconds": 1.0,
            "port": 0,
        }
        values.update(overrides)
        return Settings(**values)

    return _make


# The test bot's timings: AWS and Slack retries and claims short enough for a test to wait them out.
TEST_TUNING = Tuning(
    retry_base=timedelta(seconds=0.2),
    lease=timedelta(seconds=5),
    slack_retry_base=timedelta(seconds=0.2),
    slack_poll=timedelta(seconds=0.5),
)


@pytest.fixture
def make_bot(make_settings: Callable[..., Settings], world: World, slack: FakeSlack) -> Iterator[Callable[..., Bot]]:
    started: list[Runtime] = []

    def _make(*, tuning: Tuning | None = None, **overrides: Any) -> Bot:
        runtime = Runtime.build(make_settings(**overrides), tuning=tuning or TEST_TUNING)
        runtime.start(host="127.0.0.1", port=0)
        started.append(runtime)
        assert runtime.http is not None
        return Bot(runtime, SlackSender(runtime.http.url, SECRET, slack.base + "/response/"), slack)

    yield _make
    for runtime in started:
        runtime.stop()


@pytest.fixture
def bot(make_bot: Callable[..., Bot]) -> Bot:
    return make_bot()


# -- end-of-run checks, made by the controller when pytest-xdist runs the tests in workers ---------------


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" and report.passed and "postgres" in report.keywords:
        _postgres_ran["count"] += 1


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """An xdist worker is done: take over the AWS operations its bots called."""
    iam_policy.CALLED.update(getattr(node, "workeroutput", {}).get("aws_called", []))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """With ACCESSBOT_REQUIRE_POSTGRES=1, a run in which no PostgreSQL test passed is a failure; so is any
    AWS operation the bot called that docs/iam-policy.json does not allow."""
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: the controller checks everything at its end
        workeroutput["aws_called"] = sorted(iam_policy.CALLED)
        return
    if REQUIRE_POSTGRES and exitstatus == 0 and _postgres_ran["count"] == 0:
        print("\nACCESSBOT_REQUIRE_POSTGRES=1 but no PostgreSQL test ran")
        session.exitstatus = 1
    outside = iam_policy.not_allowed(iam_policy.CALLED)
    if outside:
        print(f"\nThe bot called AWS operations docs/iam-policy.json does not allow: {outside}")
        session.exitstatus = 1
