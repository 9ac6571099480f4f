"""The right to assume an IAM role: an inline user policy with a time condition, and a session deny at the end."""
# The deny's documents are built in role_denies (pure) and kept in AWS by role_store.

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from datetime import datetime, timedelta
from typing import Any

from bot.aws.errors import AwsError, aws_call
from bot.aws.granters import role_store
from bot.aws.granters.base import Ended, GrantSpec, account_of, iso, role_name
from bot.aws.granters.role_batch import Ask, DenyQueue
from bot.aws.granters.role_denies import LIFT_AFTER, Layout, Slot, merged, pruned, without
from bot.clock import utcnow

# How long AWS may take to apply a policy change everywhere (ACCESSBOT_IAM_PROPAGATION_SECONDS).
DEFAULT_MARGIN = timedelta(minutes=5)
Lock = Callable[[str], AbstractContextManager[object]]


def role_policy(spec: GrantSpec) -> dict[str, Any]:
    """The inline policy that lets the user assume the role until the expiry, and only under their own name.

    sts:SourceIdentity must be the IAM user's name, so every session the grant allows carries who it is and
    can be ended later by a deny on the role (see session_deny).
    """
    condition: dict[str, Any] = {
        "DateLessThan": {"aws:CurrentTime": iso(spec.expires_at)},
        "StringEquals": {"sts:SourceIdentity": spec.iam_user},
    }
    if spec.require_mfa:
        condition["Bool"] = {"aws:MultiFactorAuthPresent": "true"}
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AccessbotAssumeRole",
                "Effect": "Allow",
                "Action": ["sts:AssumeRole", "sts:SetSourceIdentity"],
                "Resource": spec.target,
                "Condition": condition,
            }
        ],
    }


def managed_deny_arn(role_arn: str, name: str) -> str:
    """Where a request's own session deny lived when the role's inline policies were full (before one per person)."""
    return f"arn:aws:iam::{account_of(role_arn)}:policy/accessbot/{name}"


