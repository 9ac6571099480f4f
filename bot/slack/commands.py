"""`/access` command text -> a typed command, or a UserError that says how to write it."""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.errors import UserError

MAX_TEXT = 3000
MAX_ID = 2**31 - 1  # request IDs are a 32-bit INTEGER column; a larger one would make PostgreSQL raise
USAGE_REQUEST = "/access request <resource> <duration> <reason…>  e.g. /access request deploy-admins 1h hotfix"


@dataclass(frozen=True)
class Help:
    """Show the help text."""


@dataclass(frozen=True)
class Request:
    """File a request."""

    resource: str
    duration: str
    reason: str


Command = Help | Request


def parse_command(text: str) -> Command:
    """Parse the text after `/access`."""
    if len(text) > MAX_TEXT:
        raise UserError(f"That command is {len(text)} characters long; keep it under {MAX_TEXT}.")
    words = text.split()
    if not words or words[0].lower() == "help":
        return Help()
    verb = words[0].lower()
    if verb == "request":
        if len(words) < 4:
            raise UserError(f"Usage: {USAGE_REQUEST}")
        reason = text.split(None, 3)[3]
        return Request(resource=words[1].lower(), duration=words[2], reason=reason)
    raise UserError(f"Unknown command '{_short(words[0])}'. Try /access help.")


def parse_request_id(text: str) -> int:
    """Read a request ID written `12` or `#12`."""
    match = re.fullmatch(r"#?(\d{1,12})", text.strip())
    if match is None or not 0 < int(match.group(1)) <= MAX_ID:
        raise UserError(f"'{_short(text)}' is not a request ID; write it like #12.")
    return int(match.group(1))


def _short(text: str) -> str:
    return text if len(text) <= 30 else text[:30] + "…"
