"""parse_duration / format_duration: the `1h30m` notation used in the catalog and in `/access`."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.durations import LONGEST, DurationError, format_duration, parse_duration

VALID = [
    pytest.param("90s", timedelta(seconds=90), id="seconds"),
    pytest.param("45m", timedelta(minutes=45), id="minutes"),
    pytest.param("2h", timedelta(hours=2), id="hours"),
    pytest.param("1d", timedelta(days=1), id="days"),
    pytest.param("1h30m", timedelta(hours=1, minutes=30), id="hours-and-minutes"),
    pytest.param("1d2h3m4s", timedelta(days=1, hours=2, minutes=3, seconds=4), id="every-unit-in-order"),
    pytest.param("  2h\t\n", timedelta(hours=2), id="surrounding-whitespace-ignored"),
    pytest.param("2H", timedelta(hours=2), id="uppercase-unit"),
    pytest.param("1H30M", timedelta(hours=1, minutes=30), id="uppercase-combined"),
    pytest.param("0h30m", timedelta(minutes=30), id="zero-part-with-nonzero-part"),
    pytest.param("007m", timedelta(minutes=7), id="leading-zeros"),
    pytest.param("3650d", LONGEST, id="longest-allowed"),
    pytest.param("3649d23h59m60s", LONGEST, id="longest-allowed-spelt-in-parts"),
]

INVALID = [
    pytest.param("0s", "longer than zero", id="zero-seconds"),
    pytest.param("0d0h0m0s", "longer than zero", id="zero-in-every-unit"),
    pytest.param("-1h", "not a duration", id="negative"),
    pytest.param("", "not a duration", id="empty"),
    pytest.param("   ", "not a duration", id="only-whitespace"),
    pytest.param("banana", "not a duration", id="garbage"),
    pytest.param("90", "not a duration", id="number-without-unit"),
    pytest.param("h", "not a duration", id="unit-without-number"),
    pytest.param("30m1h", "not a duration", id="units-in-wrong-order"),
    pytest.param("1h1h", "not a duration", id="unit-repeated"),
    pytest.param("1h 30m", "not a duration", id="space-between-parts"),
    pytest.param("1.5h", "not a duration", id="decimal"),
    pytest.param("2w", "not a duration", id="unknown-unit"),
    pytest.param("1y", "not a duration", id="years-not-supported"),
    pytest.param("3651d", "at most 3650d", id="over-3650-days"),
    pytest.param("3650d1s", "at most 3650d", id="one-second-over-3650-days"),
    pytest.param("999999h", "at most 3650d", id="huge-hours"),
    pytest.param("9" * 400 + "s", "not a duration", id="absurdly-many-digits"),
    pytest.param("x" * 100, "…", id="long-garbage-is-shortened-in-message"),
]


@pytest.mark.parametrize(("text", "expected"), VALID)
def test_parse_duration_reads_valid_text(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(("text", "message"), INVALID)
def test_parse_duration_refuses_invalid_text(text: str, message: str) -> None:
    with pytest.raises(DurationError, match=message):
        parse_duration(text)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(90, id="int"),
        pytest.param(None, id="none"),
        pytest.param(1.5, id="float"),
        pytest.param(b"1h", id="bytes"),
        pytest.param(["1h"], id="list"),
    ],
)
def test_parse_duration_refuses_non_text(value: object) -> None:
    with pytest.raises(DurationError, match="write durations as text"):
        parse_duration(value)


def test_duration_error_is_a_value_error() -> None:
    """pydantic turns ValueErrors raised by validators into validation errors with a key path."""
    assert issubclass(DurationError, ValueError)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(timedelta(seconds=90), "1m30s", id="seconds-carry-into-minutes"),
        pytest.param(timedelta(minutes=45), "45m", id="minutes"),
        pytest.param(timedelta(hours=2), "2h", id="hours"),
        pytest.param(timedelta(days=1), "1d", id="day"),
        pytest.param(timedelta(hours=1, minutes=30), "1h30m", id="hours-and-minutes"),
        pytest.param(timedelta(days=1, seconds=1), "1d1s", id="zero-units-omitted"),
        pytest.param(timedelta(hours=25), "1d1h", id="hours-carry-into-days"),
        pytest.param(timedelta(seconds=59, microseconds=999_999), "59s", id="fractions-truncated"),
        pytest.param(timedelta(0), "0s", id="zero"),
        pytest.param(timedelta(seconds=-5), "0s", id="negative-clamped-to-zero"),
        pytest.param(LONGEST, "3650d", id="longest"),
    ],
)
def test_format_duration(value: timedelta, expected: str) -> None:
    assert format_duration(value) == expected


# -- properties ----------------------------------------------------------------------------------

UNIT_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1}


@st.composite
def duration_texts(draw: st.DrawFn) -> tuple[str, int]:
    """Valid duration text (units in order, optional case and whitespace) and its length in seconds."""
    units = draw(st.lists(st.sampled_from("dhms"), min_size=1, max_size=4, unique=True))
    units.sort(key="dhms".index)
    # At most 999 of each unit keeps every case within LONGEST (3650d).
    amounts = [draw(st.integers(min_value=0, max_value=999)) for _ in units]
    seconds = sum(a * UNIT_SECONDS[u] for a, u in zip(amounts, units, strict=True))
    text = "".join(f"{a}{draw(st.sampled_from([u, u.upper()]))}" for a, u in zip(amounts, units, strict=True))
    padding = st.sampled_from(["", " ", "\t", "\n "])
    return draw(padding) + text + draw(padding), seconds


@settings(max_examples=200)
@given(st.text(max_size=40))
def test_parse_duration_raises_only_duration_error(text: str) -> None:
    try:
        value = parse_duration(text)
    except DurationError:
        return
    assert timedelta(0) < value <= LONGEST


@settings(max_examples=200)
@given(duration_texts().filter(lambda case: case[1] > 0))
def test_valid_text_parses_to_its_length(case: tuple[str, int]) -> None:
    text, seconds = case
    assert parse_duration(text) == timedelta(seconds=seconds)


@settings(max_examples=200)
@given(duration_texts().filter(lambda case: case[1] > 0))
def test_format_of_parsed_text_round_trips(case: tuple[str, int]) -> None:
    text, _ = case
    parsed = parse_duration(text)
    canonical = format_duration(parsed)
    assert parse_duration(canonical) == parsed
    assert format_duration(parse_duration(canonical)) == canonical


@settings(max_examples=200)
@given(st.integers(min_value=1, max_value=int(LONGEST.total_seconds())))
def test_parse_of_formatted_timedelta_round_trips(seconds: int) -> None:
    value = timedelta(seconds=seconds)
    assert parse_duration(format_duration(value)) == value
