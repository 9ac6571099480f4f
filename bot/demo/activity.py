"""The demo's activity report: a fake CloudTrail holds what Alice did with deploy-admins; the bot reports it."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta

from bot.runtime import Runtime
from bot.store.activity_tables import ActivityReport
from bot.store.db import session_scope
from bot.store.models import AccessRequest
from bot.testing.fake_cloudtrail import FakeCloudTrail, event, iam_user, running


@contextmanager
def offline_cloudtrail() -> Iterator[FakeCloudTrail]:
    """The fake CloudTrail LookupEvents endpoint on 127.0.0.1, with boto3 pointed at it (moto has none)."""
    with running() as fake:
        os.environ["AWS_ENDPOINT_URL_CLOUDTRAIL"] = fake.url
        yield fake


def alice_works(fake: FakeCloudTrail, runtime: Runtime, request_id: int) -> None:
    """What CloudTrail records of Alice's use of the grant: reads, one write, one refused call."""
    with session_scope(runtime.workflow.engine) as session:
        row = session.get(AccessRequest, request_id)
        assert row is not None and row.activated_at is not None
    who, at = iam_user(row.iam_user), row.activated_at
    fake.add(
        "us-east-1",
        event("DescribeStacks", "cloudformation.amazonaws.com", at, who),
        event("DescribeStacks", "cloudformation.amazonaws.com", at, who),
        event("GetObject", "s3.amazonaws.com", at, who),
        event("UpdateStack", "cloudformation.amazonaws.com", at, who, read_only=False),
        event("DeleteStack", "cloudformation.amazonaws.com", at, who, read_only=False, error="AccessDenied"),
    )


def await_report(runtime: Runtime, request_id: int, fail: Callable[[str], Exception], timeout: float = 20.0) -> None:
    """Make due reports until this grant's is made (its thread post then reaches the stand-in Slack)."""
    assert runtime.activity is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runtime.activity.run_due()  # the reporter's own thread looks every 30 s; the demo does not wait for it
        with session_scope(runtime.workflow.engine) as session:
            row = session.get(ActivityReport, request_id)
            if row is not None and row.reported_at is not None:
                return
        time.sleep(0.1)
    raise fail(f"no activity report for #{request_id} after {timeout:.0f}s")


NO_DELAY = timedelta(0)  # the demo's CloudTrail has every event at once: no delivery delay to wait for
