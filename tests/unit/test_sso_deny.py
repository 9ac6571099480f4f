"""The Identity Center session deny: its decisions on the shared IAM evaluator, and byte-exact edits."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from bot.aws.granters.sso import deny as policy
from bot.aws.granters.sso.deny import Deny, sid_of
from bot.aws.granters.sso.permission_set import cutoff_at
from bot.aws.granters.sso.permission_sets import session_duration
from tests.support.aws_model.evaluator import Decision
from tests.support.aws_model.sso_sessions import decide, session

CUTOFF = datetime(2026, 12, 8, 3, 0, tzinfo=UTC)
ALICE, BOB = "9067c4a1-aaaa-4000-8000-000000000001", "9067c4a1-bbbb-4000-8000-000000000002"
PROD, STAGING, OTHER = "111111111111", "222222222222", "333333333333"
ADMIN = """{
  "Version": "2012-10-17",
  "Statement": [
    {"Sid": "ReadBuckets",  "Effect": "Allow", "Action": ["s3:GetObject"], "Resource": "*"} ,
    {"Effect":"Deny","Action":"iam:*","Resource":"*"}
  ]
}
"""


DENY = Deny(sid_of(7), ALICE, (PROD, STAGING), CUTOFF)
SECOND = timedelta(seconds=1)


@pytest.mark.parametrize(
    ("description", "context", "expected"),
    [
        (
            "her session in a granted account, issued before the cutoff",
            session(ALICE, PROD, CUTOFF - SECOND),
            Decision.EXPLICIT_DENY,
        ),
        (
            "the same in the other granted account",
            session(ALICE, STAGING, CUTOFF - timedelta(hours=11)),
            Decision.EXPLICIT_DENY,
        ),
        ("her session issued at the cutoff (a later grant)", session(ALICE, PROD, CUTOFF), Decision.ALLOWED),
        ("her session issued after the cutoff", session(ALICE, PROD, CUTOFF + SECOND), Decision.ALLOWED),
        (
            "her session of the same set in an account not granted",
            session(ALICE, OTHER, CUTOFF - SECOND),
            Decision.ALLOWED,
        ),
        ("someone else's session from before the cutoff", session(BOB, PROD, CUTOFF - SECOND), Decision.ALLOWED),
        (
            "a request without the user key (not an Identity Center session)",
            {"aws:PrincipalAccount": PROD},
            Decision.ALLOWED,
        ),
    ],
)
def test_the_deny_cuts_exactly_her_sessions_in_the_granted_accounts_from_before_the_cutoff(
    description: str, context: dict[str, str], expected: Decision
) -> None:
    assert decide(policy.with_deny(ADMIN, DENY), context) == expected, description
    # the administrator's own statements still decide what the deny does not touch
    assert decide(policy.with_deny(ADMIN, DENY), context, action="iam:ListRoles") == Decision.EXPLICIT_DENY
    assert decide(policy.with_deny(ADMIN, DENY), context, action="s3:PutObject") != Decision.ALLOWED


def test_the_administrators_bytes_are_kept_and_a_lift_gives_them_back_exactly() -> None:
    denied = policy.with_deny(ADMIN, DENY)
    assert denied.startswith(ADMIN[: ADMIN.index("}\n  ]")])  # everything of theirs before the end of the list
    assert json.loads(denied)["Statement"][:2] == json.loads(ADMIN)["Statement"]
    assert policy.without(denied, [DENY.sid]) == ADMIN


def test_two_ends_on_one_set_merge_and_each_lift_removes_only_its_own() -> None:
    other = Deny(sid_of(8), BOB, (PROD,), CUTOFF + timedelta(minutes=5))
    both = policy.with_deny(policy.with_deny(ADMIN, DENY), other)
    assert [s["Sid"] for s in policy.ours(both)] == [DENY.sid, other.sid]
    only_bob = policy.without(both, [DENY.sid])
    assert [s["Sid"] for s in policy.ours(only_bob)] == [other.sid]
    assert decide(only_bob, session(ALICE, PROD, CUTOFF - SECOND)) == Decision.ALLOWED
    assert decide(only_bob, session(BOB, PROD, CUTOFF - SECOND)) == Decision.EXPLICIT_DENY
    assert policy.without(only_bob, [other.sid]) == ADMIN


def test_writing_the_same_sid_again_replaces_it() -> None:
    later = Deny(DENY.sid, ALICE, (PROD,), CUTOFF + timedelta(hours=1))
    twice = policy.with_deny(policy.with_deny(ADMIN, DENY), later)
    assert policy.ours(twice) == [later.statement()]


def test_a_set_without_an_inline_policy_gets_one_and_loses_it_again() -> None:
    created = policy.with_deny("", DENY)
    assert json.loads(created) == {"Version": "2012-10-17", "Statement": [DENY.statement()]}
    assert policy.without(created, [DENY.sid]) == ""


def test_a_lone_statement_object_becomes_a_list_with_its_bytes_kept() -> None:
    lone = '{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*"}}'
    denied = policy.with_deny(lone, DENY)
    assert '{"Effect":"Allow","Action":"s3:*","Resource":"*"}' in denied
    assert json.loads(denied)["Statement"][1] == DENY.statement()


def test_statements_that_only_look_like_ours_are_never_touched() -> None:
    theirs = '{"Version":"2012-10-17","Statement":[{"Sid":"EndSessions","Effect":"Deny","Action":"*","Resource":"*"}]}'
    assert policy.ours(theirs) == []
    assert policy.without(theirs, ["EndSessions"]) == theirs


def test_size_counts_what_iam_counts() -> None:
    assert policy.size(ADMIN) == len(json.dumps(json.loads(ADMIN), separators=(",", ":")))
    assert policy.size("") == 0


@pytest.mark.parametrize(
    ("value", "expected"),
    [("PT1H", timedelta(hours=1)), ("PT12H", timedelta(hours=12)), ("PT1H30M", timedelta(minutes=90)),
     (None, timedelta(hours=1)), ("P1D", timedelta(hours=12)), ("nonsense", timedelta(hours=12))],
)  # fmt: skip
def test_session_durations_are_read_and_an_unreadable_one_counts_as_the_longest(
    value: str | None, expected: timedelta
) -> None:
    assert session_duration(value) == expected


def test_the_cutoff_is_the_writing_moment_rounded_up_plus_the_margin() -> None:
    written = datetime(2026, 12, 8, 3, 0, 0, 250_000, tzinfo=UTC)
    assert cutoff_at(written, timedelta(minutes=5)) == datetime(2026, 12, 8, 3, 5, 1, tzinfo=UTC)


def test_a_new_grant_narrows_her_earlier_denies_to_the_accounts_it_does_not_grant() -> None:
    bobs = Deny(sid_of(8), BOB, (PROD,), CUTOFF)
    both = policy.with_deny(policy.with_deny(ADMIN, DENY), bobs)
    prod_again = policy.narrowed(both, ALICE, [PROD])
    assert decide(prod_again, session(ALICE, PROD, CUTOFF - SECOND)) == Decision.ALLOWED  # her new grant works
    assert decide(prod_again, session(ALICE, STAGING, CUTOFF - SECOND)) == Decision.EXPLICIT_DENY  # still ended there
    assert decide(prod_again, session(BOB, PROD, CUTOFF - SECOND)) == Decision.EXPLICIT_DENY  # nobody else's deny moves
    everywhere = policy.narrowed(prod_again, ALICE, [PROD, STAGING])
    assert [s["Sid"] for s in policy.ours(everywhere)] == [bobs.sid]
    assert policy.narrowed(everywhere, ALICE, [PROD]) == everywhere
