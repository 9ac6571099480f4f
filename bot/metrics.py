"""Prometheus metrics, on a registry of the runtime's own (several runtimes can share a process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class Metrics:
    """Counters and histograms an operator watches."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.transitions = Counter(
            "accessbot_transitions", "Request state changes", ["kind", "status"], registry=self.registry
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
        self.revoke_lag = Histogram(
            "accessbot_revoke_lag_seconds",
            "Seconds from expires_at until AWS accepted the revoke",
            buckets=(0.1, 0.25, 0.5, 1, 2, 5, 15, 60, 300),
            registry=self.registry,
        )
        self.sweep_duration = Histogram(
            "accessbot_sweep_duration_seconds", "Duration of one sweep", registry=self.registry
        )
