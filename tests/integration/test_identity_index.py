"""Identity without scans on the request path: the email index is read in the background, once for a crowd,
again on a miss at most once per interval, kept when a read fails; GetUser and users.info are remembered.

Outcomes are read from the database, the approval messages and the resolver itself, never from the ack.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest

from bot.aws.clients import AwsClients
from bot.aws.email_index import IndexTiming
from bot.aws.identity import IamUser, IdentityResolver
from bot.errors import UserError
from tests.conftest import Bot, wait_until
from tests.integration.faults import bot_iam, inject
from tests.support.aws import World
from tests.support.fake_slack import FakeSlack
from tests.support.index_clock import IndexClock

READ = "GetAccountAuthorizationDetails"
SCANS = ("ListUsers", "ListUserTags")


@dataclass
class IamCalls:
    """Every IAM operation a client calls (botocore's before-call: once per call, however many retries)."""

    names: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, model: Any, **_kwargs: Any) -> None:
        with self._lock:
            self.names.append(model.name)

    def count(self, *operations: str) -> int:
        with self._lock:
            return sum(1 for name in self.names if name in operations)


@dataclass
class Watch:
    """What the next bot's IAM client is given as it is created: a call counter, and `setup` steps."""

    calls: IamCalls = field(default_factory=IamCalls)
    setup: list[Callable[[Any], object]] = field(default_factory=list)


@pytest.fixture
def watch(monkeypatch: pytest.MonkeyPatch) -> Watch:
    """Watch (and set up) the IAM client of every bot built in this test, before it starts reading."""
    watched = Watch()
    create = AwsClients.create

    def created(session: Any = None) -> AwsClients:
        clients = create(session)
        clients.iam.meta.events.register("before-call.iam.*", watched.calls)
        for step in watched.setup:
            step(clients.iam)
        return clients

    monkeypatch.setattr(AwsClients, "create", staticmethod(created))
    return watched


def resolver(bot: Bot, **timing: float) -> IdentityResolver:
    """The bot's identity resolver, its index's miss handling set to `timing`."""
    identity = bot.runtime.workflow.ctx.identity
    assert identity.index is not None
    identity.index.timing = IndexTiming(**timing)
    return identity


def hold(operation: str, gate: threading.Event) -> Callable[[Any], None]:
    """A setup step: every call of `operation` waits until the test opens `gate`."""

    def wait(**_kwargs: Any) -> None:
        assert gate.wait(20), "the test never opened the gate"

    return lambda iam: iam.meta.events.register(f"before-send.iam.{operation}", wait)


def deny(*operations: str) -> Callable[[Any], None]:
    """A setup step: `operations` answer AccessDenied."""

    def step(iam: Any) -> None:
        for operation in operations:
            inject(iam, operation, code="AccessDenied", status=403, message="no access")

    return step


def tag_user(world: World, slack: FakeSlack, name: str, slack_id: str) -> str:
    """A new IAM user tagged with its email, and a Slack user with that email; return the user's ARN."""
    email = f"{name}@example.com"
    arn = world.iam.create_user(UserName=name, Tags=[{"Key": "email", "Value": email}])["User"]["Arn"]
    slack.emails[slack_id] = email
    return str(arn)


def refused(identity: IdentityResolver, slack_user: str) -> str:
    with pytest.raises(UserError) as raised:
        identity.resolve(slack_user)
    return str(raised.value)


def approvals(slack: FakeSlack) -> int:
    return len(slack.find("chat.postMessage", lambda c: c.args.get("channel") == "C0APPROVALS"))


