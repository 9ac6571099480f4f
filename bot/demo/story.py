"""The story the demo plays in its world: the real app, a stand-in for Slack, moto as AWS."""

from __future__ import annotations

import secrets
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from bot.clock import utcnow
from bot.config import Settings
from bot.demo import activity, member
from bot.demo.oncall import ON_CALL_CATALOG, fake_pagerduty, tell_on_call
from bot.demo.standin import Person, Workspace, reply_of
from bot.demo.world import (
    ACCOUNTS,
    ALICE,
    APPROVALS,
    BOB,
    CAROL,
    CATALOG,
    CHANNELS,
    DAVE,
    GENERAL,
    GRANT,
    PEOPLE,
    Aws,
    offline_aws,
    seed,
)
from bot.runtime import Runtime
from bot.store import queries
from bot.store.db import session_scope
from bot.testing.fake_slack import Call
from bot.testing.signing import SlackSender
from bot.workflow import Tuning


class DemoFailed(Exception):
    """The story did not go as told; the message says which step."""


@dataclass(frozen=True)
class Filed:
    """A request as the story follows it: its approval message in Slack and its ID in the database."""

    message: Call
    request_id: int


def play(out: Callable[[str], None] = print) -> None:
    """Set up the offline world, run the real app in it, and tell the story; raise DemoFailed if it goes wrong."""
    started = time.monotonic()
    with ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="accessbot-demo-")))
        stack.enter_context(offline_aws(scratch))
        trail = stack.enter_context(activity.offline_cloudtrail())
        aws = seed()
        slack = stack.enter_context(Workspace(PEOPLE, CHANNELS, out))
        pagerduty = stack.enter_context(fake_pagerduty({p.user_id: p.email for p in PEOPLE}, on_call=ALICE.user_id))
        slack.timezones = {ALICE.user_id: "Europe/Paris"}  # her Slack time zone: `start=09:00` is 09:00 in Paris
        secret = secrets.token_hex(16)
        (scratch / "catalog.yaml").write_text(CATALOG + ON_CALL_CATALOG + ACCOUNTS)
        settings = Settings(
            slack_bot_token="xoxb-demo-" + secrets.token_hex(8),
            slack_signing_secret=secret,
            slack_app_token=None,
            slack_api_url=slack.url,
            database_url=f"sqlite:///{scratch / 'accessbot.db'}",
            accessbot_catalog=scratch / "catalog.yaml",
            accessbot_scheduler="on",
            accessbot_sweep_seconds=1.0,
            accessbot_activity_delay=activity.NO_DELAY,
            port=0,
            accessbot_pagerduty_token=pagerduty.token,
            accessbot_pagerduty_url=pagerduty.url,
        )
        runtime = Runtime.build(settings, tuning=Tuning(retry_base=timedelta(seconds=0.5), lease=timedelta(seconds=5)))
        runtime.start(host="127.0.0.1", port=0)
        stack.callback(runtime.stop)
        assert runtime.http is not None
        sender = SlackSender(runtime.http.url, secret, slack.base + "/response/")
        slack.answers_to = sender.answers_to  # one dict: every command and click registers where it answers
        story = Story(runtime, slack, sender, aws, out, trail)
        story.tell()
        tell_on_call(story, pagerduty, GRANT, ALICE, DemoFailed)
        took = time.monotonic() - started
        out(f"\nThe story took {took:.1f}s, all on 127.0.0.1: no network, no credentials, nothing kept.")


