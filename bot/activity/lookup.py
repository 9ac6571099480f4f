"""Reads a grant's events from CloudTrail's event history with LookupEvents, paced and bounded.

LookupEvents reads one account and one Region, management events only, the last 90 days, at most 50 events a
page (CloudTrail API Reference, "LookupEvents"; CloudTrail User Guide, "Working with CloudTrail event
history"). Another account's history is read as the role the bot assumes there (the catalog's `accounts`);
an account not listed there is named under "Not read". Every call waits for its slot in that account and
Region (Pacer); a ThrottlingException pushes the slot back for every replica and is tried again a few
times, after which the whole report is owed and tried later.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from bot.activity.attribution import ACCESS_KEY, Event, Grant, plan, returned_key, session_of
from bot.activity.pacer import Pacer
from bot.activity.summary import Call, Reading, call_of
from bot.aws.errors import AwsError

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
        elsewhere: Callable[[str, str], Any] = lambda _account, _region: None,
    ) -> None:
        self._client_for = client_for  # Region -> a CloudTrail client (boto3, AWS_ENDPOINT_URL_CLOUDTRAIL honoured)
        # (account, Region) -> a CloudTrail client as the role assumed in that listed account; None: not listed
        self._elsewhere = elsewhere
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
        for account, region, client in self._places(wanted.accounts, wanted.region, home, reading):
            found = self._pages(client, account, region, wanted.key, wanted.value, window, reading, wanted.keep)
            kept.extend(event for _, event in found)
            calls.extend(call_of(record, event) for record, event in found)
        if wanted.follow_in:
            keys = sorted({k for k in map(returned_key, kept) if k})
            reading.lines.append(f"{len(keys)} session key(s) returned by AssumeRole followed")
            for key in keys:
                for account, region, client in self._places((wanted.follow_in,), None, home, reading):
                    found = self._pages(client, account, region, ACCESS_KEY, key, window, reading, session_of(grant))
                    calls.extend(call_of(record, event) for record, event in found)
        return calls, reading, wanted.coverage

    def _places(
        self, accounts: tuple[str, ...], only: str | None, home: str, reading: Reading
    ) -> Iterator[tuple[str, str, Any]]:
        """(account, Region, client) for each account and Region to read; an account the bot cannot read is noted."""
        for account in accounts:
            for region in (only,) if only else self._regions:
                client = self._client_for(region) if account == home else self._elsewhere(account, region)
                if client is None:
                    note = (
                        f"account {account} (not listed under the catalog's `accounts`: the bot has no role there "
                        "to read its CloudTrail)"
                    )
                    if note not in reading.not_read:
                        reading.not_read.append(note)
                    break
                yield account, region, client

    def _pages(
        self,
        client: Any,
        account: str,
        region: str,
        key: str,
        value: str,
        window: Window,
        reading: Reading,
        keep: Callable[[Event], bool],
    ) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """Every page of one lookup (while the report's page budget lasts), filtered on the client."""
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
        where = region if account == self._home() else f"{account} {region}"
        for attempt in range(THROTTLE_TRIES):
            self._pacer.wait(account, region)
            try:
                answer: dict[str, Any] = client.lookup_events(**args)
                return answer
            except ClientError as exc:
                code = str(exc.response.get("Error", {}).get("Code", ""))
                if code not in THROTTLED:
                    raise Unavailable(f"CloudTrail {where}: {code or exc}") from None
                self._pacer.back_off(account, region, THROTTLE_BACKOFF_SECONDS * 2**attempt)
            except BotoCoreError as exc:
                raise Unavailable(f"CloudTrail {where}: {type(exc).__name__}") from None
            except AwsError as exc:  # the role in another account could not be assumed (bot.aws.accounts)
                raise Unavailable(f"CloudTrail {where}: {exc}") from None
        raise Unavailable(f"CloudTrail {where}: still throttled after {THROTTLE_TRIES} tries")
