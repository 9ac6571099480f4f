"""check-config for on-call approval: the PagerDuty token works, and every schedule and policy exists."""

from __future__ import annotations

from dataclasses import dataclass

from bot.catalog import Catalog
from bot.oncall.checker import UNREADABLE
from bot.oncall.pagerduty import PagerDuty, PagerDutyError


@dataclass(frozen=True)
class OnCallCheck:
    """One line of check-config about on-call."""

    ok: bool
    line: str


def check_on_call(catalog: Catalog, pagerduty: PagerDuty | None) -> list[OnCallCheck]:
    """One line per PagerDuty schedule or policy the catalog names (and one for the token); none without any."""
    wanted: list[tuple[str, str, str]] = []  # (key path, kind, ID)
    for name, resource in catalog.resources.items():
        config = resource.on_call.pagerduty if resource.on_call is not None else None
        if config is None:
            continue
        key = f"{name}.auto_approve.on_call.pagerduty"
        wanted += [(f"{key}.schedules", "schedule", s) for s in config.schedules]
        wanted += [(f"{key}.escalation_policies", "escalation policy", p) for p in config.escalation_policies]
    if not wanted:
        return []
    if pagerduty is None:
        return [OnCallCheck(False, f"FAIL ACCESSBOT_PAGERDUTY_TOKEN: unset, and {wanted[0][0]} needs it")]
    try:
        pagerduty.check_token()
    except PagerDutyError as exc:
        return [OnCallCheck(False, f"FAIL ACCESSBOT_PAGERDUTY_TOKEN: {exc}")]
    checks = [OnCallCheck(True, "ok   ACCESSBOT_PAGERDUTY_TOKEN: PagerDuty accepts it")]
    for key, kind, object_id in wanted:
        read = pagerduty.schedule_name if kind == "schedule" else pagerduty.policy_name
        try:
            checks.append(OnCallCheck(True, f"ok   {key}: {kind} {object_id} ({read(object_id)})"))
        except UNREADABLE as exc:
            checks.append(OnCallCheck(False, f"FAIL {key}: {kind} {object_id}: {exc} (does it exist?)"))
    return checks
