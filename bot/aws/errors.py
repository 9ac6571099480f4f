"""AWS failures in plain words, so a requester can read them."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from botocore.exceptions import BotoCoreError, ClientError

GONE_CODES = frozenset({"NoSuchEntity", "NotFoundException", "InvalidGrantIdException", "ResourceNotFoundException"})
THROTTLING_CODES = frozenset(
    {"Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException", "RequestThrottled"}
)
TRANSIENT_CODES = THROTTLING_CODES | frozenset(
    {
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalFailure",
        "InternalError",
        "KMSInternalException",
        "DependencyTimeoutException",
        "ServiceFailure",
    }
)
# Identity Center refuses a change while another one on the same assignment or membership is in flight.
CONFLICT_CODES = frozenset({"ConflictException"})
_DENIED = "the bot's own IAM permissions do not allow this"
HINTS = {
    "AccessDenied": _DENIED,
    "AccessDeniedException": _DENIED,
    "LimitExceeded": "an AWS limit was reached",
    "NoSuchEntity": "it does not exist",
    "NotFoundException": "it does not exist",
    "ResourceNotFoundException": "it does not exist",
    "ConflictException": "another change to the same access was still in progress, even after retries",
    "DisabledException": "the KMS key is disabled",
    "KMSInvalidStateException": "the KMS key is not in a state that allows this",
}


class AwsError(Exception):
    """An AWS call failed after botocore's retries; `str()` is a sentence for people."""

    def __init__(self, message: str, *, operation: str, code: str = "", transient: bool = False) -> None:
        super().__init__(message)
        self.operation = operation
        self.code = code
        self.transient = transient

    @property
    def gone(self) -> bool:
        """The thing acted on does not exist (on revoke this means: already done)."""
        return self.code in GONE_CODES


def describe(exc: Exception, operation: str) -> AwsError:
    """Turn a botocore exception into an AwsError with a readable message."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "Unknown"))
        detail = str(error.get("Message", "")).strip().rstrip(".") or code
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        transient = code in TRANSIENT_CODES or status >= 500
        hint = HINTS.get(code, "")
        if code in THROTTLING_CODES:
            hint = "AWS kept throttling the bot's requests, even after retries; try again in a few minutes"
        elif transient:
            hint = "AWS had a temporary problem that lasted through every retry; try again in a few minutes"
        return AwsError(
            f"AWS refused {operation}: {detail} ({code}{': ' + hint if hint else ''})",
            operation=operation,
            code=code,
            transient=transient,
        )
    if isinstance(exc, BotoCoreError):
        return AwsError(
            f"AWS could not be reached for {operation}: {exc}",
            operation=operation,
            code=type(exc).__name__,
            transient=True,
        )
    raise exc


@contextmanager
def aws_call(operation: str) -> Iterator[None]:
    """Translate botocore errors raised inside the block into AwsError."""
    try:
        yield
    except (ClientError, BotoCoreError) as exc:
        raise describe(exc, operation) from exc


T = TypeVar("T")


def retried(
    operation: str,
    call: Callable[[], T],
    *,
    attempts: int = 6,
    first_delay: float = 0.2,
    max_delay: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """`call()` inside aws_call, tried again with a doubling backoff on ConflictException and throttling.

    botocore's standard retry mode already retries throttling; it never retries ConflictException, which
    Identity Center answers while another change to the same assignment or membership is in flight.
    """
    delay = first_delay
    for attempt in range(1, attempts + 1):
        try:
            with aws_call(operation):
                return call()
        except AwsError as exc:
            if attempt == attempts or exc.code not in CONFLICT_CODES | THROTTLING_CODES:
                raise
        sleep(delay)
        delay = min(max_delay, delay * 2)
    raise AssertionError("unreachable")  # pragma: no cover
