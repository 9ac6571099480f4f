"""On-call lookups for auto-approval: PagerDuty over its REST API, or a Slack user group."""
