"""The tables. Every datetime is timezone-aware UTC (sqlmodel rejects naive ones)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from bot.clock import utcnow

# A request waits for a person's decision: it is pending, or active with an extension asked for. One SQL
# text for the partial index and the query that reads it: SQLite uses a partial index only when the query
# repeats its condition word for word (in brackets, so that it stays one term among the query's others).
# Open rows are few beside the ended ones, so the index stays small.
AWAITING_DECISION = "(status = 'pending' OR (status = 'active' AND extension_seconds IS NOT NULL))"


class AccessRequest(SQLModel, table=True):
    """One request for access, from filing to its end; the source of truth for expiry."""

    __tablename__ = "access_requests"
    __table_args__ = (
        Index("ix_access_requests_next_due_at", "next_due_at"),
        Index("ix_access_requests_requester_status", "requester_id", "status"),
        # A person's latest requests (/access list, App Home) without walking the whole table back from the newest.
        Index("ix_access_requests_requester_recent", "requester_id", "id"),
        Index("ix_access_requests_holder", "iam_user", "target", "status"),
        Index("ux_access_requests_submission", "submission", unique=True),
        # What a person filed on others' behalf lately (their own rate limit as a filer).
        Index("ix_access_requests_filed_by", "filed_by", "created_at"),
        Index(
            "ix_access_requests_awaiting_decision",
            "resource",
            "created_at",
            postgresql_where=text(AWAITING_DECISION),
            sqlite_where=text(AWAITING_DECISION),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    # The beneficiary: the person who gets the access (identity, limits, lists and DMs all key on them).
    requester_id: str = Field(max_length=32)
    # Who filed it when that is not the beneficiary (`for=@someone`); NULL for a request filed by its requester.
    filed_by: str | None = Field(default=None, max_length=32)
    resource: str = Field(max_length=64)
    kind: str = Field(max_length=32)
    target: str = Field(max_length=2048)
    # The principal the grant names: the IAM user's name and ARN, or for the Identity Center kinds
    # (sso_permission_set, sso_group) the Identity Store user's UserName and UserId.
    iam_user: str = Field(max_length=128)
    iam_user_arn: str = Field(max_length=2048)
    duration_seconds: int
    reason: str = Field(max_length=2000)
    status: str = Field(max_length=16, index=True)
    approvals_required: int = 1
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    # Joined approver IDs: a quorum of up to ten real Slack IDs must fit.
    decided_by: str | None = Field(default=None, max_length=512)
    decided_at: datetime | None = None
    deny_reason: str | None = Field(default=None, max_length=2000)
    approval_channel: str | None = Field(default=None, max_length=32)
    approval_ts: str | None = Field(default=None, max_length=32)
    # Intent markers: written (and committed) before the AWS call, so a crash in between is recoverable.
    # The bot may hold access in AWS for the request exactly while grant_started_at is set and ended_at is not.
    grant_started_at: datetime | None = None
    revoke_started_at: datetime | None = None
    # An early end (revoke) was asked for at this moment: owed work from then on, whatever else is due.
    end_requested_at: datetime | None = None
    end_status: str | None = Field(default=None, max_length=16)
    ended_by: str | None = Field(default=None, max_length=256)
    grant_ref: str | None = Field(default=None, max_length=256)
    # The concrete AWS object granted on, resolved before the grant (a KMS key's ARN, never its alias).
    target_arn: str | None = Field(default=None, max_length=2048)
    activated_at: datetime | None = None
    expires_at: datetime | None = None
    ended_at: datetime | None = None
    # A role's deny of sessions issued before the end stays until then (the cutoff plus 12 hours).
    sessions_denied_until: datetime | None = None
    # The cutoff of the role's session deny owed until sessions_denied_until: sessions issued before it are denied.
    sessions_denied_before: datetime | None = None
    # Failed AWS work (a revoke, an undo, lifting a deny) is tried again at this moment; nothing moves it later.
    retry_at: datetime | None = None
    warned_at: datetime | None = None
    # Extensions: the pending one (seconds asked for), which voting round is open, how many were granted.
    extension_seconds: int | None = None
    extension_approved_at: datetime | None = None
    extension_round: int = 0
    extensions_used: int = 0
    reminders_sent: int = 0
    reminded_at: datetime | None = None
    auto_approved: bool = False
    # Why on-call did or did not approve it, as people read it ("on call for payments-primary", "PagerDuty
    # did not answer"), kept with the request: the approval message and the DM are drawn from the row.
    on_call_note: str | None = Field(default=None, max_length=300)
    # The resource's `warning` as it was when the request was filed (what the requester was shown).
    warning: str | None = Field(default=None, max_length=300)
    # Who the approval message mentions (the resource's `notify`, comma-separated Slack IDs); NULL: nobody.
    notify: str | None = Field(default=None, max_length=2000)
    break_glass: bool = False
    acknowledged_by: str | None = Field(default=None, max_length=64)
    acknowledged_at: datetime | None = None
    attempts: int = 0
    last_error: str | None = Field(default=None, max_length=2000)
    # The next moment the scheduler must look at this row; NULL once nothing more is owed.
    next_due_at: datetime | None = None
    claimed_by: str | None = Field(default=None, max_length=256)
    claimed_until: datetime | None = None
    # The Slack submission (slash command trigger, modal view) it was filed from: a retry files nothing new.
    submission: str | None = Field(default=None, max_length=128)
    # A scheduled start (`start=`): the grant is owed from this moment, not from the approval.
    starts_at: datetime | None = None


class Vote(SQLModel, table=True):
    """One approver's decision on one request."""

    __tablename__ = "votes"
    __table_args__ = (UniqueConstraint("request_id", "round", "approver_id", name="uq_votes_request_round_approver"),)

    id: int | None = Field(default=None, primary_key=True)
    request_id: int = Field(foreign_key="access_requests.id", index=True)
    # 0 decides the request itself; n decides its n-th extension.
    round: int = 0
    approver_id: str = Field(max_length=32)
    approve: bool
    comment: str | None = Field(default=None, max_length=2000)
    created_at: datetime = Field(default_factory=utcnow)


