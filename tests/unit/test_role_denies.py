"""The documents of a role's session denies, pure: one statement per person, merged and packed within IAM's quotas."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.aws.granters.role_denies import (
    INLINE_LIMIT,
    LIFT_AFTER,
    MANAGED_LIMIT,
    capacity,
    compact,
    deny_statement,
    document,
    merged,
    parse,
    pruned,
    session_deny,
    sid_of,
    size,
    slot_size,
    without,
)

T = datetime(2026, 12, 8, 3, 0, tzinfo=UTC)


def test_the_deny_statement_denies_everything_to_the_person_s_sessions_issued_before_the_cutoff() -> None:
    [statement] = session_deny("alice.smith", T)["Statement"]
    assert statement == {
        "Sid": "AccessbotEnd616c6963652e736d697468",
        "Effect": "Deny",
        "Action": "*",
        "Resource": "*",
        "Condition": {
            "StringEquals": {"aws:SourceIdentity": "alice.smith"},
            "DateLessThan": {"aws:TokenIssueTime": "2026-12-08T03:00:00Z"},
        },
    }


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("alice", "plain"),
        ("a.b+c=d,e@f-g_h", "every character IAM allows in a user name"),
        ("x" * 64, "the longest user name"),
    ],
)
def test_the_sid_is_alphanumeric_and_tells_people_apart(name: str, why: str) -> None:
    assert sid_of(name).isalnum(), why
    assert sid_of(name) != sid_of(name + "x")


def test_a_document_reads_back_as_the_cutoffs_it_was_built_from() -> None:
    slot = {"alice": T, "bob": T + timedelta(hours=1)}
    assert parse(document(slot)) == slot
    # Statements that are not the bot's are not read as denies.
    foreign = {"Statement": [{"Sid": "Other", "Effect": "Deny", "Action": "*", "Resource": "*"}]}
    assert parse(foreign) == {}


def test_size_counts_what_iam_counts_no_white_space() -> None:
    policy = session_deny("alice", T)
    assert size(policy) == len(compact(policy))
    assert size(compact(policy).replace(",", ", ")) == len(compact(policy))


@pytest.mark.parametrize(
    ("cutoff", "expected", "why"),
    [
        (T + timedelta(minutes=5), T + timedelta(minutes=5), "a later cutoff replaces the earlier"),
        (T - timedelta(minutes=5), T, "an earlier cutoff changes nothing"),
    ],
)
def test_a_second_end_of_the_same_person_keeps_one_statement(cutoff: datetime, expected: datetime, why: str) -> None:
    layout = merged([{"alice": T}, {"bob": T}], "alice", cutoff, inline_room=INLINE_LIMIT)
    assert layout == [{"alice": expected}, {"bob": T}], why
    # In the document it was in, even when another has room: a statement never moves.
    layout = merged([{"carol": T}, {"alice": T}], "alice", cutoff, inline_room=INLINE_LIMIT)
    assert layout == [{"carol": T}, {"alice": expected}], why


def test_new_people_go_inline_first_then_to_managed_documents_within_their_sizes() -> None:
    layout: list[dict[str, datetime]] = []
    for n in range(120):
        layout = merged(layout, f"user{n:03d}", T, inline_room=INLINE_LIMIT - 1000)
    assert slot_size(layout[0]) <= INLINE_LIMIT - 1000
    assert all(slot_size(slot) <= MANAGED_LIMIT for slot in layout[1:])
    assert sum(len(slot) for slot in layout) == 120
    assert len(layout) >= 3
    # Each document is full before the next is used.
    assert slot_size({**layout[0], "user999": T}) > INLINE_LIMIT - 1000


def test_no_room_inline_puts_the_first_deny_in_a_managed_document() -> None:
    assert merged([{}], "alice", T, inline_room=0) == [{}, {"alice": T}]


def test_a_lift_removes_the_statement_only_up_to_its_own_cutoff() -> None:
    layout = [{"alice": T + timedelta(hours=2), "bob": T}]
    assert without(layout, "alice", T) == layout  # a later end's deny stays
    assert without(layout, "alice", T + timedelta(hours=2)) == [{"bob": T}]
    assert without(layout, "alice", None) == [{"bob": T}]  # a new grant takes it over whatever its cutoff
    assert without(layout, "carol", None) == layout


def test_statements_no_session_can_need_are_pruned_after_12_hours() -> None:
    layout = [{"alice": T, "bob": T + timedelta(hours=1)}]
    assert pruned(layout, T + LIFT_AFTER - timedelta(seconds=1)) == layout
    assert pruned(layout, T + LIFT_AFTER) == [{"bob": T + timedelta(hours=1)}]


def test_capacity_in_people_matches_what_the_packing_holds() -> None:
    inline, total = capacity(12)
    layout: list[dict[str, datetime]] = []
    for n in range(total):
        layout = merged(layout, f"user{n:08d}", T, inline_room=INLINE_LIMIT)  # 12 characters
    assert len(layout[0]) == inline
    assert len(layout) == 11  # inline + 10 managed, every one full
    assert len(merged(layout, "user99999999", T, inline_room=INLINE_LIMIT)) == 12


def test_one_statement_is_what_deny_statement_builds() -> None:
    assert document({"alice": T})["Statement"] == [deny_statement("alice", T)]
