"""What reconcile found and did, and every sentence it says about it: the table, the summary, the alert."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from bot.catalog import Catalog, Kind

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
    target: str  # group name, role ARN, key ARN, or an Identity Center target
    thing: str  # the AWS object: "membership", or the policy / grant name
    request_id: int | None
    detail: str
    channel: str | None = None
    grant_id: str = ""  # a KMS orphan's GrantId
    principal_id: str = ""  # an Identity Center orphan's Identity Store UserId
    # A KMS grant of a request the bot ended at least KMS_SETTLE ago: the scheduled check revokes it.
    lingering: bool = False

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


def alerts(report: Report, catalog: Catalog) -> dict[str, str]:
    """The alert for each channel told about the drift: its request's, else the default, else any approvers'."""
    by_channel: dict[str, list[Drift]] = {}
    for drift in (d for d in report.drift if d.problem is not Problem.FOREIGN):
        channel = drift.channel or catalog.defaults.approval_channel or _any_channel(catalog)
        if channel:
            by_channel.setdefault(channel, []).append(drift)
    return {channel: _alert_text(items) for channel, items in by_channel.items()}


def _alert_text(items: list[Drift]) -> str:
    lines = [f"• {d.line}" for d in items[:MAX_ALERT_LINES]]
    if len(items) > MAX_ALERT_LINES:
        lines.append(f"• … and {len(items) - MAX_ALERT_LINES} more")
    return (
        f":rotating_light: accessbot reconcile found {len(items)} difference(s) between its database "
        "and AWS:\n" + "\n".join(lines) + "\nRun `accessbot reconcile --fix` to repair them."
    )


def _any_channel(catalog: Catalog) -> str | None:
    return next((r.approval_channel for r in catalog.resources.values() if r.approval_channel), None)
