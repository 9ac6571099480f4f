"""Who may approve or act on a request; returns a Decision whose reason the caller acts on."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum

from bot.domain.lifecycle import Status


class Reason(StrEnum):
    """Why an action is allowed or refused."""

    ALLOWED = "allowed"
    NOT_AN_APPROVER = "not_an_approver"
    SELF_APPROVAL = "self_approval"
    ALREADY_DECIDED = "already_decided"
    ALREADY_VOTED = "already_voted"
    NOT_THE_REQUESTER = "not_the_requester"
    WRONG_STATE = "wrong_state"


@dataclass(frozen=True)
class Decision:
    """The answer of a policy check."""

    reason: Reason

    @property
    def allowed(self) -> bool:
        """Whether the action may go ahead."""
        return self.reason is Reason.ALLOWED


ALLOW = Decision(Reason.ALLOWED)


def may_decide(
    *,
    actor: str,
    requester: str,
    approvers: Collection[str],
    allow_self_approval: bool,
    status: Status,
    voted: Collection[str] = (),
) -> Decision:
    """May `actor` approve or deny this request now?"""
    if actor == requester and not allow_self_approval:
        return Decision(Reason.SELF_APPROVAL)
    if actor not in approvers:
        return Decision(Reason.NOT_AN_APPROVER)
    if status is not Status.PENDING:
        return Decision(Reason.ALREADY_DECIDED)
    if actor in voted:
        return Decision(Reason.ALREADY_VOTED)
    return ALLOW


def may_cancel(*, actor: str, requester: str, status: Status) -> Decision:
    """May `actor` withdraw this request?"""
    if actor != requester:
        return Decision(Reason.NOT_THE_REQUESTER)
    if status is not Status.PENDING:
        return Decision(Reason.WRONG_STATE)
    return ALLOW


def may_revoke(
    *, actor: str, requester: str, approvers: Collection[str], status: Status, operator: bool = False
) -> Decision:
    """May `actor` end this grant early? An operator (the CLI's admin revoke) may end any grant.

    Accepted whenever access may exist: once active, and while the grant is owed or being applied (approved).
    """
    if not operator and actor != requester and actor not in approvers:
        return Decision(Reason.NOT_AN_APPROVER)
    if status not in (Status.APPROVED, Status.ACTIVE):
        return Decision(Reason.WRONG_STATE)
    return ALLOW


def may_acknowledge(*, actor: str, requester: str, approvers: Collection[str]) -> Decision:
    """May `actor` acknowledge a break-glass use? An approver, and never the one who used it."""
    if actor == requester:
        return Decision(Reason.SELF_APPROVAL)
    if actor not in approvers:
        return Decision(Reason.NOT_AN_APPROVER)
    return ALLOW


def quorum_reached(approved_by: Collection[str], required: int) -> bool:
    """Whether enough distinct approvers have approved."""
    return len(set(approved_by)) >= required
