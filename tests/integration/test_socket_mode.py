"""Socket Mode end to end: a real `accessbot serve` process with SLACK_APP_TOKEN (and no signing secret) opens
its WebSocket to a fake Socket Mode endpoint (bot/testing/fake_socket_mode.py) that the fake Slack's
apps.connections.open points at; requests are filed and approved over the socket, against moto, and the
connection is reopened after Slack closes it, asks for a reconnect, or the connection is reset."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.config import Settings
from bot.runtime import Runtime
from bot.slack.messages import ACTION_APPROVE
from bot.testing.fake_socket_mode import FakeSocketMode, Session, SocketModeSender
from tests.conftest import TOKEN, wait_until
from tests.support.aws import World, members
from tests.support.catalogs import BASIC
from tests.support.fake_slack import FakeSlack

APP_TOKEN = "xapp-1-TEST-app-token-9a8b7c"
START = 30.0  # seconds a fresh process may take to import, migrate its SQLite database and connect


@dataclass
class Serving:
    """An `accessbot serve` process in Socket Mode, its log, and a sender that talks to it over the socket."""

    process: subprocess.Popen[str]
    log_path: Path
    sender: SocketModeSender

    def log(self) -> str:
        """What the process has logged so far (stderr), for failure messages."""
        return self.log_path.read_text()


def serve_process(workdir: Path, slack: FakeSlack) -> tuple[subprocess.Popen[str], Path]:
    """Start `python -m bot serve` with an app-level token and no signing secret; its stderr goes to a file."""
    (workdir / "catalog.yaml").write_text(BASIC)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "ACCESSBOT_", "DATABASE_"))}
    env.update(
        SLACK_BOT_TOKEN=TOKEN,
        SLACK_APP_TOKEN=APP_TOKEN,
        SLACK_API_URL=slack.url,
        DATABASE_URL=f"sqlite:///{workdir / 'socket.db'}",
        ACCESSBOT_SWEEP_SECONDS="1",
    )
    log_path = workdir / "serve.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "bot", "serve"], env=env, cwd=workdir, stderr=log, stdout=log, text=True
        )
    return process, log_path


@pytest.fixture
def endpoint(slack: FakeSlack) -> Iterator[FakeSocketMode]:
    with FakeSocketMode() as endpoint:
        endpoint.attach(slack)
        yield endpoint


@pytest.fixture
def serving(tmp_path: Path, slack: FakeSlack, world: World, endpoint: FakeSocketMode) -> Iterator[Serving]:
    process, log_path = serve_process(tmp_path, slack)
    try:
        yield Serving(process, log_path, SocketModeSender(endpoint, slack.base + "/response/"))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def connected(serving: Serving, endpoint: FakeSocketMode) -> Session:
    """The process's first Socket Mode connection, once it is up; fail at once, with its log, if it exits."""
    wait_until(lambda: endpoint.sessions or serving.process.poll() is not None, timeout=START)
    assert endpoint.sessions, f"serve exited with {serving.process.returncode}:\n{serving.log()}"
    return endpoint.wait_session(1)


def ask(serving: Serving, slack: FakeSlack, user: str, text: str) -> str:
    """Send `/access <text>` over the socket; the answer the person sees (the ack, or what follows on response_url)."""
    url = f"{slack.base}/response/socket/{uuid.uuid4().hex}"
    ack = serving.sender.command(user, text, response_url=url)
    said = str(ack.json().get("text", "")) if ack.content else ""
    if said and not said.startswith("Filing your request"):
        return said
    return str(slack.wait_for("response_url", lambda c: c.args.get("response_url") == url).args.get("text", ""))


