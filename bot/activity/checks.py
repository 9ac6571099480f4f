"""check-config's CloudTrail line: the bot may call LookupEvents in every Region its reports read."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from bot.activity.lookup import THROTTLED
from bot.aws.checks import Check, Outcome


def lookup_checks(client_for: Callable[[str], Any], regions: tuple[str, ...]) -> list[Check]:
    """One line per Region: a LookupEvents call with MaxResults=1 (the policy's cloudtrail:LookupEvents)."""
    checks = []
    for region in regions:
        problem = None
        try:
            client_for(region).lookup_events(MaxResults=1)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code not in THROTTLED:  # throttled: allowed, only busy
                problem = (
                    f"LookupEvents refused ({code}): activity reports cannot be made; allow cloudtrail:LookupEvents"
                )
        except BotoCoreError as exc:
            problem = f"LookupEvents failed ({type(exc).__name__})"
        what = "activity reports can read its event history"
        checks.append(Check(f"cloudtrail {region}", what, Outcome.PROBLEM if problem else Outcome.OK, problem or ""))
    return checks
