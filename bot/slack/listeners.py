"""Thin listeners: parse, check what needs only memory, ack, and hand the rest to the background.

The app runs with process_before_response, so an error raised before the ack reaches the one error
handler in app.py while Slack's HTTP request is still open, and is answered privately there. Everything
after the ack (identity, database, Slack, AWS) runs in bot.slack.deferred, which answers its errors the
same way through response_url or privately.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from slack_bolt import Ack, App, Respond

from bot.activity.reporter import ActivityReporter
from bot.background import Background
from bot.clock import utcnow
from bot.durations import format_duration
from bot.errors import UserError
from bot.slack import commands, messages, views
from bot.slack.activity import activity_answer, home_notes
from bot.slack.deferred import Deferred, Reply, Said
from bot.slack.notify import SlackNotifier
from bot.workflow import Workflow

LIST_LINES = 40  # an ephemeral answer stays readable (and under Slack's size limit)


def register(
    app: App,
    workflow: Workflow,
    background: Background,
    notifier: SlackNotifier,
    activity: ActivityReporter | None = None,
) -> None:
    """Attach every listener to the app."""
    later = Deferred(background, notifier)

    @app.command("/access")
    def on_access(ack: Ack, command: dict[str, Any], respond: Respond) -> None:
        user = str(command["user_id"])
        reply = Reply(user, str(command.get("channel_id") or "") or None, respond)
        parsed = commands.parse_command(str(command.get("text") or ""))
        if isinstance(parsed, commands.Help):
            ack(text=messages.HELP, response_type="ephemeral")
        elif isinstance(parsed, commands.Request):
            workflow.precheck(
                resource=parsed.resource, duration=parsed.duration, reason=parsed.reason, break_glass=parsed.break_glass
            )
            ack(text=messages.working_on(parsed.resource, parsed.duration), response_type="ephemeral")
            submission = f"command:{command.get('trigger_id')}" if command.get("trigger_id") else None
            later.run(reply, lambda: _file(workflow, user, parsed, submission))
        else:
            ack()
            later.run(reply, lambda: _answer(workflow, notifier, user, parsed, command, activity))

    @app.action(messages.ACTION_APPROVE)
    def on_approve(ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        request_id, round = commands.parse_vote_value(str(action.get("value", "")))
        actor = _user(body)
        ack()

        def approve() -> None:
            request = workflow.decide(request_id=request_id, actor=actor, approve=True, round=round)
            workflow.after_decision(request_id, request.claimed_by)

        later.run(_privately(body, actor), _quietly(approve), request_id)

    @app.action(messages.ACTION_DENY)
    def on_deny(ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        request_id, round = commands.parse_vote_value(str(action.get("value", "")))
        actor, trigger = _user(body), str(body.get("trigger_id", ""))
        ack()

        def ask_why() -> None:
            request = workflow.check_vote(request_id=request_id, actor=actor, round=round)
            notifier.open_view(trigger, views.deny_view(request_id, request.extension_round))

        later.run(_privately(body, actor), _quietly(ask_why), request_id)

    @app.view(views.DENY_VIEW)
    def on_deny_reason(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        request_id, round = commands.parse_vote_value(str(view.get("private_metadata", "")))
        reason = views.values(view).get("reason", "").strip()
        if not reason:
            raise UserError("Say why, so the requester knows what to change.", field="reason")
        actor = _user(body)
        ack()

        def deny() -> None:
            workflow.decide(request_id=request_id, actor=actor, approve=False, comment=reason[:500], round=round)
            workflow.after_decision(request_id, None)

        later.run(Reply(actor, None), _quietly(deny), request_id)

    @app.view(views.REQUEST_VIEW)
    def on_request_form(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        given = views.values(view)
        wanted = commands.Request(
            resource=given.get("resource", ""),
            duration=given.get("duration") or "",
            reason=given.get("reason", ""),
            start=given.get("start", "").strip() or None,
        )
        workflow.precheck(resource=wanted.resource, duration=wanted.duration or None, reason=wanted.reason)
        actor = _user(body)
        ack()
        submission = f"view:{view['id']}" if view.get("id") else None
        # The form is closed: the requester's DM says it was filed; only a refusal is answered here (as a DM).
        later.run(Reply(actor, None), lambda: _file(workflow, actor, wanted, submission, quiet=True))

    @app.action(messages.ACTION_EXTEND)
    def on_extend_button(ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        request_id = commands.parse_request_id(str(action.get("value", "")))
        actor, trigger = _user(body), str(body.get("trigger_id", ""))
        ack()

        def open_form() -> None:
            request = workflow.mine_one(request_id=request_id, actor=actor)
            default = format_duration(workflow.catalog.defaults.default_duration)
            notifier.open_view(trigger, views.extend_view(request.id or request_id, default))

        later.run(_privately(body, actor), _quietly(open_form), request_id)

    @app.view(views.EXTEND_VIEW)
    def on_extend_form(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        request_id = commands.parse_request_id(str(view.get("private_metadata", "")))
        duration = views.values(view).get("duration", "")
        actor = _user(body)
        ack()
        later.run(Reply(actor, None), lambda: _extend(workflow, actor, request_id, duration), request_id)

    @app.action(messages.ACTION_REVOKE)
    def on_revoke_button(ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        request_id = commands.parse_request_id(str(action.get("value", "")))
        actor = _user(body)
        ack()

        def revoke() -> None:
            workflow.revoke_early(request_id=request_id, actor=actor)
            workflow.end(request_id)

        later.run(_privately(body, actor), _quietly(revoke), request_id)

    @app.action(messages.ACTION_CANCEL)
    def on_cancel_button(ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        request_id = commands.parse_request_id(str(action.get("value", "")))
        actor = _user(body)
        ack()
        later.run(_privately(body, actor), _quietly(lambda: workflow.cancel(request_id=request_id, actor=actor)))

    @app.action(messages.ACTION_ACK)
    def on_acknowledge(ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        request_id = commands.parse_request_id(str(action.get("value", "")))
        actor = _user(body)
        ack()
        later.run(_privately(body, actor), _quietly(lambda: workflow.acknowledge(request_id=request_id, actor=actor)))

    @app.event("app_home_opened")
    def on_home(event: dict[str, Any]) -> None:
        user = str(event.get("user", ""))
        if event.get("tab", "home") == "home" and user:
            background.submit(_publish_home, workflow, notifier, user)


def _file(
    workflow: Workflow, user: str, wanted: commands.Request, submission: str | None, *, quiet: bool = False
) -> Said:
    """File the request (once per Slack submission), announce it, and say what happened."""
    filed = workflow.submit(
        requester=wanted.on_behalf_of or user,
        filed_by=user if wanted.on_behalf_of else None,
        resource=wanted.resource,
        duration=wanted.duration or None,
        reason=wanted.reason,
        break_glass=wanted.break_glass,
        submission=submission,
        start=wanted.start,
    )
    request = filed.request
    said = None if quiet else _filed(request)
    if not filed.new:
        return Said(said)  # a retry of a submission already filed: the same answer, nothing more
    return Said(said, then=partial(workflow.announce, request.id or 0, request.claimed_by))


def _answer(
    workflow: Workflow,
    notifier: SlackNotifier,
    user: str,
    parsed: commands.Command,
    command: dict[str, Any],
    activity: ActivityReporter | None = None,
) -> str | Said | None:
    """Carry out every command but help and request (see on_access), after the ack; return the answer."""
    now = utcnow()
    if isinstance(parsed, commands.OpenForm):
        form = views.request_view(workflow.catalog, workflow.requestable(user))
        notifier.open_view(str(command.get("trigger_id", "")), form)
        return None
    if isinstance(parsed, commands.Mine):
        rows = workflow.mine(user)
        given_up = workflow.unposted(rows[:LIST_LINES])
        lines = [messages.line(r, now, given_up.get(r.id or 0)) for r in rows[:LIST_LINES]]
        if len(rows) > LIST_LINES:
            lines.append(f"…and {len(rows) - LIST_LINES:,} more; App Home shows the open ones.")
        return "\n".join(lines) or "You have no requests yet."
    if isinstance(parsed, commands.Pending):
        page = workflow.waiting_page(user)
        given_up = workflow.unposted(page.rows)
        lines = [f"{messages.line(r, now, given_up.get(r.id or 0))} from <@{r.requester_id}>" for r in page.rows]
        if page.more:
            lines.append(f"…and {page.more:,} more.")
        return "\n".join(lines) or "Nothing waits for your approval."
    if isinstance(parsed, commands.ShowCatalog):
        return _catalog(workflow, user)
    if isinstance(parsed, commands.Cancel):
        workflow.cancel(request_id=parsed.request_id, actor=user)
        return f"Request #{parsed.request_id} is cancelled."
    if isinstance(parsed, commands.Revoke):
        request_id = parsed.request_id
        workflow.revoke_early(request_id=request_id, actor=user)
        return Said(
            f"Revoking #{request_id} now; you will get a message when AWS confirms.", lambda: workflow.end(request_id)
        )
    if isinstance(parsed, commands.Extend):
        return _extend(workflow, user, parsed.request_id, parsed.duration)
    if isinstance(parsed, commands.Activity):
        return activity_answer(workflow, activity, user, parsed.request_id)
    raise AssertionError(f"unhandled command {parsed!r}")  # Help and Request are answered in on_access


def _extend(workflow: Workflow, user: str, request_id: int, duration: str) -> Said:
    request = workflow.request_extension(request_id=request_id, actor=user, duration=duration)
    then = partial(workflow.after_extension_request, request_id, request.claimed_by)
    if request.extension_approved_at is not None:
        return Said(f"Extension of #{request_id} by {duration} is approved automatically; applying it now.", then)
    return Said(f"Extension of #{request_id} by {duration} is waiting for approval.", then)


def _publish_home(workflow: Workflow, notifier: SlackNotifier, user: str) -> None:
    mine, waiting = workflow.mine(user), workflow.waiting_page(user)
    given_up = workflow.unposted([*mine, *waiting.rows])
    used = home_notes(workflow, mine)
    notifier.publish_home(user, views.home_view(mine, waiting, utcnow(), given_up=given_up, activity=used))


def _privately(body: dict[str, Any], user: str) -> Reply:
    """Answer a click in the channel it came from, seen only by the person who clicked."""
    channel = body.get("channel")
    return Reply(user, str(channel["id"]) if isinstance(channel, dict) and channel.get("id") else None)


def _quietly(work: Callable[[], object]) -> Callable[[], None]:
    """A click's work: its effect speaks (the message updates); only an error is answered."""

    def run() -> None:
        work()

    return run


