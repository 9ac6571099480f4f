"""Ticket references: `reason_pattern` (a regex the reason must contain) and `ticket_url` (a link to it)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from string import Formatter
from typing import Any
from urllib.parse import quote, urlsplit

MAX_PATTERN = 200
# Python's `re` has no timeout. What bounds a search: the reason (at most 500 characters, checked before
# any search), the pattern's length, and its shape, read from the parsed pattern at load: no repeat inside
# a repeated part at any depth (`(a+)+`, `((a)+)+b`, `(\w*\s?)*` backtrack exponentially on a near miss),
# and at most MAX_OPEN_REPEATS unbounded repeats in all (`\w*\w*\w*\w*#` is polynomial but still slow).
MAX_OPEN_REPEATS = 3
_REPEATS = ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT")


def _shape(parsed: Any, inside_repeat: bool = False) -> tuple[bool, int]:
    """(whether any repeat, even `?`, sits inside a repeated part; how many unbounded repeats) of a parsed pattern."""
    nested, unbounded = False, 0
    for op, arg in parsed:
        if str(op) in _REPEATS:
            _low, high, body = arg
            nested |= inside_repeat
            unbounded += high == re._constants.MAXREPEAT  # type: ignore[attr-defined]
            children, inside = [body], inside_repeat or high != 1
        else:
            children, inside = list(_subpatterns(arg)), inside_repeat
        for child in children:
            child_nested, child_unbounded = _shape(child, inside)
            nested, unbounded = nested or child_nested, unbounded + child_unbounded
    return nested, unbounded


def _subpatterns(arg: Any) -> Any:
    """The parsed sub-patterns inside an operator's argument (groups, branches, lookarounds), at any depth."""
    if hasattr(arg, "data"):  # a parsed sub-pattern
        yield arg
    elif isinstance(arg, (list, tuple)):
        for part in arg:
            yield from _subpatterns(part)


@dataclass(frozen=True)
class Ticket:
    """The ticket reference found in a reason, and its link when the resource has a `ticket_url`."""

    reference: str
    url: str | None = None


def check_pattern(pattern: str) -> str:
    """Validate a `reason_pattern`: it compiles, is short, cannot run away, and matches no empty reason."""
    if not pattern.strip():
        raise ValueError("must not be empty")
    if len(pattern) > MAX_PATTERN:
        raise ValueError(f"at most {MAX_PATTERN} characters (it has {len(pattern)})")
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression: {exc}") from None
    nested, unbounded = _shape(re._parser.parse(pattern))  # type: ignore[attr-defined]
    if nested:
        raise ValueError("a repeated group that itself repeats, like (a+)+, can take exponential time; simplify it")
    if unbounded > MAX_OPEN_REPEATS:
        raise ValueError(
            f"at most {MAX_OPEN_REPEATS} unbounded repeats (+, *, {{n,}}); more can take very long on a near miss"
        )
    if compiled.search("") is not None or compiled.search(" ") is not None:
        raise ValueError(f"'{pattern}' matches an empty reason, so it would require nothing; make it require text")
    return pattern


def check_ticket_url(template: str) -> str:
    """Validate a `ticket_url`: an http(s) URL with `{ticket}` as its only placeholder."""
    try:
        parsed = [(name, spec, conv) for _, name, spec, conv in Formatter().parse(template) if name is not None]
    except ValueError as exc:
        raise ValueError(f"not a valid template ({exc}); write braces other than {{ticket}} as {{{{ and }}}}") from None
    fields = [name if not (spec or conv) else f"{name}!{conv or ''}:{spec or ''}" for name, spec, conv in parsed]
    if "ticket" not in fields:
        raise ValueError("must contain the placeholder {ticket}, e.g. https://tickets.example.com/browse/{ticket}")
    others = sorted({f"{{{f}}}" for f in fields if f != "ticket"})
    if others:
        raise ValueError(f"only {{ticket}} may be a placeholder; found {', '.join(others)}")
    parts = urlsplit(template.format(ticket="T-1"))
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise ValueError("must be an https:// (or http://) URL")
    if any(c.isspace() or c in "<>|" for c in template):
        raise ValueError("must not contain spaces or the characters < > | (Slack links cannot hold them)")
    return template


@lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def find_ticket(pattern: str, reason: str, ticket_url: str | None = None) -> Ticket | None:
    """The first non-empty match of `pattern` in `reason`, linked through `ticket_url`; None without one."""
    for match in _compiled(pattern).finditer(reason):
        reference = match.group(0).strip()
        if reference:
            url = ticket_url.format(ticket=quote(reference, safe="")) if ticket_url else None
            return Ticket(reference, url)
    return None
