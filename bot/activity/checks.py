"""check-config's CloudTrail lines: the bot may call LookupEvents in every account and Region its reports read."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from bot.activity.lookup import THROTTLED
from bot.aws.checks import Check, Outcome
from bot.aws.errors import AwsError


def lookup_checks(client_for: Callable[[str], Any], regions: tuple[str, ...], *, account: str = "") -> list[Check]:
    """One line per Region: a LookupEvents call with MaxResults=1 (the policy's cloudtrail:LookupEvents).

    With `account`, the clients act as the role assumed in that listed account, whose policy (`accessbot
    iam-policy --member`) must allow it too.
    """
    checks = []
    whose = "the member role's policy" if account else "the bot's policy"
    for region in regions:
        problem = None
        try:
            client_for(region).lookup_events(MaxResults=1)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code not in THROTTLED:  # throttled: allowed, only busy
                problem = (
                    f"LookupEvents refused ({code}): activity reports cannot be made; allow cloudtrail:LookupEvents "
                    f"in {whose}"
                )
        except BotoCoreError as exc:
            problem = f"LookupEvents failed ({type(exc).__name__})"
        except AwsError as exc:  # the member role could not be assumed
            problem = f"LookupEvents not tried: {exc}"
        what = "activity reports can read its event history"
        name = f"cloudtrail {account} {region}" if account else f"cloudtrail {region}"
        checks.append(Check(name, what, Outcome.PROBLEM if problem else Outcome.OK, problem or ""))
    return checks


def member_lookup_checks(
    trails: Callable[[str, str], Any], accounts: Iterable[str], regions: tuple[str, ...]
) -> list[Check]:
    """The same lines in each listed account, as the role the bot assumes there (`trails`: bot.activity.wiring)."""
    checks: list[Check] = []
    for account in accounts:
        checks += lookup_checks(functools.partial(trails, account), regions, account=account)
    return checks
