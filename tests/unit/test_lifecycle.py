"""The lifecycle table: every (from, to) pair is allowed exactly when TRANSITIONS lists it."""

from __future__ import annotations

import itertools

import pytest

from bot.domain.lifecycle import FINAL, HOLDS_ACCESS, TRANSITIONS, InvalidTransition, Status, transition

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


def test_access_is_held_only_between_approval_and_the_end() -> None:
    assert {S.APPROVED, S.ACTIVE} == HOLDS_ACCESS
    assert not HOLDS_ACCESS & FINAL


def test_status_values_are_the_stored_strings() -> None:
    assert {s.value for s in Status} == {
        "pending", "approved", "active", "expired", "revoked", "denied", "cancelled", "timed_out", "failed",
    }  # fmt: skip
