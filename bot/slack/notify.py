"""The Slack side of the workflow: posting, updating, DMs, and looking people up."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import tzinfo
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlmodel import Session

from bot.domain.posts import Render
from bot.errors import UserError
from bot.metrics import Metrics
from bot.slack import messages, requester_messages
from bot.slack.outbox import Outbox
from bot.starts import zone_of
from bot.store.models import AccessRequest
from bot.workflow.base import Alert

log = logging.getLogger(__name__)
GROUP_CACHE_SECONDS = 60.0
# A profile email is looked up once per person this often (a user with none is asked again every time).
EMAIL_CACHE_SECONDS = 300.0
# While usergroups.users.list fails, members read up to this long ago still count; after that, nobody does.
GROUP_STALE_SECONDS = 600.0


class SlackNotifier:
    """Implements workflow.Notifier: every post the bot owes goes through the durable outbox.

    Answers to a person's own action (an ephemeral reply, a modal, App Home) are sent at once instead: Slack's
    handle for them (a trigger ID, the moment) expires, and a late answer is worse than none; a failure
    there is counted and logged.
    """

    def __init__(self, client: WebClient, metrics: Metrics, outbox: Outbox) -> None:
        self._client = client
        self._metrics = metrics
        self._outbox = outbox

    def request_filed(self, request: AccessRequest, *, session: Session | None = None) -> None:
        """Post the approval message to the resource's approval channel (drawn when sent)."""
        self._outbox.add(
            "chat_postMessage",
            {"channel": request.approval_channel},
            about=request.id,
            render=Render.APPROVAL,
            session=session,
        )

    def request_changed(self, request: AccessRequest, *, session: Session | None = None) -> None:
        """Update the approval message in place (drawn when sent); it loses its buttons once decided."""
        self._outbox.add("chat_update", {}, about=request.id, render=Render.UPDATE, session=session)

    def tell_requester(
        self, request: AccessRequest, event: str, note: str | None = None, *, session: Session | None = None
    ) -> None:
        """DM the requester (with buttons where the step has any), and a copy to whoever filed it for them."""
        blocks = requester_messages.requester_blocks(request, event)
        text = requester_messages.requester_text(request, event, note)
        args: dict[str, Any] = {"channel": request.requester_id, "text": text}
        if blocks:
            args["blocks"] = blocks
        self._outbox.add("chat_postMessage", args, about=request.id, session=session)
        if request.filed_by:
            self.direct(request.filed_by, requester_messages.filer_copy(request, text), request.id, session=session)

    def revoked_early(self, request: AccessRequest, *, session: Session | None = None) -> None:
        """Say under the approval message who ended the grant early."""
        self._in_thread(request, messages.revoked_early_text(request), session=session)

    def remind(
        self, request: AccessRequest, approvers: Sequence[str], *, escalated: bool, session: Session | None = None
    ) -> None:
        """Remind the approvers under the approval message (escalated: the escalation contacts too)."""
        self._in_thread(request, messages.reminder_text(request, approvers, escalated=escalated), session=session)

    def nag_acknowledgement(self, request: AccessRequest, *, session: Session | None = None) -> None:
        """Say under the break-glass message that nobody acknowledged it yet."""
        self._in_thread(request, messages.acknowledgement_nag_text(request), session=session)

    def _in_thread(self, request: AccessRequest, text: str, *, session: Session | None = None) -> None:
        """A reply under the approval message (in the channel when that message never got posted)."""
        args = {"channel": request.approval_channel, "text": text}
        self._outbox.add("chat_postMessage", args, about=request.id, render=Render.THREAD, session=session)

    def publish_home(self, user: str, view: dict[str, Any]) -> None:
        """Show the App Home tab."""
        self._call("views_publish", user_id=user, view=view)

    def open_view(self, trigger_id: str, view: dict[str, Any]) -> None:
        """Open a modal."""
        self._call("views_open", trigger_id=trigger_id, view=view)

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
        """Post an alert in the approval channel (in the request's thread) and in the audit channel, if any."""
        text = messages.alert_text(request, alert, attempts=attempts, error=error)
        self._in_thread(request, f":rotating_light: {text}", session=session)
        if audit_channel:
            self.audit_post(audit_channel, request, "alert", text, session=session)

    def channel_alert(self, channel: str, text: str) -> None:
        """Post an alert that concerns no single request (e.g. reconcile drift) in a channel."""
        self._outbox.add("chat_postMessage", {"channel": channel, "text": text})

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
        args = {"channel": channel, "text": messages.audit_line(request, event, note)}
        self._outbox.add("chat_postMessage", args, about=request.id, session=session)

    def direct(self, user: str, text: str, about: int | None = None, *, session: Session | None = None) -> None:
        """Send a direct message (chat.postMessage to the user ID opens the DM)."""
        self._outbox.add("chat_postMessage", {"channel": user, "text": text}, about=about, session=session)

    def private(self, channel: str | None, user: str, text: str) -> None:
        """Show a message only to `user` at once (ephemeral in a channel, or a DM without one)."""
        if channel:
            self._call("chat_postEphemeral", channel=channel, user=user, text=text)
        else:
            self._call("chat_postMessage", channel=user, text=text)

    def _call(self, method: str, **kwargs: Any) -> Any:
        """Call the Web API now; a failure is counted and logged."""
        try:
            return getattr(self._client, method)(**kwargs)
        except (SlackApiError, OSError) as exc:
            self._metrics.slack_failures.labels(method=method).inc()
            log.warning("Slack %s failed: %s", method, _error_of(exc), extra={"slack_method": method})
            return None