class AuditEvent(SQLModel, table=True):
    """An append-only record of something that happened: who, what, when, from/to state."""

    __tablename__ = "audit_events"

    id: int | None = Field(default=None, primary_key=True)
    request_id: int | None = Field(default=None, index=True)
    actor: str = Field(max_length=512)
    action: str = Field(max_length=32)
    from_status: str | None = Field(default=None, max_length=16)
    to_status: str | None = Field(default=None, max_length=16)
    details: str = Field(default="{}")
    created_at: datetime = Field(default_factory=utcnow, index=True)
    # Hash chain: each event stores the previous event's hash and the hash of its own content.
    prev_hash: str | None = Field(default=None, max_length=64)
    hash: str | None = Field(default=None, max_length=64)


class SlackPost(SQLModel, table=True):
    """A Slack post the bot owes (the outbox): kept until Slack took it, or until it was given up.

    Written in the same transaction as the change it tells of where the caller has one, so that a crash
    between the two cannot lose it; deleted once Slack answered ok.
    """

    __tablename__ = "slack_outbox"
    __table_args__ = (
        # What is due, oldest first (given-up posts stay for inspection, out of the index).
        Index(
            "ix_slack_outbox_due",
            "next_attempt_at",
            postgresql_where=text("given_up_at IS NULL"),
            sqlite_where=text("given_up_at IS NULL"),
        ),
        # A request's posts in order: a later one waits while an earlier one is still owed.
        Index("ix_slack_outbox_request", "request_id", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    request_id: int | None = None
    method: str = Field(max_length=32)
    # The Web API call's arguments, as JSON; `render` says what is filled in from the request when sent.
    payload: str
    # NULL: sent as written. "approval": the approval message, drawn from the request as it is when sent (its
    # channel and ts are stored on the request). "update": chat.update of that message, drawn when sent.
    # "thread": a reply under that message.
    render: str | None = Field(default=None, max_length=16)
    created_at: datetime = Field(default_factory=utcnow)
    next_attempt_at: datetime = Field(default_factory=utcnow)
    attempts: int = 0
    last_error: str | None = Field(default=None, max_length=500)
    # The process sending it now, until when: a crashed sender's posts are taken over once its lease ends.
    claimed_by: str | None = Field(default=None, max_length=256)
    claimed_until: datetime | None = None
    given_up_at: datetime | None = None
    # When an operator sent it again after it was given up: its give-up bound counts from then.
    requeued_at: datetime | None = None


class AssignmentCreation(SQLModel, table=True):
    """An Identity Center account assignment creation the bot asked for, by AWS's request ID.

    Creation is asynchronous and may finish after the bot stopped waiting; an undo waits for each recorded
    request's final status before it decides what is in the account (see bot.aws.granters.sso.assignments).
    """

    __tablename__ = "sso_assignment_creations"
    __table_args__ = (UniqueConstraint("request_id", "account", "creation_id", name="ux_sso_assignment_creation"),)

    id: int | None = Field(default=None, primary_key=True)
    # No foreign key on purpose: recording runs while the caller may hold the request's row lock (a
    # reconcile re-apply), and a foreign key's KEY SHARE lock on that row would wait for it forever.
    request_id: int = Field(index=True)
    account: str = Field(max_length=12)
    creation_id: str = Field(max_length=100)
    created_at: datetime = Field(default_factory=utcnow)
