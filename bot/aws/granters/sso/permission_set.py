"""A permission set in several accounts: one account assignment (principal type USER) per account.

The accounts of one request are assigned in parallel, so a grant takes about as long as its slowest
account. At the end the person's open sessions are denied first (sessions.py), then the assignments go.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from bot.aws.errors import AwsError
from bot.aws.granters.base import Ended, GrantSpec
from bot.aws.granters.sso.assignments import Assignments, CreationLog, MemoryCreations, held_other_ways
from bot.aws.granters.sso.deny import Deny, sid_of
from bot.aws.granters.sso.permission_sets import PermissionSets
from bot.aws.granters.sso.polling import Polling, attempt, each_of
from bot.aws.granters.sso.sessions import Lock, SessionDenies, local_lock
from bot.aws.identity_center import Center
from bot.catalog import split_permission_set_target
from bot.catalog.models import ACCOUNTS_SEPARATOR
from bot.clock import utcnow

DEFAULT_MARGIN = timedelta(seconds=300)


def cutoff_at(now: datetime, margin: timedelta) -> datetime:
    """The cutoff of a deny written at `now`: whole seconds, rounded up, plus the propagation margin.

    The end is never later than the moment the bot writes the deny (an expiry is processed at or after it,
    an early revoke is the moment itself), so the later of the two is `now`.
    """
    return now.replace(microsecond=0) + timedelta(seconds=1) + margin


class PermissionSetGranter:
    """A permission set in one or more accounts, with the person's sessions cut at the end."""

    shared = True

    def __init__(
        self,
        sso_admin: Any,
        center: Center,
        *,
        identitystore: Any = None,
        polling: Polling | None = None,
        margin: timedelta = DEFAULT_MARGIN,
        lock: Lock = local_lock,
        creations: CreationLog | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._sso = sso_admin
        self._store = identitystore
        self._center = center
        self._polling = polling or Polling()
        self._margin = margin
        self._clock = clock
        self.sets = PermissionSets(sso_admin, center)
        self.assignments = Assignments(sso_admin, center, creations or MemoryCreations(), self._polling)
        self.denies = SessionDenies(sso_admin, center, lock=lock, polling=self._polling)

    # -- the protocol --------------------------------------------------------------------------

    def locate(self, spec: GrantSpec) -> str | None:
        """The permission set's ARN, recorded so that the end deletes the same assignments whatever the catalog says."""
        return self.permission_set_arn(split_permission_set_target(spec.target)[0])

    def permission_set_arn(self, name_or_arn: str) -> str:
        """The ARN of a permission set named in the catalog (name or ARN); an AwsError when it does not exist."""
        return self.sets.arn(name_or_arn)

    def holds(self, spec: GrantSpec) -> bool:
        """Whether the user has the permission set in any of the request's accounts now."""
        arn = self._arn_of(spec)
        return any(self._each(spec, lambda account: self.assignments.assigned(arn, account, spec.iam_user_arn)))

    def grant(self, spec: GrantSpec) -> str | None:
        """Assign the permission set in every account at once; undo the rest when any account refuses."""
        arn = self._arn_of(spec)
        user, request = spec.iam_user_arn, spec.request_id
        # A deny of an earlier end (within its margin, or not yet lifted) would cut this grant's sessions.
        self.denies.narrow(arn, user, split_permission_set_target(spec.target)[1])
        outcomes = self._each(
            spec, lambda account: attempt(lambda: self.assignments.assign(request, arn, account, user))
        )
        permission_set, accounts = split_permission_set_target(spec.target)
        refused = [(a, o) for a, o in zip(accounts, outcomes, strict=True) if isinstance(o, AwsError)]
        if not refused:
            return None
        created = [a for a, o in zip(accounts, outcomes, strict=True) if o is True]
        kept: list[str] = []
        if created:
            # An undo is an end like any other: sessions opened meanwhile are denied before the assignments go.
            try:
                self.revoke(replace(spec, target=f"{permission_set}{ACCOUNTS_SEPARATOR}{','.join(created)}"), None)
            except AwsError:
                kept = created  # the request's own undo (the workflow's) finishes it, owed
        words = "; ".join(f"in {account}: {error}" for account, error in refused)
        after = f" The assignments made in {', '.join(created)} were undone." if created and not kept else ""
        if kept:
            after = f" Undoing the assignment in {', '.join(kept)} failed; the bot keeps trying."
        first = refused[0][1]
        raise AwsError(
            f"AWS refused to assign the permission set {permission_set} {words}.{after}",
            operation=first.operation,
            code=first.code,
            transient=first.transient,
        )

    def revoke(self, spec: GrantSpec, grant_ref: str | None) -> Ended:
        """Deny the person's open sessions in the accounts they hold, then delete those assignments.

        An undo first waits for every creation it recorded (one may finish after the grant's poll gave up).
        An account whose provisioning failed keeps its assignment and the end stays owed (retried, alerted).
        """
        try:
            arn = self._arn_of(spec)
        except AwsError as exc:
            if exc.gone:
                return Ended()  # the permission set is gone, and every assignment of it with it
            raise
        name, accounts = split_permission_set_target(spec.target)
        user = spec.iam_user_arn
        self.assignments.settle(spec.request_id, set(accounts))
        held = [
            a
            for a, h in zip(accounts, self._each(spec, lambda a: self.assignments.assigned(arn, a, user)), strict=True)
            if h
        ]
        sid = sid_of(spec.request_id)
        # A retry keeps the first attempt's cutoff, so that accounts done before stay as they were.
        earlier = _cutoff_of(self.denies.existing(arn, sid)) if spec.end_sessions else None
        if not held:
            # Nothing left to delete; a deny an earlier attempt wrote is still lifted in its time.
            return Ended(lift_at=earlier + self.sets.session_length(arn) + self._margin if earlier else None)
        lift_at: datetime | None = None
        warnings: list[str] = []
        failures: list[AwsError] = []
        clear = held
        if spec.end_sessions:
            other = self._held_other_ways(user)
            # A set and account the person still holds through a group keeps them in: cutting their sessions
            # there would end nothing (they open a new one) and disturb what another grant gives.
            deny_in = tuple(a for a in accounts if (arn, a) not in other)
            cutoff = earlier or cutoff_at(self._clock(), self._margin)
            provision = [a for a in held if a in deny_in]
            if provision:
                outcome = self.denies.deny(arn, name, Deny(sid, user, deny_in, cutoff), provision)
                warnings, failures = outcome.warnings, outcome.failures
                denied = set(outcome.accounts) if outcome.written else set(provision)
                clear = [a for a in held if a in denied or a not in deny_in]
                lift_at = cutoff + self.sets.session_length(arn) + self._margin
        undone = each_of(self._polling, clear, lambda a: attempt(lambda: self.assignments.unassign(arn, a, user)))
        failures += [o for o in undone if isinstance(o, AwsError)]
        if failures:
            also = f" ({'; '.join(warnings)})" if warnings else ""
            first = failures[0]
            raise AwsError(f"{first}{also}", operation=first.operation, code=first.code, transient=first.transient)
        return Ended(lift_at=lift_at, note="; ".join(warnings), warning="; ".join(warnings))

    def lift(self, spec: GrantSpec) -> None:
        """Remove the request's session deny from the set's inline policy, and provision the set again."""
        try:
            arn = self._arn_of(spec)
        except AwsError as exc:
            if exc.gone:
                return
            raise
        self.denies.lift(arn, [sid_of(spec.request_id)])

    def restore(self, spec: GrantSpec, lift_at: datetime) -> bool:
        """Put back a deny still owed that disappeared (an IaC apply reverted it); True when it was missing.

        Its cutoff is worked back from when it is lifted (cutoff + SessionDuration + margin).
        """
        arn = self._arn_of(spec)
        sid = sid_of(spec.request_id)
        if self.denies.existing(arn, sid) is not None:
            return False
        cutoff = lift_at - self.sets.session_length(arn) - self._margin
        name, accounts = split_permission_set_target(spec.target)
        # As at the end itself: not where the person holds the set another way (her sessions there are hers).
        other = self._held_other_ways(spec.iam_user_arn)
        deny_in = tuple(a for a in accounts if (arn, a) not in other)
        if not deny_in:
            return False
        provisioned = set(self.denies.provisioned_in(arn))
        outcome = self.denies.deny(
            arn, name, Deny(sid, spec.iam_user_arn, deny_in, cutoff), [a for a in deny_in if a in provisioned]
        )
        if outcome.failures:
            raise outcome.failures[0]
        return True

    # -- helpers -------------------------------------------------------------------------------

    def _held_other_ways(self, user_id: str) -> set[tuple[str, str]]:
        if self._store is None:
            return set()
        try:
            return held_other_ways(self.assignments, self._store, self._center, user_id, direct=False)
        except AwsError as exc:
            if exc.transient:
                raise
            # Not allowed to look (ListAccountAssignmentsForPrincipal needs the management account or a
            # delegated administrator): deny everywhere granted, erring towards ending sessions.
            return set()

    def _arn_of(self, spec: GrantSpec) -> str:
        return spec.target_arn or self.permission_set_arn(split_permission_set_target(spec.target)[0])

    def _each(self, spec: GrantSpec, work: Callable[[str], Any]) -> list[Any]:
        return each_of(self._polling, split_permission_set_target(spec.target)[1], work)


def _cutoff_of(statement: dict[str, Any] | None) -> datetime | None:
    """The cutoff a statement of the bot's already names."""
    if statement is None:
        return None
    try:
        return datetime.fromisoformat(str(statement["Condition"]["DateLessThan"]["aws:TokenIssueTime"]))
    except (KeyError, TypeError, ValueError):
        return None
