"""Reads a grant's events from CloudTrail's event history with LookupEvents, paced and bounded.

LookupEvents reads one account and one Region, management events only, the last 90 days, at most 50 events a
page (CloudTrail API Reference, "LookupEvents"; CloudTrail User Guide, "Working with CloudTrail event
history"). Every call waits for its slot (Pacer); a ThrottlingException pushes the slot back for every
replica and is tried again a few times, after which the whole report is owed and tried later.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from bot.activity.attribution import ACCESS_KEY, Event, Grant, Plan, plan, returned_key, session_of
from bot.activity.pacer import Pacer
from bot.activity.summary import Call, Reading, call_of

PAGE = 50
THROTTLE_TRIES = 4
THROTTLE_BACKOFF_SECONDS = 1.0
THROTTLED = ("ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded")


class Unavailable(Exception):
    """CloudTrail could not be read now (throttled, unavailable, refused): the report stays owed."""


@dataclass(frozen=True)
class Window:
    """The time the grant was held: calls in it are the grant's."""

    start: datetime
    end: datetime


class Lookup:
    """Runs a Plan: each account the bot can read, each Region, every page up to a bound."""

    def __init__(
        self,
        client_for: Callable[[str], Any],
        pacer: Pacer,
        *,
        home: Callable[[], str],
        regions: tuple[str, ...],
        max_pages: int,
    ) -> None:
        self._client_for = client_for  # Region -> a CloudTrail client (boto3, AWS_ENDPOINT_URL_CLOUDTRAIL honoured)
        self._pacer = pacer
        self._home = home
        self._regions = regions
        self._max_pages = max_pages

    def read(self, grant: Grant, window: Window) -> tuple[list[Call], Reading, str]:
        """The holder's calls in the window, what was read, and what the report covers."""
        try:
            home = self._home()
        except (ClientError, BotoCoreError) as exc:
            raise Unavailable(f"STS cannot say which account the bot is in: {type(exc).__name__}") from None
        wanted = plan(grant, home)
        reading = Reading()
        calls: list[Call] = []
        kept: list[Event] = []
        for account, region in self._places(wanted, home, reading):
            found = self._pages(account, region, wanted.key, wanted.value, window, reading, wanted.keep)
            kept.extend(event for _, event in found)
            calls.extend(call_of(record, event) for record, event in found)
        if wanted.follow_keys:
            keys = sorted({k for k in map(returned_key, kept) if k})
            reading.lines.append(f"{len(keys)} session key(s) returned by AssumeRole followed")
            role_plan = Plan((_role_account(grant.target) or home,), ACCESS_KEY, "", session_of(grant), wanted.coverage)
            for key in keys:
                for account, region in self._places(role_plan, home, reading):
                    found = self._pages(account, region, ACCESS_KEY, key, window, reading, role_plan.keep)
                    calls.extend(call_of(record, event) for record, event in found)
        return calls, reading, wanted.coverage

    def _places(self, wanted: Plan, home: str, reading: Reading) -> Iterator[tuple[str, str]]:
        for account in wanted.accounts:
            if account != home:
                # Another account's event history needs a role there (the catalog's `accounts`).
                note = f"account {account} (the bot reads only its own account's CloudTrail)"
                if note not in reading.not_read:
                    reading.not_read.append(note)
                continue
            regions = (wanted.region,) if wanted.region else self._regions
            for region in regions:
                yield account, region

    def _pages(
        self,
        account: str,
        region: str,
        key: str,
        value: str,
        window: Window,
        reading: Reading,
        keep: Callable[[Event], bool],
    ) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """Every page of one lookup (while the report's page budget lasts), filtered on the client."""
        client = self._client_for(region)
        args: dict[str, Any] = {
            "LookupAttributes": [{"AttributeKey": key, "AttributeValue": value}],
            "StartTime": window.start,
            "EndTime": window.end,
            "MaxResults": PAGE,
        }
        found: list[tuple[dict[str, Any], dict[str, Any]]] = []
        pages = seen = 0
        while True:
            if reading.pages >= self._max_pages:
                reading.partial = True
                break
            answer = self._call(client, account, region, args)
            reading.pages += 1
            pages += 1
            for record in answer.get("Events", []):
                seen += 1
                event = json.loads(record.get("CloudTrailEvent") or "{}")
                if keep(event):
                    found.append((record, event))
            token = answer.get("NextToken")
            if not token:
                break
            args["NextToken"] = token
        stopped = " (stopped: page limit)" if reading.partial and args.get("NextToken") else ""
        reading.lines.append(
            f"{account} {region} {key}={value}: {pages} page(s), {seen} event(s), {len(found)} kept{stopped}"
        )
        return found

    def _call(self, client: Any, account: str, region: str, args: dict[str, Any]) -> dict[str, Any]:
        for attempt in range(THROTTLE_TRIES):
            self._pacer.wait(account, region)
            try:
                answer: dict[str, Any] = client.lookup_events(**args)
                return answer
            except ClientError as exc:
                code = str(exc.response.get("Error", {}).get("Code", ""))
                if code not in THROTTLED:
                    raise Unavailable(f"CloudTrail {region}: {code or exc}") from None
                self._pacer.back_off(account, region, THROTTLE_BACKOFF_SECONDS * 2**attempt)
            except BotoCoreError as exc:
                raise Unavailable(f"CloudTrail {region}: {type(exc).__name__}") from None
        raise Unavailable(f"CloudTrail {region}: still throttled after {THROTTLE_TRIES} tries")


def _role_account(role_arn: str) -> str | None:
    parts = role_arn.split(":")
    return parts[4] if len(parts) > 5 and parts[4].isdigit() else None