class SlackDirectory:
    """Profile emails and user-group members, read from Slack and cached briefly."""

    def __init__(self, client: WebClient, metrics: Metrics) -> None:
        self._client = client
        self._metrics = metrics
        self._groups: dict[str, tuple[float, frozenset[str]]] = {}
        self._users: dict[str, tuple[float, dict[str, Any]]] = {}  # user ID -> (read at, users.info's user)
        self._lock = threading.Lock()

    def tz_of(self, user: str) -> tzinfo:
        """The user's Slack time zone (`tz`, else `tz_offset`); UTC when Slack cannot say, so that a start is
        still read the same way for everyone."""
        found = self._user(user, still_good=lambda _known: True)
        return zone_of(found.get("tz"), found.get("tz_offset")) if found is not None else zone_of(None)

    def email_of(self, user: str) -> str | None:
        """The user's profile email, or None (asked again next time: the profile may gain one)."""
        found = self._user(user, still_good=lambda known: bool(_email(known)))
        return _email(found) if found is not None else None

    def _user(self, user: str, *, still_good: Callable[[dict[str, Any]], bool]) -> dict[str, Any] | None:
        """One `users.info` answer for every question about a person, remembered for EMAIL_CACHE_SECONDS
        while `still_good` holds; None when Slack fails (not remembered)."""
        with self._lock:
            cached = self._users.get(user)
        if cached and time.monotonic() - cached[0] < EMAIL_CACHE_SECONDS and still_good(cached[1]):
            return cached[1]
        try:
            answer = self._client.users_info(user=user)
        except (SlackApiError, OSError) as exc:
            self._metrics.slack_failures.labels(method="users_info").inc()
            log.warning("Slack users.info failed: %s", _error_of(exc))
            return None
        found = dict(answer.get("user") or {})
        with self._lock:
            self._users[user] = (time.monotonic(), found)
        return found

    def expand(self, ids: frozenset[str]) -> frozenset[str]:
        """User IDs, with each user-group ID (S…) replaced by its current members."""
        users = {i for i in ids if not i.startswith("S")}
        for group in ids - users:
            users |= self._members(group)
        return frozenset(users)

    def _members(self, group: str) -> frozenset[str]:
        with self._lock:
            cached = self._groups.get(group)
        if cached and time.monotonic() - cached[0] < GROUP_CACHE_SECONDS:
            return cached[1]
        try:
            members = frozenset(self._client.usergroups_users_list(usergroup=group).get("users") or [])
        except (SlackApiError, OSError) as exc:
            self._metrics.slack_failures.labels(method="usergroups_users_list").inc()
            log.warning("Slack usergroups.users.list failed: %s", _error_of(exc))
            if cached and time.monotonic() - cached[0] < GROUP_STALE_SECONDS:
                return cached[1]
            # Fail closed: membership too old to trust (or never read) approves nobody, and people are told why.
            raise UserError(
                f"Slack cannot tell right now who is in the user group {group} ({_error_of(exc)}), so nobody "
                "counts as its member; try again in a minute."
            ) from None
        with self._lock:
            self._groups[group] = (time.monotonic(), members)
        return members


def _error_of(exc: Exception) -> str:
    if isinstance(exc, SlackApiError):
        return str(exc.response.get("error", "unknown"))
    return type(exc).__name__


def _email(user: dict[str, Any]) -> str | None:
    email = (user.get("profile") or {}).get("email")
    return str(email) if email else None
