"""The `accessbot` command run in-process against a running bot's database, as an operator would."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.cli import main
from bot.config import Settings


@dataclass
class Result:
    """What one command printed, and its exit code."""

    code: int
    out: str
    err: str


class Operator:
    """Runs `accessbot <args>` with the bot's settings in the environment; captures its output."""

    def __init__(self, settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
        self._capsys = capsys
        env = {
            "DATABASE_URL": settings.database_url,
            "ACCESSBOT_CATALOG": str(settings.accessbot_catalog),
            "SLACK_BOT_TOKEN": settings.slack_bot_token or "",
            "SLACK_API_URL": settings.slack_api_url,
            "LOG_FORMAT": "text",
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        for name in ("SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN", "ACCESSBOT_SCHEDULER", "LOG_LEVEL"):
            monkeypatch.delenv(name, raising=False)

    def __call__(self, *args: str) -> Result:
        self._capsys.readouterr()
        root = logging.getLogger()
        handlers, level = root.handlers[:], root.level
        try:
            code = main(list(args))  # main() installs its own log handler: put pytest's back after
        except SystemExit as exc:  # argparse refusing the arguments, as the console script would exit
            code = exc.code if isinstance(exc.code, int) else 1
        finally:
            root.handlers[:] = handlers
            root.setLevel(level)
        captured = self._capsys.readouterr()
        return Result(code, captured.out, captured.err)


def operator_for(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], workdir: Path
) -> Operator:
    """An Operator working in `workdir` (so no stray .env file is read)."""
    monkeypatch.chdir(workdir)
    return Operator(settings, monkeypatch, capsys)
