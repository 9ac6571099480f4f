"""The lifecycle table: every (from, to) pair is allowed exactly when TRANSITIONS lists it."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest

from bot.domain.lifecycle import FINAL, TRANSITIONS, InvalidTransition, Status, transition
from bot.store.models import AccessRequest
from bot.store.queries import holds

S = Status

# The arrows of SPEC.md "Request lifecycle", written out by hand.
SPEC_ARROWS = {
    (S.PENDING, S.APPROVED),
    (S.APPROVED, S.ACTIVE),
    (S.ACTIVE, S.EXPIRED),
    (S.ACTIVE, S.REVOKED),
    (S.PENDING, S.DENIED),
    (S.PENDING, S.CANCELLED),
    (S.PENDING, S.TIMED_OUT),
    (S.APPROVED, S.FAILED),
    # SPEC.md "Slack surface": `/access revoke` is accepted while the grant is owed or being applied. When the
    # revoke comes before anything was applied, the request ends without ever being active (nothing was
    # granted, so it must not show as active); once AWS has the grant it goes active -> revoked as usual.
    (S.APPROVED, S.REVOKED),
    # Issue 15 (scheduled start): "Cancel works until the start" — an approved request whose start is still to
    # come, nothing granted yet, may be withdrawn by its requester.
    (S.APPROVED, S.CANCELLED),
}
SPEC_FINAL = {S.EXPIRED, S.REVOKED, S.DENIED, S.CANCELLED, S.TIMED_OUT, S.FAILED}

ALLOWED = [(a, b) for a, b in itertools.product(Status, Status) if b in TRANSITIONS[a]]
REFUSED = [(a, b) for a, b in itertools.product(Status, Status) if b not in TRANSITIONS[a]]


def _ids(pairs: list[tuple[Status, Status]]) -> list[str]:
    return [f"{a.value}->{b.value}" for a, b in pairs]


def test_every_status_has_a_row() -> None:
    assert set(TRANSITIONS) == set(Status)


def test_every_pair_is_either_allowed_or_refused() -> None:
    assert len(ALLOWED) + len(REFUSED) == len(Status) ** 2
    assert len(ALLOWED) == len(SPEC_ARROWS)


@pytest.mark.parametrize(("current", "target"), ALLOWED, ids=_ids(ALLOWED))
def test_listed_transition_is_allowed(current: Status, target: Status) -> None:
    assert transition(current, target) is target


@pytest.mark.parametrize(("current", "target"), REFUSED, ids=_ids(REFUSED))
def test_unlisted_transition_raises(current: Status, target: Status) -> None:
    with pytest.raises(InvalidTransition) as caught:
        transition(current, target)
    assert (caught.value.current, caught.value.target) == (current, target)
    assert str(caught.value) == f"a {current.value} request cannot become {target.value}"


@pytest.mark.parametrize("arrow", [pytest.param(a, id=f"{a[0].value}->{a[1].value}") for a in sorted(SPEC_ARROWS)])
def test_spec_arrow_is_allowed(arrow: tuple[Status, Status]) -> None:
    current, target = arrow
    assert transition(current, target) is target


def test_no_arrow_beyond_the_spec() -> None:
    allowed = {(a, b) for a, targets in TRANSITIONS.items() for b in targets}
    assert allowed == SPEC_ARROWS


@pytest.mark.parametrize("final", [pytest.param(s, id=s.value) for s in sorted(SPEC_FINAL)])
def test_final_state_has_no_exit(final: Status) -> None:
    assert TRANSITIONS[final] == frozenset()
    for target in Status:
        with pytest.raises(InvalidTransition):
            transition(final, target)


def test_final_set_is_the_spec_final_set() -> None:
    assert FINAL == SPEC_FINAL


@pytest.mark.parametrize("status", [pytest.param(s, id=s.value) for s in Status])
def test_no_status_moves_to_itself(status: Status) -> None:
    with pytest.raises(InvalidTransition):
        transition(status, status)


T = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("status", "grant_started_at", "ended_at", "held"),
    [
        pytest.param(S.APPROVED, None, None, False, id="approved-nothing-applied-yet"),
        pytest.param(S.APPROVED, T, None, True, id="grant-in-flight"),
        pytest.param(S.ACTIVE, T, None, True, id="active"),
        pytest.param(S.EXPIRED, T, T, False, id="ended-and-removed"),
        pytest.param(S.FAILED, T, None, True, id="failed-with-its-undo-still-owed"),
        pytest.param(S.FAILED, T, T, False, id="failed-and-undone"),
        pytest.param(S.REVOKED, None, T, False, id="revoked-before-anything-was-applied"),
        pytest.param(S.DENIED, None, None, False, id="denied"),
    ],
)
def test_the_bot_may_hold_access_from_the_grant_intent_until_aws_accepted_the_removal(
    status: Status, grant_started_at: datetime | None, ended_at: datetime | None, held: bool
) -> None:
    row = AccessRequest(
        requester_id="U0ALICE", resource="r", kind="iam_group", target="g", iam_user="alice", iam_user_arn="arn",
        duration_seconds=60, reason="x", status=status.value, grant_started_at=grant_started_at, ended_at=ended_at,
    )  # fmt: skip
    assert holds(row) is held


def test_status_values_are_the_stored_strings() -> None:
    assert {s.value for s in Status} == {
        "pending", "approved", "active", "expired", "revoked", "denied", "cancelled", "timed_out", "failed",
    }  # fmt: skip
