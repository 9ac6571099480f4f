"""`accessbot reconcile`: compare the database with AWS, report drift, repair it with --fix.

Two kinds of drift:
- missing: an active grant that AWS does not have (removed behind the bot's back);
- orphan: access that is the bot's (an `accessbot-<id>` inline user policy or KMS grant, or a group
  membership the bot recorded adding) with no active grant behind it.

The database is read before and after AWS is listed, so work finishing meanwhile is not reported, and
every repair re-checks the row under its lock first: reconcile never re-applies a grant that has just
ended, nor removes one that has just been granted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from sqlalchemy.engine import Engine

from bot.aws import inventory
from bot.aws.errors import AwsError
from bot.aws.granters import PREFIX, Granter, GrantSpec
from bot.catalog import Catalog, GroupResource, KeyResource, Kind
from bot.clock import utcnow
from bot.config import Settings
from bot.domain.audit import AuditAction
from bot.domain.lifecycle import Status
from bot.errors import ConfigError
from bot.store import queries
from bot.store.db import hold_lock, hold_locks, session_scope
from bot.store.models import AccessRequest
from bot.workflow.base import SHARED_STATE, SYSTEM, access_lock_key, grant_spec

log = logging.getLogger(__name__)
RUN_ACTION = AuditAction.RECONCILE
MAX_ALERT_LINES = 20


class Problem(StrEnum):
    """What is wrong."""

    MISSING = "missing"
    ORPHAN = "orphan"
    # Named like the bot's (accessbot-<id>) but matching none of its requests (principal, target, operations):
    # another installation's, or from a recreated database. Reported, never touched.
    FOREIGN = "foreign"


@dataclass(frozen=True)
class Drift:
    """One difference between the database and AWS."""

    problem: Problem
    kind: Kind
    user: str
    target: str  # group name, role ARN, or key ARN
    thing: str  # the AWS object: "membership", or the policy / grant name
    request_id: int | None
    detail: str
    channel: str | None = None
    grant_id: str = ""  # a KMS orphan's GrantId

    @property
    def line(self) -> str:
        """One line for an alert."""
        request = f" (request #{self.request_id})" if self.request_id else ""
        return f"{self.problem.value} {self.kind.value} {self.target} for {self.user}{request}: {self.detail}"


@dataclass(frozen=True)
class Fix:
    """What --fix did about one drift."""

    drift: Drift
    outcome: str
    done: bool


@dataclass(frozen=True)
class Report:
    """The result of one comparison (and of its repair, when asked)."""

    checked: int
    drift: tuple[Drift, ...]
    fixes: tuple[Fix, ...] = field(default=())

    @property
    def unresolved(self) -> int:
        """Drift still there: all of it before --fix, the repairs that failed after (foreign objects never count)."""
        if not self.fixes:
            return sum(d.problem is not Problem.FOREIGN for d in self.drift)
        return sum(not f.done for f in self.fixes if f.drift.problem is not Problem.FOREIGN)

    def table(self) -> str:
        """A plain-text table, one row per drift."""
        header = ["PROBLEM", "KIND", "USER", "TARGET", "AWS OBJECT", "REQUEST", "DETAIL"]
        outcome = {id(f.drift): f.outcome for f in self.fixes}
        if self.fixes:
            header.append("FIX")
        rows = [header]
        for d in self.drift:
            row = [
                d.problem.value,
                d.kind.value,
                d.user,
                d.target,
                d.thing,
                f"#{d.request_id}" if d.request_id else "-",
            ]
            row.append(d.detail)
            if self.fixes:
                row.append(outcome.get(id(d), "-"))
            rows.append(row)
        widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
        return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)

    def summary(self) -> str:
        """One closing line."""
        drift = [d for d in self.drift if d.problem is not Problem.FOREIGN]
        foreign = len(self.drift) - len(drift)
        found = f"{len(drift)} drift(s)" if drift else "no drift"
        line = f"reconcile: {self.checked} active grant(s) checked, {found}"
        if foreign:
            line += f" ({foreign} object(s) named like the bot's but not its own, left alone)"
        if self.fixes:
            fixed = sum(f.done for f in self.fixes if f.drift.problem is not Problem.FOREIGN)
            line += f"; fixed {fixed}, failed {self.unresolved}"
        return line


class Alerter(Protocol):
    """Posts an alert to a Slack channel."""

    def channel_alert(self, channel: str, text: str) -> None:
        """Post `text` in `channel`."""
        ...


@dataclass
class _Aws:
    members: dict[str, frozenset[str] | None]
    policies: list[inventory.UserPolicy]
    key_arns: dict[str, str | None]
    grants: list[inventory.KeyGrant]


class Reconciler:
    """Finds and repairs drift between the requests table and AWS."""

    def __init__(
        self,
        *,
        engine: Engine,
        catalog: Catalog,
        granters: Mapping[Kind, Granter],
        iam: Any,
        kms: Any,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.engine = engine
        self.catalog = catalog
        self._granters = granters
        self._iam = iam
        self._kms = kms
        self._clock = clock

    # -- finding -------------------------------------------------------------------------------

    def check(self) -> Report:
        """Compare every active grant with AWS, and everything the bot made in AWS with the database."""
        now = self._clock()
        with session_scope(self.engine) as session:
            before = {r.id: r for r in queries.holding(session=session)}
            groups = queries.granted_targets(Kind.IAM_GROUP.value, session=session)
            keys = queries.granted_targets(Kind.KMS_KEY.value, session=session)
            keys |= queries.granted_target_arns(Kind.KMS_KEY.value, session=session)
        aws = self._list_aws(groups, keys)
        with session_scope(self.engine) as session:
            after = {r.id: r for r in queries.holding(session=session)}
            pairs = queries.bot_group_pairs(session=session)
            owed = [r for r in after.values() if r.id in before and _owed(before[r.id], now) and _owed(r, now)]
            drift = self._missing(owed, aws) + self._orphans(after, pairs, aws, session)
        return Report(checked=len(owed), drift=tuple(drift))

    def _list_aws(self, groups: set[str], keys: set[str]) -> _Aws:
        for item in self.catalog.resources.values():
            if isinstance(item, GroupResource):
                groups.add(item.group_name)
            elif isinstance(item, KeyResource):
                keys.add(item.key_id)
        members = {group: inventory.group_members(self._iam, group) for group in sorted(groups)}
        policies = inventory.bot_user_policies(self._iam, inventory.user_names(self._iam))
        key_arns = {key: inventory.key_arn(self._kms, key) for key in sorted(keys)}
        grants = [
            g for arn in sorted({a for a in key_arns.values() if a}) for g in inventory.bot_key_grants(self._kms, arn)
        ]
        return _Aws(members=members, policies=policies, key_arns=key_arns, grants=grants)

    def _missing(self, owed: Iterable[AccessRequest], aws: _Aws) -> list[Drift]:
        policies = {(p.user, p.name) for p in aws.policies}
        grants = {(g.key_arn, g.name, g.grantee) for g in aws.grants}
        found: list[Drift] = []
        for row in owed:
            name = f"{PREFIX}{row.id}"
            kind, detail = Kind(row.kind), ""
            if kind is Kind.IAM_GROUP:
                members = aws.members.get(row.target)
                if members is None:
                    detail = f"the group {row.target} does not exist"
                elif row.iam_user not in members:
                    detail = f"{row.iam_user} is not a member of {row.target}"
                name = "membership"
            elif kind is Kind.IAM_ROLE:
                if (row.iam_user, name) not in policies:
                    detail = f"the inline policy {name} of {row.iam_user} is gone"
            else:
                key = row.target_arn or aws.key_arns.get(row.target)
                if key is None:
                    detail = f"the KMS key {row.target} does not exist"
                elif (key, name, row.iam_user_arn) not in grants:
                    detail = f"the KMS grant {name} is gone"
            if detail:
                target = (
                    (row.target_arn or aws.key_arns.get(row.target) or row.target)
                    if kind is Kind.KMS_KEY
                    else row.target
                )
                detail = f"{detail}; active until {_when(row.expires_at)}"
                found.append(
                    Drift(Problem.MISSING, kind, row.iam_user, target, name, row.id, detail, self._channel(row))
                )
        return found

    def _orphans(
        self,
        holders: Mapping[int | None, AccessRequest],
        pairs: Mapping[tuple[str, str], int],
        aws: _Aws,
        session: Any,
    ) -> list[Drift]:
        found: list[Drift] = []

        def why(request_id: int) -> tuple[str, str | None]:
            row = queries.get_request(request_id, session=session)
            if row is None:
                return f"no request #{request_id} in the database", None
            return f"request #{request_id} is {row.status.replace('_', ' ')}", self._channel(row)

        for policy in aws.policies:
            request_id = inventory.request_id_of(policy.name)
            if request_id is None:
                continue
            row = queries.get_request(request_id, session=session)
            if row is None or not _grants_policy(row, policy):
                found.append(self._foreign(Kind.IAM_ROLE, policy.user, "-", policy.name, request_id, row))
            elif request_id not in holders:
                detail, channel = why(request_id)
                found.append(
                    Drift(Problem.ORPHAN, Kind.IAM_ROLE, policy.user, "-", policy.name, request_id, detail, channel)
                )
        for grant in aws.grants:
            request_id = inventory.request_id_of(grant.name)
            if request_id is None:
                continue
            row = queries.get_request(request_id, session=session)
            user = grant.grantee.rsplit("/", 1)[-1]
            if row is None or not self._grants_key(row, grant, aws):
                found.append(self._foreign(Kind.KMS_KEY, user, grant.key_arn, grant.name, request_id, row))
            elif request_id not in holders:
                detail, channel = why(request_id)
                found.append(
                    Drift(Problem.ORPHAN, Kind.KMS_KEY, user, grant.key_arn, grant.name, request_id, detail, channel,
                          grant_id=grant.grant_id)
                )  # fmt: skip
        held = {(r.iam_user, r.target) for r in holders.values() if r.kind == Kind.IAM_GROUP}
        for (user, group), request_id in sorted(pairs.items()):
            if user in (aws.members.get(group) or ()) and (user, group) not in held:
                detail, channel = why(request_id)
                detail = f"added by accessbot, and {detail}"
                found.append(
                    Drift(Problem.ORPHAN, Kind.IAM_GROUP, user, group, "membership", request_id, detail, channel)
                )
        return found

    def _foreign(
        self, kind: Kind, user: str, target: str, name: str, request_id: int, row: AccessRequest | None
    ) -> Drift:
        detail = (
            f"request #{request_id} granted something else" if row is not None else f"no request #{request_id}"
        ) + ": not made by this bot, left alone"
        return Drift(Problem.FOREIGN, kind, user, target, name, request_id, detail)

    def _grants_key(self, row: AccessRequest, grant: inventory.KeyGrant, aws: _Aws) -> bool:
        """Whether the request granted exactly this KMS grant: its grantee, key and operations."""
        item = self.catalog.resource(row.resource)
        operations = frozenset(item.operations) if isinstance(item, KeyResource) else grant.operations
        return (
            row.kind == Kind.KMS_KEY
            and row.iam_user_arn == grant.grantee
            and (row.target_arn or aws.key_arns.get(row.target)) == grant.key_arn
            and operations == grant.operations
        )

    def _channel(self, row: AccessRequest) -> str | None:
        return row.approval_channel or self.catalog.defaults.approval_channel

    # -- repairing -----------------------------------------------------------------------------

    def fix(self, report: Report) -> Report:
        """Re-apply missing grants and remove orphans; audit each repair."""
        fixes = []
        for drift in report.drift:
            if drift.problem is Problem.FOREIGN:
                fixes.append(Fix(drift, "left alone: not the bot's", True))
                continue
            try:
                fixes.append(self._reapply(drift) if drift.problem is Problem.MISSING else self._remove(drift))
            except AwsError as exc:
                log.warning("reconcile could not repair %s: %s", drift.line, exc)
                fixes.append(Fix(drift, f"failed: {exc}", False))
        return replace(report, fixes=tuple(fixes))

    def _locks(self, drift: Drift) -> AbstractContextManager[bool]:
        """The locks the workflow's AWS steps on the same request and access hold (see Base._guard)."""
        keys = [f"request:{drift.request_id}"] if drift.request_id else []
        if drift.kind in SHARED_STATE and drift.target != "-":
            keys.append(access_lock_key(drift.kind.value, drift.user, drift.target))
        return hold_locks(self.engine, keys, wait=True)

    def _reapply(self, drift: Drift) -> Fix:
        assert drift.request_id is not None
        with self._locks(drift), session_scope(self.engine) as session:
            row = queries.lock_request(drift.request_id, session=session)
            now = self._clock()
            if row is None or not _owed(row, now):
                return Fix(drift, "nothing to do: the grant ended meanwhile", True)
            # The AWS call runs under the row lock on purpose: the sweep cannot start revoking meanwhile,
            # so a grant that ends during the repair is never put back after its revoke.
            grant_ref = self._granters[drift.kind].grant(grant_spec(row, self.catalog, now))
            if grant_ref is not None:
                row.grant_ref = grant_ref
            queries.record_audit(
                session=session,
                actor=SYSTEM,
                action=AuditAction.GRANT_REAPPLIED,
                request_id=row.id,
                at=now,
                found=drift.detail,
                grant_ref=grant_ref,
            )
        return Fix(drift, "re-applied", True)

    def _remove(self, drift: Drift) -> Fix:
        request_id = drift.request_id or 0
        with self._locks(drift), session_scope(self.engine) as session:
            row = queries.lock_request(request_id, session=session) if request_id else None
            now = self._clock()
            if drift.kind is Kind.IAM_GROUP:
                if queries.holders_of(drift.kind.value, drift.user, drift.target, session=session):
                    return Fix(drift, "nothing to do: an active grant holds it now", True)
            elif row is not None and _holds(row, drift):
                return Fix(drift, f"nothing to do: request #{request_id} holds it now", True)
            if drift.kind is Kind.KMS_KEY:
                # Only the grant found: another grant of the same name may be a live request's own.
                inventory.revoke_key_grant(self._kms, drift.target, drift.grant_id)
            else:
                spec = GrantSpec(request_id, iam_user=drift.user, iam_user_arn="", target=drift.target, expires_at=now)
                self._granters[drift.kind].revoke(spec, None)
            queries.record_audit(
                session=session,
                actor=SYSTEM,
                action=AuditAction.ORPHAN_REMOVED,
                request_id=row.id if row else None,
                at=now,
                kind=drift.kind.value,
                user=drift.user,
                target=drift.target,
                name=drift.thing,
                found=drift.detail,
            )
        return Fix(drift, "removed", True)

    # -- on a schedule -------------------------------------------------------------------------

    def scheduled(self, alerter: Alerter, *, interval: float) -> Report | None:
        """The scheduler's periodic check: one replica per interval runs it and alerts on drift."""
        now = self._clock()
        with hold_lock(self.engine, RUN_ACTION), session_scope(self.engine) as session:
            last = queries.last_audit_at(RUN_ACTION, session=session)
            if last is not None and now - last < timedelta(seconds=interval * 0.9):
                return None  # another replica ran it recently
            queries.record_audit(session=session, actor=SYSTEM, action=RUN_ACTION, at=now)
        report = self.check()
        if not report.unresolved:
            return report
        log.warning("reconcile found %d drift(s) between the database and AWS", report.unresolved)
        with session_scope(self.engine) as session:
            queries.record_audit(
                session=session, actor=SYSTEM, action=AuditAction.DRIFT_FOUND, at=self._clock(),
                drift=[d.line for d in report.drift[:MAX_ALERT_LINES]], count=len(report.drift),
            )  # fmt: skip
        by_channel: dict[str, list[Drift]] = {}
        for drift in (d for d in report.drift if d.problem is not Problem.FOREIGN):
            channel = drift.channel or self.catalog.defaults.approval_channel or _any_channel(self.catalog)
            if channel:
                by_channel.setdefault(channel, []).append(drift)
        for channel, items in by_channel.items():
            lines = [f"• {d.line}" for d in items[:MAX_ALERT_LINES]]
            if len(items) > MAX_ALERT_LINES:
                lines.append(f"• … and {len(items) - MAX_ALERT_LINES} more")
            alerter.channel_alert(
                channel,
                f":rotating_light: accessbot reconcile found {len(items)} difference(s) between its database "
                "and AWS:\n" + "\n".join(lines) + "\nRun `accessbot reconcile --fix` to repair them.",
            )
        return report


