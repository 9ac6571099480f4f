"""The demo's world (moto seeded with users, a group, a role and a key) and the story played in it."""

from __future__ import annotations

import json
import os
import secrets
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import boto3

from bot.config import Settings
from bot.demo.oncall import ON_CALL_CATALOG, fake_pagerduty, tell_on_call
from bot.demo.standin import Person, Workspace, reply_of
from bot.runtime import Runtime
from bot.store import queries
from bot.store.db import session_scope
from bot.testing.fake_slack import Call
from bot.testing.signing import SlackSender
from bot.workflow import Tuning

ACCOUNT = "123456789012"  # moto's default account
GRANT = "5s"
ALICE = Person("U0ALICE", "alice", "alice@example.com")
BOB = Person("U0BOB", "bob", "bob@example.com")
CAROL = Person("U0CAROL", "carol", "carol@example.com")
DAVE = Person("U0DAVE", "dave", "dave@example.com")
PEOPLE = [ALICE, BOB, CAROL, DAVE]
APPROVALS, GENERAL = "C0APPROVALS", "C0GENERAL"
SSO_ACCOUNTS = ("111111111111", "222222222222")
CHANNELS = {APPROVALS: "access-approvals", GENERAL: "general"}

CATALOG = f"""
defaults:
  approval_channel: {APPROVALS}
  min_duration: 1s
  default_duration: 1h
  max_duration: 8h
identity:
  strategy: email_tag   # the IAM user whose tag `email` is the Slack profile email
  tag_key: email
approver_groups:
  platform: [{BOB.user_id}, {CAROL.user_id}]
resources:
  deploy-admins:
    kind: iam_group
    group_name: deploy-admins
    description: Deploy to production
    approvers: [platform]
  prod-readonly:
    kind: iam_role
    role_arn: arn:aws:iam::{ACCOUNT}:role/prod-readonly
    description: Read-only access to production
    approvers: [platform]
    reason_pattern: 'INC-[0-9]+'   # the reason must name the incident; the approvers get a link to it
    ticket_url: https://tickets.example.com/browse/{{ticket}}
  payments-key:
    kind: kms_key
    key_id: alias/payments
    operations: [Decrypt, GenerateDataKey]
    description: Decrypt payment records
    approvers: [{CAROL.user_id}]
  prod-admin-sso:
    kind: sso_permission_set   # IAM Identity Center: the Identity Store user with alice's email
    permission_set: ProdAdmin
    accounts: ["{SSO_ACCOUNTS[0]}", "{SSO_ACCOUNTS[1]}"]
    description: Administrator in both production accounts
    approvers: [platform]
"""


class DemoFailed(Exception):
    """The story did not go as told; the message says which step."""


@dataclass(frozen=True)
class Filed:
    """A request as the story follows it: its approval message in Slack and its ID in the database."""

    message: Call
    request_id: int


@dataclass(frozen=True)
class Aws:
    """boto3 clients on the in-process moto server, and what the story looks at."""

    iam: Any
    kms: Any
    key_id: str
    sso: Any = None
    instance_arn: str = ""
    permission_set_arn: str = ""

    def state(self, kind: str) -> list[str]:
        """What AWS says right now about one kind of access, as lines for people."""
        if kind == "sso_permission_set":
            found = []
            for account in SSO_ACCOUNTS:
                listed = self.sso.list_account_assignments(
                    InstanceArn=self.instance_arn, AccountId=account, PermissionSetArn=self.permission_set_arn
                )["AccountAssignments"]
                found += [f"{account} for user {a['PrincipalId'][:8]}…" for a in listed]
            return [f"[AWS] Identity Center permission set ProdAdmin — assignments: {'; '.join(found) or '(none)'}"]
        if kind == "iam_group":
            names = sorted(u["UserName"] for u in self.iam.get_group(GroupName="deploy-admins")["Users"])
            return [f"[AWS] IAM group deploy-admins — members: {', '.join(names) or '(none)'}"]
        if kind == "iam_role":
            policies = self.iam.list_user_policies(UserName=ALICE.name)["PolicyNames"]
            lines = [f"[AWS] IAM user alice — inline policies: {', '.join(policies) or '(none)'}"]
            for name in policies:
                document = self.iam.get_user_policy(UserName=ALICE.name, PolicyName=name)["PolicyDocument"]
                document = json.loads(document) if isinstance(document, str) else document
                lines += ["      " + line for line in json.dumps(document, indent=2).splitlines()]
            return lines
        grants = self.kms.list_grants(KeyId=self.key_id)["Grants"]
        shown = [
            f"{g.get('Name')} for {g['GranteePrincipal'].split(':')[-1]} ({', '.join(g['Operations'])})" for g in grants
        ]
        return [f"[AWS] KMS key alias/payments — grants: {'; '.join(shown) or '(none)'}"]

    def granted(self, kind: str) -> bool:
        """Whether alice holds this kind of access in AWS now."""
        return "(none)" not in self.state(kind)[0]


