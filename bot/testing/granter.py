"""A granter that keeps AWS's state in memory: what the workflow granted, revoked and lifted, and failures on cue.

One class for every kind, by behaviour rather than by AWS API: `shared` access (a group membership, an
Identity Center assignment) is one piece of state per user and target, which several requests may share and
which may exist "by other means"; otherwise every grant is its own object, named `accessbot-<id>` (a KMS
grant, a role policy). `session_deny` models what a role or permission-set end leaves in place until every
session it covers has expired by itself: the deny, lifted later.
"""

from __future__ import annotations

import threading
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from bot.aws.errors import AwsError
from bot.aws.granters import Ended, Granter, GrantSpec
from bot.catalog import Kind

OPERATIONS = ("locate", "holds", "grant", "revoke", "lift")
Hook = Callable[[GrantSpec], None]
T = TypeVar("T")


class ProcessDied(BaseException):
    """Raised by a hook to stand for the process dying at that point: no `except Exception` catches it, so
    nothing after it runs and only what was committed before it remains."""


@dataclass(frozen=True)
class Call:
    """One call the workflow made: the operation, the request, and the expiry it asked for."""

    operation: str
    request_id: int
    expires_at: datetime


class FakeGranter:
    """Implements the Granter protocol in memory; every call is idempotent, as the protocol asks."""

    def __init__(
        self,
        *,
        shared: bool,
        clock: Callable[[], datetime],
        session_deny: timedelta | None = None,
        refs: bool = False,
    ) -> None:
        self.shared = shared
        self._clock = clock
        self._session_deny = session_deny
        self._refs = refs
        self._lock = threading.Lock()
        self.calls: list[Call] = []
        # shared: (user, target) pairs AWS gives; otherwise the bot's objects, by name.
        self.given: set[tuple[str, str]] = set()
        self.elsewhere: set[tuple[str, str]] = set()  # given by other means than the bot
        self.objects: dict[str, GrantSpec] = {}
        self.denies: dict[str, datetime] = {}  # session denies left by ends, by name: until when they are kept
        self.missing: set[str] = set()  # targets that do not exist (locate refuses them)
        self._failures: dict[str, deque[AwsError]] = defaultdict(deque)
        self._before: dict[str, deque[Hook]] = defaultdict(deque)
        self._after: dict[str, deque[Hook]] = defaultdict(deque)

    # -- what a test arranges --------------------------------------------------------------------

    def fail(self, operation: str, error: AwsError, *, times: int = 1) -> None:
        """Refuse the next `times` calls of `operation` with `error`, before anything changes in AWS."""
        self._check(operation)
        self._failures[operation].extend([error] * times)

    def before(self, operation: str, hook: Hook) -> None:
        """Run `hook` once, at the next call of `operation`, before AWS acts (a slow call: the test acts meanwhile)."""
        self._check(operation)
        self._before[operation].append(hook)

    def after(self, operation: str, hook: Hook) -> None:
        """Run `hook` once, at the next call of `operation`, after AWS acted and before the answer arrives
        (raise ProcessDied in it for a crash between AWS's answer and the database write)."""
        self._check(operation)
        self._after[operation].append(hook)

    def give_elsewhere(self, user: str, target: str) -> None:
        """Give the user the access by other means (someone added them to the group by hand)."""
        self.elsewhere.add((user, target))

    # -- what a test reads ----------------------------------------------------------------------

    def has(self, user: str, target: str) -> bool:
        """Whether AWS gives `user` access to `target` now (by the bot's grants or by other means)."""
        with self._lock:
            return self._has(user, target)

    def called(self, operation: str) -> list[int]:
        """The request IDs of every call of `operation`, in order."""
        return [c.request_id for c in self.calls if c.operation == operation]

    # -- the Granter protocol -------------------------------------------------------------------

    def locate(self, spec: GrantSpec) -> str | None:
        """The target's ARN; NoSuchEntity for a target the test removed."""
        self._enter("locate", spec)
        if spec.target in self.missing:
            raise AwsError(f"AWS refused locate: {spec.target} does not exist", operation="locate", code="NoSuchEntity")
        return self._leave("locate", spec, f"arn:fake:{spec.target}" if self._refs else None)

    def holds(self, spec: GrantSpec) -> bool:
        """Whether AWS already gives the user this access."""
        self._enter("holds", spec)
        return self._leave("holds", spec, self.has(spec.iam_user, spec.target))

    def grant(self, spec: GrantSpec) -> str | None:
        """Give the access (again: idempotent); a reference when the kind has one."""
        self._enter("grant", spec)
        with self._lock:
            if self.shared:
                self.given.add((spec.iam_user, spec.target))
            else:
                self.objects[spec.name] = spec  # a rewrite moves the expiry, as an extension does
        return self._leave("grant", spec, f"ref-{spec.request_id}" if self._refs else None)

    def revoke(self, spec: GrantSpec, grant_ref: str | None) -> Ended:
        """Take the access away; succeed when it is already gone."""
        self._enter("revoke", spec)
        lift_at = None
        with self._lock:
            if self.shared:
                self.given.discard((spec.iam_user, spec.target))
            else:
                self.objects.pop(spec.name, None)
            if self._session_deny is not None and spec.end_sessions:
                lift_at = self._clock() + self._session_deny
                self.denies[spec.name] = lift_at
        return self._leave("revoke", spec, Ended(lift_at=lift_at))

    def lift(self, spec: GrantSpec) -> None:
        """Remove a session deny; succeed when it is already gone."""
        self._enter("lift", spec)
        with self._lock:
            self.denies.pop(spec.name, None)
        self._leave("lift", spec, None)

    # -- helpers --------------------------------------------------------------------------------

    def _has(self, user: str, target: str) -> bool:
        if (user, target) in self.given or (user, target) in self.elsewhere:
            return True
        return any(o.iam_user == user and o.target == target for o in self.objects.values())

    def _enter(self, operation: str, spec: GrantSpec) -> None:
        with self._lock:
            self.calls.append(Call(operation, spec.request_id, spec.expires_at))
            hook = self._before[operation].popleft() if self._before[operation] else None
            error = self._failures[operation].popleft() if self._failures[operation] else None
        if hook is not None:
            hook(spec)
        if error is not None:
            raise error

    def _leave(self, operation: str, spec: GrantSpec, answer: T) -> T:
        with self._lock:
            hook = self._after[operation].popleft() if self._after[operation] else None
        if hook is not None:
            hook(spec)
        return answer

    @staticmethod
    def _check(operation: str) -> None:
        if operation not in OPERATIONS:
            raise ValueError(f"unknown operation {operation!r}; one of {', '.join(OPERATIONS)}")


