"""Who may approve, deny, cancel or revoke: a table of cases, each with the reason expected."""

from __future__ import annotations

from collections.abc import Collection

import pytest

from bot.domain.lifecycle import Status
from bot.domain.policy import (
    ALLOW,
    Decision,
    Reason,
    may_acknowledge,
    may_cancel,
    may_decide,
    may_revoke,
    quorum_reached,
)

ALICE, BOB, CAROL, MALLORY = "U0ALICE", "U0BOB", "U0CAROL", "U0MALLORY"
APPROVERS = frozenset({BOB, CAROL})
R = Reason


def decide(
    *,
    actor: str = BOB,
    requester: str = ALICE,
    approvers: Collection[str] = APPROVERS,
    allow_self_approval: bool = False,
    status: Status = Status.PENDING,
    voted: Collection[str] = (),
) -> Decision:
    return may_decide(
        actor=actor,
        requester=requester,
        approvers=approvers,
        allow_self_approval=allow_self_approval,
        status=status,
        voted=voted,
    )


@pytest.mark.parametrize(
    ("decision", "reason"),
    [
        pytest.param(decide(), R.ALLOWED, id="approver-decides-pending-request"),
        pytest.param(decide(actor=CAROL, voted={BOB}), R.ALLOWED, id="second-approver-after-first-voted"),
        pytest.param(decide(actor=MALLORY), R.NOT_AN_APPROVER, id="non-approver-refused"),
        pytest.param(decide(approvers=()), R.NOT_AN_APPROVER, id="nobody-is-an-approver-of-empty-list"),
        pytest.param(decide(actor=BOB.lower()), R.NOT_AN_APPROVER, id="ids-compared-exactly"),
        pytest.param(
            decide(actor=ALICE, requester=ALICE, approvers={ALICE, BOB}),
            R.SELF_APPROVAL,
            id="requester-who-is-an-approver-refused-by-default",
        ),
        pytest.param(
            decide(actor=ALICE, requester=ALICE),
            R.SELF_APPROVAL,
            id="requester-not-an-approver-told-self-approval",
        ),
        pytest.param(
            decide(actor=ALICE, requester=ALICE, approvers={ALICE, BOB}, allow_self_approval=True),
            R.ALLOWED,
            id="requester-approver-allowed-when-self-approval-on",
        ),
        pytest.param(
            decide(actor=ALICE, requester=ALICE, allow_self_approval=True),
            R.NOT_AN_APPROVER,
            id="self-approval-on-still-needs-an-approver",
        ),
        pytest.param(
            decide(actor=ALICE, requester=ALICE, approvers={ALICE}, status=Status.APPROVED),
            R.SELF_APPROVAL,
            id="self-approval-refused-before-state-is-looked-at",
        ),
        pytest.param(decide(voted={BOB}), R.ALREADY_VOTED, id="approver-already-voted"),
        pytest.param(decide(status=Status.APPROVED, voted={BOB}), R.ALREADY_DECIDED, id="decided-beats-already-voted"),
        pytest.param(decide(actor=MALLORY, status=Status.DENIED), R.NOT_AN_APPROVER, id="non-approver-on-decided"),
        *[
            pytest.param(decide(status=status), R.ALREADY_DECIDED, id=f"already-{status.value}")
            for status in Status
            if status is not Status.PENDING
        ],
    ],
)
def test_may_decide(decision: Decision, reason: Reason) -> None:
    assert decision.reason is reason
    assert decision.allowed is (reason is R.ALLOWED)


@pytest.mark.parametrize(
    ("actor", "status", "reason"),
    [
        pytest.param(ALICE, Status.PENDING, R.ALLOWED, id="requester-cancels-pending"),
        pytest.param(BOB, Status.PENDING, R.NOT_THE_REQUESTER, id="approver-cannot-cancel-for-requester"),
        pytest.param(MALLORY, Status.PENDING, R.NOT_THE_REQUESTER, id="stranger-cannot-cancel"),
        pytest.param(MALLORY, Status.ACTIVE, R.NOT_THE_REQUESTER, id="stranger-told-not-requester-first"),
        *[
            pytest.param(ALICE, status, R.WRONG_STATE, id=f"requester-cannot-cancel-{status.value}")
            for status in Status
            if status is not Status.PENDING
        ],
    ],
)
def test_may_cancel(actor: str, status: Status, reason: Reason) -> None:
    decision = may_cancel(actor=actor, requester=ALICE, status=status)
    assert decision.reason is reason
    assert decision.allowed is (reason is R.ALLOWED)


@pytest.mark.parametrize(
    ("actor", "status", "reason"),
    [
        pytest.param(ALICE, Status.ACTIVE, R.ALLOWED, id="requester-ends-own-grant-early"),
        pytest.param(ALICE, Status.APPROVED, R.ALLOWED, id="requester-ends-grant-while-it-is-applied"),
        pytest.param(BOB, Status.APPROVED, R.ALLOWED, id="approver-ends-grant-while-it-is-applied"),
        pytest.param(BOB, Status.ACTIVE, R.ALLOWED, id="approver-ends-grant"),
        pytest.param(MALLORY, Status.ACTIVE, R.NOT_AN_APPROVER, id="stranger-refused"),
        pytest.param(MALLORY, Status.PENDING, R.NOT_AN_APPROVER, id="stranger-refused-whatever-the-state"),
        *[
            pytest.param(ALICE, status, R.WRONG_STATE, id=f"not-revocable-when-{status.value}")
            for status in Status
            if status not in (Status.ACTIVE, Status.APPROVED)
        ],
        pytest.param(BOB, Status.EXPIRED, R.WRONG_STATE, id="approver-cannot-revoke-expired"),
    ],
)
def test_may_revoke(actor: str, status: Status, reason: Reason) -> None:
    decision = may_revoke(actor=actor, requester=ALICE, approvers=APPROVERS, status=status)
    assert decision.reason is reason
    assert decision.allowed is (reason is R.ALLOWED)


@pytest.mark.parametrize(
    ("approved_by", "required", "reached"),
    [
        pytest.param([], 1, False, id="no-votes"),
        pytest.param([BOB], 1, True, id="one-of-one"),
        pytest.param([BOB], 2, False, id="one-of-two"),
        pytest.param([BOB, CAROL], 2, True, id="two-of-two"),
        pytest.param([BOB, BOB], 2, False, id="same-approver-twice-counts-once"),
        pytest.param([BOB, CAROL, ALICE], 2, True, id="more-than-needed"),
        pytest.param(frozenset({BOB, CAROL}), 3, False, id="two-of-three"),
    ],
)
def test_quorum_reached(approved_by: Collection[str], required: int, reached: bool) -> None:
    assert quorum_reached(approved_by, required) is reached


def test_allow_is_the_only_allowed_reason() -> None:
    assert ALLOW.allowed
    assert [r for r in Reason if Decision(r).allowed] == [R.ALLOWED]


@pytest.mark.parametrize(
    ("actor", "reason"),
    [
        pytest.param(BOB, R.ALLOWED, id="an-approver-acknowledges"),
        pytest.param(ALICE, R.SELF_APPROVAL, id="the-user-of-break-glass-never-acknowledges-it"),
        pytest.param(MALLORY, R.NOT_AN_APPROVER, id="a-stranger-cannot"),
    ],
)
def test_may_acknowledge(actor: str, reason: Reason) -> None:
    decision = may_acknowledge(actor=actor, requester=ALICE, approvers=APPROVERS | {ALICE})
    assert decision.reason is reason