def _grants_policy(row: AccessRequest, policy: inventory.UserPolicy) -> bool:
    """Whether the request wrote exactly this inline policy: its user, and the role it allows."""
    return row.kind == Kind.IAM_ROLE and row.iam_user == policy.user and row.target in policy.resources


def _owed(row: AccessRequest, now: datetime) -> bool:
    """Whether AWS must have this request's access now."""
    return (
        row.status == Status.ACTIVE
        and row.revoke_started_at is None
        and row.end_requested_at is None
        and row.expires_at is not None
        and row.expires_at > now
    )


def _holds(row: AccessRequest, drift: Drift) -> bool:
    """Whether the row accounts for the AWS object of an orphan drift (granted meanwhile)."""
    holding = row.grant_started_at is not None and row.ended_at is None
    same = row.kind == drift.kind.value and row.iam_user == drift.user
    return holding and same


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%SZ") if moment else "?"


def _any_channel(catalog: Catalog) -> str | None:
    return next((r.approval_channel for r in catalog.resources.values() if r.approval_channel), None)


def command(settings: Settings, *, fix: bool) -> int:
    """`accessbot reconcile [--fix]`: print a table; exit 1 while drift remains, 0 when there is none."""
    from botocore.exceptions import NoRegionError

    from bot.aws.clients import AwsClients
    from bot.catalog import load_catalog
    from bot.runtime import build_granters, prepare_schema
    from bot.store.db import make_engine

    catalog = load_catalog(settings.accessbot_catalog)
    engine = make_engine(settings.database_url)
    try:
        prepare_schema(engine)
        try:
            aws = AwsClients.create()
        except NoRegionError:
            raise ConfigError(
                "AWS_REGION: not set (KMS needs a region; set AWS_REGION or AWS_DEFAULT_REGION)"
            ) from None
        reconciler = Reconciler(engine=engine, catalog=catalog, granters=build_granters(aws), iam=aws.iam, kms=aws.kms)
        try:
            report = reconciler.check()
        except AwsError as exc:
            raise ConfigError(f"AWS: cannot list what exists: {exc}") from None
        if fix and report.drift:
            report = reconciler.fix(report)
    finally:
        engine.dispose()
    if report.drift:
        print(report.table())
    print(report.summary())
    return 1 if report.unresolved else 0
