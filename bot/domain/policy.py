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
    # On someone's behalf: the filer is neither an approver nor a delegate; the beneficiary may not request
    # the resource; the filer may not decide what they filed.
    NOT_A_DELEGATE = "not_a_delegate"
    BENEFICIARY_NOT_A_REQUESTER = "beneficiary_not_a_requester"
    FILED_IT = "filed_it"


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
    filed_by: str | None = None,
) -> Decision:
    """May `actor` approve or deny this request now? Neither side of a request filed on someone's behalf may."""
    if filed_by is not None and actor == filed_by:
        return Decision(Reason.FILED_IT)
    # allow_self_approval is about one's own request: one filed for you by someone else is never yours to decide.
    if actor == requester and (filed_by is not None or not allow_self_approval):
        return Decision(Reason.SELF_APPROVAL)
    if actor not in approvers:
        return Decision(Reason.NOT_AN_APPROVER)
    if status is not Status.PENDING:
        return Decision(Reason.ALREADY_DECIDED)
    if actor in voted:
        return Decision(Reason.ALREADY_VOTED)
    return ALLOW


def may_file_for(
    *, filer: str, approvers: Collection[str], delegates: Collection[str], beneficiary_may_request: bool
) -> Decision:
    """May `filer` file a request on someone else's behalf? Its approvers and delegates may, for a requester."""
    if filer not in approvers and filer not in delegates:
        return Decision(Reason.NOT_A_DELEGATE)
    if not beneficiary_may_request:
        return Decision(Reason.BENEFICIARY_NOT_A_REQUESTER)
    return ALLOW


def may_cancel(
    *, actor: str, requester: str, status: Status, filed_by: str | None = None, not_started: bool = False
) -> Decision:
    """May `actor` withdraw this request? Its requester, or whoever filed it on their behalf: while it is
    pending, or approved with a scheduled start still to come (`not_started`: no grant begun yet)."""
    if actor != requester and actor != filed_by:
        return Decision(Reason.NOT_THE_REQUESTER)
    if status is not Status.PENDING and not (status is Status.APPROVED and not_started):
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
