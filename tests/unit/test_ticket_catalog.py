"""`reason_pattern` and `ticket_url`: validated at load with their key path, inherited from defaults."""

from __future__ import annotations

import pytest

from bot.catalog import parse_catalog
from bot.catalog.tickets import Ticket, check_pattern, find_ticket
from bot.errors import ConfigError
from tests.unit.test_catalog import DELETE, edited

TICKET = "[A-Z]+-[0-9]+"
URL = "https://tickets.example.com/browse/{ticket}"

BROKEN = [
    pytest.param(
        edited(("resources.deploy-admins.reason_pattern", "[A-Z")),
        "resources.deploy-admins.reason_pattern: not a valid regular expression: unterminated character set",
        id="pattern-does-not-compile",
    ),
    pytest.param(
        edited(("defaults.reason_pattern", "(OPS")),
        "defaults.reason_pattern: not a valid regular expression: missing ), unterminated subpattern",
        id="pattern-in-defaults-does-not-compile",
    ),
    pytest.param(
        edited(("resources.deploy-admins.reason_pattern", "A" * 201)),
        "resources.deploy-admins.reason_pattern: at most 200 characters (it has 201)",
        id="pattern-absurdly-long",
    ),
    pytest.param(
        edited(("resources.deploy-admins.reason_pattern", ".*")),
        "resources.deploy-admins.reason_pattern: '.*' matches an empty reason, so it would require nothing",
        id="pattern-matches-the-empty-string",
    ),
    pytest.param(
        edited(("resources.deploy-admins.reason_pattern", "(OPS-[0-9]+)?")),
        "resources.deploy-admins.reason_pattern: '(OPS-[0-9]+)?' matches an empty reason",
        id="optional-pattern-matches-the-empty-string",
    ),
    pytest.param(
        edited(("resources.deploy-admins.reason_pattern", r"\s*")),
        "resources.deploy-admins.reason_pattern:",
        id="whitespace-pattern-matches-the-empty-string",
    ),
    pytest.param(
        edited(("resources.deploy-admins.reason_pattern", "")),
        "resources.deploy-admins.reason_pattern: must not be empty",
        id="empty-pattern",
    ),
    pytest.param(
        edited(("resources.deploy-admins.reason_pattern", "(a+)+b")),
        "resources.deploy-admins.reason_pattern: a repeated group that itself repeats",
        id="pattern-that-backtracks-exponentially",
    ),
    pytest.param(
        edited(("resources.deploy-admins.reason_pattern", 123)),
        "resources.deploy-admins.reason_pattern: Input should be a valid string",
        id="pattern-not-text",
    ),
    pytest.param(
        edited(("resources.deploy-admins.ticket_url", URL)),
        "resources.deploy-admins.ticket_url: needs a reason_pattern",
        id="ticket-url-without-pattern",
    ),
    pytest.param(
        edited(("defaults.ticket_url", URL)),
        "resources.deploy-admins.ticket_url: needs a reason_pattern",
        id="ticket-url-in-defaults-without-pattern",
    ),
    pytest.param(
        edited(
            ("resources.deploy-admins.reason_pattern", TICKET), ("resources.deploy-admins.ticket_url", "https://t/")
        ),
        "resources.deploy-admins.ticket_url: must contain the placeholder {ticket}",
        id="ticket-url-without-placeholder",
    ),
    pytest.param(
        edited(
            ("resources.deploy-admins.reason_pattern", TICKET),
            ("resources.deploy-admins.ticket_url", "https://t/{tickets}"),
        ),
        "resources.deploy-admins.ticket_url: must contain the placeholder {ticket}",
        id="ticket-url-misspelt-placeholder",
    ),
    pytest.param(
        edited(
            ("resources.deploy-admins.reason_pattern", TICKET),
            ("resources.deploy-admins.ticket_url", "https://t/{project}/{ticket}"),
        ),
        "resources.deploy-admins.ticket_url: only {ticket} may be a placeholder; found {project}",
        id="ticket-url-other-placeholder",
    ),
    pytest.param(
        edited(
            ("resources.deploy-admins.reason_pattern", TICKET),
            ("resources.deploy-admins.ticket_url", "https://t/{ticket!r}"),
        ),
        "resources.deploy-admins.ticket_url: must contain the placeholder {ticket}",
        id="ticket-url-placeholder-with-conversion",
    ),
    pytest.param(
        edited(
            ("resources.deploy-admins.reason_pattern", TICKET),
            ("resources.deploy-admins.ticket_url", "https://t/{ticket"),
        ),
        "resources.deploy-admins.ticket_url: not a valid template",
        id="ticket-url-unbalanced-brace",
    ),
    pytest.param(
        edited(
            ("resources.deploy-admins.reason_pattern", TICKET),
            ("resources.deploy-admins.ticket_url", "ftp://tickets.example.com/{ticket}"),
        ),
        "resources.deploy-admins.ticket_url: must be an https:// (or http://) URL",
        id="ticket-url-not-http",
    ),
    pytest.param(
        edited(("resources.deploy-admins.reason_pattern", TICKET), ("resources.deploy-admins.ticket_url", "{ticket}")),
        "resources.deploy-admins.ticket_url: must be an https:// (or http://) URL",
        id="ticket-url-not-a-url",
    ),
    pytest.param(
        edited(
            ("resources.deploy-admins.reason_pattern", TICKET),
            ("resources.deploy-admins.ticket_url", "https://t/browse?q={ticket}|x"),
        ),
        "resources.deploy-admins.ticket_url: must not contain spaces or the characters < > |",
        id="ticket-url-breaks-a-slack-link",
    ),
]