def test_serve_in_socket_mode_files_and_approves_a_request_and_reopens_the_socket(
    serving: Serving, endpoint: FakeSocketMode, slack: FakeSlack, world: World
) -> None:
    first = connected(serving, endpoint)
    assert len(slack.find("apps.connections.open")) == 1
    wait_until(lambda: first.connection.latency > 0)  # the client answered the server's ping

    # A request filed over the socket: acknowledged at once on the socket, answered on its response_url.
    url = f"{slack.base}/response/socket/filed"
    acked = serving.sender.command("U0ALICE", "request deploy-admins 1h deploy the hotfix", response_url=url)
    assert acked.json()["text"] == "Filing your request for *deploy-admins* (1h)…"
    assert endpoint.acks[serving.sender.envelopes[-1]].session == first.number
    filed = slack.wait_for("response_url", lambda c: c.args.get("response_url") == url)
    assert str(filed.args["text"]).startswith("Request #"), filed.args

    # The approval message reached the channel; Approve clicked over the socket grants the group in AWS.
    approval = slack.wait_for("chat.postMessage", lambda c: c.channel == "C0APPROVALS" and bool(c.buttons()))
    approve = approval.button("Approve")
    assert approve is not None
    assert approve["action_id"] == ACTION_APPROVE
    clicked = serving.sender.click("U0BOB", ACTION_APPROVE, approve["value"], message_ts=approval.ts)
    assert clicked.status_code == 200
    wait_until(lambda: "alice" in members(world.iam, "deploy-admins"))

    # Slack closes the socket: the client asks apps.connections.open for a new URL and comes back on it.
    endpoint.close(first)
    second = endpoint.wait_session(2, timeout=10)
    assert first.closed.wait(5)
    assert len(slack.find("apps.connections.open")) == 2
    assert ask(serving, slack, "U0ALICE", "request auditors 30m quarterly audit").startswith("Request #")
    assert endpoint.acks[serving.sender.envelopes[-1]].session == second.number

    # Slack asks for a reconnect (`disconnect`, as before maintenance): a new connection, the old one let go.
    endpoint.ask_to_reconnect()
    third = endpoint.wait_session(3, timeout=10)
    assert second.closed.wait(5)
    assert "deploy-admins" in ask(serving, slack, "U0ALICE", "list")
    assert endpoint.acks[serving.sender.envelopes[-1]].session == third.number
    # Events come over the socket too (no response payload): opening App Home publishes it.
    assert serving.sender.event({"type": "app_home_opened", "user": "U0ALICE", "tab": "home"}).content == b""
    home = slack.wait_for("views.publish", lambda c: c.args.get("user_id") == "U0ALICE")
    assert "deploy-admins" in json.dumps(home.args.get("view"))
    assert len(slack.find("apps.connections.open")) == 3
    assert endpoint.refused == []  # every connection came with a fresh ticket from apps.connections.open

    # SIGTERM: the process lets go of the socket and exits 0.
    serving.process.terminate()
    assert serving.process.wait(timeout=15) == 0, serving.log()
    assert third.closed.wait(5)
    assert "Traceback" not in serving.log()


def test_a_socket_reset_without_a_close_frame_is_noticed_and_reopened(
    serving: Serving, endpoint: FakeSocketMode, slack: FakeSlack
) -> None:
    first = connected(serving, endpoint)
    endpoint.reset(first)
    second = endpoint.wait_session(2, timeout=15)
    assert first.closed.wait(5)
    assert len(slack.find("apps.connections.open")) == 2
    assert "/access request" in ask(serving, slack, "U0ALICE", "help")
    assert endpoint.acks[serving.sender.envelopes[-1]].session == second.number


def test_an_app_token_slack_refuses_stops_serve_with_one_line_naming_it(
    tmp_path: Path, slack: FakeSlack, world: World, endpoint: FakeSocketMode
) -> None:
    slack.failures["apps.connections.open"] = "invalid_auth"
    process, log_path = serve_process(tmp_path, slack)
    assert process.wait(timeout=START) == 2
    errors = [line for line in log_path.read_text().splitlines() if line.startswith("accessbot:")]
    assert errors == [
        "accessbot: SLACK_APP_TOKEN: Slack refused to open a Socket Mode connection (invalid_auth); it needs an "
        "app-level token with connections:write, for an app with Socket Mode enabled"
    ]
    assert APP_TOKEN not in log_path.read_text()
    assert endpoint.sessions == []


def test_socket_mode_reads_the_email_index_at_start_not_on_the_first_request(
    make_settings: Callable[..., Settings], world: World, endpoint: FakeSocketMode
) -> None:
    runtime = Runtime.build(make_settings(slack_signing_secret=None, slack_app_token=APP_TOKEN))
    try:
        runtime.start_socket_mode(APP_TOKEN)
        session = endpoint.wait_session(1)
        index = runtime.workflow.ctx.identity.index
        assert index is not None
        wait_until(lambda: index.reads >= 1)  # no request has asked for it
    finally:
        runtime.stop()
    assert session.closed.wait(5)
