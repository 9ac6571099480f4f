"""Waiting for Identity Center's asynchronous requests, and doing one piece of work per account at once."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from bot.aws.errors import AwsError, retried

T = TypeVar("T")


@dataclass(frozen=True)
class Polling:
    """How a request's status is awaited: first after `first` seconds, doubling up to `most`, for `limit` in all."""

    first: float = 0.2
    most: float = 1.0
    limit: float = 60.0
    threads: int = 8  # accounts worked on at once


def await_status(
    polling: Polling, status: dict[str, Any], describe: Callable[[str], Any], operation: str, account: str
) -> dict[str, Any]:
    """Poll a request's status until SUCCEEDED (returned) or FAILED (AwsError with AWS's reason), with a bound.

    Past the bound an AwsError with code StillInProgress: the request may still finish later, which is why
    the caller records its ID (an undo waits for the final status before it decides anything).
    """
    request_id = str(status.get("RequestId", ""))
    delay, deadline = polling.first, time.monotonic() + polling.limit
    while status.get("Status") == "IN_PROGRESS":
        if time.monotonic() >= deadline:
            what = operation.split(":")[1].removeprefix("Describe").removesuffix("Status")
            raise AwsError(
                f"AWS had not finished {what} in account {account} after {polling.limit:g}s",
                operation=operation,
                code="StillInProgress",
                transient=True,
            )
        time.sleep(delay)
        delay = min(polling.most, delay * 2)
        status = retried(operation, lambda: describe(request_id))
    if status.get("Status") == "FAILED":
        reason = str(status.get("FailureReason") or "no reason given").strip().rstrip(".")
        raise AwsError(f"{reason} (FAILED in account {account})", operation=operation, code="RequestFailed")
    return status


def each_of(polling: Polling, accounts: Sequence[str], work: Callable[[str], T]) -> list[T]:
    """`work(account)` for every account at once, results in the accounts' order (exceptions raised)."""
    if len(accounts) <= 1:
        return [work(a) for a in accounts]
    with ThreadPoolExecutor(max_workers=min(polling.threads, len(accounts))) as pool:
        return list(pool.map(work, accounts))


def attempt(work: Callable[[], T]) -> T | AwsError:
    """The outcome of one account's work: its value, or the AwsError it raised (the others go on)."""
    try:
        return work()
    except AwsError as exc:
        return exc