@pytest.mark.parametrize(("text", "expected"), BROKEN)
def test_broken_ticket_keys_name_the_key_path(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_catalog(text)
    assert expected in str(caught.value)


def test_defaults_are_inherited_and_a_resource_may_override_or_turn_them_off() -> None:
    catalog = parse_catalog(
        edited(
            ("defaults.reason_pattern", TICKET),
            ("defaults.ticket_url", URL),
            ("resources.prod-readonly.reason_pattern", "INC-[0-9]+"),
            ("resources.payments-key.reason_pattern", None),
            ("resources.payments-key.ticket_url", None),
        )
    )
    deploy = catalog.resources["deploy-admins"]
    assert (deploy.reason_pattern, deploy.ticket_url) == (TICKET, URL)
    assert catalog.ticket_of("deploy-admins", "hotfix for OPS-12 now") == Ticket(
        "OPS-12", "https://tickets.example.com/browse/OPS-12"
    )
    assert catalog.ticket_of("prod-readonly", "OPS-12 and INC-7") == Ticket(
        "INC-7", "https://tickets.example.com/browse/INC-7"
    )
    assert catalog.ticket_of("payments-key", "OPS-12") is None
    assert catalog.ticket_of("deploy-admins", "no ticket here") is None
    assert catalog.ticket_of("no-such-resource", "OPS-12") is None


def test_a_catalog_without_ticket_keys_asks_for_no_ticket() -> None:
    catalog = parse_catalog(edited(("resources.deploy-admins.description", DELETE)))
    assert all(r.reason_pattern is None and r.ticket_url is None for r in catalog.resources.values())


@pytest.mark.parametrize(
    ("pattern", "reason", "template", "expected"),
    [
        pytest.param(TICKET, "fix OPS-1 and OPS-2", None, Ticket("OPS-1"), id="first-match-without-url"),
        pytest.param(TICKET, "no ticket", URL, None, id="no-match"),
        pytest.param(
            r"#\S+",
            "see #a/b&c?d",
            "https://t.example.com/{ticket}",
            Ticket("#a/b&c?d", "https://t.example.com/%23a%2Fb%26c%3Fd"),
            id="ticket-quoted-in-the-url",
        ),
        # An empty match (the lookahead) names no ticket: the next, non-empty one does.
        pytest.param("(?=OPS)|OPS-[0-9]+", "OPS-1", None, Ticket("OPS-1"), id="first-non-empty-match"),
    ],
)
def test_find_ticket(pattern: str, reason: str, template: str | None, expected: Ticket | None) -> None:
    assert find_ticket(pattern, reason, template) == expected


@pytest.mark.parametrize(
    "pattern",
    [
        r"(([A-Z]+)-?)+\d+",  # looks like a ticket pattern; exponential on "AAAA…!" (a repeat in a repeat, nested)
        r"((a)+)+b",
        r"(?:(?:\w)+)+#",
        r"(\w*\s?)*x",
        r"(x|(a+)+)",  # inside a branch
        r"\w*\w*\w*\w*#",  # polynomial, but four unbounded repeats
    ],
)
def test_a_pattern_that_can_run_away_is_refused_at_load(pattern: str) -> None:
    with pytest.raises(ValueError, match="repeat"):
        check_pattern(pattern)


@pytest.mark.parametrize("pattern", [r"[A-Z]+-[0-9]+", r"(?:INC|OPS)-\d+", r"[A-Z]{2,10}-\d+", r"(?:INC-)?\d{3,}"])
def test_ordinary_ticket_patterns_are_accepted(pattern: str) -> None:
    assert check_pattern(pattern) == pattern