class RoleGranter:
    """The right to assume an IAM role, as an inline user policy with a time condition; a deny on the role at the end.

    `margin`: how long IAM may take to apply a change (see revoke). `lock(key)`: held around every read and
    write of a role's denies; the default serialises threads of this process only, so the composition root
    passes one the database holds across replicas.
    """

    shared = False

    def __init__(
        self,
        iam: Any,
        clock: Callable[[], datetime] = utcnow,
        *,
        margin: timedelta = DEFAULT_MARGIN,
        lock: Lock | None = None,
        iam_in: Callable[[str], Any] | None = None,
    ) -> None:
        self._iam = iam
        self._clock = clock
        self.margin = margin
        self._lock = lock or _local_lock
        self._queue = DenyQueue()
        # IAM in another account, through the role the bot assumes there (catalog `accounts`), else None.
        self._iam_in = iam_in or (lambda _account: None)

    def locate(self, spec: GrantSpec) -> str | None:
        """Refuse a role that does not exist (IAM itself accepts a policy naming any ARN)."""
        self._require_role(spec)
        return None

    def holds(self, spec: GrantSpec) -> bool:
        """Whether this request's inline policy exists."""
        try:
            with aws_call("iam:GetUserPolicy"):
                self._iam.get_user_policy(UserName=spec.iam_user, PolicyName=spec.name)
            return True
        except AwsError as exc:
            if exc.gone:
                return False
            raise

    def grant(self, spec: GrantSpec) -> str | None:
        """Write (or rewrite) the inline policy, once the role is known to exist; an earlier end's deny goes first.

        A deny left by an earlier end of the same role for the same person would also deny the sessions of this
        grant (their source identity is the same): it goes, since this grant's own end covers every session
        issued before it again. Should this grant fail, its undo is an end like any other and writes the deny
        again, with a cutoff no earlier than the one removed here.
        """
        self._require_role(spec)
        self.undeny(spec, None)
        try:
            with aws_call("iam:PutUserPolicy"):
                self._iam.put_user_policy(
                    UserName=spec.iam_user, PolicyName=spec.name, PolicyDocument=json.dumps(role_policy(spec))
                )
        except AwsError as exc:
            if exc.code == "LimitExceeded":
                raise AwsError(
                    f"the inline policies of the IAM user '{spec.iam_user}' would exceed AWS's size limit "
                    "(2,048 characters per user in total), so no role access was added; an admin must remove "
                    f"unused inline policies from '{spec.iam_user}' first. {exc}",
                    operation=exc.operation,
                    code=exc.code,
                ) from exc
            if exc.gone:
                raise AwsError(
                    f"the IAM user '{spec.iam_user}' does not exist any more, so nothing was granted",
                    operation=exc.operation,
                    code=exc.code,
                ) from exc
            raise
        return spec.name

    def _require_role(self, spec: GrantSpec) -> None:
        """Refuse a role that does not exist; IAM itself accepts a policy naming any ARN."""
        iam = self._role_iam(spec)
        if iam is None:
            return  # a role in an account the bot cannot act in cannot be seen from here; its trust policy decides
        try:
            with aws_call("iam:GetRole"):
                found = str(iam.get_role(RoleName=role_name(spec.target))["Role"]["Arn"])
        except AwsError as exc:
            if not exc.gone:
                raise
            found = ""
        if found != spec.target:
            also = f" (a role of that name exists as {found})" if found else ""
            raise AwsError(
                f"the IAM role {spec.target} does not exist{also}, so nothing was granted "
                "(an admin must create it or fix the catalog)",
                operation="iam:GetRole",
                code="NoSuchEntity",
            )

    def revoke(self, spec: GrantSpec, grant_ref: str | None) -> Ended:
        """Deny the user's sessions on the role first, then delete the inline policy.

        IAM is eventually consistent: a change can take a while to apply everywhere (IAM User Guide,
        Troubleshooting IAM, "Changes that I make are not always immediately visible"). So the deny is in place
        before the allow goes, and covers every session issued before the later of the end and the moment it is
        written, plus the margin: a session that re-assumes the role (with the source identity carried over)
        before the deny applies gets a session the deny still covers, however late the bot is. Whatever the
        allow let through until its deletion applied is covered too: the deny is written again should the
        deletion return after the cutoff minus the margin.
        """
        if not spec.end_sessions:
            self._delete_allow(spec)
            return Ended(note="another grant of this role to the same user keeps its sessions")
        if self._role_iam(spec) is None:
            self._delete_allow(spec)
            return Ended(note=f"the role is in account {account_of(spec.target)}: its open sessions end on their own")
        try:
            cutoff = self.deny(spec, self._cutoff())
        except AwsError as exc:
            if exc.gone and exc.operation == "iam:ListRolePolicies":
                self._delete_allow(spec)
                return Ended(note="the role no longer exists, and its sessions with it")
            # No deny (AWS refused it, or the role is full): no new session at least. The end stays owed, and
            # its next attempt writes the deny with a cutoff past this deletion.
            with suppress(AwsError):
                self._delete_allow(spec)
            raise
        self._delete_allow(spec)
        later = self._cutoff()
        if later > cutoff:  # the deletion returned late: what the allow let through meanwhile is covered too
            cutoff = self.deny(spec, later)
        # Never lifted before every session it covers has expired by itself (12 hours; see LIFT_AFTER).
        return Ended(lift_at=cutoff + LIFT_AFTER, cutoff=cutoff)

    def _cutoff(self) -> datetime:
        """The later of the end and now, plus the margin, in whole seconds rounded up (as IAM compares them).

        The end (the expiry, or the moment an early revoke was asked) is never later than now, when the bot
        writes the deny: an undo's expiry may lie ahead, but its allow could only be used until its deletion
        applies, which the margin covers. So the later of the two is now.
        """
        moment = self._clock() + self.margin
        return moment.replace(microsecond=0) + (timedelta(seconds=1) if moment.microsecond else timedelta(0))

    def _role_iam(self, spec: GrantSpec) -> Any:
        """IAM in the role's account: the bot's own, a listed account's through its assumed role, else None."""
        account = account_of(spec.target)
        return self._iam if account == account_of(spec.iam_user_arn) else self._iam_in(account)

    def _iam_of(self, role_arn: str) -> Any:
        """IAM where a role lives: a listed account's through its assumed role, else the bot's own."""
        return self._iam_in(account_of(role_arn)) or self._iam

    def _delete_allow(self, spec: GrantSpec) -> None:
        try:
            with aws_call("iam:DeleteUserPolicy"):
                self._iam.delete_user_policy(UserName=spec.iam_user, PolicyName=spec.name)
        except AwsError as exc:
            if not exc.gone:
                raise

    def deny(self, spec: GrantSpec, cutoff: datetime) -> datetime:
        """Make sure the role denies the user's sessions issued before `cutoff`; return the cutoff it now has.

        One statement per person: a later cutoff replaces an earlier one, an earlier one changes nothing. Ends
        on one role that wait for its lock together are written together (see role_batch).
        """
        ask = self._queue.ask(spec.target, spec.iam_user, cutoff)
        with self._lock(f"role-denies:{spec.target}"):
            return self._queue.settle(spec.target, ask, lambda batch: self._write_denies(spec.target, batch))

    def _write_denies(self, role_arn: str, asks: Sequence[Ask]) -> dict[str, datetime]:
        """Read the role's denies, merge every ask, write once; each person's cutoff the role now has."""
        iam = self._iam_of(role_arn)
        found = role_store.read(iam, role_name(role_arn), role_arn)

        def layout_with(room: int) -> Layout:
            layout = pruned(found.layout, self._clock())
            for ask in asks:
                layout = merged(layout, ask.iam_user, ask.cutoff, inline_room=room)
            return layout

        layout = layout_with(found.inline_room)
        try:
            role_store.write(iam, found, layout)
        except AwsError as exc:
            if exc.code not in ("LimitExceeded", "LimitExceededException") or len(layout) > len(found.layout):
                raise
            # The role's other inline policies grew meanwhile: the inline document counts as full.
            found.inline_room = 0
            layout = layout_with(0)
            role_store.write(iam, found, layout)
        return {user: cutoff for slot in layout for user, cutoff in slot.items()}

    def denied(self, role_arn: str) -> Slot:
        """Every person the role denies sessions to, with the cutoff (empty when the role is gone)."""
        with self._lock(f"role-denies:{role_arn}"):
            try:
                found = role_store.read(self._iam_of(role_arn), role_name(role_arn), role_arn)
            except AwsError as exc:
                if exc.gone:
                    return {}
                raise
        return {user: cutoff for slot in found.layout for user, cutoff in slot.items()}

    def undeny(self, spec: GrantSpec, up_to: datetime | None) -> None:
        """Remove the user's deny from the role if its cutoff is not later than `up_to` (None: any cutoff)."""
        iam = self._role_iam(spec)
        if iam is None:
            return  # no deny is written in an account the bot cannot act in
        with self._lock(f"role-denies:{spec.target}"):
            try:
                found = role_store.read(iam, role_name(spec.target), spec.target)
            except AwsError as exc:
                if exc.gone:
                    return
                raise
            role_store.write(iam, found, without(found.layout, spec.iam_user, up_to))

    def lift(self, spec: GrantSpec) -> None:
        """Remove the session deny once no session it covers can be alive; a later cutoff (a later end) stays."""
        if spec.denied_before is not None:
            self.undeny(spec, spec.denied_before)
            return
        self._lift_legacy(spec)

    def _lift_legacy(self, spec: GrantSpec) -> None:
        """A deny written before the denies were one statement per person: its own policy, named after the request."""
        role = role_name(spec.target)
        iam = self._role_iam(spec)
        if iam is None:
            return  # no deny was written in an account the bot cannot act in
        try:
            with aws_call("iam:DeleteRolePolicy"):
                iam.delete_role_policy(RoleName=role, PolicyName=spec.name)
            return
        except AwsError as exc:
            if not exc.gone:
                raise
        arn = managed_deny_arn(spec.target, spec.name)
        for operation, call, args in (
            ("iam:DetachRolePolicy", iam.detach_role_policy, {"RoleName": role, "PolicyArn": arn}),
            ("iam:DeletePolicy", iam.delete_policy, {"PolicyArn": arn}),
        ):
            try:
                with aws_call(operation):
                    call(**args)
            except AwsError as exc:
                if not exc.gone:
                    raise


_local_locks: dict[str, threading.Lock] = {}
_local_guard = threading.Lock()


@contextmanager
def _local_lock(key: str) -> Iterator[None]:
    """A lock of this process only, per key (tests and single-process use)."""
    with _local_guard:
        lock = _local_locks.setdefault(key, threading.Lock())
    with lock:
        yield
