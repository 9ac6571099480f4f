"""A fake CloudTrail LookupEvents endpoint: a real HTTP server on 127.0.0.1 speaking AWS's JSON 1.1 protocol.

boto3 reaches it through AWS_ENDPOINT_URL_CLOUDTRAIL (or `endpoint_url`). It models what the bot relies on
(CloudTrail API Reference, "LookupEvents"): one account and one Region per call (the Region from the
request's SigV4 credential scope, the account from its access key ID through `account_of`, as AWS knows
whose credentials signed a call), one lookup attribute (AccessKeyId, EventId, EventName, EventSource, ReadOnly,
ResourceName, ResourceType, Username), a time range, newest events first, pages of at most 50 with a
NextToken, and two calls a second per account and Region, answered beyond that with a ThrottlingException.
Events are seeded in the shape CloudTrail records them (see `event`).
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PAGE_MOST = 50
RATE_PER_SECOND = 2
TARGET = "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents"
_SCOPE = re.compile(r"Credential=([^/]+)/\d{8}/([a-z0-9-]+)/cloudtrail/")
ACCOUNT = "123456789012"  # the account of every caller unless `account_of` says otherwise
ATTRIBUTES = (
    "AccessKeyId",
    "EventId",
    "EventName",
    "EventSource",
    "ReadOnly",
    "ResourceName",
    "ResourceType",
    "Username",
)


@dataclass(frozen=True)
class Seen:
    """One LookupEvents call as it reached the fake."""

    region: str
    at: float  # time.monotonic()
    throttled: bool
    attribute: tuple[str, str] | None
    account: str = ACCOUNT


@dataclass
class FakeCloudTrail:
    """The events per Region, the calls seen, and the switches tests flip."""

    url: str = ""
    events: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)  # by (account, Region)
    calls: list[Seen] = field(default_factory=list)
    rate_limit: bool = True
    unavailable: bool = False  # answer every call with a 503 ServiceUnavailable
    denied: bool = False  # answer as to a caller whose policy lacks cloudtrail:LookupEvents
    denied_in: set[str] = field(default_factory=set)  # the same, in these accounts only
    # The account a caller's access key ID belongs to (tests ask moto, whose assumed-role keys name theirs).
    account_of: Callable[[str], str] = lambda _key: ACCOUNT
    _lock: threading.Lock = field(default_factory=threading.Lock)
    # A lookup's matches, newest first, kept while no event is added: each page is then a slice, not a scan.
    _found: dict[tuple[Any, ...], list[dict[str, Any]]] = field(default_factory=dict)

    def add(self, region: str, *events: dict[str, Any], account: str = ACCOUNT) -> None:
        """Seed events (each a CloudTrail record, as `event` builds) into an account's history in a Region."""
        with self._lock:
            self.events.setdefault((account, region), []).extend(events)
            self._found.clear()

    def reset(self) -> None:
        """Forget every event and call."""
        with self._lock:
            self.events.clear()
            self.calls.clear()
            self._found.clear()
            self.denied_in.clear()
        self.rate_limit, self.unavailable, self.denied = True, False, False

    def most_in_a_second(self, region: str | None = None, account: str | None = None) -> int:
        """The most calls (throttled ones included) that arrived within any one second, per account and Region."""
        best = 0
        places = {(c.account, c.region) for c in self.calls}
        for where in places:
            if (region is not None and where[1] != region) or (account is not None and where[0] != account):
                continue
            times = sorted(c.at for c in self.calls if (c.account, c.region) == where)
            start = 0
            for end, at in enumerate(times):
                while at - times[start] >= 1.0:
                    start += 1
                best = max(best, end - start + 1)
        return best

    def answer(self, region: str, body: dict[str, Any], account: str = ACCOUNT) -> tuple[int, dict[str, Any]]:
        """The HTTP status and JSON body CloudTrail would answer this call with, in this account and Region."""
        attributes = body.get("LookupAttributes") or []
        if len(attributes) > 1:
            return 400, _error("InvalidLookupAttributesException", "You cannot specify more than one lookup attribute.")
        wanted = (str(attributes[0]["AttributeKey"]), str(attributes[0]["AttributeValue"])) if attributes else None
        if wanted is not None and wanted[0] not in ATTRIBUTES:
            return 400, _error("InvalidLookupAttributesException", f"Unknown attribute key {wanted[0]}")
        now = time.monotonic()
        with self._lock:
            recent = [
                c
                for c in self.calls
                if (c.account, c.region) == (account, region) and now - c.at < 1.0 and not c.throttled
            ]
            throttled = self.rate_limit and len(recent) >= RATE_PER_SECOND
            self.calls.append(Seen(region, now, throttled, wanted, account))
            start, end = body.get("StartTime"), body.get("EndTime")
            lookup = (account, region, wanted, start, end)
            if lookup not in self._found:
                history = self.events.get((account, region), [])
                matches = [_record(e) for e in history if _in(e, start, end)]
                matches = [r for r in matches if wanted is None or _matches(r, *wanted)]
                self._found[lookup] = sorted(matches, key=lambda r: r["EventTime"], reverse=True)
            found = self._found[lookup]
        if self.denied or account in self.denied_in:
            return 400, _error("AccessDeniedException", "User is not authorized to perform: cloudtrail:LookupEvents")
        if self.unavailable:
            return 503, _error("ServiceUnavailable", "Service unavailable")
        if throttled:
            return 400, _error("ThrottlingException", "Rate exceeded")
        size = int(body.get("MaxResults") or PAGE_MOST)
        if not 1 <= size <= PAGE_MOST:
            return 400, _error("InvalidMaxResultsException", "MaxResults must be between 1 and 50")
        offset = int(body.get("NextToken") or 0)
        answer: dict[str, Any] = {"Events": found[offset : offset + size]}
        if offset + size < len(found):
            answer["NextToken"] = str(offset + size)
        return 200, answer


