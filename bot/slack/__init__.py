"""Slack: the app, thin listeners, Block Kit builders, one error handler."""
