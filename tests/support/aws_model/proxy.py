"""The model of AWS in front of moto: records the IAM policy changes moto accepted and answers the simulator.

It is a ChaosProxy (so fault rules still apply) that boto3 reaches for IAM and STS through the per-service
endpoint variables AWS_ENDPOINT_URL_IAM / AWS_ENDPOINT_URL_STS ("Service-specific endpoints", AWS SDKs and
Tools Reference Guide); every other service keeps AWS_ENDPOINT_URL (moto). A change that moto answered with
2xx is one AWS accepted, even if a rule then fails the answer (applied_then_error, drop, stall).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from tests.support.aws_model.changes import POLICY_CHANGES, ChangeLog, answer_fields
from tests.support.aws_model.simulator import SIMULATIONS, form, simulate
from tests.support.chaos_proxy import ChaosProxy, _Handler, identify

SERVICES = ("IAM", "STS")


def _now() -> datetime:
    return datetime.now(UTC)


class AwsModelProxy(ChaosProxy):
    """A proxy to moto that keeps IAM's change log (see ChangeLog) and answers iam:Simulate* itself."""

    def __init__(self, upstream: str, *, clock: Callable[[], datetime] = _now, delay: timedelta = timedelta(0)) -> None:
        super().__init__(upstream)
        self.log = ChangeLog(clock, delay)

    @contextmanager
    def endpoints(self) -> Iterator[None]:
        """Point boto3's IAM and STS clients (built from here on) at the model; restore the variables after."""
        saved = {name: os.environ.get(f"AWS_ENDPOINT_URL_{name}") for name in SERVICES}
        os.environ.update({f"AWS_ENDPOINT_URL_{name}": self.url for name in SERVICES})
        try:
            yield
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(f"AWS_ENDPOINT_URL_{name}", None)
                else:
                    os.environ[f"AWS_ENDPOINT_URL_{name}"] = value

    def _serve(self, handler: _Handler, body: bytes) -> None:
        service, operation = identify(dict(handler.headers.items()), body, handler.path)
        if service == "iam" and operation in SIMULATIONS:  # fault rules do not reach the model's simulator
            answer = simulate(operation, form(body), self.log.latest())
            self._record(service, operation, "model", 200, 0.0)
            handler.send(200, [("Content-Type", "text/xml")], answer)
            return
        super()._serve(handler, body)

    def _forward(self, handler: _Handler, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        status, headers, data = super()._forward(handler, body)
        service, operation = identify(dict(handler.headers.items()), body, handler.path)
        if service == "iam" and operation in POLICY_CHANGES and 200 <= status < 300:
            self.log.record(operation, form(body), answer_fields(operation, data))
        return status, headers, data