def test_a_crowd_on_a_cold_start_files_after_one_read_of_the_user_list(
    make_bot: Callable[..., Bot], watch: Watch, world: World, slack: FakeSlack
) -> None:
    crowd = {f"U0P{n:02d}": f"p{n:02d}" for n in range(8)}  # no more than the bot's background workers
    arns = {name: tag_user(world, slack, name, slack_id) for slack_id, name in crowd.items()}
    gate = threading.Event()
    watch.setup.append(hold(READ, gate))
    bot = make_bot()
    resolver(bot, wait_seconds=15)

    with ThreadPoolExecutor(len(crowd)) as pool:
        sent = [pool.submit(bot.sender.command, who, "request deploy-admins 1h crowd") for who in crowd]
        # Every request has its email now, and waits for the one read under way.
        wait_until(lambda: len(slack.find("users.info")) == len(crowd))
        time.sleep(0.1)
        assert bot.count() == 0
        assert watch.calls.count(READ) == 1
        gate.set()
        assert [answer.result(timeout=20).status_code for answer in sent] == [200] * len(crowd)

    wait_until(lambda: approvals(slack) == len(crowd))
    rows = [bot.request(n) for n in range(1, len(crowd) + 1)]
    assert {row.requester_id: (row.iam_user, row.iam_user_arn) for row in rows if row is not None} == {
        who: (name, arns[name]) for who, name in crowd.items()
    }
    assert watch.calls.count(READ) == 1
    assert watch.calls.count(*SCANS, "GetUser") == 0
    assert bot.count() == len(crowd)


def test_a_newly_tagged_user_is_found_after_one_refresh(
    make_bot: Callable[..., Bot], watch: Watch, world: World, slack: FakeSlack, index_clock: IndexClock
) -> None:
    bot = make_bot()
    identity = resolver(bot, miss_seconds=60)
    assert identity.resolve("U0ALICE").name == "alice"
    arn = tag_user(world, slack, "newbie", "U0NEWBIE")
    assert "No IAM user has the tag email=newbie@example.com" in refused(identity, "U0NEWBIE")
    assert watch.calls.count(READ) == 1  # the index is brand new: that miss read nothing

    index_clock.advance(61)  # the interval has passed: the next miss asks for a read
    bot.sender.command("U0NEWBIE", "request deploy-admins 1h new here")
    wait_until(lambda: approvals(slack) == 1)
    row = bot.request(1)
    assert row is not None and (row.requester_id, row.iam_user, row.iam_user_arn) == ("U0NEWBIE", "newbie", arn)
    assert watch.calls.count(READ) == 2
    assert watch.calls.count(*SCANS, "GetUser") == 0


def test_many_misses_within_the_interval_cause_at_most_one_refresh(
    make_bot: Callable[..., Bot], watch: Watch, slack: FakeSlack, index_clock: IndexClock
) -> None:
    identity = resolver(make_bot(), miss_seconds=60)
    assert identity.resolve("U0ALICE").name == "alice"
    answers = [refused(identity, "U0MALLORY")]  # the index is brand new: this miss reads nothing
    assert watch.calls.count(READ) == 1
    index_clock.advance(61)  # the interval has passed: the first of the misses below asks for a read

    with ThreadPoolExecutor(30) as pool:
        answers += pool.map(lambda _n: refused(identity, "U0MALLORY"), range(30))
    deadline = time.monotonic() + 0.5
    while time.monotonic() < deadline:
        answers.append(refused(identity, "U0MALLORY"))
    assert all("No IAM user has the tag email=mallory@example.com" in answer for answer in answers)
    assert watch.calls.count(READ) == 2
    assert watch.calls.count(*SCANS) == 0
    assert len(slack.find("users.info", lambda c: c.args.get("user") == "U0MALLORY")) == 1  # the email is kept


def test_a_failed_refresh_keeps_the_previous_index(
    make_bot: Callable[..., Bot], watch: Watch, world: World, slack: FakeSlack
) -> None:
    bot = make_bot()
    identity = resolver(bot, miss_seconds=0.3)
    assert identity.resolve("U0ALICE").name == "alice"
    outage = [
        inject(bot_iam(bot), op, code="AccessDenied", status=403, message="no access") for op in (READ, "ListUsers")
    ]
    time.sleep(0.35)

    assert "No IAM user has the tag email=mallory@example.com" in refused(identity, "U0MALLORY")
    assert [fault.failed for fault in outage] == [1, 1]  # the miss's read, and its fallback, both refused
    bot.sender.command("U0ALICE", "request deploy-admins 1h still known")
    wait_until(lambda: approvals(slack) == 1)
    row = bot.request(1)
    assert row is not None and row.iam_user == "alice"
    assert watch.calls.count("GetUser") == 0

    for fault in outage:
        fault.stop()
    tag_user(world, slack, "newbie", "U0NEWBIE")
    time.sleep(0.35)
    assert identity.resolve("U0NEWBIE").name == "newbie"


