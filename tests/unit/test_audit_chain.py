"""The hash chain's verdicts on hand-made chains, one tampering per case; and the time parser."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.audit import Link, check_chain, parse_moment
from bot.errors import ConfigError
from bot.ops import table
from bot.store import chain

T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def fields(n: int, **changes: Any) -> dict[str, Any]:
    base = {
        "request_id": n,
        "actor": f"U0USER{n}",
        "action": "approved",
        "from_status": "pending",
        "to_status": "approved",
        "details": '{"how": "approvers"}',
        "created_at": T0 + timedelta(seconds=n),
    }
    return {**base, **changes}


def make_chain(count: int) -> list[Link]:
    links, prev = [], chain.GENESIS
    for n in range(1, count + 1):
        content = fields(n)
        digest = chain.event_hash(content, prev)
        links.append(Link(n, content, prev, digest))
        prev = digest
    return links


def changed(links: list[Link]) -> list[Link]:
    links[2] = Link(3, fields(3, actor="U0MALLORY"), links[2].prev_hash, links[2].hash)
    return links


def changed_and_rehashed(links: list[Link]) -> list[Link]:
    content = fields(3, actor="U0MALLORY")
    links[2] = Link(3, content, links[2].prev_hash, chain.event_hash(content, links[2].prev_hash or ""))
    return links


def removed(links: list[Link]) -> list[Link]:
    del links[2]
    return links


def two_removed(links: list[Link]) -> list[Link]:
    del links[2:4]
    return links


def first_removed(links: list[Link]) -> list[Link]:
    return links[1:]


def inserted_valid(links: list[Link]) -> list[Link]:
    # IDs 1,2,3 then a forged 4 linked to 3 (hash computed correctly), then the real 4.. renumbered up.
    forged_content = fields(99, actor="U0MALLORY")
    forged = Link(4, forged_content, links[2].hash, chain.event_hash(forged_content, links[2].hash or ""))
    shifted = [Link(link.id + 1, link.fields, link.prev_hash, link.hash) for link in links[3:]]
    return [*links[:3], forged, *shifted]


def inserted_garbage(links: list[Link]) -> list[Link]:
    forged = Link(4, fields(99), links[2].hash, "f" * 64)
    shifted = [Link(link.id + 1, link.fields, link.prev_hash, link.hash) for link in links[3:]]
    return [*links[:3], forged, *shifted]


def swapped(links: list[Link]) -> list[Link]:
    links[2], links[3] = (
        Link(3, links[3].fields, links[3].prev_hash, links[3].hash),
        Link(4, links[2].fields, links[2].prev_hash, links[2].hash),
    )
    return links


def hash_erased(links: list[Link]) -> list[Link]:
    links[2] = Link(3, links[2].fields, None, None)
    return links


@pytest.mark.parametrize(
    ("tamper", "named", "says"),
    [
        pytest.param(changed, 3, "event #3 was changed", id="content changed"),
        pytest.param(changed_and_rehashed, 3, "event #3 was changed (and its hash recomputed)", id="changed+rehashed"),
        pytest.param(removed, 3, "event(s) #3 were removed", id="one removed"),
        pytest.param(two_removed, 3, "event(s) #3..#4 were removed", id="two removed"),
        pytest.param(first_removed, 2, "events before #2 were removed", id="the first removed"),
        pytest.param(inserted_valid, 4, "event #4 was inserted", id="inserted with a valid hash"),
        pytest.param(inserted_garbage, 4, "event #4 was inserted", id="inserted with a made-up hash"),
        pytest.param(swapped, 3, "event #3 was", id="two events swapped"),
        pytest.param(hash_erased, 3, "event #3 was changed", id="hashes erased"),
    ],
)
def test_the_first_broken_event_is_named(tamper: Callable[[list[Link]], list[Link]], named: int, says: str) -> None:
    verdict = check_chain(tamper(make_chain(6)))
    assert not verdict.ok
    assert verdict.event_id == named
    assert verdict.problem is not None and verdict.problem.startswith(says), verdict.problem


def test_an_intact_chain_reports_its_head_and_events_from_before_the_chain() -> None:
    links = make_chain(5)
    verdict = check_chain(links)
    assert verdict.ok and verdict.checked == 5 and verdict.head_id == 5 and verdict.head_hash == links[-1].hash
    legacy = [Link(n, fields(n), None, None) for n in (1, 2)]
    shifted = [Link(link.id + 2, link.fields, link.prev_hash, link.hash) for link in links]
    older = check_chain([*legacy, *shifted])
    assert older.ok and older.unchained == 2 and older.checked == 5
    assert check_chain([]).ok


def test_a_slice_verifies_from_its_own_first_event_only_when_asked() -> None:
    links = make_chain(6)[2:]
    assert check_chain(links, start=None).ok
    assert not check_chain(links).ok


def test_the_hash_covers_every_field_and_the_previous_hash() -> None:
    content = fields(1)
    digest = chain.event_hash(content, chain.GENESIS)
    for key, other in [
        ("request_id", 2), ("actor", "U0X"), ("action", "denied"), ("from_status", None), ("to_status", "denied"),
        ("details", "{}"), ("created_at", T0 + timedelta(microseconds=1)),
    ]:  # fmt: skip
        assert chain.event_hash({**content, key: other}, chain.GENESIS) != digest, key
    assert chain.event_hash(content, "1" * 64) != digest
    same_moment = {**content, "created_at": content["created_at"].astimezone(timezone_plus_two())}
    assert chain.event_hash(same_moment, chain.GENESIS) == digest, "a time's zone is not content"


def timezone_plus_two() -> Any:
    from datetime import timezone

    return timezone(timedelta(hours=2))


NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("2026-11-24", datetime(2026, 11, 24, tzinfo=UTC), id="a date is midnight UTC"),
        pytest.param("2026-11-24T09:30", datetime(2026, 11, 24, 9, 30, tzinfo=UTC), id="no offset is UTC"),
        pytest.param("2026-11-24T09:30:00+02:00", datetime(2026, 11, 24, 7, 30, tzinfo=UTC), id="an offset"),
        pytest.param("2026-11-24T09:30:00Z", datetime(2026, 11, 24, 9, 30, tzinfo=UTC), id="Z"),
        pytest.param("7d", NOW - timedelta(days=7), id="a duration ago"),
        pytest.param("1h30m", NOW - timedelta(hours=1, minutes=30), id="a combined duration ago"),
    ],
)
def test_parse_moment(text: str, expected: datetime) -> None:
    assert parse_moment(text, now=NOW) == expected


@pytest.mark.parametrize("text", ["last tuesday", "2026-13-01", "", "7 days"])
def test_parse_moment_refuses_what_is_not_a_time(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_moment(text, now=NOW)


def test_tables_align_columns_and_keep_each_row_on_one_line() -> None:
    out = table(["ID", "REASON"], [["#1", "short"], ["#12", "two\nlines"]]).splitlines()
    assert out == ["ID   REASON", "---  ---------", "#1   short", "#12  two lines"]