class Story:
    """Alice asks for each kind of access; Bob and Carol decide; AWS changes, then changes back."""

    def __init__(
        self, runtime: Runtime, slack: Workspace, sender: SlackSender, aws: Aws, out: Callable[[str], None], trail: Any
    ):
        self.runtime, self.slack, self.sender, self.aws, self.out, self.trail = runtime, slack, sender, aws, out, trail
        self.clock = time.monotonic()

    def tell(self) -> None:
        """The whole story, step by step."""
        self.out(
            "accessbot demo: the real app over HTTP on 127.0.0.1, with a stand-in for Slack that signs its\n"
            "requests like Slack does, and moto playing AWS in this process. Alice, Bob, Carol and Dave work here;\n"
            "Bob and Carol approve access. Every grant below lasts " + GRANT + "."
        )
        self.step("What AWS looks like before anyone asks")
        self.show_aws("iam_group", "iam_role", "kms_key", "sso_permission_set", "sso_sessions", "member_role")

        self.step(f"Alice asks to join the IAM group deploy-admins for {GRANT}")
        group = self.command(ALICE, f"request deploy-admins {GRANT} ship the checkout hotfix")
        self.step("Alice tries to approve her own request")
        self.click(ALICE, group, "Approve")
        self.step("Dave asks for deploy-admins too; Carol denies it, saying why")
        dave = self.command(DAVE, "request deploy-admins 1h just curious")
        self.click(CAROL, dave, "Deny", form={"reason": "Production needs a ticket; ask again with one."})
        self.wait_status(dave.request_id, "denied")
        self.settle()
        self.step("Alice schedules deploy-admins for the next 09:00 (her Slack time zone); Bob approves it ahead")
        ahead = self.command(ALICE, "request deploy-admins 1h start=09:00 the Monday release")
        self.click(BOB, ahead, "Approve", until="approved")
        self.step("The release moves: Alice cancels it before its start, so nothing is ever granted")
        self.say(ALICE, f"cancel #{ahead.request_id}")
        self.wait_status(ahead.request_id, "cancelled")
        self.settle()
        self.step("Bob approves Alice's request: the bot adds her to the group")
        group_id = self.click(BOB, group, "Approve", until="active")
        self.show_aws("iam_group", expect=True)
        activity.alice_works(self.trail, self.runtime, group_id)  # CloudTrail records what she does with it

        self.step("Alice asks for the IAM role prod-readonly without naming the incident: it needs a ticket")
        self.refused(ALICE, f"request prod-readonly {GRANT} read the incident logs")
        self.step(f"Alice asks again for prod-readonly for {GRANT}, naming incident INC-4411; Bob approves")
        role = self.command(ALICE, f"request prod-readonly {GRANT} read the incident logs for INC-4411")
        role_id = self.click(BOB, role, "Approve", until="active")
        self.show_aws("iam_role", expect=True)

        self.step(f"Alice asks to use the KMS key alias/payments for {GRANT}, with the form; Carol approves")
        form = {"resource": "payments-key", "duration": GRANT, "reason": "re-run the refund batch"}
        key = self.command(ALICE, "", form=form)
        key_id = self.click(CAROL, key, "Approve", until="active")
        self.show_aws("kms_key", expect=True)

        self.step(
            f"Alice asks for the Identity Center permission set ProdAdmin in two accounts for {GRANT}; Bob approves"
        )
        sso = self.command(ALICE, f"request prod-admin-sso {GRANT} rotate the production database credentials")
        sso_id = self.click(BOB, sso, "Approve", until="active")
        self.show_aws("sso_permission_set", expect=True)

        self.step(f"Alice asks for the role deploy in a second account ({member.MEMBER}) for {GRANT}; Bob approves")
        away = self.command(ALICE, f"request member-deploy {GRANT} deploy the member service")
        away_id = self.click(BOB, away, "Approve", until="active")
        self.show_aws("iam_role", "member_role")

        self.step("Nobody does anything now: the grants run out and the bot takes them away by itself")
        self.out(f"  (waiting for {GRANT} grants to end; the scheduler wakes exactly when each one is due)")
        for request_id in (group_id, role_id, key_id, sso_id, away_id):
            self.wait_status(request_id, "expired", timeout=30)
            self.describe_end(request_id)
        self.settle()
        self.show_aws("iam_group", "iam_role", "kms_key", "sso_permission_set", expect=False)
        self.out(f"  The role in account {member.MEMBER} now denies alice's sessions opened before the end (written")
        self.out("  there through the role the bot assumes), so a session she still had open stops working too:")
        self.show_aws("member_role")
        if not self.aws.granted("member_role"):
            raise DemoFailed(f"member_role: no session deny on the role in account {member.MEMBER}")

        self.step("What was deploy-admins used for? The bot reads CloudTrail and answers in the approval thread")
        activity.await_report(self.runtime, group_id, DemoFailed)
        self.settle()

        self.step("Alice's Identity Center sessions opened before the end are cut, in the two accounts only")
        self.out(
            "  (AWS does not end a permission set's open sessions with its assignment; the bot wrote a deny on her\n"
            "  identitystore:userId for sessions issued before the end plus the propagation margin, and provisioned\n"
            "  it into both accounts before deleting the assignments; the administrator's statement is untouched)"
        )
        self.show_aws("sso_sessions", expect=True)
        self.step("After ProdAdmin's session duration plus the margin, the deny is lifted (fast-forwarded here)")
        self.lift_now(sso_id)
        self.show_aws("sso_sessions", expect=False)

    # -- the moves -----------------------------------------------------------------------------

    def command(self, who: Person, text: str, *, form: dict[str, str] | None = None) -> Filed:
        """`/access <text>` as `who` in #general (filling the dialog it opens, if any); follow the request."""
        typed = f"/access {text}".rstrip()
        self.out(f"  @{who.name} in #general types:  {typed}")
        mark = self.slack.mark()
        answer = self.sender.command(who.user_id, text, channel=GENERAL)
        reply = reply_of(answer.text)
        self.slack.show_reply(who.user_id, GENERAL, reply)
        if answer.status_code != 200:
            raise DemoFailed(f"{typed}: HTTP {answer.status_code}, answer {reply.get('text')!r}")
        if form is not None:
            self.fill(who, form, after=mark)
        posted = self.slack.poll(
            "chat.postMessage", lambda c: c.channel == APPROVALS and c.button("Approve") is not None, after=mark
        )
        if posted is None:
            raise DemoFailed(f"{typed}: no approval message (the bot answered {reply.get('text')!r})")
        with session_scope(self.runtime.workflow.engine) as session:
            newest = queries.requests_of(who.user_id, session=session, limit=1)
        if not newest or newest[0].id is None:
            raise DemoFailed(f"{typed}: nothing was stored")
        self.settle()
        return Filed(posted, newest[0].id)

    def say(self, who: Person, text: str) -> None:
        """`/access <text>` as `who` in #general, and the answer they see."""
        self.out(f"  @{who.name} in #general types:  /access {text}")
        answer = self.sender.command(who.user_id, text, channel=GENERAL)
        if answer.status_code != 200:
            raise DemoFailed(f"/access {text}: HTTP {answer.status_code}")
        self.slack.show_reply(who.user_id, GENERAL, reply_of(answer.text))

    def refused(self, who: Person, text: str) -> None:
        """`/access <text>` as `who` in #general, answered at once with a refusal: nothing is filed."""
        self.out(f"  @{who.name} in #general types:  /access {text}")
        answer = self.sender.command(who.user_id, text, channel=GENERAL)
        reply = reply_of(answer.text)
        self.slack.show_reply(who.user_id, GENERAL, reply)
        if answer.status_code != 200 or str(reply.get("text", "")).startswith("Filing"):
            raise DemoFailed(f"/access {text}: expected a refusal, the bot answered {reply.get('text')!r}")

    def click(
        self, who: Person, filed: Filed, label: str, *, until: str | None = None, form: dict[str, str] | None = None
    ) -> int:
        """Click a button of the approval message as `who` (filling the dialog it opens, if any)."""
        button = filed.message.button(label)
        if button is None:
            raise DemoFailed(f"the approval message has no {label} button")
        self.out(f"  @{who.name} clicks [{label}] on request #{filed.request_id} in #{CHANNELS[APPROVALS]}")
        mark = self.slack.mark()
        message = filed.message
        answer = self.sender.click(
            who.user_id, button["action_id"], button["value"], channel=message.channel, message_ts=message.ts
        )
        if answer.status_code != 200:
            raise DemoFailed(f"clicking {label} as {who.name}: HTTP {answer.status_code}")
        if form is not None:
            self.fill(who, form, after=mark)
        if until is not None:
            self.wait_status(filed.request_id, until)
        self.settle()
        return filed.request_id

    def fill(self, who: Person, answers: dict[str, str], *, after: int) -> None:
        """Wait for the dialog the bot opens, show it, fill it in and submit it as `who`."""
        opened = self.slack.poll("views.open", after=after)
        if opened is None:
            raise DemoFailed("the bot opened no dialog")
        self.slack.show_new()
        view = opened.args.get("view") or {}
        submit = (view.get("submit") or {}).get("text", "Submit")
        typed = "; ".join(f"{name}: {value}" for name, value in answers.items())
        self.out(f"  @{who.name} fills in the dialog ({typed}) and presses [{submit}]")
        answer = self.sender.submit_view(who.user_id, view, answers)
        if answer.status_code != 200 or "errors" in answer.text:
            raise DemoFailed(f"submitting the dialog: HTTP {answer.status_code} {answer.text[:200]}")

    def settle(self) -> None:
        """Let the bot finish talking, then show what it said."""
        self.slack.settle()
        self.slack.show_new()

    def wait_status(self, request_id: int, status: str, *, timeout: float = 15.0) -> None:
        """Poll the database until the request reaches `status`."""
        deadline = time.monotonic() + timeout
        while (current := self.status(request_id)) != status:
            if time.monotonic() > deadline:
                raise DemoFailed(f"request #{request_id} is {current}, not {status}, after {timeout:.0f}s")
            time.sleep(0.05)

    def status(self, request_id: int) -> str | None:
        """The request's status in the database."""
        with session_scope(self.runtime.workflow.engine) as session:
            row = queries.get_request(request_id, session=session)
            return row.status if row else None

    def describe_end(self, request_id: int) -> None:
        """One line on when the grant began, was due to end, and really ended."""
        with session_scope(self.runtime.workflow.engine) as session:
            row = queries.get_request(request_id, session=session)
        assert row is not None and row.activated_at and row.expires_at and row.ended_at
        lag = (row.ended_at - row.expires_at).total_seconds()
        began, due = row.activated_at.astimezone(), row.expires_at.astimezone()
        self.out(
            f"  #{request_id} {row.resource}: active from {began:%H:%M:%S}, due to end {due:%H:%M:%S}, "
            f"taken away {lag:.2f}s later"
        )

    def lift_now(self, request_id: int) -> None:
        """Bring the request's deny lift forward to now (instead of an hour later) and wait for the bot to do it."""
        with session_scope(self.runtime.workflow.engine) as session:
            row = queries.get_request(request_id, session=session)
            if row is None or row.sessions_denied_until is None:
                raise DemoFailed(f"request #{request_id} owes no session deny")
            self.out(f"  (due at {row.sessions_denied_until.astimezone():%H:%M:%S}; the demo moves it to now)")
            row.sessions_denied_until = row.next_due_at = utcnow()
            session.add(row)
        self.runtime.workflow.on_due(utcnow())
        deadline = time.monotonic() + 15
        while True:
            with session_scope(self.runtime.workflow.engine) as session:
                row = queries.get_request(request_id, session=session)
                if row is not None and row.sessions_denied_until is None:
                    return
            if time.monotonic() > deadline:
                raise DemoFailed(f"the session deny of #{request_id} was not lifted")
            time.sleep(0.05)

    def show_aws(self, *kinds: str, expect: bool | None = None) -> None:
        """Print AWS's own view; when `expect` is given, fail unless the grant is there (or gone)."""
        for kind in kinds:
            for line in self.aws.state(kind):
                self.out("  " + line)
            if expect is not None and self.aws.granted(kind) != expect:
                raise DemoFailed(f"{kind}: AWS {'does not show' if expect else 'still shows'} alice's grant")

    def step(self, title: str) -> None:
        """A heading, with the time since the story began."""
        self.out(f"\n[{time.monotonic() - self.clock:5.1f}s] ▶ {title}")
