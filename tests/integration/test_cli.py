"""The accessbot command as operators run it: exit code 2 and one line for bad settings, migrate,
serve refusing a database that is behind, and a real `accessbot serve` process carrying a request."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from alembic import command
from sqlalchemy import text

from bot.slack.messages import ACTION_APPROVE
from bot.store import schema
from bot.store.db import make_engine
from tests.conftest import SECRET, TOKEN, wait_until
from tests.support.aws import World, members
from tests.support.catalogs import BASIC
from tests.support.fake_slack import FakeSlack
from tests.support.slack_sender import SlackSender


def run(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "ACCESSBOT_", "DATABASE_"))}
    full.update(env)
    return subprocess.run(
        [sys.executable, "-m", "bot", *args], env=full, cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "catalog.yaml").write_text(BASIC)
    return tmp_path


@pytest.mark.parametrize(
    ("env", "named"),
    [
        pytest.param({}, "SLACK_BOT_TOKEN: missing", id="no bot token"),
        pytest.param({"SLACK_BOT_TOKEN": "xoxp-user"}, "SLACK_BOT_TOKEN: invalid value", id="not a bot token"),
        pytest.param({"SLACK_BOT_TOKEN": TOKEN}, "SLACK_SIGNING_SECRET: missing", id="no signing secret"),
        pytest.param({"SLACK_BOT_TOKEN": TOKEN, "SLACK_SIGNING_SECRET": "s", "PORT": "http"}, "PORT:", id="bad port"),
        pytest.param(
            {"SLACK_BOT_TOKEN": TOKEN, "SLACK_SIGNING_SECRET": "s", "ACCESSBOT_SCHEDULER": "maybe"},
            "ACCESSBOT_SCHEDULER:",
            id="bad scheduler switch",
        ),
        pytest.param(
            {"SLACK_BOT_TOKEN": TOKEN, "SLACK_SIGNING_SECRET": "s", "ACCESSBOT_SWEEP_SECONDS": "-1"},
            "ACCESSBOT_SWEEP_SECONDS:",
            id="negative sweep",
        ),
        pytest.param(
            {"SLACK_BOT_TOKEN": TOKEN, "SLACK_SIGNING_SECRET": "s", "ACCESSBOT_CATALOG": "nope.yaml"},
            "ACCESSBOT_CATALOG: cannot read nope.yaml",
            id="missing catalog",
        ),
    ],
)
def test_serve_with_a_bad_setting_exits_2_with_one_line_naming_it(
    workdir: Path, env: dict[str, str], named: str
) -> None:
    result = run(["serve"], env, workdir)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert named in lines[0]
    assert SECRET not in result.stderr


def test_a_broken_catalog_stops_serve_naming_the_key_path(workdir: Path) -> None:
    (workdir / "catalog.yaml").write_text(BASIC.replace("max_duration: 4h", "max_duration: forever"))
    result = run(["serve"], {"SLACK_BOT_TOKEN": TOKEN, "SLACK_SIGNING_SECRET": "s"}, workdir)
    assert result.returncode == 2
    assert "resources.prod-readonly.max_duration" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_env_file_is_read(workdir: Path) -> None:
    (workdir / ".env").write_text("SLACK_BOT_TOKEN=xoxp-from-dotenv\n")
    result = run(["serve"], {}, workdir)
    assert result.returncode == 2
    assert "SLACK_BOT_TOKEN: invalid value" in result.stderr


@pytest.mark.postgres
def test_serve_refuses_a_postgres_schema_that_is_behind(workdir: Path, postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0000'"))
    try:
        env = {"SLACK_BOT_TOKEN": TOKEN, "SLACK_SIGNING_SECRET": "s", "DATABASE_URL": postgres_url}
        result = run(["serve"], env, workdir)
        assert result.returncode == 2
        assert "run `accessbot migrate` first" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    finally:
        with engine.begin() as connection:
            connection.execute(
                text("UPDATE alembic_version SET version_num = :v"),
                {"v": schema.pending_revisions(engine)[1] or _head()},
            )
        engine.dispose()


def _head() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(schema.alembic_config("")).get_current_head()
    assert head is not None
    return head


def test_migrate_creates_the_schema_and_alembic_sees_no_drift(workdir: Path) -> None:
    url = f"sqlite:///{workdir / 'fresh.db'}"
    result = run(["migrate"], {"DATABASE_URL": url}, workdir)
    assert result.returncode == 0, result.stderr
    engine = make_engine(url)
    assert schema.pending_revisions(engine) == (None, None)
    config = schema.alembic_config(url)
    command.check(config)  # raises when the models and the migrations disagree
    engine.dispose()


def test_accessbot_serve_process_carries_a_request_to_expiry(workdir: Path, slack: FakeSlack, world: World) -> None:
    env = {
        "SLACK_BOT_TOKEN": TOKEN,
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": slack.url,
        "DATABASE_URL": f"sqlite:///{workdir / 'serve.db'}",
        "PORT": "0",
        "ACCESSBOT_SWEEP_SECONDS": "1",
    }
    full = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "ACCESSBOT_", "DATABASE_"))}
    full.update(env)
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "serve"], env=full, cwd=workdir, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stderr is not None
        port = None
        for line in process.stderr:
            found = re.search(r"listening on 0\.0\.0\.0:(\d+)", line)
            if found:
                port = int(found.group(1))
                break
        assert port, "serve never said where it listens"
        sender = SlackSender(f"http://127.0.0.1:{port}", SECRET, slack.base + "/response/")
        assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
        assert sender.command("U0ALICE", "request deploy-admins 2s from a real process").status_code == 200
        filed = slack.wait_for("response_url", lambda c: str(c.args.get("text", "")).startswith("Request #"))
        request_id = str(filed.args["text"]).split("#", 1)[1].split()[0]
        sender.click("U0BOB", ACTION_APPROVE, request_id)
        wait_until(lambda: "alice" in members(world.iam, "deploy-admins"))
        wait_until(lambda: "alice" not in members(world.iam, "deploy-admins"), timeout=8)
        process.terminate()
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
