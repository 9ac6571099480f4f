"""The request lifecycle: every state and every allowed move, in one table."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """Where a request is in its life."""

    PENDING = "pending"
    APPROVED = "approved"
    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"
    DENIED = "denied"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"
    FAILED = "failed"


TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.PENDING: frozenset({Status.APPROVED, Status.DENIED, Status.CANCELLED, Status.TIMED_OUT}),
    # approved -> revoked: an early revoke asked for while the grant was owed or in flight; the access is
    # removed (or never applied) before the request counts as ended.
    # approved -> cancelled: a request with a scheduled start, withdrawn by its requester before the start.
    Status.APPROVED: frozenset({Status.ACTIVE, Status.FAILED, Status.REVOKED, Status.CANCELLED}),
    Status.ACTIVE: frozenset({Status.EXPIRED, Status.REVOKED}),
    Status.EXPIRED: frozenset(),
    Status.REVOKED: frozenset(),
    Status.DENIED: frozenset(),
    Status.CANCELLED: frozenset(),
    Status.TIMED_OUT: frozenset(),
    Status.FAILED: frozenset(),
}

FINAL = frozenset(status for status, targets in TRANSITIONS.items() if not targets)


class InvalidTransition(Exception):
    """A move the lifecycle does not allow, e.g. approving a request that was already denied."""

    def __init__(self, current: Status, target: Status) -> None:
        super().__init__(f"a {current.value} request cannot become {target.value}")
        self.current = current
        self.target = target


def transition(current: Status, target: Status) -> Status:
    """Return target if the lifecycle allows current -> target, else raise InvalidTransition."""
    if target not in TRANSITIONS[current]:
        raise InvalidTransition(current, target)
    return target
