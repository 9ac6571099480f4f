"""Prometheus metrics, on a registry of the runtime's own (several runtimes can share a process)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)


class Metrics:
    """Counters and histograms an operator watches."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.transitions = Counter(
            "accessbot_transitions", "Request state changes", ["kind", "status"], registry=self.registry
        )
        self.requests = Counter(
            "accessbot_requests",
            "Requests that reached a final state, by kind and that state",
            ["kind", "status"],
            registry=self.registry,
        )
        self.aws_failures = Counter(
            "accessbot_aws_failures",
            "AWS calls that failed after retries",
            ["operation"],
            registry=self.registry,
        )
        self.slack_failures = Counter(
            "accessbot_slack_failures", "Slack Web API calls that failed", ["method"], registry=self.registry
        )
        self.slack_given_up = Counter(
            "accessbot_slack_posts_given_up",
            "Slack posts the bot owed and gave up on after retrying up to the bound",
            ["method"],
            registry=self.registry,
        )
        self.revoke_lag = Histogram(
            "accessbot_revoke_lag_seconds",
            "Seconds from expires_at until AWS accepted the revoke",
            buckets=(0.1, 0.25, 0.5, 1, 2, 5, 15, 60, 300),
            registry=self.registry,
        )
        self.sweep_duration = Histogram(
            "accessbot_sweep_duration_seconds", "Duration of one sweep", registry=self.registry
        )

    def watch_active_grants(self, count: Callable[[], Mapping[str, int]]) -> None:
        """Export accessbot_active_grants{kind}, computed by `count` at every scrape."""
        self.registry.register(_ActiveGrants(count))

    def watch_outbox(self, owed: Callable[[], tuple[int, float]]) -> None:
        """Export the Slack posts owed and the age of the oldest, read by `owed` at every scrape."""
        self.registry.register(_Outbox(owed))


class _Outbox(Collector):
    """accessbot_slack_outbox_owed and accessbot_slack_outbox_oldest_seconds, read from the database."""

    def __init__(self, owed: Callable[[], tuple[int, float]]) -> None:
        self._owed = owed

    def collect(self) -> Iterator[Metric]:
        try:
            count, oldest = self._owed()
        except Exception:
            log.warning("could not read the Slack outbox for /metrics", exc_info=True)
            return
        yield from self._families(count, oldest)

    def describe(self) -> Iterator[Metric]:
        yield from self._families(None, None)

    @staticmethod
    def _families(count: int | None, oldest: float | None) -> Iterator[Metric]:
        owed = GaugeMetricFamily("accessbot_slack_outbox_owed", "Slack posts written and not yet taken by Slack")
        age = GaugeMetricFamily(
            "accessbot_slack_outbox_oldest_seconds", "Age of the oldest Slack post not yet taken by Slack (0: none)"
        )
        if count is not None and oldest is not None:
            owed.add_metric([], count)
            age.add_metric([], oldest)
        yield owed
        yield age


class _ActiveGrants(Collector):
    """A gauge read from the database when scraped, so every replica reports the same truth."""

    def __init__(self, count: Callable[[], Mapping[str, int]]) -> None:
        self._count = count

    def collect(self) -> Iterator[Metric]:
        """Yield the gauge; nothing (and a log line) when the database cannot be read."""
        try:
            counts = self._count()
        except Exception:
            log.warning("could not count active grants for /metrics", exc_info=True)
            return
        gauge = GaugeMetricFamily("accessbot_active_grants", "Grants active now, by kind", labels=["kind"])
        for kind, value in sorted(counts.items()):
            gauge.add_metric([kind], value)
        yield gauge

    def describe(self) -> Iterator[Metric]:
        """Describe without querying (registration must not touch the database)."""
        yield GaugeMetricFamily("accessbot_active_grants", "Grants active now, by kind", labels=["kind"])