def seed() -> Aws:
    """IAM users tagged with their Slack emails, a group, a role, and a KMS key with an alias."""
    iam, kms = boto3.client("iam"), boto3.client("kms")
    for person in PEOPLE:
        iam.create_user(UserName=person.name, Tags=[{"Key": "email", "Value": person.email}])
    iam.create_group(GroupName="deploy-admins")
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                # SetSourceIdentity: role grants require it, so that sessions can be ended with the grant.
                "Action": ["sts:AssumeRole", "sts:SetSourceIdentity"],
            }
        ],
    }
    iam.create_role(RoleName="prod-readonly", AssumeRolePolicyDocument=json.dumps(trust))
    key = kms.create_key(Description="payments")["KeyMetadata"]
    kms.create_alias(AliasName="alias/payments", TargetKeyId=key["KeyId"])
    # IAM Identity Center (moto has one instance): a permission set, and alice in the identity store by email.
    sso, store = boto3.client("sso-admin"), boto3.client("identitystore")
    instance = sso.list_instances()["Instances"][0]
    permission_set = sso.create_permission_set(
        InstanceArn=instance["InstanceArn"], Name="ProdAdmin", SessionDuration="PT1H"
    )["PermissionSet"]
    store.create_user(
        IdentityStoreId=instance["IdentityStoreId"],
        UserName=ALICE.name,
        DisplayName=ALICE.name,
        Name={"GivenName": ALICE.name, "FamilyName": "Example"},
        Emails=[{"Value": ALICE.email, "Type": "work", "Primary": True}],
    )
    return Aws(
        iam=iam,
        kms=kms,
        key_id=str(key["KeyId"]),
        sso=sso,
        instance_arn=str(instance["InstanceArn"]),
        permission_set_arn=str(permission_set["PermissionSetArn"]),
    )


@contextmanager
def offline_aws(scratch: Path) -> Iterator[str]:
    """An in-process moto server on 127.0.0.1, with boto3 pointed at it through the environment only."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    with mock.patch.dict(os.environ):
        # Nothing from the user's own AWS or proxy set-up may leak in: everything here is loopback.
        for name in [n for n in os.environ if n.startswith("AWS_") or n.lower().endswith("_proxy")]:
            del os.environ[name]
        os.environ.update(
            AWS_ENDPOINT_URL=url,
            AWS_ACCESS_KEY_ID="demo",
            AWS_SECRET_ACCESS_KEY="demo",
            AWS_REGION="us-east-1",
            AWS_DEFAULT_REGION="us-east-1",
            AWS_CONFIG_FILE=str(scratch / "no-aws-config"),
            AWS_SHARED_CREDENTIALS_FILE=str(scratch / "no-aws-credentials"),
        )
        try:
            yield url
        finally:
            server.stop()


def play(out: Callable[[str], None] = print) -> None:
    """Set up the offline world, run the real app in it, and tell the story; raise DemoFailed if it goes wrong."""
    started = time.monotonic()
    with ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="accessbot-demo-")))
        stack.enter_context(offline_aws(scratch))
        aws = seed()
        slack = stack.enter_context(Workspace(PEOPLE, CHANNELS, out))
        pagerduty = stack.enter_context(fake_pagerduty({p.user_id: p.email for p in PEOPLE}, on_call=ALICE.user_id))
        slack.timezones = {ALICE.user_id: "Europe/Paris"}  # her Slack time zone: `start=09:00` is 09:00 in Paris
        secret = secrets.token_hex(16)
        (scratch / "catalog.yaml").write_text(CATALOG + ON_CALL_CATALOG)
        settings = Settings(
            slack_bot_token="xoxb-demo-" + secrets.token_hex(8),
            slack_signing_secret=secret,
            slack_app_token=None,
            slack_api_url=slack.url,
            database_url=f"sqlite:///{scratch / 'accessbot.db'}",
            accessbot_catalog=scratch / "catalog.yaml",
            accessbot_scheduler="on",
            accessbot_sweep_seconds=1.0,
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
        story = Story(runtime, slack, sender, aws, out)
        story.tell()
        tell_on_call(story, pagerduty, GRANT, ALICE, DemoFailed)
        took = time.monotonic() - started
        out(f"\nThe story took {took:.1f}s, all on 127.0.0.1: no network, no credentials, nothing kept.")


class Story:
    """Alice asks for each kind of access; Bob and Carol decide; AWS changes, then changes back."""

    def __init__(self, runtime: Runtime, slack: Workspace, sender: SlackSender, aws: Aws, out: Callable[[str], None]):
        self.runtime, self.slack, self.sender, self.aws, self.out = runtime, slack, sender, aws, out
        self.clock = time.monotonic()

    def tell(self) -> None:
        """The whole story, step by step."""
        self.out(
            "accessbot demo: the real app over HTTP on 127.0.0.1, with a stand-in for Slack that signs its\n"
            "requests like Slack does, and moto playing AWS in this process. Alice, Bob, Carol and Dave work here;\n"
            "Bob and Carol approve access. Every grant below lasts " + GRANT + "."
        )
        self.step("What AWS looks like before anyone asks")
        self.show_aws("iam_group", "iam_role", "kms_key", "sso_permission_set")

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

        self.step("Nobody does anything now: the grants run out and the bot takes them away by itself")
        self.out(f"  (waiting for {GRANT} grants to end; the scheduler wakes exactly when each one is due)")
        for request_id in (group_id, role_id, key_id, sso_id):
            self.wait_status(request_id, "expired", timeout=30)
            self.describe_end(request_id)
        self.settle()
        self.show_aws("iam_group", "iam_role", "kms_key", "sso_permission_set", expect=False)

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
