"""The workflow's ports to people, in memory: what it tells whom, who is in which Slack user group, who is who in AWS.

FakeNotifier keeps what the bot would post, with the words people would read (drawn by the same
bot.slack.messages functions the Slack notifier uses), and only once the transaction that owed it commits,
as the durable outbox does: a rolled-back change tells nobody.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, tzinfo
from typing import Any

from sqlalchemy import event as orm_events
from sqlmodel import Session

from bot.aws.identity import IamUser, IdentityResolver
from bot.catalog import Kind
from bot.errors import UserError
from bot.slack import messages, requester_messages
from bot.store import queries
from bot.store.models import AccessRequest
from bot.workflow.base import Alert

_OWED = "accessbot.testing.owed"  # Session.info key: posts owed in the transaction, kept once it commits


@dataclass(frozen=True)
class Post:
    """One thing the bot would post: `kind` is approval, update, dm, thread or audit; `to` a user or channel."""

    kind: str
    to: str
    request_id: int | None
    event: str
    text: str
    mentions: tuple[str, ...] = ()
    buttons: tuple[tuple[str, str], ...] = ()  # (label, action_id) of each button the post carries


class FakeNotifier:
    """Implements workflow.Notifier by keeping the posts owed, in order, once their transaction commits."""

    def __init__(self) -> None:
        self.posts: list[Post] = []
        self._lock = threading.Lock()

    # -- what a test reads ----------------------------------------------------------------------

    def dms(self, user: str) -> list[str]:
        """The direct messages `user` got, oldest first."""
        return [p.text for p in self._all() if p.kind == "dm" and p.to == user]

    def told(self, user: str, request_id: int | None = None) -> list[str]:
        """The steps `user` was told of by DM (filed, approved, active, ended, ...), oldest first."""
        return [p.event for p in self._all() if p.kind == "dm" and p.to == user and _about(p, request_id)]

    def approval(self, request_id: int) -> str:
        """What the request's approval message says now (its latest post or update)."""
        return self.approval_now(request_id).text

    def approval_now(self, request_id: int) -> Post:
        """The request's approval message as it stands now (its latest post or update), buttons included."""
        shown = [p for p in self._all() if p.kind in ("approval", "update") and p.request_id == request_id]
        if not shown:
            raise AssertionError(f"request #{request_id} has no approval message")
        return shown[-1]

    def last_dm(self, user: str) -> Post:
        """The latest direct message to `user`, buttons included."""
        found = [p for p in self._all() if p.kind == "dm" and p.to == user]
        if not found:
            raise AssertionError(f"{user} got no direct message")
        return found[-1]

    def approval_posts(self, request_id: int) -> list[Post]:
        """Every approval message posted for the request (one per decision: the request, each extension)."""
        return [p for p in self._all() if p.kind == "approval" and p.request_id == request_id]

    def thread(self, request_id: int) -> list[Post]:
        """The replies under the request's approval message, oldest first."""
        return [p for p in self._all() if p.kind == "thread" and p.request_id == request_id]

    def audit_lines(self, channel: str) -> list[str]:
        """What was posted to an audit channel, oldest first."""
        return [p.text for p in self._all() if p.kind == "audit" and p.to == channel]

    # -- the Notifier protocol ------------------------------------------------------------------

    def request_filed(self, request: AccessRequest, *, session: Session | None = None) -> None:
        """Post the approval message."""
        text, buttons = self._drawn(request, session)
        self._owe(session, "approval", request.approval_channel, request, "filed", text, buttons=buttons)

    def request_changed(self, request: AccessRequest, *, session: Session | None = None) -> None:
        """Update the approval message in place."""
        text, buttons = self._drawn(request, session)
        self._owe(session, "update", request.approval_channel, request, request.status, text, buttons=buttons)

    def tell_requester(
        self, request: AccessRequest, event: str, note: str | None = None, *, session: Session | None = None
    ) -> None:
        """DM the requester, and a copy to whoever filed it for them."""
        text = requester_messages.requester_text(request, event, note)
        buttons = _buttons(requester_messages.requester_blocks(request, event) or [])
        self._owe(session, "dm", request.requester_id, request, event, text, buttons=buttons)
        if request.filed_by:
            self._owe(session, "dm", request.filed_by, request, event, requester_messages.filer_copy(request, text))

    def revoked_early(self, request: AccessRequest, *, session: Session | None = None) -> None:
        """Say under the approval message who ended the grant early."""
        self._owe(session, "thread", request.approval_channel, request, "revoked_early",
                  messages.revoked_early_text(request))  # fmt: skip

    def remind(
        self, request: AccessRequest, approvers: Sequence[str], *, escalated: bool, session: Session | None = None
    ) -> None:
        """Remind the approvers (escalated: the escalation contacts too)."""
        text = messages.reminder_text(request, approvers, escalated=escalated)
        event = "escalated" if escalated else "reminder"
        self._owe(session, "thread", request.approval_channel, request, event, text, tuple(approvers))

    def nag_acknowledgement(self, request: AccessRequest, *, session: Session | None = None) -> None:
        """Say that a break-glass use is still not acknowledged."""
        self._owe(session, "thread", request.approval_channel, request, "nag",
                  messages.acknowledgement_nag_text(request))  # fmt: skip

    def alert(
        self,
        request: AccessRequest,
        alert: Alert,
        *,
        attempts: int,
        error: str,
        audit_channel: str | None,
        session: Session | None = None,
    ) -> None:
        """Raise an alert under the approval message and in the audit channel."""
        text = messages.alert_text(request, alert, attempts=attempts, error=error)
        self._owe(session, "thread", request.approval_channel, request, f"alert:{alert.value}", text)
        if audit_channel:
            self.audit_post(audit_channel, request, "alert", text, session=session)

    def audit_post(
        self,
        channel: str,
        request: AccessRequest,
        event: str,
        note: str | None = None,
        *,
        session: Session | None = None,
    ) -> None:
        """Post one line to an audit channel."""
        self._owe(session, "audit", channel, request, event, messages.audit_line(request, event, note))

    # -- helpers --------------------------------------------------------------------------------

    def _all(self) -> list[Post]:
        with self._lock:
            return list(self.posts)

    @staticmethod
    def _drawn(request: AccessRequest, session: Session | None) -> tuple[str, tuple[tuple[str, str], ...]]:
        """The approval message as the outbox draws it: its text, and its buttons."""
        votes = list(queries.open_votes(request, session=session)) if session is not None else []
        return messages.approval_text(request, votes), _buttons(messages.approval_blocks(request, votes))

    def _owe(
        self,
        session: Session | None,
        kind: str,
        to: str | None,
        request: AccessRequest,
        event: str,
        text: str,
        mentions: tuple[str, ...] = (),
        *,
        buttons: tuple[tuple[str, str], ...] = (),
    ) -> None:
        post = Post(kind, to or "", request.id, str(event), text, mentions, buttons)
        if session is None:
            self._keep([post])
            return
        owed: list[Post] | None = session.info.get(_OWED)
        if owed is None:
            owed = session.info[_OWED] = []
            orm_events.listen(session, "after_commit", lambda s: self._keep(s.info.pop(_OWED, [])))
            orm_events.listen(session, "after_rollback", lambda s: s.info.pop(_OWED, None))
        owed.append(post)

    def _keep(self, posts: Iterable[Post]) -> None:
        with self._lock:
            self.posts.extend(posts)


