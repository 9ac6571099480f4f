"""The deployment files agree with the program: Procfile commands exist, the manifest matches the routes."""

from __future__ import annotations

import io
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode, urlparse

import pytest
import yaml
from slack_sdk.signature import SignatureVerifier

from bot.cli import main
from bot.config import Settings
from bot.demo.standin import Workspace
from bot.runtime import Runtime

ROOT = Path(__file__).resolve().parents[2]
MINIMAL_SCOPES = {"commands", "chat:write", "im:write", "users:read", "users:read.email", "usergroups:read"}
SECRET = "deploy-files-secret"


def procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(":", 1) for line in lines if line.strip() and not line.startswith("#"))


def manifest() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load((ROOT / "slack-manifest.yaml").read_text())


def test_procfile_has_the_three_processes_of_the_spec() -> None:
    assert {name: command.strip() for name, command in procfile().items()} == {
        "release": "accessbot migrate",
        "web": "accessbot serve",
        "worker": "accessbot worker",
    }


@pytest.mark.parametrize("process", ["release", "web", "worker"])
def test_each_procfile_command_is_a_real_subcommand(process: str, capsys: pytest.CaptureFixture[str]) -> None:
    program, subcommand, *rest = procfile()[process].split()
    assert (program, rest) == ("accessbot", [])
    with pytest.raises(SystemExit) as stopped:
        main([subcommand, "--help"])  # argparse exits 0 with help for a subcommand it knows, 2 otherwise
    assert stopped.value.code == 0, capsys.readouterr().err


def test_an_unknown_subcommand_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["no-such-command", "--help"])
    assert stopped.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_manifest_asks_for_exactly_the_minimal_scopes() -> None:
    assert set(manifest()["oauth_config"]["scopes"]["bot"]) == MINIMAL_SCOPES
    assert len(manifest()["oauth_config"]["scopes"]["bot"]) == len(MINIMAL_SCOPES)
    assert "user" not in manifest()["oauth_config"]["scopes"]


def test_manifest_command_and_urls_point_at_slack_events() -> None:
    data = manifest()
    commands = data["features"]["slash_commands"]
    assert [c["command"] for c in commands] == ["/access"]
    urls = [
        commands[0]["url"],
        data["settings"]["interactivity"]["request_url"],
        data["settings"]["event_subscriptions"]["request_url"],
    ]
    assert all(urlparse(url).path == "/slack/events" for url in urls), urls
    assert len(set(urls)) == 1, "one Request URL for commands, interactivity and events"
    assert data["settings"]["interactivity"]["is_enabled"] is True
    assert data["features"]["app_home"]["messages_tab_enabled"] is True


@pytest.fixture
def runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    for name, value in {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
    }.items():
        monkeypatch.setenv(name, value)
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(
        "defaults: {approval_channel: C0APPROVALS}\n"
        "resources:\n  deploy-admins: {kind: iam_group, group_name: deploy-admins, approvers: [U0BOB]}\n"
    )
    slack = Workspace([], {})  # answers auth.test, which bolt calls on the first request
    slack.start()
    settings = Settings(
        slack_bot_token="xoxb-test",
        slack_signing_secret=SECRET,
        slack_api_url=slack.api_url,
        database_url=f"sqlite:///{tmp_path / 'accessbot.db'}",
        accessbot_catalog=catalog,
        port=0,
    )
    built = Runtime.build(settings, scheduler=False)
    yield built
    built.stop()
    slack.stop()


def call(runtime: Runtime, path: str, body: str, content_type: str, method: str = "POST") -> tuple[str, str]:
    stamp = str(int(time.time()))
    signature = SignatureVerifier(SECRET).generate_signature(timestamp=stamp, body=body) or ""
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "CONTENT_TYPE": content_type,
        "CONTENT_LENGTH": str(len(body.encode())),
        "HTTP_X_SLACK_REQUEST_TIMESTAMP": stamp,
        "HTTP_X_SLACK_SIGNATURE": signature,
        "wsgi.input": io.BytesIO(body.encode()),
    }
    status: list[str] = []
    answer = b"".join(runtime.web(environ, lambda s, _headers: status.append(s)))
    return status[0], answer.decode()


def test_the_manifest_url_path_and_command_are_what_the_app_answers(runtime: Runtime) -> None:
    path = urlparse(manifest()["features"]["slash_commands"][0]["url"]).path
    command = manifest()["features"]["slash_commands"][0]["command"]
    form = "application/x-www-form-urlencoded"

    body = urlencode({"command": command, "text": "help", "user_id": "U0ALICE", "channel_id": "C0G", "team_id": "T0"})
    status, answer = call(runtime, path, body, form)
    assert status.startswith("200"), (status, answer)
    assert re.search(r"/access request", json.loads(answer)["text"])

    challenge = json.dumps({"type": "url_verification", "challenge": "ch4llenge", "token": "x"})
    status, answer = call(runtime, path, challenge, "application/json")
    assert status.startswith("200") and "ch4llenge" in answer, (status, answer)

    for event in manifest()["settings"]["event_subscriptions"]["bot_events"]:  # every subscribed event is answered
        inner = {"type": event, "user": "U0ALICE", "channel": "D0", "tab": "home", "event_ts": "1.0"}
        callback = {"type": "event_callback", "team_id": "T0", "api_app_id": "A0", "event_id": "Ev1", "event": inner}
        status, answer = call(runtime, path, json.dumps(callback), "application/json")
        assert status.startswith("200"), (event, status, answer)

    other = urlencode({"command": "/other", "text": "", "user_id": "U0ALICE", "team_id": "T0"})
    assert call(runtime, path, other, form)[0].startswith("404")  # a command the app does not know


def test_dockerfile_serves_as_a_non_root_user_with_migrations() -> None:
    text = (ROOT / "Dockerfile").read_text()
    instructions = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert instructions[0] == "FROM python:3.11-slim"
    assert any(re.fullmatch(r"RUN .*pip install[^&]* \.(\s|$).*", line) for line in instructions), instructions
    assert any(line.startswith("COPY") and "migrations" in line for line in instructions)
    users = [line.split()[1] for line in instructions if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    assert [line for line in instructions if line.startswith("CMD")][-1] == 'CMD ["accessbot", "serve"]'