@dataclass(frozen=True)
class Behaviour:
    """How a kind's real granter behaves, as far as the workflow can tell."""

    shared: bool
    session_deny: timedelta | None = None
    refs: bool = False


# As the real granters do: shared state, a reference to store, a session deny left at the end (a role's is
# kept 12 hours: console sessions last that long). A kind not listed (a new one) is an object of its own
# with nothing left behind.
BEHAVIOUR: Mapping[Kind, Behaviour] = {
    Kind.IAM_GROUP: Behaviour(shared=True),
    Kind.IAM_ROLE: Behaviour(shared=False, session_deny=timedelta(hours=12)),
    Kind.KMS_KEY: Behaviour(shared=False, refs=True),
    Kind.SSO_PERMISSION_SET: Behaviour(shared=True, session_deny=timedelta(hours=1)),
    Kind.SSO_GROUP: Behaviour(shared=True),
}


def fake_granters(clock: Callable[[], datetime], kinds: Iterable[Kind] = tuple(Kind)) -> dict[Kind, FakeGranter]:
    """One FakeGranter per kind, behaving as that kind's real granter does."""
    granters: dict[Kind, FakeGranter] = {}
    for kind in kinds:
        how = BEHAVIOUR.get(kind, Behaviour(shared=False))
        granters[kind] = FakeGranter(shared=how.shared, clock=clock, session_deny=how.session_deny, refs=how.refs)
    return granters


def as_granters(fakes: Mapping[Kind, FakeGranter]) -> dict[Kind, Granter]:
    """The fakes typed as the workflow takes them."""
    return dict(fakes)