def _buttons(blocks: Sequence[Mapping[str, Any]]) -> tuple[tuple[str, str], ...]:
    """(label, action_id) of every button in Block Kit blocks."""
    return tuple(
        (str(e["text"]["text"]), str(e["action_id"]))
        for block in blocks
        if block.get("type") == "actions"
        for e in block.get("elements", [])
        if e.get("type") == "button"
    )


def _about(post: Post, request_id: int | None) -> bool:
    return request_id is None or post.request_id == request_id


class FakeDirectory:
    """Implements workflow.Directory: user groups and time zones from dicts the test fills in."""

    def __init__(
        self, groups: Mapping[str, Iterable[str]] | None = None, zones: Mapping[str, tzinfo] | None = None
    ) -> None:
        self.groups: dict[str, frozenset[str]] = {g: frozenset(m) for g, m in (groups or {}).items()}
        self.zones: dict[str, tzinfo] = dict(zones or {})
        self.unreachable: set[str] = set()  # user groups Slack cannot list now

    def expand(self, ids: frozenset[str]) -> frozenset[str]:
        """User IDs, with user-group IDs (S...) replaced by their members."""
        users = {i for i in ids if not i.startswith("S")}
        for group in ids - users:
            if group in self.unreachable:
                raise UserError(f"Slack cannot tell right now who is in the user group {group}.")
            users |= self.groups.get(group, frozenset())
        return frozenset(users)

    def tz_of(self, user: str) -> tzinfo:
        """The user's time zone (UTC unless the test set one)."""
        return self.zones.get(user, UTC)


class FakeIdentity(IdentityResolver):
    """Slack user -> AWS principal from a dict; MFA devices from a set of user names. No AWS, no threads."""

    def __init__(self, users: Mapping[str, IamUser], *, mfa: Iterable[str] = ()) -> None:
        # The real resolver's state (an email index read from IAM) is not built: every method that reads it
        # is overridden here.
        self.users = dict(users)
        self.mfa = set(mfa)
        self.index = None

    def start(self) -> None:
        """Nothing to read in the background."""

    def stop(self) -> None:
        """Nothing to stop."""

    def resolve(self, slack_user: str, kind: Kind | None = None) -> IamUser:
        """The user's principal, or the UserError the real resolver gives for a user it cannot find."""
        found = self.users.get(slack_user)
        if found is None:
            raise UserError("No IAM user has the tag email=<yours>; ask an admin to tag your IAM user.")
        return found

    def has_mfa(self, user: IamUser) -> bool:
        """Whether the user has an MFA device."""
        return user.name in self.mfa


def iam_users(names: Mapping[str, str], account: str = "123456789012") -> dict[str, IamUser]:
    """Slack ID -> IamUser for IAM user names in one account."""
    return {slack: IamUser(name=name, arn=f"arn:aws:iam::{account}:user/{name}") for slack, name in names.items()}
