"""`/access` command text -> a typed command, or a UserError that says how to write it."""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.errors import UserError

MAX_TEXT = 3000
MAX_ID = 2**31 - 1  # request IDs are a 32-bit INTEGER column; a larger one would make PostgreSQL raise
USAGE_REQUEST = "/access request <resource> <duration> <reason…>  e.g. /access request deploy-admins 1h hotfix"
USAGE_BREAKGLASS = "/access breakglass <resource> <duration> <reason…> (the reason is mandatory)"


@dataclass(frozen=True)
class Help:
    """Show the help text."""


@dataclass(frozen=True)
class OpenForm:
    """Open the request modal."""


@dataclass(frozen=True)
class Request:
    """File a request (or, with break_glass, activate at once where the catalog allows it)."""

    resource: str
    duration: str
    reason: str
    break_glass: bool = False


@dataclass(frozen=True)
class Mine:
    """List my requests and grants."""


@dataclass(frozen=True)
class Pending:
    """List what waits for my approval."""


@dataclass(frozen=True)
class ShowCatalog:
    """List what I may request."""


@dataclass(frozen=True)
class Cancel:
    """Withdraw a pending request."""

    request_id: int


@dataclass(frozen=True)
class Revoke:
    """End a grant now."""

    request_id: int


@dataclass(frozen=True)
class Extend:
    """Ask for more time."""

    request_id: int
    duration: str


Command = Help | OpenForm | Request | Mine | Pending | ShowCatalog | Cancel | Revoke | Extend
_SIMPLE: dict[str, Command] = {"help": Help(), "list": Mine(), "pending": Pending(), "catalog": ShowCatalog()}


def parse_command(text: str) -> Command:
    """Parse the text after `/access`."""
    if len(text) > MAX_TEXT:
        raise UserError(f"That command is {len(text)} characters long; keep it under {MAX_TEXT}.")
    words = text.split()
    if not words:
        return OpenForm()
    verb = words[0].lower()
    if verb == "help":
        return Help()
    if verb in _SIMPLE and len(words) == 1:
        return _SIMPLE[verb]
    if verb == "request" and len(words) == 1:
        return OpenForm()
    if verb in ("request", "breakglass"):
        if len(words) < 4:
            raise UserError(f"Usage: {USAGE_REQUEST if verb == 'request' else USAGE_BREAKGLASS}")
        reason = text.split(None, 3)[3]
        return Request(resource=words[1].lower(), duration=words[2], reason=reason, break_glass=verb == "breakglass")
    if verb in ("cancel", "revoke"):
        if len(words) != 2:
            raise UserError(f"Usage: /access {verb} <id>  e.g. /access {verb} #12")
        request_id = parse_request_id(words[1])
        return Cancel(request_id) if verb == "cancel" else Revoke(request_id)
    if verb == "extend":
        if len(words) != 3:
            raise UserError("Usage: /access extend <id> <duration>  e.g. /access extend #12 30m")
        return Extend(parse_request_id(words[1]), words[2])
    if verb in _SIMPLE:
        raise UserError(f"/access {verb} takes no arguments.")
    raise UserError(f"Unknown command '{_short(words[0])}'. Try /access help.")


def parse_request_id(text: str) -> int:
    """Read a request ID written `12` or `#12`."""
    match = re.fullmatch(r"#?(\d{1,12})", text.strip())
    if match is None or not 0 < int(match.group(1)) <= MAX_ID:
        raise UserError(f"'{_short(text)}' is not a request ID; write it like #12.")
    return int(match.group(1))


def parse_vote_value(text: str) -> tuple[int, int | None]:
    """Read a vote button's value: `12` (the request) or `12:1` (its first extension)."""
    request_part, _, round_part = text.partition(":")
    request_id = parse_request_id(request_part)
    if not round_part:
        return request_id, None
    if not round_part.isdigit() or len(round_part) > 3:
        raise UserError(f"'{_short(text)}' is not a request ID; write it like #12.")
    return request_id, int(round_part)


def _short(text: str) -> str:
    return text if len(text) <= 30 else text[:30] + "…"