def event(
    name: str,
    source: str,
    at: datetime,
    identity: dict[str, Any],
    *,
    region: str = "us-east-1",
    read_only: bool = True,
    error: str | None = None,
    resources: list[dict[str, str]] | None = None,
    request: dict[str, Any] | None = None,
    response: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A CloudTrail record as delivered (CloudTrail User Guide, "CloudTrail record contents")."""
    record: dict[str, Any] = {
        "eventVersion": "1.10",
        "userIdentity": identity,
        "eventTime": at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "eventSource": source,
        "eventName": name,
        "awsRegion": region,
        "sourceIPAddress": "198.51.100.7",
        "userAgent": "aws-cli/2.15.0",
        "requestParameters": request,
        "responseElements": response,
        "eventID": str(uuid.uuid4()),
        "readOnly": read_only,
        "resources": [{"ARN": r["ResourceName"], "type": r["ResourceType"]} for r in resources or []],
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": identity.get("accountId", ACCOUNT),
        "eventCategory": "Management",
    }
    if error:
        record["errorCode"] = error
        record["errorMessage"] = f"User is not authorized to perform: {source.split('.')[0]}:{name}"
    record["_resources"] = resources or []  # LookupEvents' own Resources list; not part of the record itself
    return record


def iam_user(name: str, account: str = "123456789012", key: str = "AKIAIOSFODNN7EXAMPLE") -> dict[str, Any]:
    """userIdentity of an IAM user's long-term credentials (CloudTrail userIdentity element, type IAMUser)."""
    return {
        "type": "IAMUser",
        "principalId": "AIDAJ45Q7YFFAREXAMPLE",
        "arn": f"arn:aws:iam::{account}:user/{name}",
        "accountId": account,
        "accessKeyId": key,
        "userName": name,
    }


def assumed_role(
    role: str,
    session: str,
    key: str,
    *,
    account: str = "123456789012",
    source_identity: str | None = None,
    on_behalf_of: dict[str, str] | None = None,
) -> dict[str, Any]:
    """userIdentity of a role session (type AssumedRole), with its source identity where one was set."""
    identity: dict[str, Any] = {
        "type": "AssumedRole",
        "principalId": f"AROAIDPPEZS35WEXAMPLE:{session}",
        "arn": f"arn:aws:sts::{account}:assumed-role/{role}/{session}",
        "accountId": account,
        "accessKeyId": key,
        "sessionContext": {
            "sessionIssuer": {
                "type": "Role",
                "principalId": "AROAIDPPEZS35WEXAMPLE",
                "arn": f"arn:aws:iam::{account}:role/{role}",
                "accountId": account,
                "userName": role,
            },
            "attributes": {"creationDate": "2026-12-08T01:00:00Z", "mfaAuthenticated": "false"},
        },
    }
    if source_identity is not None:
        identity["sessionContext"]["sourceIdentity"] = source_identity
    if on_behalf_of is not None:
        identity["onBehalfOf"] = on_behalf_of
    return identity


def _record(e: dict[str, Any]) -> dict[str, Any]:
    """LookupEvents' Event: a few top-level fields, plus the whole record as a JSON string."""
    whole = {k: v for k, v in e.items() if k != "_resources"}
    identity = e.get("userIdentity") or {}
    user = identity.get("userName") or str(identity.get("arn", "")).rsplit("/", 1)[-1]
    return {
        "EventId": e["eventID"],
        "EventName": e["eventName"],
        "ReadOnly": "true" if e.get("readOnly") else "false",
        "AccessKeyId": identity.get("accessKeyId", ""),
        "EventTime": datetime.fromisoformat(e["eventTime"].replace("Z", "+00:00")).timestamp(),
        "EventSource": e["eventSource"],
        "Username": user,
        "Resources": list(e.get("_resources") or []),
        "CloudTrailEvent": json.dumps(whole),
    }


def _matches(record: dict[str, Any], key: str, value: str) -> bool:
    if key == "ResourceName":
        return any(r.get("ResourceName") == value for r in record["Resources"])
    if key == "ResourceType":
        return any(r.get("ResourceType") == value for r in record["Resources"])
    return str(record.get(key, "")) == value


def _in(e: dict[str, Any], start: Any, end: Any) -> bool:
    at = datetime.fromisoformat(e["eventTime"].replace("Z", "+00:00")).timestamp()
    return (start is None or at >= float(start)) and (end is None or at <= float(end))


def _error(code: str, message: str) -> dict[str, Any]:
    return {"__type": code, "message": message}


def _handler(fake: FakeCloudTrail) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            scope = _SCOPE.search(self.headers.get("Authorization") or "")
            region = scope.group(2) if scope else "us-east-1"
            if self.headers.get("X-Amz-Target") != TARGET:
                status, answer = 400, _error("UnknownOperationException", "only LookupEvents is faked")
            else:
                status, answer = fake.answer(region, body, fake.account_of(scope.group(1)) if scope else ACCOUNT)
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/x-amz-json-1.1")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_args: Any) -> None:
            return

    return Handler


@contextlib.contextmanager
def running(fake: FakeCloudTrail | None = None) -> Iterator[FakeCloudTrail]:
    """Serve a fake CloudTrail on an ephemeral loopback port for the duration of the block."""
    fake = fake or FakeCloudTrail()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="fake-cloudtrail", daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
