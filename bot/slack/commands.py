"""`/access` command text -> a typed command, or a UserError that says how to write it."""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.errors import UserError

MAX_TEXT = 3000
MAX_ID = 2**31 - 1  # request IDs are a 32-bit INTEGER column; a larger one would make PostgreSQL raise
USAGE_REQUEST = (
    "/access request <resource> <duration> [for=@someone] [start=<when>] <reason…>  "
    "e.g. /access request deploy-admins 1h hotfix"
)
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
    # The beneficiary's Slack user ID when filed on someone's behalf (`for=@someone`); None: for the filer.
    on_behalf_of: str | None = None
    # `start=<when>` as written (`+30m`, `14:00`, ISO 8601): read after the ack, in the requester's time zone.
    start: str | None = None


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


@dataclass(frozen=True)
class Activity:
    """Show what a grant was used for (CloudTrail)."""

    request_id: int


Command = Help | OpenForm | Request | Mine | Pending | ShowCatalog | Cancel | Revoke | Extend | Activity
# `key=value` tokens right after the duration; `for=` names the beneficiary, `start=` schedules the start.
_OPTION = re.compile(r"([A-Za-z][A-Za-z_]{0,19})=(.*)")
_OPTIONS = ("for", "start")
_MENTION = re.compile(r"<@([UW][A-Z0-9]{2,20})(?:\|[^<>]{0,80})?>")
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
        return _request(text, words, break_glass=verb == "breakglass")
    if verb in ("cancel", "revoke", "activity"):
        if len(words) != 2:
            raise UserError(f"Usage: /access {verb} <id>  e.g. /access {verb} #12")
        request_id = parse_request_id(words[1])
        by_id: dict[str, type[Cancel | Revoke | Activity]] = {"cancel": Cancel, "revoke": Revoke, "activity": Activity}
        return by_id[verb](request_id)
    if verb == "extend":
        if len(words) != 3:
            raise UserError("Usage: /access extend <id> <duration>  e.g. /access extend #12 30m")
        return Extend(parse_request_id(words[1]), words[2])
    if verb in _SIMPLE:
        raise UserError(f"/access {verb} takes no arguments.")
    raise UserError(f"Unknown command '{_short(words[0])}'. Try /access help.")


def _request(text: str, words: list[str], *, break_glass: bool) -> Request:
    """`request <resource> <duration> [key=value…] <reason…>`: options sit between the duration and the reason."""
    options: dict[str, str] = {}
    for word in words[3:]:
        match = _OPTION.fullmatch(word)
        if match is None:
            break
        key, value = match.group(1).lower(), match.group(2)
        if key not in _OPTIONS:
            known = ", ".join(f"{k}=" for k in _OPTIONS)
            raise UserError(f"Unknown option '{_short(key)}='; the options are {known}. Usage: {USAGE_REQUEST}")
        if key in options:
            raise UserError(f"{key}= is given twice; give it once.")
        options[key] = value
    usage = USAGE_BREAKGLASS if break_glass else USAGE_REQUEST
    skip = 3 + len(options)
    if len(words) <= skip:
        raise UserError(f"Say why you need access. Usage: {usage}")
    beneficiary = None
    if "for" in options:
        if break_glass:
            raise UserError("Break-glass access cannot be taken on someone's behalf; they must use it themselves.")
        beneficiary = parse_user_mention(options["for"])
    start = options.get("start")
    if start is not None:
        if break_glass:
            raise UserError("Break-glass access starts at once; it takes no start=. Use /access request to schedule.")
        if not start.strip():
            raise UserError("start= needs a time, like start=+30m, start=14:00 or start=2026-12-01T09:00.")
    return Request(
        resource=words[1].lower(),
        duration=words[2],
        reason=text.split(None, skip)[skip],
        break_glass=break_glass,
        on_behalf_of=beneficiary,
        start=start,
    )


def parse_user_mention(text: str) -> str:
    """A Slack user ID from a mention: `<@U123>` or the escaped form `<@U123|name>`."""
    match = _MENTION.fullmatch(text)
    if match is None:
        raise UserError(
            f"for= needs a person mentioned with @ (e.g. for=@alice, which Slack sends as <@U…>); "
            f"'{_short(text)}' is not a mention."
        )
    return match.group(1)


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