def _user(body: dict[str, Any]) -> str:
    user = body.get("user")
    if not isinstance(user, dict) or not isinstance(user.get("id"), str):
        raise UserError("This request has no user; nothing was done.")
    return str(user["id"])


def _filed(request: Any) -> str:
    """The requester's confirmation, the resource's warning (if any) first."""
    text = _filed_text(request)
    return f"{messages.warning_line(request.warning)}\n{text}" if request.warning else text


def _filed_text(request: Any) -> str:
    if request.break_glass:
        return f"Break-glass #{request.id}: *{request.resource}* is being granted now; the approvers are told."
    if request.auto_approved:
        beneficiary = f" for <@{request.requester_id}>" if request.filed_by else ""
        then = f"it starts at {messages.when(request.starts_at)}" if request.starts_at else "granting it now"
        if request.on_call_note:
            return f"Request #{request.id} for *{request.resource}* is approved: {request.on_call_note}; {then}."
        return f"Request #{request.id} for *{request.resource}*{beneficiary} is auto-approved; {then}."
    beneficiary = f" for <@{request.requester_id}>" if request.filed_by else ""
    return (
        f"Request #{request.id} for *{request.resource}* ({messages.duration_of(request)}"
        f"{messages.starting(request)}){beneficiary} is waiting for approval in <#{request.approval_channel}>."
        + (f" {messages.capitalized(request.on_call_note)}." if request.on_call_note else "")
    )


def _catalog(workflow: Workflow, user: str) -> str:
    lines = []
    for name in workflow.requestable(user):
        item = workflow.catalog.resources[name]
        extras = " · break-glass" if item.break_glass else ""
        if item.reason_pattern:
            extras += f" · the reason needs a ticket (`{messages.escape(item.reason_pattern)}`)"
        lines.append(
            f"• *{name}* ({item.kind.value}) — {item.description or item.target}; up to "
            f"{format_duration(item.max_duration)}, {item.approvals_required} approval(s){extras}"
        )
    return "\n".join(lines) or "There is nothing in the catalog you may request."
