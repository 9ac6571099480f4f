"""Every kind of audit event, by name: the audit trail's vocabulary, in one place."""

from __future__ import annotations

from enum import StrEnum

from bot.domain.lifecycle import Status


class AuditAction(StrEnum):
    """What an audit event records. A state change is recorded under the name of the state it reached."""

    # filing and deciding
    SUBMITTED = "submitted"
    APPROVAL_VOTE = "approval_vote"
    REMINDED = "reminded"
    ESCALATED = "escalated"
    ACKNOWLEDGED = "acknowledged"
    # state changes (see transitioned_to)
    APPROVED = "approved"
    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"
    DENIED = "denied"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"
    FAILED = "failed"
    # AWS work
    GRANT_STARTED = "grant_started"
    REVOKE_REQUESTED = "revoke_requested"
    REVOKE_FAILED = "revoke_failed"
    UNDO_FAILED = "undo_failed"
    UNDONE = "undone"
    LIFT_FAILED = "lift_failed"
    SESSIONS_DENY_LIFTED = "sessions_deny_lifted"
    # A new grant of the same role to the same person took over an earlier end's deny (its own end covers it).
    SESSIONS_DENY_SUPERSEDED = "sessions_deny_superseded"
    # Reconcile found an owed deny gone from its role (or with an earlier cutoff), and put it back.
    SESSIONS_DENY_RESTORED = "sessions_deny_restored"
    ALERT = "alert"
    # extensions
    EXTENSION_REQUESTED = "extension_requested"
    EXTENSION_APPROVED = "extension_approved"
    EXTENSION_DENIED = "extension_denied"
    EXTENSION_FAILED = "extension_failed"
    EXTENDED = "extended"
    # reconciliation
    RECONCILE = "reconcile"
    DRIFT_FOUND = "drift_found"
    GRANT_REAPPLIED = "grant_reapplied"
    ORPHAN_REMOVED = "orphan_removed"


def transitioned_to(status: Status) -> AuditAction:
    """The action a move into `status` is recorded under."""
    return AuditAction(status.value)