def test_a_user_list_never_read_gets_a_specific_answer(make_bot: Callable[..., Bot], watch: Watch) -> None:
    watch.setup.append(deny(READ, "ListUsers"))
    identity = resolver(make_bot(), miss_seconds=60)
    answer = refused(identity, "U0ALICE")
    assert answer.startswith("The bot could not read the list of IAM users, so it cannot find the one tagged")
    assert "email=alice@example.com" in answer and "AccessDenied" in answer
    assert "could not read the list of IAM users" in refused(identity, "U0BOB")
    assert (watch.calls.count(READ), watch.calls.count("ListUsers")) == (1, 1)  # at start; no request read


def test_without_account_authorization_details_the_index_lists_users_in_the_background(
    make_bot: Callable[..., Bot], watch: Watch, world: World
) -> None:
    watch.setup.append(deny(READ))
    identity = resolver(make_bot())
    assert identity.resolve("U0ALICE") == IamUser("alice", "arn:aws:iam::123456789012:user/alice")
    assert identity.resolve("U0BOB").name == "bob"
    users = len(world.iam.list_users()["Users"])
    assert (watch.calls.count("ListUsers"), watch.calls.count("ListUserTags")) == (1, users)


def test_users_info_is_asked_once_for_repeated_requests(bot: Bot, slack: FakeSlack) -> None:
    for n, resource in enumerate(("deploy-admins", "auditors", "prod-readonly"), start=1):
        bot.sender.command("U0ALICE", f"request {resource} 1h again")
        wait_until(lambda n=n: approvals(slack) == n)
    assert bot.count() == 3
    assert len(slack.find("users.info", lambda c: c.args.get("user") == "U0ALICE")) == 1

    identity = bot.runtime.workflow.ctx.identity
    for _ in range(2):
        assert "Slack profile has no email" in refused(identity, "U0NOBODY")
    assert len(slack.find("users.info", lambda c: c.args.get("user") == "U0NOBODY")) == 2  # a miss is not kept
    slack.emails["U0NOBODY"] = "bob@example.com"
    assert identity.resolve("U0NOBODY").name == "bob"


def test_a_mapped_user_is_looked_up_once_and_a_gone_one_every_time(bot: Bot, world: World) -> None:
    calls = IamCalls()
    bot_iam(bot).meta.events.register("before-call.iam.GetUser", calls)
    identity = bot.runtime.workflow.ctx.identity
    world.iam.delete_user(UserName="dave")
    for _ in range(2):
        assert "The IAM user 'dave' (found through the catalog's identity.static map) does not exist" in refused(
            identity, "U0DAVE"
        )
    assert calls.count("GetUser") == 2

    world.iam.create_user(UserName="dave")
    assert [identity.resolve("U0DAVE").name for _ in range(3)] == ["dave"] * 3
    assert calls.count("GetUser") == 3


def test_an_mfa_device_is_remembered_and_its_absence_is_not(bot: Bot, world: World) -> None:
    calls = IamCalls()
    bot_iam(bot).meta.events.register("before-call.iam.ListMFADevices", calls)
    identity = bot.runtime.workflow.ctx.identity
    alice = identity.resolve("U0ALICE")
    assert [identity.has_mfa(alice) for _ in range(2)] == [False, False]
    serial = world.iam.create_virtual_mfa_device(VirtualMFADeviceName="alice")["VirtualMFADevice"]["SerialNumber"]
    world.iam.enable_mfa_device(
        UserName="alice", SerialNumber=serial, AuthenticationCode1="123456", AuthenticationCode2="654321"
    )
    assert [identity.has_mfa(alice) for _ in range(3)] == [True, True, True]
    assert calls.count("ListMFADevices") == 3


def test_an_email_two_iam_users_are_tagged_with_matches_neither(make_bot: Callable[..., Bot], world: World) -> None:
    # Whoever may tag an IAM user could otherwise claim someone else's email: refuse rather than pick one.
    world.iam.create_user(UserName="impostor", Tags=[{"Key": "email", "Value": "alice@example.com"}])
    bot = make_bot()
    said = bot.ask("U0ALICE", "request deploy-admins 1h hotfix")
    assert "More than one IAM user has the tag email=alice@example.com" in said, said
    assert bot.count() == 0
