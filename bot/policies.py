"""`accessbot iam-policy [--member]`: print the IAM policy the bot needs, or the member-account role's."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import bot
from bot.errors import ConfigError

# The bot's own policy; the role the bot assumes in each account under the catalog's `accounts`, and its trust.
BOT = "iam-policy.json"
MEMBER = ("iam-policy-member.json", "iam-trust-member.json")


def add_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `iam-policy`."""
    command = sub.add_parser("iam-policy", help="print the IAM policy the bot needs (docs/iam-policy.json)")
    command.add_argument(
        "--member",
        action="store_true",
        help="print the role to create in each account under `accounts`: its policy and trust policy",
    )


def run(args: argparse.Namespace) -> int:
    """Print the document(s) as JSON: the bot's policy, or {"policy": …, "trust": …} for a member account."""
    if args.member:
        policy, trust = (_read(name) for name in MEMBER)
        print(json.dumps({"policy": policy, "trust": trust}, indent=2))
    else:
        print(json.dumps(_read(BOT), indent=2))
    return 0


def docs_dir() -> Path:
    """docs/: next to the package in a checkout, else in the working directory (the image's /app)."""
    for candidate in (Path(bot.__file__).resolve().parent.parent / "docs", Path.cwd() / "docs"):
        if (candidate / BOT).is_file():
            return candidate
    raise ConfigError("iam-policy: cannot find docs/iam-policy.json (run from the repository or the image's /app)")


def _read(name: str) -> object:
    return json.loads((docs_dir() / name).read_text(encoding="utf-8"))
