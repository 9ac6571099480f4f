"""`/access` text -> a typed command, or a UserError that tells the user how to write it."""

from __future__ import annotations

import re
from typing import get_args

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from bot.errors import UserError
from bot.slack.commands import (
    MAX_TEXT,
    USAGE_REQUEST,
    Cancel,
    Command,
    Extend,
    Help,
    Mine,
    OpenForm,
    Pending,
    Request,
    Revoke,
    ShowCatalog,
    parse_command,
    parse_request_id,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("help", Help(), id="help"),
        pytest.param("HELP", Help(), id="help-any-case"),
        pytest.param("help me please", Help(), id="help-ignores-the-rest"),
        pytest.param("", OpenForm(), id="empty-opens-the-form"),
        pytest.param("  \t \n", OpenForm(), id="only-whitespace-opens-the-form"),
        pytest.param("request", OpenForm(), id="request-alone-opens-the-form"),
        pytest.param("list", Mine(), id="list"),
        pytest.param("pending", Pending(), id="pending"),
        pytest.param("catalog", ShowCatalog(), id="catalog"),
        pytest.param("cancel #12", Cancel(12), id="cancel-hash-id"),
        pytest.param("revoke 7", Revoke(7), id="revoke-bare-id"),
        pytest.param("extend #3 30m", Extend(3, "30m"), id="extend"),
        pytest.param(
            "breakglass db-admin 1h prod is down",
            Request("db-admin", "1h", "prod is down", break_glass=True),
            id="breakglass",
        ),
        pytest.param(
            "request deploy-admins 1h fix the deploy",
            Request(resource="deploy-admins", duration="1h", reason="fix the deploy"),
            id="request-multi-word-reason",
        ),
        pytest.param(
            "request deploy-admins 1h30m INC-42:  roll back   the release",
            Request(resource="deploy-admins", duration="1h30m", reason="INC-42:  roll back   the release"),
            id="reason-keeps-its-own-spacing",
        ),
        pytest.param(
            "request deploy-admins 2h line one\nline two",
            Request(resource="deploy-admins", duration="2h", reason="line one\nline two"),
            id="reason-keeps-newlines",
        ),
        pytest.param(
            "request payments-key 45m why",
            Request(resource="payments-key", duration="45m", reason="why"),
            id="one-word-reason",
        ),
        pytest.param(
            "  REQUEST   Deploy-Admins\t2H   hotfix",
            Request(resource="deploy-admins", duration="2H", reason="hotfix"),
            id="verb-and-resource-any-case-extra-whitespace",
        ),
        pytest.param(
            "request x 1h " + "a" * (MAX_TEXT - len("request x 1h ")),
            Request(resource="x", duration="1h", reason="a" * (MAX_TEXT - len("request x 1h "))),
            id="longest-allowed-text",
        ),
    ],
)
def test_parse_command(text: str, expected: Command) -> None:
    assert parse_command(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("request deploy-admins", f"Usage: {USAGE_REQUEST}", id="request-without-duration"),
        pytest.param("request deploy-admins 1h", f"Usage: {USAGE_REQUEST}", id="request-without-reason"),
        pytest.param("request deploy-admins 1h   ", f"Usage: {USAGE_REQUEST}", id="reason-only-whitespace"),
        pytest.param("frobnicate", "Unknown command 'frobnicate'. Try /access help.", id="unknown-verb"),
        pytest.param("Frobnicate now", "Unknown command 'Frobnicate'", id="unknown-verb-shown-as-typed"),
        pytest.param("x" * 100, "Unknown command '" + "x" * 30 + "…'", id="long-unknown-verb-shortened"),
        pytest.param(
            "request x 1h " + "a" * MAX_TEXT,
            f"That command is {MAX_TEXT + 13} characters long; keep it under {MAX_TEXT}.",
            id="over-long-text",
        ),
        pytest.param(" " * (MAX_TEXT + 1), "keep it under", id="over-long-whitespace"),
    ],
)
def test_parse_command_refuses(text: str, message: str) -> None:
    with pytest.raises(UserError) as caught:
        parse_command(text)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("12", 12, id="bare-number"),
        pytest.param("#12", 12, id="hash-number"),
        pytest.param("  #12 ", 12, id="surrounding-whitespace"),
        pytest.param("1", 1, id="smallest"),
        pytest.param("007", 7, id="leading-zeros"),
        pytest.param("2147483647", 2**31 - 1, id="largest-database-id"),
    ],
)
def test_parse_request_id(text: str, expected: int) -> None:
    assert parse_request_id(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("0", id="zero"),
        pytest.param("#0", id="hash-zero"),
        pytest.param("-1", id="negative"),
        pytest.param("#-1", id="hash-negative"),
        pytest.param("+1", id="plus-sign"),
        pytest.param("abc", id="letters"),
        pytest.param("#", id="hash-alone"),
        pytest.param("", id="empty"),
        pytest.param("##12", id="double-hash"),
        pytest.param("# 12", id="space-after-hash"),
        pytest.param("12a", id="trailing-letter"),
        pytest.param("1.5", id="decimal"),
        pytest.param("1 2", id="two-numbers"),
        pytest.param("2147483648", id="over-database-integer-range"),
        pytest.param("999999999999", id="twelve-digits"),
        pytest.param("9" * 13, id="thirteen-digits"),
        pytest.param("9" * 5000, id="huge"),
    ],
)
def test_parse_request_id_refuses(text: str) -> None:
    with pytest.raises(UserError, match="is not a request ID; write it like #12"):
        parse_request_id(text)


def test_refused_id_is_shortened_in_the_message() -> None:
    with pytest.raises(UserError) as caught:
        parse_request_id("9" * 5000)
    assert str(caught.value) == f"'{'9' * 30}…' is not a request ID; write it like #12."


# -- properties ----------------------------------------------------------------------------------


@settings(max_examples=200)
@given(st.text(max_size=200) | st.text(min_size=MAX_TEXT - 5, max_size=MAX_TEXT + 5))
def test_parse_command_raises_only_user_error(text: str) -> None:
    try:
        command = parse_command(text)
    except UserError as exc:
        assert str(exc)
        return
    assert isinstance(command, get_args(Command))


@settings(max_examples=200)
@given(st.text(max_size=40))
def test_parse_request_id_raises_only_user_error(text: str) -> None:
    try:
        value = parse_request_id(text)
    except UserError:
        return
    assert 0 < value <= 2**31 - 1


OPTION_LIKE = re.compile(r"[A-Za-z][A-Za-z_]{0,19}=.*")
words = st.text(st.characters(blacklist_categories=("Z", "C")), min_size=1, max_size=20)


@settings(max_examples=200)
@given(resource=words, duration=words, reason=st.lists(words, min_size=1, max_size=5).map(" ".join))
def test_request_keeps_each_part(resource: str, duration: str, reason: str) -> None:
    assume(OPTION_LIKE.fullmatch(reason.split()[0]) is None)  # a leading `key=value` word is an option, not reason
    assert parse_command(f"request {resource} {duration} {reason}") == Request(
        resource=resource.lower(), duration=duration, reason=reason
    )


@settings(max_examples=200)
@given(st.integers(min_value=1, max_value=2**31 - 1), st.sampled_from(["", "#"]))
def test_request_id_round_trips(value: int, prefix: str) -> None:
    assert parse_request_id(f"{prefix}{value}") == value
