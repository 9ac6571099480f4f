"""Someone who wants to keep a role after their grant ends: re-assumes it every tick, in simulated time.

Every tick the holder re-assumes the role by chaining from each session held (a session of a role whose own
permissions allow sts:AssumeRole on itself, as AdministratorAccess does) and straight from their IAM user.
A session issued no earlier and expiring no earlier than another stands for it (the session deny covers
sessions issued before its cutoff), so only those not so covered are kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from tests.support.aws_model.sessions import Session, Sessions, User

TICK = timedelta(milliseconds=100)


@dataclass
class Holder:
    """One person's attempts to hold a role, and what they held when."""

    sessions: Sessions
    user: User
    role_arn: str
    held: list[Session] = field(default_factory=list)
    usable_at: list[datetime] = field(default_factory=list)

    def start(self, at: datetime) -> Session:
        """The first session, while the grant is in effect; fails the test when AWS would refuse it."""
        session = self.sessions.assume_role(self.user, self.role_arn, self.user.name, at)
        assert session is not None, f"{self.user.name} could not assume {self.role_arn} at {at}"
        self.held = [session]
        return session

    def keep_trying(self, start: datetime, until: datetime, tick: timedelta = TICK) -> None:
        """Every tick: re-assume by chaining from each usable session and straight from the user."""
        at = start
        while at <= until:
            self.step(at)
            at += tick

    def step(self, at: datetime) -> None:
        """One tick: renew what can be renewed, and note whether anything held is usable."""
        fresh = [self.sessions.assume_role(s, self.role_arn, None, at) for s in self.held]
        fresh.append(self.sessions.assume_role(self.user, self.role_arn, self.user.name, at))
        found = [*self.held, *(s for s in fresh if s is not None)]
        self.held = [s for s in found if not any(_dominates(o, s) for o in found if o is not s)]
        if any(self.sessions.usable(s, at) for s in self.held):
            self.usable_at.append(at)

    def last_usable(self) -> datetime | None:
        """The last tick at which the holder had a usable session."""
        return self.usable_at[-1] if self.usable_at else None


def _dominates(a: Session, b: Session) -> bool:
    """Whether `a` is usable whenever `b` is: issued no earlier, expiring no earlier (of equals, the first kept)."""
    if a.issued_at < b.issued_at or a.expires_at < b.expires_at:
        return False
    return (a.issued_at, a.expires_at) != (b.issued_at, b.expires_at) or id(a) < id(b)
