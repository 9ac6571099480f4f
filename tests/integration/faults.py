"""AWS failures injected into the running bot's own boto3 clients through botocore's before-send event.

A handler that returns a response makes botocore skip the network and parse that response as AWS's
answer, so the client's standard retry mode treats it exactly as it would treat AWS.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from botocore.awsrequest import AWSResponse
from sqlalchemy import event
from sqlmodel import Session

from bot.aws.granters import GroupGranter, KeyGranter, RoleGranter
from bot.catalog import Kind
from bot.domain.audit import AuditAction
from bot.store import queries
from tests.conftest import Bot


def bot_iam(bot: Bot) -> Any:
    """The IAM client the bot under test uses (the identity resolver shares it)."""
    granter = bot.runtime.workflow.ctx.granters[Kind.IAM_ROLE]
    assert isinstance(granter, RoleGranter)
    group = bot.runtime.workflow.ctx.granters[Kind.IAM_GROUP]
    assert isinstance(group, GroupGranter) and group._iam is granter._iam
    return granter._iam


def bot_kms(bot: Bot) -> Any:
    """The KMS client the bot under test uses."""
    granter = bot.runtime.workflow.ctx.granters[Kind.KMS_KEY]
    assert isinstance(granter, KeyGranter)
    return granter._kms


class _Body:
    """The `raw` of an AWSResponse: botocore reads it through stream()."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_kwargs: Any) -> Iterator[bytes]:
        yield self._body


def error_response(service: str, url: str, *, code: str, status: int, message: str) -> AWSResponse:
    """An error exactly as AWS sends it: XML for IAM (query protocol), JSON for KMS and Identity Center (json)."""
    if service in ("kms", "sso-admin", "identitystore"):
        body = json.dumps({"__type": code, "message": message}).encode()
        headers = {"Content-Type": "application/x-amz-json-1.1", "x-amzn-RequestId": "fault-0001"}
    else:
        body = (
            '<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><Error><Type>Sender</Type>'
            f"<Code>{code}</Code><Message>{message}</Message></Error><RequestId>fault-0001</RequestId>"
            "</ErrorResponse>"
        ).encode()
        headers = {"Content-Type": "text/xml", "x-amzn-RequestId": "fault-0001"}
    return AWSResponse(url, status, headers, _Body(body))


@dataclass
class Fault:
    """Answers one operation with an AWS error for its first `times` calls (None: every call).

    Every call is recorded (monotonic time, and whether it was failed). A call after the failing
    ones waits for `gate` when one is set, so a test can look at the state in between.
    """

    client: Any
    operation: str
    code: str
    status: int
    message: str
    times: int | None = None
    gate: threading.Event | None = None
    calls: list[tuple[float, bool]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def event(self) -> str:
        return f"before-send.{self.client.meta.service_model.service_id.hyphenize()}.{self.operation}"

    @property
    def failed(self) -> int:
        with self._lock:
            return sum(1 for _at, failed in self.calls if failed)

    @property
    def passed(self) -> int:
        with self._lock:
            return sum(1 for _at, failed in self.calls if not failed)

    def failure_times(self) -> list[float]:
        with self._lock:
            return [at for at, failed in self.calls if failed]

    def __call__(self, request: Any, **_kwargs: Any) -> AWSResponse | None:
        with self._lock:
            fail = self.times is None or sum(1 for _at, f in self.calls if f) < self.times
            self.calls.append((time.monotonic(), fail))
        if not fail:
            if self.gate is not None:
                assert self.gate.wait(20), "the test never opened the gate"
            return None
        service = self.client.meta.service_model.service_id.hyphenize()
        return error_response(service, request.url, code=self.code, status=self.status, message=self.message)

    def stop(self) -> None:
        """Let every later call through to AWS (moto)."""
        self.client.meta.events.unregister(self.event, unique_id=f"fault-{id(self)}")


def inject(
    client: Any,
    operation: str,
    *,
    code: str,
    status: int,
    message: str = "injected by the test",
    times: int | None = None,
    gate: threading.Event | None = None,
) -> Fault:
    """Make the client's `operation` (e.g. 'DeleteUserPolicy') fail; return the recorder."""
    fault = Fault(client, operation, code, status, message, times, gate)
    client.meta.events.register(fault.event, fault, unique_id=f"fault-{id(fault)}")
    return fault


class DiedAfterCommit(Exception):
    """What `dying_after_commit` raises out of a commit: the process is gone, nothing after it runs."""


@contextmanager
def dying_after_commit(action: str, times: int = 1) -> Iterator[list[int | None]]:
    """The first `times` transactions that record the audit event `action` commit, and then the process
    'dies': an exception out of the commit before anything else hears of it (the outbox's own hand-over of
    the posts written in it to its senders included), so nothing the code does after the commit happens.
    Yields the request IDs struck, as they are struck."""
    struck: list[int | None] = []
    lock = threading.Lock()
    record = queries.record_audit

    def recording(*, session: Session, action: AuditAction, **rest: Any) -> None:
        if action == wanted:
            session.info[_DIES] = rest.get("request_id")
        record(session=session, action=action, **rest)

    def died(session: Session) -> None:
        if _DIES not in session.info:
            return
        request_id = session.info.pop(_DIES)
        with lock:
            if len(struck) >= times:
                return
            struck.append(request_id)
        raise DiedAfterCommit(f"the process died right after committing {wanted!r} for #{request_id}")

    def forget(session: Session) -> None:
        session.info.pop(_DIES, None)

    wanted = action
    queries.record_audit = recording  # type: ignore[assignment]
    event.listen(Session, "after_commit", died, insert=True)
    event.listen(Session, "after_rollback", forget)
    try:
        yield struck
    finally:
        event.remove(Session, "after_rollback", forget)
        event.remove(Session, "after_commit", died)
        queries.record_audit = record


_DIES = "test:dies_after_commit"
